// The driver owns the I/O of a run: every operation the machine starts is spawned on the run's
// executor with its own cancellation signal, and reports into an inbox that the driver drains
// into the machine whenever the machine has nothing else to do. Operations never throw: each
// turns its failures into the report the machine expects.
#include "loop/driver.hpp"

#include <wafer/agent.hpp>
#include <wafer/event_emitter.hpp>
#include <wafer/store/error.hpp>
#include <wafer/telemetry/tracer.hpp>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <algorithm>
#include <map>
#include <memory>
#include <set>
#include <variant>

#include "compose/run_host.hpp"
#include "critics/critic_review.hpp"
#include "loop/approval_port.hpp"
#include "loop/child_runs.hpp"
#include "loop/journal.hpp"
#include "loop/replay.hpp"
#include "loop/trace_hooks.hpp"

namespace wafer::detail {

namespace asio = boost::asio;

namespace {

std::chrono::microseconds since(clock_type::time_point t) {
    return std::chrono::duration_cast<std::chrono::microseconds>(clock_type::now() - t);
}

std::string exception_text(const std::exception_ptr& e) {
    try {
        std::rethrow_exception(e);
    } catch (const std::exception& ex) {
        return ex.what();
    } catch (...) {
        return "an exception that is not a std::exception";
    }
}

class run_driver;

// What a posted approval notification finds: the driver, or null once the run is over.
struct approval_wake {
    run_driver* driver = nullptr;
};

// What a dispatch's observers use, owned by them. A dispatch that throws may leave calls running
// detached; when one of them reports later, it finds `driver` null instead of a finished run.
struct dispatch_watch {
    run_driver* driver = nullptr;
    std::uint32_t op = 0;
    std::vector<clock_type::time_point> starts;
    std::vector<std::size_t> kmap;
};

class run_driver {
public:
    run_driver(
        asio::any_io_executor ex,
        const agent_config& cfg,
        const std::vector<agent>& critics,
        run_options& options,
        run_setup setup,
        std::optional<drive_journal> journal
    )
        : cfg_(cfg), critics_(critics), options_(options),
          emitter_(setup.run_id, cfg.name, forward_to(options), options.events), ex_(std::move(ex)),
          wake_(ex_) {
        setup.observed = emitter_.observed();
        emitter_.set_parent_run_id(options.parent_run_id);
        if (journal) {
            journal_.emplace(journal->store, setup.run_id, journal->owner, journal->lease_ttl);
            plan_ = std::move(journal);
        }
        host_ = std::make_shared<run_host>();
        if (plan_) {
            // Children are journaled in the same store, under this run's owner.
            host_->journal = child_journal{
                plan_->store,
                plan_->owner,
                plan_->previous_owner,
                plan_->lease_ttl,
                plan_->reconcile,
                options.children};
        }
        setup_ = std::move(setup);
        machine_.emplace(cfg_, setup_);
        channel_ = options.approvals;
        host_->run_id = setup_.run_id;
        host_->agent = cfg_.name;
        if (machine_->run_deadline()) {
            host_->deadline = machine_->run_deadline().at();
        }
        host_->parent = &options_;
        host_->wake = [this] {
            wake_.cancel();
        };
        if (cfg_.tracer) {
            trace_.emplace(
                *cfg_.tracer,
                cfg_.name,
                setup_.run_id,
                cfg_.model->id(),
                options.trace_parent,
                std::chrono::system_clock::now()
            );
        }
    }

    run_driver(const run_driver&) = delete;
    run_driver& operator=(const run_driver&) = delete;

    ~run_driver() {
        host_->detach();
        if (wake_token_) {
            approval_port::detach(*channel_);
            wake_token_->driver = nullptr;
        }
    }

