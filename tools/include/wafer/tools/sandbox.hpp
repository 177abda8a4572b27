// The sandbox of run_command on Linux: Landlock rules (write only in the workspace and a private
// temp directory, no TCP, no signals or abstract sockets outside), plus a network namespace.
#pragma once

#include <filesystem>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace wafer::tools {

/// Whether commands run confined.
enum class sandbox_mode {
    /// No confinement: the command has the rights of the wafer process.
    off,
    /// Confinement is required: if this kernel cannot provide it the command is not run (the
    /// run throws sandbox_unavailable; the run_command tool returns an error result).
    on,
    /// Confined where the kernel supports it, otherwise run without (command_result says so).
    automatic,
};

/// "off", "on" or "auto" (for flags and config files); nullopt for anything else.
std::optional<sandbox_mode> parse_sandbox_mode(std::string_view text);
/// "off", "on" or "auto".
std::string_view to_string(sandbox_mode mode);

/// What a confined command may do. It can always read and execute everything its user can.
///
/// Landlock (the kernel's unprivileged sandbox, applied after fork and before exec, and kept by
/// every process the command starts) limits writes to the working directory of the command
/// (the workspace root for the run_command tool), a private temp directory made for each
/// command (TMPDIR; removed afterwards), `writable_paths`, and the harmless devices /dev/null,
/// /dev/zero, /dev/full, /dev/random, /dev/urandom. The command cannot ptrace other processes or
/// read their memory (Landlock), cannot see /proc/PID of wafer, its ancestors and its supervisor
/// (covered by an empty tmpfs in a private mount namespace: Landlock does not stop reads of
/// /proc/PID/environ), and with Landlock ABI 6 cannot signal processes outside the sandbox nor
/// connect to abstract unix sockets outside it. Other processes of the same user stay readable
/// in /proc.
struct sandbox_policy {
    sandbox_mode mode = sandbox_mode::off;
    /// TCP connect and bind are allowed. When false: Landlock denies every TCP connect and bind
    /// (ABI 4 or later), and with `network_namespace` the command also gets an empty network
    /// namespace (only a loopback that is down, so UDP and abstract unix sockets of the host are
    /// out of reach too).
    bool allow_network = false;
    /// Use a new network namespace when the network is not allowed (as root directly, otherwise
    /// in a new user namespace that maps the user's own uid and gid). Best effort when Landlock
    /// already denies TCP; required when it cannot.
    bool network_namespace = true;
    /// Directories (or files) the command may also write, beyond its working directory and its
    /// temp directory. Each must exist.
    std::vector<std::filesystem::path> writable_paths;
};

/// The sandbox was required (sandbox_mode::on) but cannot be set up here; what() says why.
class sandbox_unavailable : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

/// What this kernel offers for the sandbox.
struct sandbox_support {
    /// Landlock ABI version, 0 if Landlock is absent or disabled.
    int landlock_abi = 0;
    /// Why Landlock is not usable, when landlock_abi == 0.
    std::string reason;
    /// TCP connect/bind rules (ABI 4).
    bool tcp_rules() const noexcept { return landlock_abi >= 4; }
    /// Signal and abstract unix socket scoping (ABI 6).
    bool scoping() const noexcept { return landlock_abi >= 6; }
};

/// Asks the kernel (one system call; cheap enough to call per command).
sandbox_support probe_sandbox_support();

/// How one command will be confined: decided from the policy and what the kernel offers.
struct sandbox_plan {
    /// Apply Landlock (write rules, and scoping where the ABI has it).
    bool confine = false;
    /// Landlock denies TCP connect and bind.
    bool deny_tcp = false;
    /// Give the command a new network namespace ...
    bool network_namespace = false;
    /// ... and fail if it cannot be made (Landlock cannot deny TCP on this kernel).
    bool network_namespace_required = false;
    /// In auto mode: what is missing (empty when fully applied).
    std::string note;
};

/// Sans-io. Throws sandbox_unavailable (what() says why) if `policy.mode` is on and `support`
/// has no Landlock; in auto mode the plan is then unconfined with a note.
sandbox_plan plan_sandbox(const sandbox_policy& policy, const sandbox_support& support);

} // namespace wafer::tools
