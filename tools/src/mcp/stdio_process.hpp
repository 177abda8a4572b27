// A stdio MCP server as a child process: its own process group, pipes for stdin, stdout and
// stderr, its exit as an awaitable (a pidfd), and the shutdown sequence of the spec.
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>

#include <chrono>
#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <sys/types.h>
#include <vector>

namespace wafer::tools::mcp::detail {

/// What to start.
struct spawn_request {
    std::string command;
    std::vector<std::string> args;
    /// "NAME=value" entries: the whole environment of the child.
    std::vector<std::string> env;
    /// Empty: wafer's working directory.
    std::string cwd;
};

class stdio_process {
public:
    /// Starts the program (found on the child's PATH when `command` has no '/'). Throws
    /// std::system_error when it cannot (no such program, not executable, bad cwd).
    stdio_process(const boost::asio::any_io_executor& ex, const spawn_request& req);
    /// Kills the process group if it still runs and reaps the child.
    ~stdio_process();
    stdio_process(const stdio_process&) = delete;
    stdio_process& operator=(const stdio_process&) = delete;

    pid_t pid() const noexcept { return pid_; }

    /// Writes all of `bytes` to the child's stdin. Never raises SIGPIPE: a child that closed
    /// its stdin (or exited) gives an error. Throws boost::system::system_error.
    boost::asio::awaitable<void> async_write(std::string_view bytes);
    /// Some bytes of the child's stdout (or stderr); empty at end of stream.
    boost::asio::awaitable<std::size_t> async_read_out(char* buf, std::size_t size);
    boost::asio::awaitable<std::size_t> async_read_err(char* buf, std::size_t size);
    /// Closes the child's stdin (it sees end of input).
    void close_stdin() noexcept;

    /// Waits for the child to exit and returns its wait status (as waitpid gives it).
    boost::asio::awaitable<int> async_wait_exit();
    /// The wait status once the child was reaped.
    std::optional<int> exit_status() const noexcept { return status_; }
    /// "exited with status 3", "killed by signal 9".
    static std::string describe_status(int status);

    /// The spec's shutdown: close stdin, wait up to `grace`, SIGTERM to the group, wait up to
    /// `grace`, SIGKILL. Returns when the child is reaped.
    boost::asio::awaitable<void> async_shutdown(std::chrono::milliseconds grace);

    /// Sends `sig` to the child's process group (no effect once it was reaped).
    void signal_group(int sig) noexcept;

    /// Waits for the exit up to `limit`; true if the child was reaped.
    boost::asio::awaitable<bool> async_wait_exit_for(std::chrono::milliseconds limit);

private:
    bool try_reap() noexcept;

    pid_t pid_ = -1;
    std::optional<int> status_;
    boost::asio::posix::stream_descriptor in_;
    boost::asio::posix::stream_descriptor out_;
    boost::asio::posix::stream_descriptor err_;
    // Readable when the child has exited; closed when there is no pidfd (then exits are polled).
    boost::asio::posix::stream_descriptor exit_fd_;
};

} // namespace wafer::tools::mcp::detail
