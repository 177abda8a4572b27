// The agent loop as a sans-io state machine: it decides, a thin coroutine (driver.cpp) does the
// I/O. No executor, clock, timer or random number in here: its inputs are the completions the
// driver reports plus `now`, so the same inputs always give the same actions. That is what lets
// a journal of the inputs replay a run exactly (DESIGN.md, "Runs that outlive the process").
#pragma once

#include <wafer/agent_config.hpp>
#include <wafer/run_result.hpp>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "loop/deadline.hpp"

namespace wafer {
class agent;
}

namespace wafer::detail {

/// One model request to make.
struct model_call {
    std::size_t turn = 0;
    api::chat_request request;
    /// The run's deadline, and the call's (the earlier of the run's and the turn timeout).
    deadline run_deadline;
    deadline call_deadline;
    /// The model to ask (null: the agent's), and whether its deltas stay out of the events (a
    /// compaction summary is no part of the answer).
    std::shared_ptr<wafer::model> model;
    bool quiet = false;
    /// For the client's admission queue: the run id as key, the run's priority and deadline, the
    /// prompt estimate.
    api::request_options admission;
};

/// One tool dispatch: calls of the current assistant message, by index.
struct dispatch_job {
    std::size_t turn = 0;
    std::vector<std::size_t> calls;
    std::vector<tools::tool_call_request> requests;
    /// Everything but the observers, which the driver adds.
    tools::dispatch_options options;
    /// The tools of the turn (the registry as it was when the model was asked); null: the
    /// agent's registry (a dispatch read back from a journal).
    std::shared_ptr<const tools::registry> tools;
};

/// One critic review to run.
struct review_job {
    std::size_t critic_index = 0;
    wafer::gate gate = gate::final_answer;
    std::size_t turn = 0;
    std::string input;
    std::optional<std::string> call_id;
    /// The run's deadline: a review still running then counts as failed.
    deadline until;
};

/// Calls waiting for approval, with nothing else of the step left to run.
struct approval_wait {
    std::vector<pending_approval> calls;
    /// The run's deadline: the wait ends then.
    deadline until;
};

enum class run_action_type {
    /// Deliver `event` (the machine builds events only when the run is observed).
    emit,
    /// Start `model`, report it with on_model_reply / on_model_failed.
    call_model,
    /// Start `dispatch`: report each call with on_tool_started / on_tool_finished (`k`: index in
    /// dispatch_job::calls) and the end with on_dispatch_done.
    dispatch,
    /// Start `review`, report it with on_review.
    review,
    /// Cancel every operation in flight; they still report as usual.
    cancel_ops,
    /// The step waits for the approvals of `approval()` (nothing is in flight). Report
    /// decisions with on_approval, or on_paused to stop the run with awaiting_approval.
    await_approval,
    /// Nothing to do until an operation in flight reports.
    wait,
    /// The run is over: take_result().
    done,
};

/// What the machine wants done next. `op` names the operation a start action begins; its
/// report carries the same number.
struct run_action {
    run_action_type type = run_action_type::wait;
    std::uint32_t op = 0;
    std::variant<std::monostate, event_data, model_call, dispatch_job, review_job, approval_wait>
        payload;

    event_data& event() { return std::get<event_data>(payload); }
    model_call& model() { return std::get<model_call>(payload); }
    dispatch_job& dispatch() { return std::get<dispatch_job>(payload); }
    const dispatch_job& dispatch() const { return std::get<dispatch_job>(payload); }
    review_job& review() { return std::get<review_job>(payload); }
    approval_wait& approval() { return std::get<approval_wait>(payload); }
};

/// How a model call failed.
enum class model_failure {
    /// The model threw (transport, protocol or provider failure): see the run_error.
    error,
    /// The call was cancelled.
    cancelled,
    /// The run's deadline passed first.
    run_deadline,
    /// The turn timeout passed first.
    turn_timeout,
};

/// Everything a run starts from.
struct run_setup {
    std::string run_id;
    std::string input;
    /// The conversation to continue (system prompt of the config used otherwise).
    std::optional<wafer::conversation> history;
    /// When the run (or this resumption of it) started: the run deadline counts from here.
    clock_type::time_point started{};
    /// Whether anyone receives events; without, none are built.
    bool observed = false;
    /// The tools offered (shared, built once per agent), for the registry at
    /// `tool_defs_revision`; a turn that finds the registry changed builds its own.
    std::shared_ptr<const std::vector<api::function_tool>> tool_defs;
    std::uint64_t tool_defs_revision = 0;
    /// Admission priority (run_options::priority; agent_config::priority when unset).
    std::optional<int> priority;
    /// run_options::deadline (a parent's): the run deadline is the earlier of it and
    /// `started` + agent_limits::run_timeout.
    std::optional<clock_type::time_point> deadline;
};

/// The registry's tools as request entries.
std::vector<api::function_tool> tool_definitions(const tools::registry* registry);

class run_machine {
public:
    /// `cfg` and `critic_agents` must outlive the machine.
    run_machine(const agent_config& cfg, run_setup setup);