    asio::awaitable<run_result> run() {
        asio::cancellation_state cs = co_await asio::this_coro::cancellation_state;
        std::exception_ptr failure;
        if (channel_) {
            attach_channel();
        }
        if (journal_) {
            co_await open_journal();
        }
        for (;;) {
            if (!cancel_seen_ && cs.cancelled() != asio::cancellation_type::none) {
                cancel_seen_ = true;
                machine_->on_cancelled();
            }
            run_action a;
            bool resumed_dispatch = false;
            std::vector<bool> reported;
            std::set<std::string> children;
            if (!resumed_.empty()) {
                open_op r = std::move(resumed_.back());
                resumed_.pop_back();
                a = std::move(r.action);
                resumed_dispatch = r.dispatched;
                reported = std::move(r.reported);
                children = std::move(r.children);
            } else {
                a = machine_->next(clock_type::now());
            }
            if (a.type == run_action_type::done) {
                break;
            }
            switch (a.type) {
            case run_action_type::emit:
                try {
                    // Bound to a name: GCC 12 may destroy a temporary in co_await twice.
                    event_data ev = std::move(a.event());
                    co_await emitter_.async_emit(std::move(ev));
                } catch (const wafer::error& e) {
                    // Cancelled while waiting for room in the channel: the run stops as
                    // cancelled runs do; anything else ends it.
                    if (e.code() != make_error_code(errc::cancelled)) {
                        failure = std::current_exception();
                    }
                } catch (...) {
                    failure = std::current_exception();
                }
                break;
            case run_action_type::call_model:
                if (!journal_) {
                    // Nothing else is in flight during a model call: it is awaited here, and
                    // the caller's cancellation reaches it directly. A journaled run spawns it,
                    // so that it keeps renewing its lease meanwhile.
                    report r = co_await model_op(a.op, std::move(a.model()));
                    feed(std::move(r));
                } else {
                    start_model(a.op, std::move(a.model()));
                }
                break;
            case run_action_type::dispatch:
                if (resumed_dispatch) {
                    co_await resume_dispatch(a.op, std::move(a.dispatch()), reported, children);
                } else if (journal_) {
                    // No call starts before the journal knows it may have: that is what makes
                    // an unfinished call "in doubt" rather than silently repeated.
                    journal_->add(dispatch_entry(a.op, a.dispatch(), children_in(a.dispatch())));
                    co_await flush_journal();
                    if (journal_failed_) {
                        feed_machine(dispatch_done{a.op, false, std::string("the journal failed")});
                    } else {
                        start_dispatch(a.op, std::move(a.dispatch()));
                    }
                } else if (machine_->in_flight() == 1 && !emitter_.observed()) {
                    // Alone and unobserved: no event has to go out while it runs, so it is
                    // awaited here; what its observers reported is drained with its end.
                    report r = co_await dispatch_op(a.op, std::move(a.dispatch()), false, {});
                    drain_inbox();
                    feed(std::move(r));
                } else {
                    start_dispatch(a.op, std::move(a.dispatch()));
                }
                break;
            case run_action_type::review:
                start_review(a.op, std::move(a.review()));
                break;
            case run_action_type::cancel_ops:
                cancel_all();
                break;
            case run_action_type::await_approval:
                // With a channel the run waits for decisions (and its deadline); without, it
                // stops here and a decision comes through the store. A child's calls are
                // decided through the store (the parent's async_decide forwards them).
                if (!channel_ || !machine_->paused_children().empty()) {
                    machine_->on_paused();
                }
                break;
            case run_action_type::wait:
                co_await wait_for_reports();
                break;
            case run_action_type::done:
                break;
            }
            if (failure) {
                break;
            }
        }
        if (failure) {
            // Nothing may outlive the run's frame: stop what runs, await it, then rethrow.
            cancel_all();
            while (!ops_.empty()) {
                co_await wait_for_reports();
            }
            if (journal_) {
                co_await release_quietly();
            }
            if (trace_) {
                trace_->end_run(
                    "error", "_OTHER", exception_text(failure), 0, std::chrono::system_clock::now()
                );
            }
            std::rethrow_exception(failure);
        }
        // Children the dispatch stopped waiting for (cancelled, timed out) still end, and are
        // counted: they were cancelled with their call and report soon.
        while (host_->running > 0) {
            co_await wait_for_reports();
        }
        run_result result = std::move(*machine_).take_result();
        result.children = std::move(host_->children);
        for (const child_run& c : result.children) {
            result.children_usage += c.usage;
        }
        host_->detach();
        if (trace_) {
            end_trace(result);
        }
        if (journal_ && !plan_->read_back) {
            co_await close_journal(result);
        }
        if (options_.events && options_.finish_events) {
            co_await options_.events->async_finish();
        }
        co_return result;
    }

