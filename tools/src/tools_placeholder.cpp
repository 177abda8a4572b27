// Removed once the tool registry lands.
