#include <wafer/agent.hpp>
#include <wafer/event_emitter.hpp>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/deferred.hpp>
#include <boost/asio/experimental/parallel_group.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <algorithm>
#include <stdexcept>

#include "detail/critic_review.hpp"
#include "detail/deadline.hpp"

namespace wafer {

namespace asio = boost::asio;
using clock_type = std::chrono::steady_clock;

std::string_view to_string(stop_reason r) noexcept {
    switch (r) {
    case stop_reason::completed:
        return "completed";
    case stop_reason::max_turns:
        return "max_turns";
    case stop_reason::deadline:
        return "deadline";
    case stop_reason::token_budget:
        return "token_budget";
    case stop_reason::cancelled:
        return "cancelled";
    case stop_reason::error:
        return "error";
    case stop_reason::critic_denied:
        return "critic_denied";
    case stop_reason::revisions_exhausted:
        return "revisions_exhausted";
    }
    return "error";
}

namespace {

// Sent (not stored) with the extra request that max_turns_policy::final_answer makes.
constexpr std::string_view final_turn_note =
    "You have used every tool turn available for this task. You MUST now give your final answer "
    "to the user, using what you already know. Do NOT call any tool.";

std::chrono::microseconds since(clock_type::time_point t) {
    return std::chrono::duration_cast<std::chrono::microseconds>(clock_type::now() - t);
}

bool wants_json(const api::chat_request& req) {
    return req.response_format && req.response_format->type != api::response_format::kind::text;
}

std::optional<nlohmann::json> parse_json(const std::string& text) {
    auto j = nlohmann::json::parse(text, nullptr, false);
    if (j.is_discarded()) {
        return std::nullopt;
    }
    return j;
}

bool is_cancelled(const asio::cancellation_state& st) {
    return st.cancelled() != asio::cancellation_type::none;
}

// Per-run state shared by the steps of async_run.
struct run_state {
    const agent_config& cfg;
    const std::vector<agent>& critic_agents;
    run_options& options;
    event_emitter emitter;
    run_result result;
    clock_type::time_point started = clock_type::now();
    std::optional<clock_type::time_point> deadline;
    // The run's input: what critics review the steps against.
    std::string task;
    // Events of concurrent steps (tools, reviews) reach the callback at once and the channel
    // afterwards, in seq order: observers inside a dispatch cannot wait for channel room.
    std::vector<event> pending;

    run_state(
        const agent_config& c, const std::vector<agent>& critics, run_options& o, std::string run_id
    )
        : cfg(c), critic_agents(critics), options(o),
          emitter(std::move(run_id), c.name, forward_to(o), o.events) {}

    // The emitter calls the caller's callback object itself, not a copy: a stateful callback
    // must see every event, whichever path delivered it.
    static event_emitter::callback forward_to(run_options& o) {
        if (!o.on_event) {
            return {};
        }
        return [&o](const event& e) {
            o.on_event(e);
        };
    }

    bool budget_exhausted() const {
        return cfg.limits.token_budget &&
               result.usage.prompt_tokens + result.usage.completion_tokens >=
                   *cfg.limits.token_budget;
    }

    bool observed() const noexcept { return emitter.observed(); }

    /// Checked before each model call and each tool batch: nothing new starts after the
    /// deadline, compared at the clock's full precision.
    bool deadline_passed() const { return deadline && clock_type::now() >= *deadline; }

    /// What is left of the run for a millisecond API (tool batches), rounded up: a floor would
    /// end the batch up to 1 ms before the deadline, and the next model call would start.
    std::optional<std::chrono::milliseconds> time_left() const {
        if (!deadline) {
            return std::nullopt;
        }
        return std::max(
            std::chrono::ceil<std::chrono::milliseconds>(*deadline - clock_type::now()),
            std::chrono::milliseconds(0)
        );
    }

    void deliver(event_data data) {
        if (!emitter.observed()) {
            return;
        }
        event e = emitter.stamp(std::move(data));
        if (options.on_event) {
            options.on_event(e);
        }
        if (emitter.channel()) {
            pending.push_back(std::move(e));
        }
    }

