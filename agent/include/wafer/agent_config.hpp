// Configuration of an agent and of one run.
#pragma once

#include <wafer/api/chat_request.hpp>
#include <wafer/approval_channel.hpp>
#include <wafer/compaction.hpp>
#include <wafer/conversation.hpp>
#include <wafer/critic.hpp>
#include <wafer/event.hpp>
#include <wafer/event_channel.hpp>
#include <wafer/model.hpp>
#include <wafer/replay_policy.hpp>
#include <wafer/telemetry/tracer.hpp>
#include <wafer/tools/dispatch.hpp>
#include <wafer/tools/registry.hpp>

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>

namespace wafer {

namespace store {
class run_store;
}
struct child_queue;

/// What happens when a run reaches max_turns with the model still calling tools.
enum class max_turns_policy {
    /// One more request without tools, asking for the final answer (stop_reason::max_turns, with
    /// that answer as final_text).
    final_answer,
    /// Stop at once with stop_reason::max_turns and no final answer.
    stop,
};

struct agent_limits {
    /// Model requests that may call tools (the final-answer turn of max_turns_policy::final_answer
    /// comes on top).
    std::size_t max_turns = 16;
    max_turns_policy on_max_turns = max_turns_policy::final_answer;
    /// Wall-clock deadline for the whole run.
    std::optional<std::chrono::milliseconds> run_timeout;
    /// Deadline for one model call (all its HTTP attempts).
    std::optional<std::chrono::milliseconds> turn_timeout;
    /// Stop once prompt + completion tokens of the run reach this many.
    std::optional<std::int64_t> token_budget;
    /// Tool dispatch: concurrency cap, per-call and per-batch deadlines, output cap.
    std::size_t max_tool_concurrency = 0;
    std::optional<std::chrono::milliseconds> tool_call_timeout;
    std::optional<std::chrono::milliseconds> tool_batch_timeout;
    std::size_t tool_output_cap = 64 * 1024;
};

/// Reasoning replay ("preserved thinking"); see replay_policy.hpp.
struct reasoning_config {
    replay_mode mode = replay_mode::preserve_all;
    /// How reasoning goes back; default by the model's family.
    std::optional<reasoning_carrier> carrier;
};

struct agent_config {
    /// Names the agent in events.
    std::string name = "agent";
    /// The model (required). Share one between many agents and runs.
    std::shared_ptr<wafer::model> model;
    /// The system message of a fresh conversation (none if empty).
    std::string system_prompt;
    /// Tools offered to the model (none if null). The registry may change while runs go on
    /// (registry::replace, e.g. mcp::server_tool_set on a list_changed, on the runs' executor):
    /// each turn offers and runs the tools as they were when its request was built.
    std::shared_ptr<const tools::registry> tools;
    /// Critics that review the run at their gates (see critic.hpp), and how their verdicts
    /// combine.
    std::vector<critic> critics;
    wafer::critic_policy critic_policy;
    agent_limits limits;
    reasoning_config reasoning;
    /// Context management: the window, when to compact and how (compaction.hpp).
    context_config context;
    /// Admission priority of this agent's model requests when the client queues them (client
    /// admission control, api/admission.hpp): higher goes first. run_options::priority overrides
    /// it per run.
    int priority = 0;
    /// Request parameters sent on every turn (temperature, top_p, max_completion_tokens,
    /// response_format, tool_choice, parallel_tool_calls, reasoning_effort, ...). The loop sets
    /// model, messages and tools; clear_thinking is set by the replay policy unless given here.
    api::chat_request request;
    /// OpenTelemetry traces of every run (telemetry/tracer.hpp): an invoke_agent span per run,
    /// chat and execute_tool spans, the traceparent header on model requests. Critics share it
    /// (their reviews are invoke_agent spans under the run's). Null: nothing is traced and
    /// nothing is spent on it.
    std::shared_ptr<const telemetry::tracer> tracer;
};

/// Per-run options.
struct run_options {
    /// Called for every event, in order, on the run's executor. Must not block.
    std::function<void(const event&)> on_event;
    /// Pull consumers: events are also sent here (the run waits while it is full).
    std::shared_ptr<event_channel> events;
    /// Continue an earlier conversation (its system message is kept as is).
    std::optional<wafer::conversation> history;
    /// Identifies the run in events and in the store (generated if empty). Also the run's key in
    /// the client's admission queue, where runs take turns.
    std::string run_id;
    /// Admission priority of this run's model requests (agent_config::priority when unset).
    std::optional<int> priority;
    /// Journal the run in this store, so that it survives the process (agent::async_resume).
    /// Null: the run lives in memory only. A journaled run holds the run's lease while it runs;
    /// what it journals is listed in ARCHITECTURE.md ("Durable runs").
    std::shared_ptr<store::run_store> store;
    /// Stored with the run for listing (e.g. the CLI's workspace directory).
    std::string scope;
    /// Stored with a journaled run for the application, read back with run_metadata(): e.g.
    /// the CLI keeps the flags its agent was built from, so that a resume rebuilds the same
    /// agent. Never interpreted by wafer; must not hold secrets.
    nlohmann::json metadata;
    /// How long the run's lease lasts without renewal; the run renews it every third of this
    /// while it runs. Another process may take an unrenewed run over once it expires.
    std::chrono::milliseconds lease_ttl{30'000};
    /// The lease owner a journaled run is driven under (empty: a new one). A durable child run
    /// (agent::as_tool under a journaled parent) runs under its parent's owner.
    std::string lease_owner;
    /// The run that started this one: stamped on every event (event::parent_run_id). Set by
    /// agent::as_tool, async_fan_out and handoff_team for their child runs.
    std::string parent_run_id;
    /// An absolute deadline on top of agent_limits::run_timeout (the earlier wins, as
    /// stop_reason::deadline): a parent's deadline reaching its child. Not journaled.
    std::optional<std::chrono::steady_clock::time_point> deadline;
    /// Whether the run ends `events` with async_finish() when it is over. False for a channel
    /// other runs go on sending to (a parent's, shared with its children).
    bool finish_events = true;
    /// Answer approvals while the run goes on (approval_channel.hpp). Null: a call that needs
    /// approval stops the run with stop_reason::awaiting_approval once the rest of its step
    /// has settled.
    std::shared_ptr<approval_channel> approvals;
    /// With agent_config::tracer: the run's span becomes a child of this one (a service's
    /// request span, telemetry::parse_traceparent of an incoming header). Unset: a new trace.
    std::optional<telemetry::span_context> trace_parent;
    /// With `store`: the run's agent::as_tool children are submitted to this queue for
    /// workers instead of run in this process (wafer/child_queue.hpp). Null: in this process.
    std::shared_ptr<const child_queue> children;
};

} // namespace wafer