    // ---- the journal -----------------------------------------------------------------------

    asio::awaitable<void> open_journal() {
        if (!plan_->create) {
            journal_->leased_now(); // async_resume took the lease
            replay_all();           // throws for a journal this agent does not reproduce
            if (plan_->read_back) {
                if (!machine_->finished()) {
                    store::journal_entry at;
                    at.kind = std::string(journal_kind::stopped);
                    mismatch(at, "ends a run that the journal does not finish");
                }
                co_return;
            }
            machine_->on_resumed();
            // Calls whose children stopped awaiting approval run again: each child goes on
            // from its journal with the decisions made meanwhile (or stops again).
            for (const std::string& call : machine_->paused_children()) {
                feed(child_resumed{call});
            }
            co_return;
        }
        store::run_info info;
        info.id = setup_.run_id;
        info.parent_id = plan_->parent_id;
        info.agent = cfg_.name;
        info.task = setup_.input;
        info.scope = plan_->scope;
        info.status = store::run_status::running;
        info.setup = setup_text(setup_, plan_->metadata);
        info.lease_owner = journal_->owner();
        info.lease_expires_ms =
            std::chrono::duration_cast<std::chrono::milliseconds>(
                (std::chrono::system_clock::now() + journal_->lease_ttl()).time_since_epoch()
            )
                .count();
        try {
            co_await journal_->store().async_create_run(std::move(info));
            journal_->leased_now();
        } catch (const wafer::error& e) {
            journal_lost(e);
        }
    }

    // The run cannot be journaled any more: it ends with the store's error.
    void journal_lost(const wafer::error& e) {
        journal_failed_ = true;
        machine_->on_fatal(run_error{e.code(), e.diag()});
    }

    asio::awaitable<void> flush_journal(store::run_update update = {}) {
        if (!journal_ || journal_failed_) {
            co_return;
        }
        try {
            co_await journal_->async_flush(std::move(update));
        } catch (const wafer::error& e) {
            journal_lost(e);
        }
    }

    asio::awaitable<void> close_journal(const run_result& r) {
        if (!journal_failed_) {
            // A cancelled run stays resumable, one waiting for approvals waits; every other
            // stop finishes it.
            store::run_update u;
            u.status = r.stop_reason == stop_reason::cancelled ? store::run_status::running
                       : r.stop_reason == stop_reason::awaiting_approval
                           ? store::run_status::awaiting_approval
                           : store::run_status::finished;
            u.stop_reason = std::string(to_string(r.stop_reason));
            // The row counts every exchange of the run, the result only this one.
            u.turns = earlier_turns_ + r.turns.size();
            u.prompt_tokens = earlier_usage_.prompt_tokens + r.usage.prompt_tokens;
            u.completion_tokens = earlier_usage_.completion_tokens + r.usage.completion_tokens;
            u.release_lease = true; // in the same commit
            journal_->add(stopped_entry(r.stop_reason, r.pending_approvals));
            try {
                co_await journal_->async_flush(std::move(u));
                co_return;
            } catch (const wafer::error&) { // NOLINT(bugprone-empty-catch)
                // Everything but the stop is journaled: a resume replays to the same end.
            }
        }
        co_await release_quietly();
    }

    asio::awaitable<void> release_quietly() {
        try {
            co_await journal_->async_release();
        } catch (const std::exception&) { // NOLINT(bugprone-empty-catch)
            // The lease expires by itself.
        }
    }

    [[noreturn]] void mismatch(const store::journal_entry& e, const std::string& why) const {
        journal_mismatch(setup_.run_id, e, why);
    }