    asio::awaitable<void> flush() {
        std::vector<event> out = std::move(pending);
        pending.clear();
        for (auto& e : out) {
            if (!emitter.channel()) {
                break;
            }
            event queued = std::move(e);
            co_await emitter.channel()->async_send(std::move(queued));
        }
    }
};

std::vector<api::function_tool> tool_definitions(const tools::registry* registry) {
    std::vector<api::function_tool> out;
    if (!registry) {
        return out;
    }
    for (auto& d : registry->definitions()) {
        api::function_tool t;
        t.name = std::move(d.name);
        if (!d.description.empty()) {
            t.description = std::move(d.description);
        }
        t.parameters = std::move(d.parameters);
        t.strict = d.strict;
        out.push_back(std::move(t));
    }
    return out;
}

using tool_slots = std::vector<std::optional<tools::tool_result>>;

// What the dispatch observers use, owned by them. A dispatch that throws may leave calls running
// detached; when one of them reports later, it finds `run` null instead of a dead coroutine frame
// (the run's, or the dispatching coroutine's).
struct dispatch_watch {
    run_state* run = nullptr;
    std::size_t turn = 0;
    std::vector<api::tool_call> calls; // copies: the reply may be gone by then
    std::vector<clock_type::time_point> starts;
    std::vector<bool> finished;

