// Running a command under a small supervisor process that owns everything the command starts.
//
// wafer forks the supervisor (no exec), which forks the shell. The supervisor is a child
// subreaper (PR_SET_CHILD_SUBREAPER, set in the supervisor only, so wafer itself is unchanged),
// so every process the command starts stays its descendant, whatever it does: `setsid`, double
// forks and daemons are reparented to the supervisor, never to init. When told to (or when
// wafer goes away and its end of the control socket closes) the supervisor SIGKILLs its
// children until it has none left: each one killed hands its own children to the supervisor.
//
// Why not the alternatives: a cgroup needs a writable, delegated cgroup v2 tree, which most
// users do not have; a PID namespace would make `$$`, `$!` and `ps` disagree (the command
// would see its own pids while /proc shows the host's) unless /proc is remounted, and its
// init would need the same reaping loop anyway. The subreaper works for any user on any kernel
// since 3.4 and leaves pids as they are.
#pragma once

#include <cstdint>
#include <sys/types.h>

namespace wafer::tools::detail {

/// Everything the child side needs, prepared before fork (nothing is allocated after it).
struct supervised_command {
    const char* path = nullptr; // the shell
    char* const* argv = nullptr;
    char* const* envp = nullptr;
    const char* cwd = nullptr;
    /// Write end of the output pipe: the command's stdout and stderr. stdin is /dev/null.
    int output_fd = -1;
    /// Landlock ruleset applied to the shell before exec, or -1.
    int ruleset_fd = -1;
    /// Give the shell a new, empty network namespace.
    bool new_network_namespace = false;
    /// If the network namespace cannot be made, fail (otherwise carry on without it).
    bool network_namespace_required = false;
    /// /proc/PID directories (wafer and its ancestors; null-terminated) to cover, together with
    /// the supervisor's, with an empty read-only tmpfs in a private mount namespace: the command
    /// cannot read their environment (Landlock's ptrace rules do not cover /proc/PID/environ).
    /// Null: none. Best effort (the handle says whether it was done).
    const char* const* hidden_proc_dirs = nullptr;
    /// Not root: the namespaces are made inside a new user namespace with these maps
    /// ("uid uid 1\n"), mapping the user to itself. Null when running as root.
    const char* uid_map = nullptr;
    const char* gid_map = nullptr;
};

/// The shell's end, as the supervisor reports it on the status pipe.
struct exit_record {
    std::int32_t kind = 0; // exit_kind
    std::int32_t value = 0;
};
enum exit_kind : std::int32_t { exited = 1, signalled = 2 };

/// Commands written to the control socket.
inline constexpr char control_terminate = 'T'; // SIGTERM the shell's group and its orphans
inline constexpr char control_kill = 'K';      // SIGKILL everything, reap, exit

/// A started supervisor. The caller owns the descriptors (close-on-exec) and must reap `pid`.
struct supervisor_handle {
    pid_t pid = -1;
    /// Read end: one exit_record when the shell ends, then EOF when the supervisor exits.
    int status_fd = -1;
    /// A stream socket: send control_terminate / control_kill. Closing it = control_kill.
    int control_fd = -1;
    /// The command got its own network namespace.
    bool network_namespace = false;
    /// The hidden_proc_dirs were covered.
    bool proc_hidden = false;
};

/// Starts the supervisor and through it the command; returns once the shell has been executed.
/// Throws std::system_error if it could not be started (bad cwd, no shell, fork failed), or
/// sandbox_unavailable if the sandbox could not be applied (the command did not run).
supervisor_handle start_supervised(const supervised_command& cmd);

/// Sends one control byte; false if the supervisor is gone. Never raises SIGPIPE.
bool send_control(int control_fd, char c) noexcept;

} // namespace wafer::tools::detail