    // Replays every segment of the journal into the machine, without I/O.
    void replay_all() {
        auto& segments = plan_->segments;
        for (std::size_t i = 0; i < segments.size(); ++i) {
            if (i > 0) {
                if (!machine_->finished()) {
                    store::journal_entry at;
                    at.kind = std::string(journal_kind::follow_up);
                    mismatch(at, "follows an exchange that had not ended");
                }
                next_exchange(segments[i].message);
            }
            replay_segment(segments[i].entries);
        }
        if (plan_->message) {
            next_exchange(*plan_->message);
            journal_->add(follow_up_entry(*plan_->message));
        }
    }

    // A new exchange on the conversation the finished one ended with.
    void next_exchange(const std::string& message) {
        run_result prev = std::move(*machine_).take_result();
        earlier_turns_ += prev.turns.size();
        earlier_usage_ += prev.usage;
        run_setup s = setup_;
        s.input = message;
        s.history = std::move(prev.conversation);
        machine_.emplace(cfg_, std::move(s));
    }

    void replay_segment(const std::vector<store::journal_entry>& entries) {
        std::vector<open_op> open =
            replay_entries(*machine_, entries, setup_.run_id, [this](report r) {
                feed_machine(std::move(r));
            });
        // What is still open runs now, in the order it was started (resumed_ pops the back).
        for (auto it = open.rbegin(); it != open.rend(); ++it) {
            resumed_.push_back(std::move(*it));
        }
    }

    // A dispatch the journal says started, some of whose calls have no journaled result: each
    // of those is in doubt. read_only calls run again; for the others the reconcile hook
    // decides, by default a result that says the outcome is unknown.
    // A call that starts a child run is never in doubt: its handler continues the child from
    // the child's journal, or reads back the result of a child that finished.
    asio::awaitable<void> resume_dispatch(
        std::uint32_t op,
        dispatch_job job,
        const std::vector<bool>& reported,
        const std::set<std::string>& children
    ) {
        dispatch_job again;
        again.turn = job.turn;
        again.options = job.options;
        again.tools = job.tools;
        std::vector<std::size_t> kmap;
        for (std::size_t k = 0; k < job.requests.size(); ++k) {
            if (k < reported.size() && reported[k]) {
                continue;
            }
            const tools::tool_call_request& req = job.requests[k];
            const tools::tool* t = cfg_.tools ? cfg_.tools->find(req.name) : nullptr;
            const in_doubt_call c{
                setup_.run_id,
                req.id,
                req.name,
                req.arguments,
                t != nullptr && t->options.read_only,
                job.options.idempotency_scope.empty()
                    ? std::string()
                    : job.options.idempotency_scope + "/" + req.id};
            std::optional<tools::tool_result> r =
                in_doubt_outcome(c, children.contains(req.id), plan_->reconcile);
            if (!r) {
                again.requests.push_back(req);
                again.calls.push_back(job.calls[k]);
                kmap.push_back(k);
                continue;
            }
            feed(tool_finished{op, k, std::move(*r), std::chrono::microseconds(0)});
        }
        if (again.requests.empty()) {
            feed(dispatch_done{op, false, std::nullopt});
            co_return;
        }
        journal_->add(dispatch_entry(op, again, children_in(again)));
        co_await flush_journal();
        if (journal_failed_) {
            feed_machine(dispatch_done{op, false, std::string("the journal failed")});
            co_return;
        }
        start_dispatch(op, std::move(again), std::move(kmap));
    }

    // The calls of `job` that start child runs (recorded in its dispatch entry).
    std::vector<std::pair<std::string, std::string>> children_in(const dispatch_job& job) const {
        const tools::registry* reg = job.tools ? job.tools.get() : cfg_.tools.get();
        if (reg == nullptr) {
            return {};
        }
        return child_calls(job, *reg, setup_.run_id);
    }

    void report_in(report r) {
        inbox_.push_back(std::move(r));
        wake_.cancel();
    }

    void approvals_arrived() {
        for (auto& [id, d] : approval_port::take(*channel_)) {
            report_in(approval_given{std::move(id), std::move(d), {}});
        }
    }

private:
    // One operation in flight. The signal stays alive until the driver drains the op's report:
    // co_spawn (1.81) still touches the slot's state while the completion handler runs.
    struct op_entry {
        std::uint32_t op = 0;
        asio::cancellation_signal signal;
        bool finished = false;
    };

