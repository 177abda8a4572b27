// The agent loop: model turns, parallel tool calls, preserved thinking, limits and events.
#pragma once

#include <wafer/agent_config.hpp>
#include <wafer/run_result.hpp>

#include <boost/asio/awaitable.hpp>

#include <string>

namespace wafer {

/// Runs agent loops. One agent may serve many concurrent runs on one io_context: it holds only
/// configuration, and each async_run keeps its own state in its coroutine frame.
///
/// A run: the input is appended as a user message (after the system prompt on a fresh
/// conversation); then each turn builds a request from the conversation (history repair, reasoning
/// replay for the model's family), streams the model's reply, and, if the reply calls tools,
/// dispatches all of them concurrently and appends their results in the model's order. It stops
/// on a final answer (a reply without tool calls), the turn limit, the run deadline, the token
/// budget, cancellation or an error.
///
/// Errors: async_run does not throw for model, tool or transport failures: they end the run with
/// stop_reason::error and run_result::error set (usage and turns so far are still reported).
/// Tool failures never end a run; they are tool results the model reads. Invalid configuration
/// (no model) throws std::invalid_argument.
///
/// Cancellation: terminal cancellation from the caller's slot (co_spawn with
/// bind_cancellation_slot) stops the run at the next step: a model call in flight is abandoned
/// (its connection closed), running tools are cancelled and get "cancelled" results, and the run
/// completes normally with stop_reason::cancelled and a valid history.
///
/// Thread safety: distinct objects safe; a shared agent is safe for concurrent runs on one
/// single-threaded executor (or strand).
class agent {
public:
    explicit agent(agent_config cfg);

    const agent_config& config() const noexcept { return cfg_; }

    /// Runs the loop for `input`. See the class comment.
    boost::asio::awaitable<run_result> async_run(std::string input, run_options options = {}) const;

private:
    agent_config cfg_;
};

} // namespace wafer
