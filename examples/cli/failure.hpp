// Failures of the wafer CLI: one clear line on standard error and a non-zero exit status.
#pragma once

#include <wafer/error.hpp>

#include <boost/system/error_code.hpp>

#include <stdexcept>
#include <string>

namespace wafer::cli {

/// Exit statuses.
enum exit_status : int {
    exit_ok = 0,
    /// A request or the run failed (network, HTTP error, run error).
    exit_failure = 1,
    /// Bad command line or configuration (missing API key, malformed URL, bad workspace).
    exit_usage = 2,
    /// The run stopped before a final answer (turn limit, deadline, token budget, a critic).
    exit_incomplete = 3,
    /// The run waits for approvals (wafer approve / wafer deny, then wafer resume).
    exit_awaiting_approval = 4,
    /// Interrupted (Ctrl-C).
    exit_interrupted = 130,
    /// Stopped by SIGTERM (128 + 15, as a shell reports a process the signal killed).
    exit_terminated = 143,
};

/// A failure the CLI reports as one line ("wafer: <what>") and an exit status.
class cli_error : public std::runtime_error {
public:
    cli_error(std::string message, int status = exit_failure)
        : std::runtime_error(std::move(message)), status_(status) {}
    int status() const noexcept { return status_; }

private:
    int status_;
};

/// The line (without "wafer: " and newline) for a transport or protocol failure talking to
/// `base_url`: authentication (401/403), rate limits with the retry-after, connection refused,
/// TLS verification, timeouts, an error event inside a stream (the provider's type, code and
/// message), a run store failure (its detail, which names the store and the run), and any other
/// HTTP error with the provider's message. Never contains the API key (diagnostics never do).
std::string failure_line(
    const boost::system::error_code& ec, const wafer::diagnostics& diag, const std::string& base_url
);

/// Writes "wafer: <line>\n" to standard error, `line` made visible() (control characters,
/// escape sequences and newlines inside it are shown escaped, never interpreted).
void print_failure(const std::string& line);

} // namespace wafer::cli