    // The emitter calls the caller's callback object itself, not a copy: a stateful callback
    // must see every event.
    static event_emitter::callback forward_to(run_options& o) {
        if (!o.on_event) {
            return {};
        }
        return [&o](const event& e) {
            o.on_event(e);
        };
    }

    op_entry& add_op(std::uint32_t op) {
        auto& e = ops_.emplace_back(std::make_unique<op_entry>());
        e->op = op;
        return *e;
    }

    void op_finished(std::uint32_t op) {
        for (auto& e : ops_) {
            if (e->op == op) {
                e->finished = true;
            }
        }
    }

    void cancel_all() {
        for (auto& e : ops_) {
            if (!e->finished) {
                e->signal.emit(asio::cancellation_type::terminal);
            }
        }
    }

    void attach_channel() {
        auto token = std::make_shared<approval_wake>();
        token->driver = this;
        approval_port::attach(*channel_, [ex = ex_, token] {
            asio::post(ex, [token] {
                if (token->driver) {
                    token->driver->approvals_arrived();
                }
            });
        });
        wake_token_ = std::move(token); // attached: detached by the destructor
    }

    asio::awaitable<void> wait_for_reports() {
        if (inbox_.empty() && journal_ && journal_->has_pending() &&
            !machine_->dispatch_end_due()) {
            // What came in is committed before the run sits waiting (one commit per step). A
            // dispatch whose calls all reported ends at once: its results go with its end.
            co_await flush_journal();
        }
        if (inbox_.empty()) {
            const bool leased = journal_ && !journal_failed_;
            auto until = leased ? journal_->renew_at() : clock_type::time_point::max();
            // Waiting for a person, the run's deadline is the machine's to act on.
            if (machine_->awaiting_approval() && machine_->run_deadline()) {
                until = std::min(until, machine_->run_deadline().at());
            }
            wake_.expires_at(until);
            auto [ec] = co_await wake_.async_wait(asio::as_tuple(asio::use_awaitable));
            // A report or the caller's cancellation (the loop looks at both), or the lease is
            // due for renewal.
            if (!ec && leased && clock_type::now() >= journal_->renew_at()) {
                try {
                    co_await journal_->async_keep_lease();
                } catch (const wafer::error& e) {
                    journal_lost(e);
                }
            }
        }
        drain_inbox();
        // Reports drained: their ops' signals are no longer touched.
        std::erase_if(ops_, [](const std::unique_ptr<op_entry>& e) { return e->finished; });
    }

    void drain_inbox() {
        // Swapped with a spare, so that the vectors' storage is reused from turn to turn.
        std::swap(inbox_, draining_);
        for (auto& r : draining_) {
            feed(std::move(r));
        }
        draining_.clear();
    }

    // Journals a report (what the journal keeps: journaled()) and hands it to the machine.
    void feed(report r) {
        if (auto* t = std::get_if<tool_finished>(&r)) {
            attach_child(*host_, *t);
        }
        if (trace_) {
            if (const auto* t = std::get_if<tool_finished>(&r)) {
                trace_tool(*t);
            }
        }
        if (journal_ && !journal_failed_ && journaled(r, cancel_seen_)) {
            journal_->add(journal_entry_of(r));
        }
        feed_machine(std::move(r));
    }

    void feed_machine(report r) {
        std::visit(
            [this](auto&& x) {
                using T = std::decay_t<decltype(x)>;
                if constexpr (std::is_same_v<T, model_done>) {
                    if (x.reply) {
                        machine_->on_model_reply(x.op, std::move(*x.reply), x.took);
                    } else {
                        machine_->on_model_failed(x.op, x.why, std::move(x.error));
                    }
                } else if constexpr (std::is_same_v<T, tool_started>) {
                    machine_->on_tool_started(x.op, x.k);
                } else if constexpr (std::is_same_v<T, tool_progress>) {
                    machine_->on_tool_progress(x.op, x.k, x.progress);
                } else if constexpr (std::is_same_v<T, tool_finished>) {
                    machine_->on_tool_finished(
                        x.op, x.k, std::move(x.result), x.took, std::move(x.child_pending)
                    );
                } else if constexpr (std::is_same_v<T, dispatch_done>) {
                    machine_->on_dispatch_done(x.op, x.cancelled, std::move(x.failure));
                } else if constexpr (std::is_same_v<T, approval_given>) {
                    if (x.run_id.empty()) { // else forwarded to a child: not this run's call
                        machine_->on_approval(x.call_id, std::move(x.decision));
                    }
                } else if constexpr (std::is_same_v<T, child_resumed>) {
                    machine_->on_child_resumed(x.call_id);
                } else {
                    machine_->on_review(x.op, std::move(x.review));
                }
            },
            std::move(r)
        );
    }

