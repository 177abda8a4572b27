// Running one critic review, and the texts critics read and the model reads back (sans-io).
#pragma once

#include <wafer/agent.hpp>
#include <wafer/critic.hpp>

#include <boost/asio/awaitable.hpp>

#include <chrono>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace wafer::detail {

/// The sub-agent configuration of a critic: its prompt, tools, limits, and a strict
/// json_schema response format for the verdict.
agent_config critic_agent_config(const critic& c);

/// What a critic reads at before_tools: the task, the assistant's message and the call at
/// `index` (the other calls of the step listed for context).
std::string
before_tools_input(std::string_view task, const api::message& assistant, std::size_t index);

/// What a critic reads at after_step: the task, and each call of `assistant` with its result
/// from `results` (the tool messages that answer it).
std::string after_step_input(
    std::string_view task, const api::message& assistant, std::span<const api::message> results
);

/// What a critic reads at final_answer: the task, the tool calls made since the task (name,
/// arguments, ok/error), and the answer.
std::string final_answer_input(
    std::string_view task, std::span<const api::message> steps, std::string_view answer
);

/// The tool result a call gets when critics stop it (`decision` revise or deny).
std::string refusal_text(critic_decision decision, std::span<const critic_review* const> reviews);

/// The user message that asks the model to revise, from the reviews of one gate.
std::string revision_feedback(gate g, std::span<const critic_review* const> reviews);

/// The review of a critic that gave no verdict (`why`): it counts as deny when the critic is
/// fail-closed, as approve otherwise. The one place that decides what a failure counts as.
critic_review failed_review(
    const critic& c,
    gate g,
    std::size_t turn,
    std::optional<std::string> call_id,
    std::string why,
    std::chrono::microseconds latency
);

/// Runs one review with `critic_agent` (built from `c` by critic_agent_config). Never throws
/// for critic failures: a failed review gets `error` set and the decision the critic's
/// fail_closed setting gives.
boost::asio::awaitable<critic_review> run_review(
    const agent& critic_agent,
    const critic& c,
    gate g,
    std::size_t turn,
    std::string input,
    std::optional<std::string> call_id,
    std::optional<telemetry::span_context> trace_parent = std::nullopt
);

} // namespace wafer::detail
