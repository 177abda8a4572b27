// Form elicitation (elicitation/create), sans-io: what a form pre-fills from its schema and how
// an answer is written.
#pragma once

#include <nlohmann/json.hpp>

#include <string_view>

namespace wafer::tools::mcp {

/// The values a form elicitation's `requestedSchema` gives by default (SEP-1034): each property's
/// `default` when it fits the property (a string, number, integer or boolean of its type, an enum
/// member), as an object. Properties without a usable default are left out. Untrusted input: a
/// schema that is not an object gives {}.
nlohmann::json elicitation_defaults(const nlohmann::json& requested_schema);

/// An elicitation result: {"action":"accept","content":...}; "decline" and "cancel" carry no
/// content.
nlohmann::json elicitation_answer(std::string_view action, nlohmann::json content = nullptr);

} // namespace wafer::tools::mcp
