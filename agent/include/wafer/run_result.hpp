// What a run returns: the answer, the conversation, usage, and why it stopped.
#pragma once

#include <wafer/api/usage.hpp>
#include <wafer/approval.hpp>
#include <wafer/context_window.hpp>
#include <wafer/conversation.hpp>
#include <wafer/critic.hpp>
#include <wafer/error.hpp>

#include <boost/system/error_code.hpp>

#include <nlohmann/json.hpp>

#include <chrono>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace wafer {

enum class stop_reason {
    /// The model gave a final answer (a reply without tool calls).
    completed,
    /// agent_limits::max_turns was reached.
    max_turns,
    /// agent_limits::run_timeout expired.
    deadline,
    /// agent_limits::token_budget was reached.
    token_budget,
    /// The caller cancelled the run.
    cancelled,
    /// A model or transport failure ended the run (see run_result::error).
    error,
    /// Critics denied a step after it ran, or the final answer (see run_result::reviews).
    critic_denied,
    /// Critics asked for more revisions than critic_policy::max_revisions allows.
    revisions_exhausted,
    /// Calls need a person's approval (tool_options::needs_approval) and the run has no live
    /// approval channel: see run_result::pending_approvals. A journaled run goes on with
    /// async_approve / async_deny and agent::async_resume.
    awaiting_approval,
    /// A call of a tool with tool_options::ends_run succeeded: the conversation goes to another
    /// agent (handoff_team; the last tool result says where).
    handoff,
};

std::string_view to_string(stop_reason r) noexcept;

/// Usage of one model request.
struct turn_usage {
    std::size_t turn = 0;
    api::usage usage;
    std::optional<api::time_info> time_info;
    std::chrono::microseconds duration{0};
    /// Part of `duration` the request waited in the client's admission queue.
    std::chrono::microseconds queue_wait{0};
};

/// A failure that ended a run.
struct run_error {
    boost::system::error_code code;
    wafer::diagnostics diagnostics;
};

/// What a run used of the model's context window.
struct context_report {
    /// The last request's estimate (and the window and reservation it was measured against).
    context_usage last;
    /// The largest estimate of any request of the run.
    std::int64_t peak_tokens = 0;
    /// Compaction steps made (conversation::compactions() has their records).
    std::size_t compactions = 0;
    /// Retries of a request after the server said it was too long (at most one per turn).
    std::size_t overflow_retries = 0;
    /// What the summariser's model calls used (included in run_result::usage).
    api::usage summary_usage;
};

/// A run started by a run's tool call (an agent called as a tool, agent::as_tool): what it
/// used and how it ended.
struct child_run {
    std::string run_id;
    std::string agent;
    /// The tool and call that started it.
    std::string tool;
    std::string call_id;
    wafer::stop_reason stop_reason = stop_reason::completed;
    std::size_t turns = 0;
    /// Everything the child used: its own requests, its critics and its own children
    /// (run_result::total_usage of the child).
    api::usage usage;
};

struct run_result {
    wafer::stop_reason stop_reason = stop_reason::completed;
    /// The last assistant message's text (the answer), empty if none. With
    /// stop_reason::revisions_exhausted it is the last, unaccepted answer; with critic_denied
    /// it is empty.
    std::string final_text;
    /// final_text parsed as JSON when the request asked for json_object/json_schema output and
    /// it parses.
    std::optional<nlohmann::json> final_json;
    /// The whole conversation, including the input, tool calls and results, with reasoning.
    wafer::conversation conversation;
    /// Usage per model request, and totals.
    std::vector<turn_usage> turns;
    api::usage usage;
    api::time_info time_info;
    /// Context use and compactions.
    context_report context;
    /// Every critic review, in the order the verdicts arrived.
    std::vector<critic_review> reviews;
    /// Token usage of the critics (not included in `usage`).
    api::usage critic_usage;
    /// Revisions the critics asked for at after_step and final_answer.
    std::size_t revisions = 0;
    /// Set when stop_reason is error.
    std::optional<run_error> error;
    /// With stop_reason::awaiting_approval: the calls waiting, in the model's order. The
    /// conversation then ends with the assistant message that made them, without the step's
    /// results (they are journaled; the resumed run appends them).
    std::vector<pending_approval> pending_approvals;
    std::string run_id;
    /// The agent_config::name of the agent that ran it (with handoff_team: the agent that
    /// finished).
    std::string agent;
    /// Runs this run's tool calls started (agent::as_tool), in the order they ended, and the
    /// sum of their usage. Not included in `usage`, which counts this run's own requests only.
    /// A child cut off by the parent's end still ends (cancelled) and is counted; children of
    /// an earlier process of a resumed run are not.
    std::vector<child_run> children;
    api::usage children_usage;
    std::chrono::microseconds duration{0};
    /// Time the run's model requests waited in the client's admission queue (the sum of
    /// turns[].queue_wait; a request that timed out there counts too).
    std::chrono::microseconds queue_wait{0};

    std::size_t turn_count() const noexcept { return turns.size(); }
    /// usage + critic_usage + children_usage: everything the run cost, each request once.
    api::usage total_usage() const {
        api::usage u = usage;
        u += critic_usage;
        u += children_usage;
        return u;
    }
};

} // namespace wafer