    /// The next action. Call until it returns wait (then report a completion) or done.
    run_action next(clock_type::time_point now);

    // The inputs. Each is exactly what a journal records; none acts at once: next() does.
    void on_model_reply(std::uint32_t op, model_reply reply, std::chrono::microseconds took);
    void on_model_failed(std::uint32_t op, model_failure why, std::optional<run_error> error);
    void on_tool_started(std::uint32_t op, std::size_t k);
    /// Progress of a running call (an event only; not an input of the journal).
    void on_tool_progress(std::uint32_t op, std::size_t k, const tools::call_progress& p);
    /// `child_pending`: the call's child run (tools::tool_options::child_run) stopped at these
    /// calls awaiting approval; the call then has no result yet: it waits, as a held call does,
    /// and the run stops with them pending (pending_approval::run_id names the child) until
    /// on_child_resumed runs it again.
    void on_tool_finished(
        std::uint32_t op,
        std::size_t k,
        tools::tool_result result,
        std::chrono::microseconds took,
        std::vector<pending_approval> child_pending = {}
    );
    /// A resumed run continues call `call_id`, whose child stopped awaiting approval: it is
    /// dispatched again (its handler continues the child from the child's journal).
    void on_child_resumed(const std::string& call_id);
    /// `failure`: why the dispatch failed as a whole, if it did (calls it never reported get
    /// an error result saying so).
    void on_dispatch_done(std::uint32_t op, bool cancelled, std::optional<std::string> failure);
    void on_review(std::uint32_t op, critic_review review);
    /// A decision on call `call_id` (ignored unless the call waits for one and has none).
    void on_approval(const std::string& call_id, approval_decision decision);
    /// Nobody answers approvals now: at the next await_approval point the run stops with
    /// stop_reason::awaiting_approval. Not an input of the journal: a resumed run waits again.
    void on_paused();
    /// A new driver took the run over after replaying its journal: the approvals still pending
    /// are requested again (their events went to the earlier process).
    void on_resumed();
    void on_cancelled();
    /// The run cannot go on (its journal failed): what is in flight is cancelled and the run
    /// ends with stop_reason::error and `e`.
    void on_fatal(run_error e);

    /// Operations started and not yet reported.
    std::size_t in_flight() const noexcept { return in_flight_; }
    bool finished() const noexcept { return phase_ == phase::done; }
    /// The run's deadline (unset: none).
    const deadline& run_deadline() const noexcept { return run_deadline_; }
    /// Whether the step waits for approvals and for nothing else.
    bool awaiting_approval() const noexcept;
    /// The calls of the step whose child runs stopped awaiting approval.
    std::vector<std::string> paused_children() const;
    /// Whether a dispatch has a result for every call and only its end is still to come (the
    /// driver then commits the results with it, in one transaction).
    bool dispatch_end_due() const noexcept;
    const wafer::conversation& conversation() const noexcept { return result_.conversation; }
    const std::string& run_id() const noexcept { return result_.run_id; }

    /// The result, once next() returned done.
    run_result take_result() && { return std::move(result_); }

private:
    enum class phase {
        start,
        turn_begin,
        context_check,
        summarising,
        model_ready,
        model_send,
        awaiting_model,
        tools_ready,
        tool_step,
        after_step,
        final_answer,
        finishing,
        done,
    };

    // One call of the current tool step.
    struct call_slot {
        std::optional<tools::tool_result> result;
        bool needs_approval = false; // tool_options::needs_approval says so
        bool ends_run = false;       // tool_options::ends_run: success ends the run (handoff)
        bool held = false;           // waits for a decision (critics, if any, approved it)
        bool requested = false;      // approval_requested sent (by this process)
        std::optional<approval_decision> decision;
        std::vector<std::size_t> covering; // critics (indices) that review it at before_tools
        std::vector<std::size_t> reviews;  // indices in step_reviews_ of its reviews
        // Its child run stopped at these calls awaiting approval (no result yet).
        std::vector<pending_approval> child_pending;
        bool rerun = false; // on_child_resumed: to dispatch again
        bool settled() const noexcept { return result.has_value() || !child_pending.empty(); }
    };
    // A dispatch op of the current step: which calls it runs.
    struct dispatch_op {
        std::uint32_t op = 0;
        std::vector<std::size_t> calls;
        bool done = false;
    };
    // A review op: where its review goes.
    struct review_op {
        std::uint32_t op = 0;
        std::size_t slot = 0; // index in step_reviews_
        bool done = false;
    };