    // Each operation completes with its report; the handler queues it. Reporting from the
    // handler, not from inside the operation, means the report is drained only after co_spawn
    // is done with the operation (and with its cancellation signal). `fallback` is the report
    // if the operation threw after all (it catches what it expects).
    struct op_done {
        run_driver* self;
        std::uint32_t op;
        std::shared_ptr<report> fallback;
        void operator()(std::exception_ptr e, report r) const {
            self->op_finished(op);
            self->report_in(e ? std::move(*fallback) : std::move(r));
        }
    };

    template <class Op>
    void spawn(std::uint32_t op, asio::awaitable<report> body, Op fallback) {
        op_entry& e = add_op(op);
        asio::co_spawn(
            ex_,
            std::move(body),
            asio::bind_cancellation_slot(
                e.signal.slot(), op_done{this, op, std::make_shared<report>(std::move(fallback))}
            )
        );
    }

    void start_model(std::uint32_t op, model_call call) {
        model_done fallback;
        fallback.op = op;
        fallback.error = run_error{errc::invalid_response, {}};
        fallback.error->diagnostics.detail = "the model call failed unexpectedly";
        spawn(op, model_op(op, std::move(call)), std::move(fallback));
    }

    void start_dispatch(std::uint32_t op, dispatch_job job, std::vector<std::size_t> kmap = {}) {
        spawn(
            op,
            dispatch_op(op, std::move(job), true, std::move(kmap)),
            dispatch_done{op, false, "an unexpected failure"}
        );
    }

    void start_review(std::uint32_t op, review_job job) {
        const critic& c = cfg_.critics[job.critic_index];
        review_done fallback{
            op,
            failed_review(
                c, job.gate, job.turn, job.call_id, "the review failed unexpectedly", {}
            )};
        spawn(op, review_op(op, std::move(job)), std::move(fallback));
    }

    void end_trace(const run_result& r) {
        std::string_view type;
        std::string message;
        if (r.error) {
            type = telemetry::error_type_of(r.error->code);
            message = r.error->code.message();
        }
        trace_->end_run(
            to_string(r.stop_reason),
            type,
            message,
            r.turns.size(),
            std::chrono::system_clock::now()
        );
    }

    void trace_tool(const tool_finished& x) {
        const auto end = x.finished == clock_type::time_point{} ? clock_type::now() : x.finished;
        const auto wall_end = wall_time(end);
        std::string_view args;
        if (const auto it = tool_arguments_.find(x.result.tool_call_id);
            it != tool_arguments_.end()) {
            args = it->second;
        }
        trace_->tool_call(
            x.result.name,
            x.result.tool_call_id,
            args,
            x.result.is_error,
            x.result.content,
            wall_end - std::chrono::duration_cast<std::chrono::system_clock::duration>(x.took),
            wall_end
        );
        tool_arguments_.erase(x.result.tool_call_id);
    }