    void finish(std::size_t k, bool is_error, const std::string& content) {
        if (!run || k >= calls.size() || finished[k]) {
            return;
        }
        finished[k] = true;
        const auto begun = starts[k] == clock_type::time_point{} ? clock_type::now() : starts[k];
        const api::tool_call& c = calls[k];
        run->deliver(events::tool_call_finished{turn, c.id, c.name, since(begun), is_error, content}
        );
    }
};

// Detaches the watch from the run when the dispatching coroutine ends, however it ends.
struct watch_detacher {
    std::shared_ptr<dispatch_watch> watch;
    explicit watch_detacher(std::shared_ptr<dispatch_watch> w) : watch(std::move(w)) {}
    watch_detacher(const watch_detacher&) = delete;
    watch_detacher& operator=(const watch_detacher&) = delete;
    ~watch_detacher() {
        if (watch) {
            watch->run = nullptr;
        }
    }
};

std::string exception_text(const std::exception_ptr& e) {
    try {
        std::rethrow_exception(e);
    } catch (const std::exception& ex) {
        return ex.what();
    } catch (...) {
        return "an exception that is not a std::exception";
    }
}

// Runs the calls of `reply` at `indices` as one dispatch and stores their results in `out` (by
// position in the reply). Tool events go out as they happen. Returns true if cancelled. Never
// throws for a failed dispatch: every call then gets an error result, and the run goes on.
asio::awaitable<bool> dispatch_calls(
    run_state* st,
    const api::message* reply,
    std::vector<std::size_t> indices,
    std::size_t turn,
    tools::dispatch_options opts,
    tool_slots* out
) {
    std::vector<tools::tool_call_request> calls;
    calls.reserve(indices.size());
    for (std::size_t i : indices) {
        const api::tool_call& c = reply->tool_calls[i];
        calls.push_back({c.id, c.name, c.arguments});
    }
    // Observers (and their event payloads) only when someone receives the events.
    std::shared_ptr<dispatch_watch> watch;
    if (st->observed()) {
        watch = std::make_shared<dispatch_watch>();
        watch->run = st;
        watch->turn = turn;
        for (std::size_t i : indices) {
            watch->calls.push_back(reply->tool_calls[i]);
        }
        watch->starts.resize(indices.size());
        watch->finished.resize(indices.size(), false);
        opts.observer.on_start = [watch](std::size_t k) {
            if (!watch->run || k >= watch->calls.size()) {
                return;
            }
            watch->starts[k] = clock_type::now();
            const api::tool_call& c = watch->calls[k];
            watch->run->deliver(events::tool_call_started{watch->turn, c.id, c.name, c.arguments});
        };
        opts.observer.on_finish = [watch](std::size_t k, const tools::tool_result& r) {
            watch->finish(k, r.is_error, r.content);
        };
    }
    watch_detacher detach{watch};
    std::optional<tools::dispatch_result> done;
    std::exception_ptr failure;
    try {
        tools::dispatch_result d =
            co_await st->cfg.tools->async_dispatch(std::move(calls), std::move(opts));
        done = std::move(d);
    } catch (...) {
        failure = std::current_exception();
    }
    if (!done || done->results.size() != indices.size()) {
        // The dispatch failed as a whole: its calls' outcomes are unknown, and calls still
        // running report to nobody (see dispatch_watch).
        const std::string why = failure ? exception_text(failure) : "results are missing";
        for (std::size_t k = 0; k < indices.size(); ++k) {
            const api::tool_call& c = reply->tool_calls[indices[k]];
            tools::tool_result r;
            r.tool_call_id = c.id;
            r.name = c.name;
            r.is_error = true;
            r.status = tools::result_status::handler_exception;
            r.content = "tool " + nlohmann::json(c.name).dump() +
                        " failed: the tool dispatch failed (" + why + "); its result is lost";
            if (watch) {
                watch->finish(k, true, r.content);
            }
            (*out)[indices[k]] = std::move(r);
        }
        co_return false;
    }
    for (std::size_t k = 0; k < indices.size(); ++k) {
        (*out)[indices[k]] = std::move(done->results[k]);
    }
    co_return done->cancelled;
}

// One review to run: which critic, what it reads, which call.
struct review_job {
    std::size_t critic_index = 0;
    std::string input;
    std::optional<std::string> call_id;
};

// Runs one review bounded by the run deadline, then reports it (event, result, usage).
asio::awaitable<critic_review>
review_and_report(run_state* st, gate g, std::size_t turn, review_job job) {
    const critic& c = st->cfg.critics[job.critic_index];
    const agent& sub = st->critic_agents[job.critic_index];
    asio::awaitable<critic_review> review =
        detail::run_review(sub, c, g, turn, std::move(job.input), job.call_id);
    std::optional<critic_review> r;
    if (st->deadline) {
        const auto started = clock_type::now();
        r = co_await detail::async_with_deadline(std::move(review), *st->deadline);
        if (!r) {
            r.emplace();
            r->critic = c.name;
            r->gate = g;
            r->turn = turn;
            r->call_id = std::move(job.call_id);
            r->error = "the run's deadline passed during the review";
            r->verdict.decision = c.fail_closed ? critic_decision::deny : critic_decision::approve;
            r->latency = since(started);
        }
    } else {
        r = co_await std::move(review);
    }
    st->result.critic_usage += r->usage;
    st->result.reviews.push_back(*r);
    st->deliver(events::critic_verdict{
        turn,
        r->critic,
        std::string(to_string(g)),
        r->call_id,
        r->verdict.decision,
        r->verdict.reasons,
        r->error,
        r->latency,
        r->usage});
    co_return std::move(*r);
}

// Runs `jobs` concurrently; returns the reviews in the order of `jobs`. Verdict events go out
// in the order the verdicts arrive.
asio::awaitable<std::vector<critic_review>>
run_reviews(run_state* st, gate g, std::size_t turn, std::vector<review_job> jobs) {
    std::vector<critic_review> out;
    if (jobs.size() == 1) {
        // No group needed for one review.
        critic_review r = co_await review_and_report(st, g, turn, std::move(jobs.front()));
        out.push_back(std::move(r));
        co_return out;
    }
    auto ex = co_await asio::this_coro::executor;
    using op_type =
        decltype(asio::co_spawn(ex, std::declval<asio::awaitable<critic_review>>(), asio::deferred)
        );
    std::vector<op_type> ops;
    ops.reserve(jobs.size());
    for (auto& job : jobs) {
        ops.push_back(
            asio::co_spawn(ex, review_and_report(st, g, turn, std::move(job)), asio::deferred)
        );
    }
    // The group is a named object: no temporaries with destructors inside co_await (GCC 12).
    auto group = asio::experimental::make_parallel_group(std::move(ops));
    auto [order, failures, values] =
        co_await group.async_wait(asio::experimental::wait_for_all(), asio::use_awaitable);
    (void)order;
    for (auto& f : failures) {
        if (f) {
            std::rethrow_exception(f);
        }
    }
    co_return std::move(values);
}

// The gated half of a tool step: reviews every covered call, then dispatches the approved ones.
// Refused calls get a result explaining why and never start.
asio::awaitable<bool> review_then_dispatch(
    run_state* st,
    const api::message* reply,
    std::vector<std::size_t> covered,
    const std::vector<std::vector<std::size_t>>* covering,
    std::size_t turn,
    tools::dispatch_options opts,
    std::optional<clock_type::time_point> batch_deadline,
    tool_slots* out
) {
    std::vector<review_job> jobs;
    for (std::size_t i : covered) {
        for (std::size_t ci : (*covering)[i]) {
            jobs.push_back(
                {ci, detail::before_tools_input(st->task, *reply, i), reply->tool_calls[i].id}
            );
        }
    }
    std::vector<critic_review> reviews =
        co_await run_reviews(st, gate::before_tools, turn, std::move(jobs));

    asio::cancellation_state cs = co_await asio::this_coro::cancellation_state;
    std::vector<std::size_t> approved;
    std::size_t next = 0;
    for (std::size_t i : covered) {
        const std::size_t n = (*covering)[i].size();
        std::vector<critic_decision> decisions;
        std::vector<const critic_review*> mine;
        for (std::size_t k = 0; k < n; ++k) {
            decisions.push_back(reviews[next + k].verdict.decision);
            mine.push_back(&reviews[next + k]);
        }
        next += n;
        const critic_decision d = combine_decisions(decisions, st->cfg.critic_policy.combine);
        const api::tool_call& c = reply->tool_calls[i];
        if (d == critic_decision::approve && !is_cancelled(cs)) {
            approved.push_back(i);
            continue;
        }
        tools::tool_result r;
        r.tool_call_id = c.id;
        r.name = c.name;
        r.is_error = true;
        if (d == critic_decision::approve) {
            r.status = tools::result_status::cancelled;
            r.content = "cancelled: the run was cancelled before this call started";
        } else {
            r.status = tools::result_status::refused;
            r.content = detail::refusal_text(d, mine);
        }
        // No tool_call_started: the call never ran.
        st->deliver(events::tool_call_finished{
            turn, c.id, c.name, std::chrono::microseconds(0), true, r.content});
        (*out)[i] = std::move(r);
    }
    if (approved.empty()) {
        co_return is_cancelled(cs);
    }
    if (batch_deadline) {
        auto left =
            std::chrono::ceil<std::chrono::milliseconds>(*batch_deadline - clock_type::now());
        opts.batch_timeout = std::max(left, std::chrono::milliseconds(0));
    }
    co_return co_await dispatch_calls(st, reply, std::move(approved), turn, std::move(opts), out);
}

// Runs the tool calls of one assistant message and appends the results in the model's order.
// Calls that before_tools critics cover wait for their verdicts; the others start at once, while
// the critics deliberate. Returns true if the run was cancelled meanwhile.
asio::awaitable<bool> run_tool_step(
    run_state& st, const api::message& reply, std::size_t turn, tools::dispatch_options opts
) {
    const std::size_t n = reply.tool_calls.size();
    std::vector<std::vector<std::size_t>> covering(n);
    bool gated = false;
    for (std::size_t ci = 0; ci < st.cfg.critics.size(); ++ci) {
        const critic& c = st.cfg.critics[ci];
        if (!c.gates.contains(gate::before_tools)) {
            continue;
        }
        for (std::size_t i = 0; i < n; ++i) {
            const tools::tool* t = st.cfg.tools->find(reply.tool_calls[i].name);
            if (t && c.covers(t->name, t->options.read_only)) {
                covering[i].push_back(ci);
                gated = true;
            }
        }
    }
    tool_slots slots(n);
    bool cancelled = false;
    std::vector<std::size_t> free_calls, covered;
    for (std::size_t i = 0; i < n; ++i) {
        (covering[i].empty() ? free_calls : covered).push_back(i);
    }
    if (!gated) {
        cancelled = co_await dispatch_calls(
            &st, &reply, std::move(free_calls), turn, std::move(opts), &slots
        );
    } else {
        std::optional<clock_type::time_point> batch_deadline;
        if (opts.batch_timeout) {
            batch_deadline = clock_type::now() + *opts.batch_timeout;
        }
        auto ex = co_await asio::this_coro::executor;
        asio::awaitable<bool> gated_part = review_then_dispatch(
            &st, &reply, std::move(covered), &covering, turn, opts, batch_deadline, &slots
        );
        if (free_calls.empty()) {
            cancelled = co_await std::move(gated_part);
        } else {
            asio::awaitable<bool> free_part =
                dispatch_calls(&st, &reply, std::move(free_calls), turn, opts, &slots);
            auto group = asio::experimental::make_parallel_group(
                asio::co_spawn(ex, std::move(free_part), asio::deferred),
                asio::co_spawn(ex, std::move(gated_part), asio::deferred)
            );
            auto [order, e1, c1, e2, c2] =
                co_await group.async_wait(asio::experimental::wait_for_all(), asio::use_awaitable);
            (void)order;
            if (e1) {
                std::rethrow_exception(e1);
            }
            if (e2) {
                std::rethrow_exception(e2);
            }
            cancelled = c1 || c2;
        }
    }
    co_await st.flush();
    for (auto& r : slots) {
        st.result.conversation.add_tool_result(
            std::move(r->tool_call_id), std::move(r->content), r->is_error
        );
    }
    co_return cancelled;
}

// The outcome of an after_step or final_answer gate.
struct gate_outcome {
    critic_decision decision = critic_decision::approve;
    // The feedback to send when the decision is revise.
    std::string feedback;
};

// Runs the critics on gate `g` (after_step or final_answer) concurrently and combines them.
asio::awaitable<gate_outcome>
run_step_gate(run_state& st, gate g, std::size_t turn, std::string_view answer) {
    gate_outcome out;
    std::vector<review_job> jobs;
    const auto& msgs = st.result.conversation.messages();
    for (std::size_t ci = 0; ci < st.cfg.critics.size(); ++ci) {
        if (!st.cfg.critics[ci].gates.contains(g)) {
            continue;
        }
        std::string input;
        if (g == gate::after_step) {
            // The last assistant message with calls, and the tool messages after it.
            std::size_t a = msgs.size();
            while (a > 0 && msgs[a - 1].role != api::role::assistant) {
                --a;
            }
            if (a == 0) {
                continue;
            }
            input = detail::after_step_input(
                st.task, msgs[a - 1], std::span<const api::message>(msgs).subspan(a)
            );
        } else {
            // Everything since the task (the last user message that is not wafer's feedback).
            input = detail::final_answer_input(st.task, msgs, answer);
        }
        jobs.push_back({ci, std::move(input), std::nullopt});
    }
    if (jobs.empty()) {
        co_return out;
    }
    std::vector<critic_review> reviews = co_await run_reviews(&st, g, turn, std::move(jobs));
    co_await st.flush();
    std::vector<critic_decision> decisions;
    std::vector<const critic_review*> all;
    for (const auto& r : reviews) {
        decisions.push_back(r.verdict.decision);
        all.push_back(&r);
    }
    out.decision = combine_decisions(decisions, st.cfg.critic_policy.combine);
    if (out.decision == critic_decision::revise) {
        out.feedback = detail::revision_feedback(g, all);
    }
    co_return out;
}

bool has_gate(const agent_config& cfg, gate g) {
    return std::any_of(cfg.critics.begin(), cfg.critics.end(), [g](const critic& c) {
        return c.gates.contains(g);
    });
}

} // namespace

agent::agent(agent_config cfg) : cfg_(std::move(cfg)) {
    if (!cfg_.model) {
        throw std::invalid_argument("wafer::agent: agent_config::model is required");
    }
    auto critics = std::make_shared<std::vector<agent>>();
    critics->reserve(cfg_.critics.size());
    for (std::size_t i = 0; i < cfg_.critics.size(); ++i) {
        const critic& c = cfg_.critics[i];
        const std::string where = "wafer::agent: critic '" + c.name + "': ";
        if (c.name.empty()) {
            throw std::invalid_argument("wafer::agent: every critic needs a name");
        }
        for (std::size_t j = 0; j < i; ++j) {
            if (cfg_.critics[j].name == c.name) {
                throw std::invalid_argument(where + "the name is used twice");
            }
        }
        if (!c.model) {
            throw std::invalid_argument(where + "a model is required");
        }
        if (c.gates.empty()) {
            throw std::invalid_argument(where + "it is attached to no gate");
        }
        if (c.tools) {
            for (const auto& name : c.tools->names()) {
                if (!c.tools->find(name)->options.read_only) {
                    throw std::invalid_argument(
                        where + "tool '" + name + "' is not read_only; critics may only look"
                    );
                }
            }
        }
        critics->emplace_back(detail::critic_agent_config(c));
    }
    critic_agents_ = std::move(critics);
    tool_defs_ =
        std::make_shared<const std::vector<api::function_tool>>(tool_definitions(cfg_.tools.get()));
    tool_defs_revision_ = cfg_.tools ? cfg_.tools->revision() : 0;
}

asio::awaitable<run_result> agent::async_run(std::string input, run_options options) const {
    // Cancellation is checked between steps, so that the run can always finish its bookkeeping
    // (a valid history, usage, the run_finished event) after the caller cancelled.
    co_await asio::this_coro::throw_if_cancelled(false);
    asio::cancellation_state cancel_state = co_await asio::this_coro::cancellation_state;

    run_state st(
        cfg_, *critic_agents_, options, options.run_id.empty() ? make_run_id() : options.run_id
    );
    st.task = input;
    st.result.run_id = st.emitter.run_id();
    if (cfg_.limits.run_timeout) {
        st.deadline = st.started + *cfg_.limits.run_timeout;
    }
    conversation& conv = st.result.conversation;
    if (options.history) {
        conv = std::move(*options.history);
    } else if (!cfg_.system_prompt.empty()) {
        conv.add_system(cfg_.system_prompt);
    }
    conv.add_user(input);

    model& llm = *cfg_.model;
    replay_options replay = replay_options::for_model(llm.id(), cfg_.reasoning.mode);
    replay.family = llm.family();
    replay.carrier = cfg_.reasoning.carrier;
    std::shared_ptr<const std::vector<api::function_tool>> tool_defs = tool_defs_;
    if (cfg_.tools && cfg_.tools->revision() != tool_defs_revision_) {
        tool_defs = std::make_shared<const std::vector<api::function_tool>>(
            tool_definitions(cfg_.tools.get())
        );
    }

    // Events are bound to names before co_await: GCC 12 may destroy a temporary in a co_await
    // expression twice.
    event_data started_ev = events::run_started{llm.id(), std::move(input)};
    co_await st.emitter.async_emit(std::move(started_ev));

    bool stop = false;
    for (std::size_t turn = 1; !stop; ++turn) {
        if (is_cancelled(cancel_state)) {
            st.result.stop_reason = stop_reason::cancelled;
            break;
        }
        if (st.deadline_passed()) {
            st.result.stop_reason = stop_reason::deadline;
            break;
        }
        if (st.budget_exhausted()) {
            st.result.stop_reason = stop_reason::token_budget;
            break;
        }
        const bool final_turn = turn > cfg_.limits.max_turns;
        if (final_turn && cfg_.limits.on_max_turns == max_turns_policy::stop) {
            st.result.stop_reason = stop_reason::max_turns;
            break;
        }

        // Build the request: repaired history, reasoning replayed for the model's family.
        if (auto repairs = conv.repair(); !repairs.empty()) {
            events::history_repaired ev{turn, {}};
            for (const auto& r : repairs) {
                ev.repairs.push_back(r.to_string());
            }
            event_data repaired_ev = std::move(ev);
            co_await st.emitter.async_emit(std::move(repaired_ev));
        }
        api::chat_request req = cfg_.request;
        req.model = llm.id();
        req.messages = build_request_messages(conv, replay);
        if (!cfg_.request.clear_thinking) {
            apply_replay_params(req, replay);
        }
        if (final_turn) {
            req.tools.clear();
            req.tool_choice.reset();
            req.parallel_tool_calls.reset();
            req.messages.push_back(api::message::user(std::string(final_turn_note)));
        } else if (!tool_defs->empty() && req.tools.empty()) {
            req.tools = *tool_defs;
        }
        event_data request_ev =
            events::model_request{turn, req.model, req.messages.size(), req.tools.size()};
        co_await st.emitter.async_emit(std::move(request_ev));

        // One model call, bounded by the turn and run deadlines.
        std::optional<clock_type::time_point> call_deadline = st.deadline;
        if (cfg_.limits.turn_timeout) {
            auto t = clock_type::now() + *cfg_.limits.turn_timeout;
            call_deadline = call_deadline ? std::min(*call_deadline, t) : t;
        }
        // Building the request and sending events may have taken the rest of the time.
        if (st.deadline_passed()) {
            st.result.stop_reason = stop_reason::deadline;
            break;
        }
        const auto call_started = clock_type::now();
        delta_forwarder forwarder(st.emitter, turn);
        std::optional<model_reply> reply;
        std::exception_ptr failure;
        try {
            // Unobserved runs take no deltas: the model then copies none.
            asio::awaitable<model_reply> call =
                llm.async_complete(std::move(req), st.observed() ? &forwarder : nullptr);
            if (call_deadline) {
                reply = co_await detail::async_with_deadline(std::move(call), *call_deadline);
            } else {
                reply = co_await std::move(call);
            }
        } catch (...) {
            failure = std::current_exception();
        }
        if (is_cancelled(cancel_state)) {
            st.result.stop_reason = stop_reason::cancelled;
            break;
        }
        if (failure) {
            run_error err;
            try {
                std::rethrow_exception(failure);
            } catch (const wafer::error& e) {
                err = {e.code(), e.diag()};
            } catch (const boost::system::system_error& e) {
                err.code = e.code();
                err.diagnostics.detail = e.what();
            } catch (const std::exception& e) {
                err.code = errc::invalid_response;
                err.diagnostics.detail = e.what();
            }
            st.result.stop_reason = stop_reason::error;
            st.result.error = std::move(err);
            break;
        }
        if (!reply) {
            if (st.deadline && clock_type::now() >= *st.deadline) {
                st.result.stop_reason = stop_reason::deadline;
            } else {
                st.result.stop_reason = stop_reason::error;
                st.result.error = run_error{errc::timeout, {}};
                st.result.error->diagnostics.detail = "model call exceeded the turn timeout";
            }
            break;
        }

        // Account for the turn.
        turn_usage tu{
            turn, reply->usage.value_or(api::usage{}), reply->time_info, since(call_started)};
        st.result.usage += tu.usage;
        if (tu.time_info) {
            st.result.time_info += *tu.time_info;
        }
        st.result.turns.push_back(tu);
        api::message& msg = reply->message;
        msg.role = api::role::assistant;
        // GLM with a JSON response_format may repeat a tool call next to a valid JSON answer;
        // the JSON is the answer (cerebras-api.md §9, quirk 2). A final turn never runs tools.
        if (!msg.tool_calls.empty() &&
            (final_turn || (wants_json(cfg_.request) && parse_json(msg.text())))) {
            msg.tool_calls.clear();
        }
        event_data finished_ev = events::turn_finished{
            turn,
            reply->finish_reason,
            reply->usage,
            reply->time_info,
            msg.tool_calls.size(),
            tu.duration};
        co_await st.emitter.async_emit(std::move(finished_ev));
        const bool has_calls = !msg.tool_calls.empty();
        if (!has_calls) {
            std::string answer = msg.text();
            conv.append(std::move(msg));
            st.result.stop_reason = final_turn ? stop_reason::max_turns : stop_reason::completed;
            st.result.final_text = answer;
            if (!has_gate(cfg_, gate::final_answer)) {
                break;
            }
            gate_outcome verdict = co_await run_step_gate(st, gate::final_answer, turn, answer);
            if (is_cancelled(cancel_state)) {
                st.result.stop_reason = stop_reason::cancelled;
                break;
            }
            if (verdict.decision == critic_decision::deny) {
                st.result.final_text.clear();
                st.result.stop_reason = stop_reason::critic_denied;
                break;
            }
            if (verdict.decision == critic_decision::approve) {
                break;
            }
            // Revise: another turn with the feedback, if the budget and the turn limit allow.
            if (st.result.revisions >= cfg_.critic_policy.max_revisions || final_turn) {
                if (cfg_.critic_policy.on_exhausted == revisions_exhausted_policy::stop) {
                    st.result.stop_reason = stop_reason::revisions_exhausted;
                }
                break;
            }
            ++st.result.revisions;
            conv.add_user(std::move(verdict.feedback));
            continue;
        }
        conv.append(std::move(msg));
        // Missing or reused call ids get fresh ones now, so results and events use the ids the
        // history keeps.
        if (auto renamed = conv.make_call_ids_unique(); !renamed.empty()) {
            events::history_repaired ev{turn, {}};
            for (const auto& r : renamed) {
                ev.repairs.push_back(r.to_string());
            }
            event_data renamed_ev = std::move(ev);
            co_await st.emitter.async_emit(std::move(renamed_ev));
        }
        if (st.budget_exhausted()) {
            st.result.stop_reason = stop_reason::token_budget;
            break;
        }
        if (!cfg_.tools) {
            // Calls to tools that were never offered: answer each so the history stays valid.
            for (const auto& c : conv.messages().back().tool_calls) {
                conv.add_tool_result(
                    c.id, "error: no tools are available; answer without tools", true
                );
            }
            continue;
        }

        // No tool batch starts after the deadline (the final repair answers the calls).
        if (st.deadline_passed()) {
            st.result.stop_reason = stop_reason::deadline;
            break;
        }
        tools::dispatch_options opts;
        opts.max_concurrency = cfg_.limits.max_tool_concurrency;
        opts.call_timeout = cfg_.limits.tool_call_timeout;
        opts.batch_timeout = cfg_.limits.tool_batch_timeout;
        opts.output_cap = cfg_.limits.tool_output_cap;
        if (auto left = st.time_left()) {
            opts.batch_timeout = opts.batch_timeout ? std::min(*opts.batch_timeout, *left) : *left;
        }
        // Copy: the stored message must not move while the dispatch reads it.
        api::message calls_msg = conv.messages().back();
        if (co_await run_tool_step(st, calls_msg, turn, std::move(opts)) ||
            is_cancelled(cancel_state)) {
            st.result.stop_reason = stop_reason::cancelled;
            break;
        }
        if (has_gate(cfg_, gate::after_step)) {
            gate_outcome verdict = co_await run_step_gate(st, gate::after_step, turn, {});
            if (is_cancelled(cancel_state)) {
                st.result.stop_reason = stop_reason::cancelled;
                break;
            }
            if (verdict.decision == critic_decision::deny) {
                st.result.stop_reason = stop_reason::critic_denied;
                break;
            }
            if (verdict.decision == critic_decision::revise) {
                if (st.result.revisions >= cfg_.critic_policy.max_revisions) {
                    if (cfg_.critic_policy.on_exhausted == revisions_exhausted_policy::stop) {
                        st.result.stop_reason = stop_reason::revisions_exhausted;
                        break;
                    }
                } else {
                    ++st.result.revisions;
                    conv.add_user(std::move(verdict.feedback));
                }
            }
        }
    }

    // Whatever stopped the run, leave a history that can be sent again as it is.
    conv.repair();
    if (wants_json(cfg_.request) && !st.result.final_text.empty()) {
        st.result.final_json = parse_json(st.result.final_text);
    }
    st.result.duration = since(st.started);
    events::run_finished fin{
        std::string(to_string(st.result.stop_reason)),
        st.result.final_text,
        std::nullopt,
        st.result.usage,
        st.result.turns.size(),
        st.result.duration};
    if (st.result.error) {
        fin.error = st.result.error->code.message();
        if (auto d = st.result.error->diagnostics.to_string(); !d.empty()) {
            *fin.error += ": " + d;
        }
    }
    event_data fin_ev = std::move(fin);
    co_await st.emitter.async_emit(std::move(fin_ev));
    if (options.events) {
        co_await options.events->async_finish();
    }
    co_return std::move(st.result);
}

} // namespace wafer