    bool observed() const noexcept { return setup_.observed; }
    void emit(event_data e);
    std::uint32_t start_op() {
        ++in_flight_;
        return ++last_op_;
    }
    void push(run_action a) { actions_.push_back(std::move(a)); }
    void stop(wafer::stop_reason why);
    void fail(run_error e);
    bool budget_exhausted() const;
    bool final_turn() const noexcept { return turn_ > cfg_.limits.max_turns; }
    bool has_gate(gate g) const;

    void begin_turn(clock_type::time_point now);
    // Context management (compaction.hpp): compacts when the request nears the window, or when
    // forced_ says so; may start a summary call.
    void check_context(clock_type::time_point now);
    compaction_plan context_plan(compaction_trigger t, bool aggressive) const;
    void publish(const compaction_pass& pass);
    void start_summary(message_range range, compaction_trigger t, clock_type::time_point now);
    void take_summary_outcome();
    // The cheaper tiers again, harder (the summary failed or there was nothing to summarise).
    void compact_harder(compaction_trigger t);
    std::size_t tools_chars() const;
    std::int64_t context_target(compaction_trigger t, std::int64_t estimate) const;
    void prepare_model_call();
    void start_model(clock_type::time_point now);
    void take_model_outcome();
    void begin_tool_step(clock_type::time_point now);
    // `approved`: a person approved these calls (tool_call_request::approved).
    void start_dispatch(
        std::vector<std::size_t> calls,
        std::optional<std::chrono::milliseconds> timeout,
        bool approved = false
    );
    void start_review(
        std::size_t critic_index, gate g, std::string input, std::optional<std::string> call_id
    );
    // The dispatch op `op` of this step if it is still running and has a call `k`, else null.
    dispatch_op* running_dispatch(std::uint32_t op, std::size_t k);
    void settle_before_tools(clock_type::time_point now);
    // Settles call `i` without running it (refused, cancelled, ...): result and event.
    void give_result(std::size_t i, tools::result_status status, std::string content);
    // Holds call `i` for approval, or returns false if it needs none.
    bool hold(std::size_t i);
    void request_approvals();
    // Starts (or refuses) the held calls that have a decision.
    void release_decided(clock_type::time_point now);
    // The held calls still without a decision.
    std::vector<pending_approval> undecided() const;
    // Gives the held calls without a decision a result: the run stopped before one came.
    void abandon_undecided(std::string_view why);
    void advance_tool_step(clock_type::time_point now);
    void begin_step_gate(gate g, std::string_view answer);
    void settle_step_gate();
    void finish(clock_type::time_point now);

    const agent_config& cfg_;
    run_setup setup_;
    run_result result_;
    replay_options replay_;
    deadline run_deadline_;
    std::string task_;
    phase phase_ = phase::start;
    std::size_t turn_ = 0;
    std::uint32_t last_op_ = 0;
    std::size_t in_flight_ = 0;
    bool cancelled_ = false;
    bool cancel_sent_ = false;
    std::optional<run_error> fatal_;

    // Queued actions, returned in order before the phase logic runs again.
    std::vector<run_action> actions_;
    std::size_t next_action_ = 0;

    // The model call being prepared, the one in flight, and its outcome.
    model_call pending_call_;
    std::uint32_t model_op_ = 0;
    std::optional<model_reply> reply_;
    std::chrono::microseconds reply_took_{0};
    std::optional<model_failure> model_failure_;
    std::optional<run_error> model_error_;

    // The registry as the current turn offered it (a snapshot, taken when the model is asked),
    // and the request entries built from it.
    std::shared_ptr<const tools::registry> turn_tools_;
    std::shared_ptr<const std::vector<api::function_tool>> tool_defs_;
    std::uint64_t tool_defs_revision_ = 0;

    // The current tool step: the assistant message's calls, a copy (the history may move).
    std::vector<api::tool_call> step_calls_;
    std::vector<call_slot> slots_;
    std::vector<dispatch_op> dispatches_;
    std::vector<review_op> reviews_;
    std::vector<std::optional<critic_review>> step_reviews_;
    std::vector<std::size_t> covered_; // calls waiting for before_tools verdicts
    bool before_tools_settled_ = true;
    bool step_cancelled_ = false;
    deadline batch_deadline_;
    bool asked_ = false;  // await_approval sent for the current wait
    bool paused_ = false; // on_paused: stop at the next wait

    // Context management.
    token_estimator estimator_;
    std::int64_t window_ = 0;    // 0: unknown
    std::int64_t reserved_ = 0;  // max_completion_tokens
    bool cache_key_ = false;     // set prompt_cache_key
    std::size_t sent_chars_ = 0; // the characters of the request in flight
    std::optional<compaction_trigger> forced_;
    bool overflow_retried_ = false; // this turn's request was retried after an overflow
    std::optional<message_range> summary_range_;
    compaction_trigger summary_trigger_ = compaction_trigger::threshold;
    std::uint32_t summary_op_ = 0;
    // A summary's outcome goes to reply_ / model_failure_ (no model call is in flight then).
};

} // namespace wafer::detail