    asio::awaitable<report> model_op(std::uint32_t op, model_call call) {
        model_done d;
        d.op = op;
        d.summary = call.quiet;
        const auto started = clock_type::now();
        delta_forwarder forwarder(emitter_, call.turn);
        model_reply reply;
        diagnostics diag;
        std::optional<boost::system::error_code> ec;
        // Unobserved runs take no deltas: the model then copies none.
        const bool forward = emitter_.observed() && !call.quiet;
        model_observer* observer = forward ? &forwarder : nullptr;
        std::optional<first_chunk_observer> first_chunk;
        wafer::model& m = call.model ? *call.model : *cfg_.model;
        if (trace_) {
            if (call.request.model.empty()) {
                call.request.model = m.id();
            }
            const telemetry::span_context ctx =
                trace_->begin_chat(op, call.request, std::chrono::system_clock::now());
            call.admission.traceparent = telemetry::format_traceparent(ctx);
            observer = &first_chunk.emplace(*trace_, op, observer);
        }
        try {
            asio::awaitable<boost::system::error_code> c = m.async_complete(
                std::move(call.request), observer, std::move(call.admission), reply, diag
            );
            if (call.call_deadline) {
                ec = co_await async_with_deadline(std::move(c), call.call_deadline.at());
            } else {
                ec = co_await std::move(c);
            }
        } catch (const std::exception& e) { // the race itself failed (allocation)
            ec = make_error_code(errc::invalid_response);
            diag.detail = e.what();
        }
        d.took = since(started);
        if (!ec) {
            // Which deadline fired decides between a deadline stop and a timeout error.
            d.why = call.run_deadline.passed(clock_type::now()) ? model_failure::run_deadline
                                                                : model_failure::turn_timeout;
        } else if (*ec == make_error_code(errc::cancelled)) {
            d.why = model_failure::cancelled;
            d.error = run_error{*ec, std::move(diag)};
        } else if (*ec) {
            d.why = model_failure::error;
            d.error = run_error{*ec, std::move(diag)};
        } else {
            d.reply = std::move(reply);
        }
        if (trace_) {
            const auto now = std::chrono::system_clock::now();
            if (d.reply) {
                trace_->end_chat(op, &*d.reply, {}, {}, now);
            } else if (d.error) {
                trace_->end_chat(
                    op,
                    nullptr,
                    telemetry::error_type_of(d.error->code),
                    d.error->code.message(),
                    now
                );
            } else {
                trace_->end_chat(op, nullptr, "timeout", "the deadline passed", now);
            }
        }
        co_return d;
    }

    // Runs one dispatch. With `live`, each call reports as it starts and finishes (observers);
    // without, the results are reported from the dispatch's own result when it ends, which
    // spares the observers and a copy of every result.
    // `kmap`: the index in the machine's dispatch of each call here (a resumed dispatch runs a
    // subset); empty: the same.
    asio::awaitable<report>
    dispatch_op(std::uint32_t op, dispatch_job job, bool live, std::vector<std::size_t> kmap) {
        const std::size_t n = job.requests.size();
        if (kmap.empty()) {
            kmap.resize(n);
            for (std::size_t k = 0; k < n; ++k) {
                kmap[k] = k;
            }
        }
        if (trace_ && cfg_.tracer->config().capture_content) {
            for (const auto& rq : job.requests) {
                tool_arguments_[rq.id] = rq.arguments;
            }
        }
        std::shared_ptr<dispatch_watch> watch;
        if (live) {
            watch = std::make_shared<dispatch_watch>();
            watch->driver = this;
            watch->op = op;
            watch->starts.resize(n);
            watch->kmap = kmap;
            job.options.observer.on_start = [watch](std::size_t k) {
                if (!watch->driver || k >= watch->starts.size()) {
                    return;
                }
                watch->starts[k] = clock_type::now();
                watch->driver->report_in(tool_started{watch->op, watch->kmap[k]});
            };
            job.options.observer.on_finish = [watch](std::size_t k, const tools::tool_result& r) {
                if (!watch->driver || k >= watch->starts.size()) {
                    return;
                }
                const auto begun = watch->starts[k] == clock_type::time_point{} ? clock_type::now()
                                                                                : watch->starts[k];
                watch->driver->report_in(tool_finished{
                    watch->op, watch->kmap[k], r, since(begun), clock_type::now()});
            };
            job.options.observer.on_progress =
                [watch](std::size_t k, const tools::call_progress& p) {
                    if (!watch->driver || k >= watch->starts.size()) {
                        return;
                    }
                    watch->driver->report_in(tool_progress{watch->op, watch->kmap[k], p});
                };
        }
        // The turn's tools (a snapshot), so that a registry changed meanwhile does not change
        // what this step runs.
        const std::shared_ptr<const tools::registry> reg = job.tools ? job.tools : cfg_.tools;
        job.options.host = host_;
        dispatch_done d;
        d.op = op;
        try {
            tools::dispatch_result res =
                co_await reg->async_dispatch(std::move(job.requests), std::move(job.options));
            d.cancelled = res.cancelled;
            if (res.results.size() != n) {
                d.failure = "results are missing";
            } else if (!live) {
                for (std::size_t k = 0; k < n; ++k) {
                    const auto took = std::chrono::duration_cast<std::chrono::microseconds>(
                        res.timings[k].duration()
                    );
                    inbox_.push_back(tool_finished{
                        op, kmap[k], std::move(res.results[k]), took, res.timings[k].finished});
                }
            }
        } catch (...) {
            // The dispatch failed as a whole: calls still running report to nobody.
            d.failure = exception_text(std::current_exception());
        }
        if (watch) {
            watch->driver = nullptr;
        }
        co_return d;
    }

