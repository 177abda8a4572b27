// The typed events of a run: what happened, in order, for observers (CLI, services, tests).
#pragma once

#include <wafer/api/chat_response.hpp>
#include <wafer/api/usage.hpp>

#include <nlohmann/json_fwd.hpp>

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace wafer {

/// The payloads of events. `turn` counts model requests of a run from 1.
namespace events {

/// The run began.
struct run_started {
    std::string model;
    /// The user input that started the run.
    std::string input;
    friend bool operator==(const run_started&, const run_started&) = default;
};

/// A chat request is about to be sent (one per attempt the loop makes).
struct model_request {
    std::size_t turn = 0;
    std::string model;
    std::size_t message_count = 0;
    std::size_t tool_count = 0;
    /// The request's estimated prompt tokens (wafer/context_window.hpp) and the model's
    /// context window (0: unknown).
    std::int64_t context_tokens = 0;
    std::int64_t context_window = 0;
    friend bool operator==(const model_request&, const model_request&) = default;
};

/// The loop repaired the history before a request (see wafer::repair_history).
struct history_repaired {
    std::size_t turn = 0;
    /// history_repair::to_string() of each repair.
    std::vector<std::string> repairs;
    friend bool operator==(const history_repaired&, const history_repaired&) = default;
};

/// A compaction step shrank the history before a request (wafer/compaction.hpp): one event per
/// conversation::compactions() record.
struct context_compacted {
    std::size_t turn = 0;
    /// to_string(compaction_strategy): "clamp_tool_results", ..., "summarise".
    std::string strategy;
    /// to_string(compaction_trigger): "threshold", "on_demand" or "overflow".
    std::string trigger;
    /// The range of the history it replaced, [first, first + replaced), now `replacement`
    /// messages.
    std::size_t first = 0;
    std::size_t replaced = 0;
    std::size_t replacement = 0;
    /// Estimated prompt tokens of the request before and after, and the window (0: unknown).
    std::int64_t tokens_before = 0;
    std::int64_t tokens_after = 0;
    std::int64_t window = 0;
    /// The record's digest of what it replaced ("sha256:…").
    std::string digest;
    friend bool operator==(const context_compacted&, const context_compacted&) = default;
};

/// A streamed piece of reasoning.
struct reasoning_delta {
    std::size_t turn = 0;
    std::string text;
    friend bool operator==(const reasoning_delta&, const reasoning_delta&) = default;
};

/// A streamed piece of answer text.
struct content_delta {
    std::size_t turn = 0;
    std::string text;
    friend bool operator==(const content_delta&, const content_delta&) = default;
};

/// A tool call is about to run.
struct tool_call_started {
    std::size_t turn = 0;
    std::string call_id;
    std::string name;
    /// The arguments JSON text as the model sent it.
    std::string arguments;
    friend bool operator==(const tool_call_started&, const tool_call_started&) = default;
};

/// A running tool call reported progress (call_context::report_progress: an MCP server's
/// notifications/progress, ...). Not journaled.
struct tool_call_progress {
    std::size_t turn = 0;
    std::string call_id;
    std::string name;
    double progress = 0;
    /// When known: `progress` out of `total`.
    std::optional<double> total;
    /// The tool's words (an MCP server's text: untrusted, escape it before printing).
    std::string message;
    friend bool operator==(const tool_call_progress&, const tool_call_progress&) = default;
};

/// A tool call ended (or was refused, timed out or cancelled: `is_error`).
struct tool_call_finished {
    std::size_t turn = 0;
    std::string call_id;
    std::string name;
    std::chrono::microseconds duration{0};
    bool is_error = false;
    /// The result text given to the model (already capped by the tool's output limit).
    std::string output;
    friend bool operator==(const tool_call_finished&, const tool_call_finished&) = default;
};

/// A model reply was complete.
struct turn_finished {
    std::size_t turn = 0;
    api::finish_reason finish_reason = api::finish_reason::none;
    std::optional<api::usage> usage;
    std::optional<api::time_info> time_info;
    /// Tool calls the reply asked for.
    std::size_t tool_calls = 0;
    /// Wall time of the model call.
    std::chrono::microseconds duration{0};
    /// Part of `duration` spent in the client's admission queue ("queue_wait_ms" in JSON, only
    /// when not zero).
    std::chrono::microseconds queue_wait{0};
    friend bool operator==(const turn_finished&, const turn_finished&) = default;
};

/// What a critic decided.
enum class critic_decision { approve, revise, deny };
std::string_view to_string(critic_decision d) noexcept;
std::optional<critic_decision> critic_decision_from_string(std::string_view s) noexcept;

/// A critic reviewed a step.
struct critic_verdict {
    std::size_t turn = 0;
    std::string critic;
    /// Which gate asked: "before_tools", "after_step" or "final_answer".
    std::string gate;
    /// The tool call under review (before_tools only).
    std::optional<std::string> call_id;
    critic_decision decision = critic_decision::approve;
    std::vector<std::string> reasons;
    /// Set when the critic failed (error, deadline, no valid verdict); `decision` is then what
    /// the failure counts as (deny when fail-closed).
    std::optional<std::string> error;
    /// Wall time of the review, including the critic's model time.
    std::chrono::microseconds latency{0};
    /// The critic's own token usage (not part of the run's usage).
    std::optional<api::usage> usage;
    friend bool operator==(const critic_verdict&, const critic_verdict&) = default;
};

/// A tool call waits for a person's approval (tool_options::needs_approval). Without a live
/// approval channel the run then stops with stop_reason::awaiting_approval.
struct approval_requested {
    std::size_t turn = 0;
    std::string call_id;
    std::string name;
    /// The arguments JSON text as the model sent it.
    std::string arguments;
    friend bool operator==(const approval_requested&, const approval_requested&) = default;
};

/// A decision on a call that needed approval reached the run.
struct approval_decided {
    std::size_t turn = 0;
    std::string call_id;
    std::string name;
    bool approved = false;
    /// Approved with these arguments instead of the model's.
    std::optional<std::string> arguments;
    /// Denied: the reason given (may be empty).
    std::string message;
    friend bool operator==(const approval_decided&, const approval_decided&) = default;
};

/// The conversation passed from one agent to another (a handoff_team's transfer_to_<name>
/// tool). Sent by the team (run_id: the team's run id), between the sender's run_finished and
/// the receiver's run_started.
struct handoff {
    /// The agents' names.
    std::string from;
    std::string to;
    /// The runs: the one that handed over, and the one that takes over.
    std::string from_run_id;
    std::string to_run_id;
    /// What the sending model said to the receiver (the tool's "message" argument; may be empty).
    std::string message;
    /// History messages passed (after the policy), without the system prompt.
    std::size_t messages_passed = 0;
    friend bool operator==(const handoff&, const handoff&) = default;
};

/// The run ended, successfully or not.
struct run_finished {
    /// Why it stopped (the agent's stop reason, e.g. "completed", "max_turns", "error").
    std::string stop_reason;
    /// The final answer text (may be empty).
    std::string final_text;
    /// Set when the run failed: the error's message (never contains the API key).
    std::optional<std::string> error;
    api::usage usage;
    std::size_t turns = 0;
    std::chrono::microseconds duration{0};
    /// Time the run's model requests waited in the admission queue ("queue_wait_ms", only when
    /// not zero).
    std::chrono::microseconds queue_wait{0};
    friend bool operator==(const run_finished&, const run_finished&) = default;
};

} // namespace events

/// One of the event payloads.
using event_data = std::variant<
    events::run_started,
    events::model_request,
    events::history_repaired,
    events::context_compacted,
    events::reasoning_delta,
    events::content_delta,
    events::tool_call_started,
    events::tool_call_progress,
    events::tool_call_finished,
    events::turn_finished,
    events::critic_verdict,
    events::approval_requested,
    events::approval_decided,
    events::handoff,
    events::run_finished>;

/// An event: a payload plus where and when it happened. Built by event_emitter, which assigns
/// `seq` (1, 2, 3, … per run, with no gaps) and `time`.
struct event {
    /// Position in the run's stream, from 1.
    std::uint64_t seq = 0;
    std::string run_id;
    /// The run that started this one (an agent called as a tool, a fan-out child, a handoff
    /// team's member); empty for a top-level run. Events of child runs reach the parent's
    /// observers with their own run_id and seq: group by run_id.
    std::string parent_run_id;
    std::string agent;
    std::chrono::system_clock::time_point time{};
    event_data data;

    /// The payload if it is a T, else null.
    template <class T>
    const T* get_if() const noexcept {
        return std::get_if<T>(&data);
    }
    template <class T>
    bool is() const noexcept {
        return std::holds_alternative<T>(data);
    }

    friend bool operator==(const event&, const event&) = default;
};

/// The type name of a payload, as written in JSON ("run_started", "content_delta", …).
std::string_view type_name(const event_data& d) noexcept;

/// One JSON object per event:
/// {"seq":1,"type":"run_started","run_id":"…","agent":"…","time":"2026-01-02T03:04:05.678901Z",…}
/// followed by the payload's fields ("parent_run_id" after "run_id" when set). Durations are `*_ms`
/// numbers (milliseconds, fractional), usage and time_info use the wire shape.
void to_json(nlohmann::json& j, const event& e);
/// Reads what to_json wrote. Throws nlohmann::json::exception or std::invalid_argument (unknown
/// type) on malformed input.
void from_json(const nlohmann::json& j, event& e);

/// The event as one line of compact JSON (no trailing newline), for `--json` output.
std::string to_json_line(const event& e);

} // namespace wafer
