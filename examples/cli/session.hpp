// What every command does around its coroutine: the endpoint, Ctrl-C, errors, exit status.
#pragma once

#include <wafer/api/chat_request.hpp>
#include <wafer/run_result.hpp>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>

#include <chrono>
#include <string>

#include "endpoint.hpp"

namespace wafer::cli {

/// Runs `task` on `ioc` until it completes and returns its exit status. Ctrl-C (SIGINT) or
/// SIGTERM cancels it (terminal cancellation); a second SIGINT or SIGTERM exits at once, from the
/// signal handler (status 130 for SIGINT, 143 for SIGTERM; see stop_signals). An
/// exception escaping the task is reported as one line: wafer::error through failure_line,
/// cli_error with its own status, anything else as its message. The offline stand-in, if any,
/// is stopped at the end.
int run_session(boost::asio::io_context& ioc, endpoint& ep, boost::asio::awaitable<int> task);

/// The exit status of a finished run, printing one failure line for anything but a completed
/// run (stop_reason::error through failure_line against `base_url`; stop_reason::deadline names
/// the `timeout` that expired).
int run_status(const run_result& r, const std::string& base_url, std::chrono::seconds timeout = {});

/// GLM sampling defaults (temperature 1.0, top_p 0.95) for GLM models; others keep the
/// server's defaults.
void apply_sampling_defaults(api::chat_request& req, const std::string& model_id);

} // namespace wafer::cli
