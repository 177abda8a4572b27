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
/// resolve() checks, open_beneath() uses: the file tools open every path they touch through a
/// directory descriptor of the root with openat2(2) and RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS,
/// so a symbolic link swapped in between the check and the use (run_command can do that) is
/// refused by the kernel instead of followed out of the root. On kernels without openat2 (before
/// 5.6) the open falls back to openat(2) and only the check protects.
///
/// Names are bytes; display() and the error texts show bytes that are not UTF-8 as `\xNN`, so
/// every message can go into JSON.
///
/// Thread safety: immutable after construction; distinct and shared objects are safe.
class workspace {
public:
    /// Errors: throws std::invalid_argument if `root` does not exist, is not a directory or
    /// cannot be opened.
    explicit workspace(const std::filesystem::path& root);
    ~workspace();
    workspace(const workspace&) = delete;
    workspace& operator=(const workspace&) = delete;

    /// The canonical root (absolute, no symbolic links).
    const std::filesystem::path& root() const noexcept { return root_; }

    /// The real absolute path that `path` names. An empty path or "." names the root.
    ///
    /// Errors: throws argument_error (tool.hpp) with a message for the model if the path leads
    /// outside the root (through `..`, an absolute path, or a symbolic link), contains a NUL
    /// byte, or has more than 40 symbolic links to follow.
    /// The message is valid UTF-8 even for names that are not.
    std::filesystem::path resolve(std::string_view path) const;

    /// `real` (a path returned by resolve()) relative to the root, for messages: "." for the
    /// root itself, "src/main.cpp" otherwise. Valid UTF-8 (invalid bytes shown as `\xNN`).
    std::string display(const std::filesystem::path& real) const;

    /// `real` relative to the root as bytes, as open_beneath() uses it ("." for the root).
    std::string relative(const std::filesystem::path& real) const;

    /// True if `real` (absolute, normalised) is the root or lies below it.
    bool contains(const std::filesystem::path& real) const;

    /// Opens `real` (a path returned by resolve(), or any path inside the root) from the root's
    /// directory descriptor; `flags` and `mode` as for open(2) (O_CLOEXEC is added). Symbolic
    /// links met on the way are followed only while they stay inside the root.
    ///
    /// Returns the new descriptor (the caller closes it), or -1 with errno set: ENOENT,
    /// ENOTDIR, EACCES... as for open(2); EXDEV if the path now leads outside the root (a link
    /// swapped in since resolve()); ELOOP for a magic link (/proc/self/fd/N) or a link loop.
    int open_beneath(const std::filesystem::path& real, int flags, unsigned mode = 0) const;

    /// The directory descriptor of the root (owned by the workspace, open until destruction).
    int root_fd() const noexcept { return root_fd_; }

private:
    std::filesystem::path root_;  // canonical
    std::filesystem::path given_; // as given, absolute and normalised (may contain symlinks)
    int root_fd_ = -1;
};

} // namespace wafer::tools
