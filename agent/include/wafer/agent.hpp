// The agent loop: model turns, parallel tool calls, preserved thinking, limits and events.
#pragma once

#include <wafer/agent_config.hpp>
#include <wafer/agent_tool.hpp>
#include <wafer/resume.hpp>
#include <wafer/run_result.hpp>

#include <boost/asio/awaitable.hpp>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

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
/// (no model; a critic without name, model or gate, a duplicate critic name, or a critic tool
/// that is not read_only) throws std::invalid_argument.
///
/// Critics (agent_config::critics) review the run at their gates: before_tools (a covered call
/// starts only once every verdict on it is in; uncovered calls start at once), after_step and
/// final_answer (revise sends feedback as a user message and the loop goes on, within
/// critic_policy::max_revisions; deny ends the run with stop_reason::critic_denied). Every
/// verdict is an events::critic_verdict and a run_result::reviews entry.
///
/// Approvals: a call whose tool's tool_options::needs_approval says so waits for a person; the
/// rest of its step runs (before_tools critics review it first: a refused call is not asked
/// about). With run_options::approvals the run asks over the event stream
/// (events::approval_requested) and goes on as decisions arrive; without, once nothing else of
/// the step is left, it stops with stop_reason::awaiting_approval and
/// run_result::pending_approvals. A journaled run is then continued from any process with
/// async_approve / async_deny (approval.hpp) and async_resume; a partial answer leaves the rest
/// pending. A denied call never runs; the model reads why.
///
/// Cancellation: terminal cancellation from the caller's slot (co_spawn with
/// bind_cancellation_slot) stops the run at the next step: a model call in flight is abandoned
/// (its connection closed), running tools are cancelled and get "cancelled" results, and the run
/// completes normally with stop_reason::cancelled and a valid history.
///
/// Object lifetimes: the agent (with its model, tools and critics) must outlive every awaitable
/// async_run returns; run_options are moved into the run. A run finishes (or cancels and
/// awaits) every model call, dispatch and review it started before it completes.
///
/// How it works: a sans-io state machine decides every step (agent/src/loop/run_machine.hpp)
/// and a thin coroutine does the I/O it asks for; see ARCHITECTURE.md.
///
/// Thread safety: distinct objects safe; a shared agent is safe for concurrent runs on one
/// single-threaded executor (or strand).
class agent {
public:
    explicit agent(agent_config cfg);

    const agent_config& config() const noexcept { return cfg_; }

    /// Runs the loop for `input`. See the class comment.
    boost::asio::awaitable<run_result> async_run(std::string input, run_options options) const;

    /// async_run with default options. An overload rather than a default argument, so that
    /// `co_await a.async_run(text)` holds no temporary options object across the suspension
    /// (GCC 12 may destroy such temporaries twice).
    boost::asio::awaitable<run_result> async_run(std::string input) const {
        return async_run(std::move(input), run_options{});
    }

    /// Continues run `run_id` from its journal in `options.store`, in this process or another
    /// one, with an agent configured as the one that started it. Nothing the journal holds is
    /// asked of the model again and no finished tool call runs again; a call whose end is not
    /// journaled is in doubt (resume_options::reconcile). With options.message, a finished run
    /// goes on with that user message.
    ///
    /// Errors: throws wafer::error: store::errc::run_not_found; store::errc::lease_held while
    /// another process drives the run; store::errc::corrupt for a journal that does not parse;
    /// errc::invalid_request for a finished run without a message, a message for a run that did
    /// not finish, or a journal this agent's configuration does not reproduce. Nothing in the
    /// store changes when it throws.
    boost::asio::awaitable<run_result>
    async_resume(std::string run_id, resume_options options) const;

    /// Compacts `history` now, as a run would before a request (the on-demand trigger: the CLI's
    /// /compact, a service between runs): the cheap tiers, then a summary by
    /// context_config::summary_model (else this agent's model), down to the lower of
    /// context_config::target of the window and half of the history's estimate. Continue with
    /// the result's conversation as run_options::history.
    ///
    /// Errors: a failed summary is no error (compaction_result::summary_error says why); throws
    /// wafer::error(errc::cancelled) when cancelled.
    boost::asio::awaitable<compaction_result> async_compact(conversation history) const;

    /// This agent as a tool of other agents: a call starts a child run of it (its own model,
    /// tools, critics and limits, with agent_tool_options' limits on top) on the calling run's
    /// executor, and the child's answer is the call's result.
    ///
    /// Nesting: the child's run id is "<parent run id>/<call id>" and its events carry
    /// event::parent_run_id; they reach the parent's on_event and event channel (unless
    /// agent_tool_options::forward_events is off). The child's usage is reported in the
    /// parent's run_result::children and children_usage, never in the parent's own `usage`.
    ///
    /// Deadlines and cancellation: the child's run ends at the parent's run deadline at the
    /// latest (stop_reason::deadline); cancelling the parent, or the call's timeout, cancels
    /// the child, and the parent's run waits for it to end before it completes.
    ///
    /// Errors: a child that does not finish with an answer (an error, its deadline, its budget,
    /// critics denying, cancellation; max_turns without an answer) gives an error result that
    /// names the agent and why, which the parent model reads; nothing is thrown. Used as a tool
    /// outside an agent's run (a registry dispatch of its own), it runs as a top-level run.
    ///
    /// Durability: under a journaled parent (run_options::store) the child is a run in the same
    /// store (run_info::parent_id set), driven under the parent's lease owner; the parent's
    /// journal records its start (the dispatch's "children") and its end (child_finished). A
    /// resumed parent continues an unfinished child from the child's journal and reads a
    /// finished child's result back instead of running it again. A child that stops awaiting
    /// approval stops the parent too (pending_approval::run_id names the child; async_decide on
    /// the parent forwards the decision); resuming the parent continues the child. The tool
    /// has tools::tool_options::child_run set.
    ///
    /// Object lifetimes: the tool holds a copy of this agent (its model, tools and critics are
    /// shared).
    tools::tool
    as_tool(std::string name, std::string description, agent_tool_options options) const;
    tools::tool as_tool(std::string name, std::string description) const {
        return as_tool(std::move(name), std::move(description), agent_tool_options{});
    }

private:
    std::shared_ptr<const std::vector<api::function_tool>> current_tool_defs() const;

    agent_config cfg_;
    // One sub-agent per critic, built with the agent (immutable, shared by copies).
    std::shared_ptr<const std::vector<agent>> critic_agents_;
    // The registry's tools as request entries, built once (schemas rendered once) and shared by
    // every request; a run's turn that finds the registry changed builds its own.
    std::shared_ptr<const std::vector<api::function_tool>> tool_defs_;
    std::uint64_t tool_defs_revision_ = 0;
};

} // namespace wafer
