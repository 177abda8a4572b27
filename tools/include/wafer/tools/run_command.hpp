// Running a shell command with a deadline, an output cap, an allow-listed environment, an
// optional sandbox, and clean-up of every process it starts.
#pragma once

#include <wafer/tools/command_environment.hpp>
#include <wafer/tools/sandbox.hpp>
#include <wafer/tools/tool.hpp>
#include <wafer/tools/workspace.hpp>

#include <boost/asio/awaitable.hpp>

#include <chrono>
#include <cstddef>
#include <filesystem>
#include <memory>
#include <optional>
#include <stop_token>
#include <string>
#include <vector>

namespace wafer::tools {

/// How one command runs.
struct command_params {
    /// Deadline from spawn; on expiry the process group is terminated.
    std::chrono::milliseconds timeout{60'000};
    /// Time between SIGTERM and SIGKILL when the group is terminated (timeout, cancellation).
    std::chrono::milliseconds kill_grace{1'000};
    /// After the shell exits, how long to keep reading output that background processes still
    /// write to the inherited pipe before they are killed and the pipe is closed.
    std::chrono::milliseconds drain_timeout{250};
    /// Bytes of output kept: the first half and the last half of the output; the middle is
    /// replaced by a marker. Output beyond the cap is still read (and dropped), so the command
    /// never blocks on a full pipe.
    std::size_t output_cap = 32 * 1024;
    /// The shell, run as `shell -c command`.
    std::string shell = "/bin/sh";
    /// The command's environment: an allow-list of wafer's variables (PATH, HOME, LANG, ...),
    /// so tokens and keys never reach it; see command_environment.
    command_environment env;
    /// Strings replaced by "[redacted]" in the output (the API key, for example), also when one
    /// is split across reads. Empty strings are ignored.
    std::vector<std::string> redact;
    /// Confinement; off by default in the library (the wafer CLI turns it on). See sandbox.hpp.
    sandbox_policy sandbox;
};

/// What happened to a command.
struct command_result {
    /// Exit status, if the shell exited normally.
    std::optional<int> exit_code;
    /// The signal that ended the shell, or 0.
    int signal = 0;
    /// The deadline expired and the group was terminated.
    bool timed_out = false;
    /// The caller cancelled and the group was terminated.
    bool cancelled = false;
    /// Merged stdout and stderr, raw bytes, cut to the cap (see truncated).
    std::string output;
    /// Bytes the command wrote in total (including dropped ones).
    std::size_t output_bytes = 0;
    /// True if output bytes were dropped; `output` then contains an omission marker.
    bool truncated = false;
    std::chrono::steady_clock::duration elapsed{};
    /// The command ran confined by the sandbox.
    bool sandboxed = false;
    /// Set when the sandbox was asked for (auto) but not (fully) applied: says what is missing.
    std::string sandbox_note;
};

/// Runs `shell -c command` in `cwd` and waits for it.
///
/// The shell runs under a small supervisor process (forked, not executed) that is a child
/// subreaper: everything the command starts, including `setsid` daemons and double forks, stays
/// its descendant and is killed when the command ends. The supervisor starts a new session (no
/// controlling terminal: nothing can open /dev/tty), and the shell runs in its own process
/// group with stdin from /dev/null, stdout and stderr merged into one pipe, and the environment
/// of `params.env`. The call completes once the shell has exited and the pipe is closed; every
/// process the command leaves behind is killed then, and a pipe still held open after
/// `drain_timeout` is closed. Nothing is left running or unreaped, including when the coroutine
/// is destroyed early (the destructor kills everything and waits), and when wafer itself dies
/// (the supervisor sees its control socket close).
///
/// With `params.sandbox` on (or auto, where the kernel supports it) the shell is confined before
/// exec (see sandbox_policy): writes only in `cwd`, a private temp directory (TMPDIR, removed
/// when the call completes) and the policy's paths; no TCP unless allowed.
///
/// No thread per command: the pipe and the supervisor's status pipe are waited on through the
/// awaiting coroutine's executor.
///
/// Errors: throws std::system_error if the pipe or the process cannot be created (for example
/// `cwd` does not exist), and sandbox_unavailable if the sandbox is required (mode on) but this
/// kernel cannot provide it; the command did not run then. A non-zero exit, a signal or a
/// timeout is reported in the result.
///
/// Cancellation: terminal cancellation of the awaiting coroutine, or `stop`, terminates the
/// group (SIGTERM, then SIGKILL after kill_grace); the call then completes with
/// `cancelled == true` once the shell is reaped, at most about kill_grace + drain_timeout later.
///
/// Thread safety: the executor must not run the call's handlers concurrently (a
/// single-threaded io_context or a strand). Any number of calls may run at once.
///
/// (GCC 12 miscompiles an option struct built in a co_await expression, `{}` defaults included:
/// the overload without params builds its own outside the caller's coroutine. Pass params as a
/// named object.)
boost::asio::awaitable<command_result> async_run_command(
    std::string command, std::filesystem::path cwd, command_params params, std::stop_token stop = {}
);
boost::asio::awaitable<command_result>
async_run_command(std::string command, std::filesystem::path cwd);

/// Options of the `run_command` tool.
struct run_command_options {
    /// Timeout, grace, drain, output cap, environment, redaction and sandbox of each run;
    /// `run.timeout` is the default when the model gives no timeout_ms.
    command_params run;
    /// Upper bound for the model's timeout_ms (larger values are clamped, and the result says so).
    std::chrono::milliseconds max_timeout{600'000};
    /// Where the sandbox is required (mode on) but this kernel cannot provide it, run a call
    /// that a person approved (call_context::approved) unconfined instead of refusing it; the
    /// result says so. Calls nobody approved are still refused.
    bool unconfined_if_approved = false;
};

/// The `run_command {command, timeout_ms?}` tool: runs the command with /bin/sh in the workspace
/// root (see async_run_command). The result text starts with the exit status ("exit code: 0",
/// "killed by signal 9", "timed out after ...") followed by the output; it is an error result
/// unless the exit code is 0. timeout_ms beyond max_timeout (even 1e30) is clamped; below 1,
/// or not a number, is an invalid-arguments result.
///
/// If the sandbox is required but unavailable, the result is an error that says so and the
/// command is not run (unless unconfined_if_approved and the call was approved). With the sandbox
/// on, the tool's description tells the model where it may write and that it has no network.
///
/// The tool's tool_options::timeout is left unset: the dispatch's call_timeout (if any) also
/// applies and cancels the run, killing its group, without the output. Its output_cap is set
/// a little above `run.output_cap` so the dispatcher does not cut the status text.
///
/// Cancellation: honours the dispatch's cancellation (slot and stop token); see
/// async_run_command.
tool make_run_command_tool(std::shared_ptr<const workspace> ws, run_command_options options = {});

} // namespace wafer::tools
