// The directory the built-in tools are confined to, and how a model-given path is resolved in it.
#pragma once

#include <filesystem>
#include <string>
#include <string_view>

namespace wafer::tools {

/// A workspace root and the rule that every path a tool touches stays inside it.
///
/// resolve() turns a path written by the model into the real (symlink-free) absolute path it
/// names, and refuses it unless that real path lies inside the root. Relative paths are taken
/// from the root; absolute paths are accepted when they lie inside it. Resolution follows
/// realpath semantics component by component, including for components that do not exist yet
/// (a file write_file is about to create) and for dangling symbolic links, whose target is
/// checked too. So `../x`, `/etc/passwd`, `link/passwd` with `link -> /etc`, and `dangling`
/// with `dangling -> /tmp/elsewhere` are all refused.
///
/// The check is not a sandbox: the path is checked, then used. Another process that swaps a
/// directory for a symbolic link in between (run_command can) wins that race. The confinement
/// guards against model mistakes and casual escapes through the file tools, not against code
/// the model runs.
///
/// Thread safety: immutable after construction; distinct and shared objects are safe.
class workspace {
public:
    /// Errors: throws std::invalid_argument if `root` does not exist or is not a directory.
    explicit workspace(const std::filesystem::path& root);

    /// The canonical root (absolute, no symbolic links).
    const std::filesystem::path& root() const noexcept { return root_; }

    /// The real absolute path that `path` names. An empty path or "." names the root.
    ///
    /// Errors: throws argument_error (tool.hpp) with a message for the model if the path leads
    /// outside the root (through `..`, an absolute path, or a symbolic link), contains a NUL
    /// byte, or has more than 40 symbolic links to follow.
    std::filesystem::path resolve(std::string_view path) const;

    /// `real` (a path returned by resolve()) relative to the root, for messages: "." for the
    /// root itself, "src/main.cpp" otherwise.
    std::string display(const std::filesystem::path& real) const;

    /// True if `real` (absolute, normalised) is the root or lies below it.
    bool contains(const std::filesystem::path& real) const;

private:
    std::filesystem::path root_;  // canonical
    std::filesystem::path given_; // as given, absolute and normalised (may contain symlinks)
};

} // namespace wafer::tools
