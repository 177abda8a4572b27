// Building a Landlock ruleset in the parent; the child only calls restrict_self() before exec.
#pragma once

#include <wafer/tools/sandbox.hpp>

#include <filesystem>
#include <string>
#include <vector>

namespace wafer::tools::detail {

/// An owned Landlock ruleset file descriptor (close-on-exec).
class landlock_ruleset {
public:
    landlock_ruleset() = default;
    explicit landlock_ruleset(int fd) noexcept : fd_(fd) {}
    ~landlock_ruleset();
    landlock_ruleset(landlock_ruleset&& o) noexcept : fd_(o.fd_) { o.fd_ = -1; }
    landlock_ruleset& operator=(landlock_ruleset&& o) noexcept;
    landlock_ruleset(const landlock_ruleset&) = delete;
    landlock_ruleset& operator=(const landlock_ruleset&) = delete;

    int fd() const noexcept { return fd_; }

private:
    int fd_ = -1;
};

/// A ruleset that lets the command read and execute everything but write only beneath
/// `writable` (directories or single files) and the harmless devices (/dev/null, ...); that
/// denies TCP connect and bind when `deny_tcp` (needs ABI 4; ignored below); and that scopes
/// signals and abstract unix sockets to the sandbox (ABI 6; ignored below).
///
/// Throws sandbox_unavailable if Landlock is absent (`support.landlock_abi == 0`) or a rule
/// cannot be added (a writable path that does not exist).
landlock_ruleset make_landlock_ruleset(
    const sandbox_support& support,
    const std::vector<std::filesystem::path>& writable,
    bool deny_tcp
);

/// Applies `ruleset_fd` to the calling thread (and so to the program it executes next):
/// PR_SET_NO_NEW_PRIVS, then landlock_restrict_self. Async-signal-safe, for use between fork
/// and exec. Returns 0 or an errno value.
int landlock_restrict_self(int ruleset_fd) noexcept;

} // namespace wafer::tools::detail