    asio::awaitable<report> review_op(std::uint32_t op, review_job job) {
        const critic& c = cfg_.critics[job.critic_index];
        const agent& sub = critics_[job.critic_index];
        const auto started = clock_type::now();
        std::optional<critic_review> r;
        try {
            asio::awaitable<critic_review> review = run_review(
                sub, c, job.gate, job.turn, std::move(job.input), job.call_id, trace_parent()
            );
            if (job.until) {
                r = co_await async_with_deadline(std::move(review), job.until.at());
                if (!r) {
                    r = failed_review(
                        c,
                        job.gate,
                        job.turn,
                        job.call_id,
                        "the run's deadline passed during the review",
                        since(started)
                    );
                }
            } else {
                r = co_await std::move(review);
            }
        } catch (...) {
            r = failed_review(
                c,
                job.gate,
                job.turn,
                job.call_id,
                "the critic failed: " + exception_text(std::current_exception()),
                since(started)
            );
        }
        co_return review_done{op, std::move(*r)};
    }

    std::optional<telemetry::span_context> trace_parent() const {
        if (!trace_) {
            return std::nullopt;
        }
        return trace_->context();
    }

    const agent_config& cfg_;
    const std::vector<agent>& critics_;
    run_options& options_;
    event_emitter emitter_;
    run_setup setup_;
    std::optional<run_machine> machine_;
    std::optional<journal_writer> journal_;
    std::optional<drive_journal> plan_;
    // Actions replay left without an outcome: they run first.
    std::vector<open_op> resumed_;
    asio::any_io_executor ex_;
    asio::steady_timer wake_;
    std::shared_ptr<approval_channel> channel_;
    std::shared_ptr<approval_wake> wake_token_;
    std::shared_ptr<run_host> host_;
    std::vector<report> inbox_;
    std::vector<report> draining_;
    std::vector<std::unique_ptr<op_entry>> ops_;
    bool cancel_seen_ = false;
    bool journal_failed_ = false;
    // What the exchanges before this one of a resumed run used.
    std::size_t earlier_turns_ = 0;
    api::usage earlier_usage_;
    // The run's spans (agent_config::tracer); tool arguments kept for content capture.
    std::optional<telemetry::run_trace> trace_;
    std::map<std::string, std::string> tool_arguments_;
};

} // namespace

asio::awaitable<run_result> async_drive(
    const agent_config& cfg,
    const std::vector<agent>& critic_agents,
    run_options& options,
    run_setup setup,
    std::optional<drive_journal> journal
) {
    // Cancellation is looked at between steps, so that the run can always finish its
    // bookkeeping (a valid history, usage, the run_finished event) after the caller cancelled.
    co_await asio::this_coro::throw_if_cancelled(false);
    auto ex = co_await asio::this_coro::executor;
    run_driver d(ex, cfg, critic_agents, options, std::move(setup), std::move(journal));
    co_return co_await d.run();
}

} // namespace wafer::detail
