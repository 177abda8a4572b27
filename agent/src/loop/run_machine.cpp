#include "loop/run_machine.hpp"

#include <algorithm>

#include "critics/critic_review.hpp"

namespace wafer::detail {

namespace {

// Sent (not stored) with the extra request that max_turns_policy::final_answer makes.
constexpr std::string_view final_turn_note =
    "You have used every tool turn available for this task. You MUST now give your final answer "
    "to the user, using what you already know. Do NOT call any tool.";

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

std::chrono::microseconds since(clock_type::time_point from, clock_type::time_point now) {
    return std::chrono::duration_cast<std::chrono::microseconds>(now - from);
}

} // namespace

run_machine::run_machine(const agent_config& cfg, run_setup setup)
    : cfg_(cfg), setup_(std::move(setup)) {
    result_.run_id = setup_.run_id;
    task_ = setup_.input;
    run_deadline_ = deadline::after(setup_.started, cfg_.limits.run_timeout);
    if (setup_.deadline) {
        run_deadline_ = earliest(run_deadline_, deadline(*setup_.deadline));
    }
    result_.agent = cfg_.name;
    replay_ = replay_options::for_model(cfg_.model->id(), cfg_.reasoning.mode);
    replay_.family = cfg_.model->family();
    replay_.carrier = cfg_.reasoning.carrier;
    wafer::conversation& conv = result_.conversation;
    if (setup_.history) {
        conv = std::move(*setup_.history);
        setup_.history.reset();
    } else if (!cfg_.system_prompt.empty()) {
        conv.add_system(cfg_.system_prompt);
    }
    conv.add_user(setup_.input);
    tool_defs_ = setup_.tool_defs;
    tool_defs_revision_ = setup_.tool_defs_revision;
    actions_.reserve(8);
    window_ = effective_context_window(cfg_.context, cfg_.model->info());
    reserved_ = cfg_.request.max_completion_tokens.value_or(0);
    cache_key_ =
        cfg_.context.prompt_cache_key.value_or(known_context_window(cfg_.model->id()).has_value());
    result_.context.last = context_usage{0, window_, reserved_};
}

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

void run_machine::emit(event_data e) {
    run_action a;
    a.type = run_action_type::emit;
    a.payload = std::move(e);
    push(std::move(a));
}

void run_machine::stop(wafer::stop_reason why) {
    result_.stop_reason = why;
    if (fatal_) {
        result_.stop_reason = stop_reason::error;
        result_.error = fatal_;
    }
    phase_ = phase::finishing;
}

void run_machine::fail(run_error e) {
    result_.error = std::move(e);
    stop(stop_reason::error);
}

bool run_machine::budget_exhausted() const {
    return cfg_.limits.token_budget &&
           result_.usage.prompt_tokens + result_.usage.completion_tokens >=
               *cfg_.limits.token_budget;
}

bool run_machine::has_gate(gate g) const {
    return std::any_of(cfg_.critics.begin(), cfg_.critics.end(), [g](const critic& c) {
        return c.gates.contains(g);
    });
}

run_action run_machine::next(clock_type::time_point now) {
    for (;;) {
        if (next_action_ < actions_.size()) {
            run_action a = std::move(actions_[next_action_++]);
            if (next_action_ == actions_.size()) {
                actions_.clear();
                next_action_ = 0;
            }
            return a;
        }
        // Cancellation reaches what is in flight once; the phases then see cancelled_.
        if (cancelled_ && !cancel_sent_ && in_flight_ > 0) {
            cancel_sent_ = true;
            run_action a;
            a.type = run_action_type::cancel_ops;
            return a;
        }
        switch (phase_) {
        case phase::start:
            if (observed()) {
                emit(events::run_started{cfg_.model->id(), setup_.input});
            }
            phase_ = phase::turn_begin;
            break;
        case phase::turn_begin:
            begin_turn(now);
            break;
        case phase::context_check:
            check_context(now);
            break;
        case phase::summarising:
            if (!reply_ && !model_failure_) {
                return {};
            }
            take_summary_outcome();
            break;
        case phase::model_ready:
            prepare_model_call();
            break;
        case phase::model_send:
            // Building the request and sending events may have taken the rest of the time.
            if (run_deadline_.passed(now)) {
                stop(stop_reason::deadline);
                break;
            }
            start_model(now);
            break;
        case phase::awaiting_model:
            if (!reply_ && !model_failure_) {
                return {};
            }
            take_model_outcome();
            break;
        case phase::tools_ready:
            // No tool batch starts after the deadline (the final repair answers the calls).
            if (run_deadline_.passed(now)) {
                stop(stop_reason::deadline);
                break;
            }
            begin_tool_step(now);
            break;
        case phase::tool_step:
            advance_tool_step(now);
            if (phase_ == phase::tool_step && next_action_ == actions_.size()) {
                return {};
            }
            break;
        case phase::after_step:
        case phase::final_answer:
            if (in_flight_ > 0) {
                return {};
            }
            settle_step_gate();
            break;
        case phase::finishing:
            if (in_flight_ > 0) {
                return {}; // what was cancelled still reports
            }
            finish(now);
            break;
        case phase::done: {
            run_action a;
            a.type = run_action_type::done;
            return a;
        }
        }
    }
}

void run_machine::begin_turn(clock_type::time_point now) {
    ++turn_;
    if (cancelled_) {
        return stop(stop_reason::cancelled);
    }
    if (run_deadline_.passed(now)) {
        return stop(stop_reason::deadline);
    }
    if (budget_exhausted()) {
        return stop(stop_reason::token_budget);
    }
    if (final_turn() && cfg_.limits.on_max_turns == max_turns_policy::stop) {
        return stop(stop_reason::max_turns);
    }
    wafer::conversation& conv = result_.conversation;
    // Build the request: repaired history, reasoning replayed for the model's family.
    if (auto repairs = conv.repair(); !repairs.empty() && observed()) {
        events::history_repaired ev{turn_, {}};
        for (const auto& r : repairs) {
            ev.repairs.push_back(r.to_string());
        }
        emit(std::move(ev));
    }
    overflow_retried_ = false;
    phase_ = phase::context_check;
}

void run_machine::prepare_model_call() {
    model_call& call = pending_call_;
    call = model_call{};
    call.turn = turn_;
    api::chat_request& req = call.request;
    req = cfg_.request;
    req.model = cfg_.model->id();
    req.messages = build_request_messages(result_.conversation, replay_);
    if (!cfg_.request.clear_thinking) {
        apply_replay_params(req, replay_);
    }
    if (final_turn()) {
        req.tools.clear();
        req.tool_choice.reset();
        req.parallel_tool_calls.reset();
        req.messages.push_back(api::message::user(std::string(final_turn_note)));
    } else if (cfg_.tools) {
        // The registry may have changed since the last turn (an MCP server's list_changed):
        // this turn offers, and runs, the tools as they are now. A tool set whose list went
        // stale hears of the turn first (its new list comes for a later one).
        cfg_.tools->turn_starting();
        if (!turn_tools_ || turn_tools_->revision() != cfg_.tools->revision()) {
            turn_tools_ = cfg_.tools->snapshot();
        }
        if (!tool_defs_ || tool_defs_revision_ != turn_tools_->revision()) {
            tool_defs_ = std::make_shared<const std::vector<api::function_tool>>(
                tool_definitions(turn_tools_.get())
            );
            tool_defs_revision_ = turn_tools_->revision();
        }
    }
    if (!final_turn() && tool_defs_ && !tool_defs_->empty() && req.tools.empty()) {
        req.tools = *tool_defs_;
    }
    if (cache_key_ && !req.prompt_cache_key && !result_.run_id.empty()) {
        req.prompt_cache_key = result_.run_id;
    }
    // What the request costs of the window: the estimate the next reply calibrates.
    sent_chars_ = request_chars(result_.conversation.messages(), replay_) +
                  (req.tools.empty() ? 0 : tools_chars()) +
                  (final_turn() ? final_turn_note.size() : 0);
    context_usage& cu = result_.context.last;
    cu = context_usage{estimator_.estimate(sent_chars_), window_, reserved_};
    result_.context.peak_tokens = std::max(result_.context.peak_tokens, cu.prompt_tokens);
    call.admission.run_key = result_.run_id;
    call.admission.priority = setup_.priority.value_or(cfg_.priority);
    call.admission.prompt_tokens = cu.prompt_tokens;
    if (observed()) {
        events::model_request ev{turn_, req.model, req.messages.size(), req.tools.size()};
        ev.context_tokens = cu.prompt_tokens;
        ev.context_window = window_;
        emit(std::move(ev));
    }
    phase_ = phase::model_send;
}

void run_machine::start_model(clock_type::time_point now) {
    model_call call = std::move(pending_call_);
    call.run_deadline = run_deadline_;
    call.call_deadline = earliest(run_deadline_, deadline::after(now, cfg_.limits.turn_timeout));
    if (call.call_deadline) {
        call.admission.deadline = call.call_deadline.at();
    }
    run_action a;
    a.type = run_action_type::call_model;
    a.op = model_op_ = start_op();
    a.payload = std::move(call);
    push(std::move(a));
    phase_ = phase::awaiting_model;
}

void run_machine::on_model_reply(
    std::uint32_t op, model_reply reply, std::chrono::microseconds took
) {
    if (op == summary_op_ && phase_ == phase::summarising && !reply_ && !model_failure_) {
        --in_flight_;
        reply_ = std::move(reply);
        return;
    }
    if (op != model_op_ || phase_ != phase::awaiting_model) {
        return;
    }
    --in_flight_;
    reply_ = std::move(reply);
    reply_took_ = took;
}

void run_machine::on_model_failed(
    std::uint32_t op, model_failure why, std::optional<run_error> error
) {
    if (op == summary_op_ && phase_ == phase::summarising && !reply_ && !model_failure_) {
        --in_flight_;
        model_failure_ = why;
        return;
    }
    if (op != model_op_ || phase_ != phase::awaiting_model) {
        return;
    }
    --in_flight_;
    model_failure_ = why;
    model_error_ = std::move(error);
}

void run_machine::take_model_outcome() {
    std::optional<model_reply> reply = std::move(reply_);
    std::optional<model_failure> failure = model_failure_;
    std::optional<run_error> error = std::move(model_error_);
    reply_.reset();
    model_failure_.reset();
    model_error_.reset();
    if (cancelled_ || failure == model_failure::cancelled) {
        return stop(stop_reason::cancelled);
    }
    if (failure) {
        switch (*failure) {
        case model_failure::run_deadline:
            return stop(stop_reason::deadline);
        case model_failure::turn_timeout: {
            run_error e{errc::timeout, {}};
            e.diagnostics.detail = "model call exceeded the turn timeout";
            return fail(std::move(e));
        }
        default:
            break;
        }
        // The server said the request is longer than its context: compact and send the turn
        // once more (only once: a second refusal ends the run).
        std::int64_t quoted = 0;
        if (error && cfg_.context.enabled && !overflow_retried_ &&
            is_context_overflow(
                error->diagnostics.http_status,
                error->diagnostics.code,
                error->diagnostics.message,
                &quoted
            )) {
            overflow_retried_ = true;
            ++result_.context.overflow_retries;
            estimator_.on_overflow(quoted, sent_chars_);
            forced_ = compaction_trigger::overflow;
            phase_ = phase::context_check;
            return;
        }
        if (error) {
            result_.queue_wait += error->diagnostics.queue_wait;
        }
        return fail(error.value_or(run_error{errc::invalid_response, {}}));
    }

    // Account for the turn.
    turn_usage tu{turn_, reply->usage.value_or(api::usage{}), reply->time_info, reply_took_};
    tu.queue_wait = reply->queue_wait;
    result_.queue_wait += tu.queue_wait;
    result_.usage += tu.usage;
    if (tu.time_info) {
        result_.time_info += *tu.time_info;
    }
    result_.turns.push_back(tu);
    estimator_.on_reported(tu.usage.prompt_tokens, sent_chars_);
    api::message& msg = reply->message;
    msg.role = api::role::assistant;
    // GLM with a JSON response_format may repeat a tool call next to a valid JSON answer; the
    // JSON is the answer (cerebras-api.md §9, quirk 2). A final turn never runs tools.
    if (!msg.tool_calls.empty() &&
        (final_turn() || (wants_json(cfg_.request) && parse_json(msg.text())))) {
        msg.tool_calls.clear();
    }
    if (observed()) {
        emit(events::turn_finished{
            turn_,
            reply->finish_reason,
            reply->usage,
            reply->time_info,
            msg.tool_calls.size(),
            tu.duration,
            tu.queue_wait});
    }
    wafer::conversation& conv = result_.conversation;
    if (msg.tool_calls.empty()) {
        std::string answer = msg.text();
        conv.append(std::move(msg));
        result_.stop_reason = final_turn() ? stop_reason::max_turns : stop_reason::completed;
        result_.final_text = answer;
        if (!has_gate(gate::final_answer)) {
            phase_ = phase::finishing;
            return;
        }
        begin_step_gate(gate::final_answer, answer);
        return;
    }
    conv.append(std::move(msg));
    // Missing or reused call ids get fresh ones now, so results and events use the ids the
    // history keeps.
    if (auto renamed = conv.make_call_ids_unique(); !renamed.empty() && observed()) {
        events::history_repaired ev{turn_, {}};
        for (const auto& r : renamed) {
            ev.repairs.push_back(r.to_string());
        }
        emit(std::move(ev));
    }
    if (budget_exhausted()) {
        return stop(stop_reason::token_budget);
    }
    if (!cfg_.tools) {
        // Calls to tools that were never offered: answer each so the history stays valid.
        std::vector<std::string> ids;
        for (const auto& c : conv.messages().back().tool_calls) {
            ids.push_back(c.id);
        }
        for (auto& id : ids) {
            conv.add_tool_result(
                std::move(id), "error: no tools are available; answer without tools", true
            );
        }
        phase_ = phase::turn_begin;
        return;
    }
    // The tool step starts once the turn's events are out (they may take time).
    phase_ = phase::tools_ready;
}

void run_machine::begin_tool_step(clock_type::time_point now) {
    step_calls_ = result_.conversation.messages().back().tool_calls;
    const std::size_t n = step_calls_.size();
    slots_.assign(n, call_slot{});
    dispatches_.clear();
    reviews_.clear();
    step_reviews_.clear();
    covered_.clear();
    step_cancelled_ = false;
    asked_ = false;
    phase_ = phase::tool_step;

    // One lookup per call: whether it needs approval, and which critics review it first.
    const tools::registry& reg = turn_tools_ ? *turn_tools_ : *cfg_.tools;
    for (std::size_t i = 0; i < n; ++i) {
        const tools::tool* t = reg.find(step_calls_[i].name);
        if (t == nullptr) {
            continue;
        }
        slots_[i].ends_run = t->options.ends_run;
        slots_[i].needs_approval = t->options.needs_approval.may_apply() &&
                                   t->options.needs_approval.needs(step_calls_[i].arguments);
        for (std::size_t ci = 0; ci < cfg_.critics.size(); ++ci) {
            const critic& c = cfg_.critics[ci];
            if (c.gates.contains(gate::before_tools) && c.covers(t->name, t->options.read_only)) {
                slots_[i].covering.push_back(ci);
            }
        }
    }
    // Critics review first; a call that needs approval waits for a person only once they
    // approved it (nobody is asked about a call a critic refuses).
    std::vector<std::size_t> free_calls;
    for (std::size_t i = 0; i < n; ++i) {
        if (!slots_[i].covering.empty()) {
            covered_.push_back(i);
        } else if (!hold(i)) {
            free_calls.push_back(i);
        }
    }
    const std::optional<std::chrono::milliseconds> batch_timeout =
        run_deadline_.cap(cfg_.limits.tool_batch_timeout, now);
    batch_deadline_ = deadline::after(now, batch_timeout);
    before_tools_settled_ = covered_.empty();
    // Covered calls wait for their verdicts; the others start at once, while critics deliberate.
    for (std::size_t i : covered_) {
        const api::message& assistant = result_.conversation.messages().back();
        for (std::size_t ci : slots_[i].covering) {
            slots_[i].reviews.push_back(step_reviews_.size());
            start_review(
                ci, gate::before_tools, before_tools_input(task_, assistant, i), step_calls_[i].id
            );
        }
    }
    if (!free_calls.empty()) {
        start_dispatch(std::move(free_calls), batch_timeout);
    }
    request_approvals();
}

void run_machine::start_dispatch(
    std::vector<std::size_t> calls, std::optional<std::chrono::milliseconds> timeout, bool approved
) {
    dispatch_job job;
    job.turn = turn_;
    job.requests.reserve(calls.size());
    for (std::size_t i : calls) {
        const api::tool_call& c = step_calls_[i];
        job.requests.push_back({c.id, c.name, c.arguments, approved});
    }
    job.options.max_concurrency = cfg_.limits.max_tool_concurrency;
    job.options.call_timeout = cfg_.limits.tool_call_timeout;
    job.options.batch_timeout = timeout;
    job.options.output_cap = cfg_.limits.tool_output_cap;
    job.options.idempotency_scope = result_.run_id;
    job.tools = turn_tools_;
    dispatch_op d;
    d.op = start_op();
    d.calls = calls;
    job.calls = std::move(calls);
    run_action a;
    a.type = run_action_type::dispatch;
    a.op = d.op;
    a.payload = std::move(job);
    dispatches_.push_back(std::move(d));
    push(std::move(a));
}

void run_machine::start_review(
    std::size_t critic_index, gate g, std::string input, std::optional<std::string> call_id
) {
    review_job job;
    job.critic_index = critic_index;
    job.gate = g;
    job.turn = turn_;
    job.input = std::move(input);
    job.call_id = std::move(call_id);
    job.until = run_deadline_;
    review_op r;
    r.op = start_op();
    r.slot = step_reviews_.size();
    step_reviews_.emplace_back();
    run_action a;
    a.type = run_action_type::review;
    a.op = r.op;
    a.payload = std::move(job);
    reviews_.push_back(r);
    push(std::move(a));
}

run_machine::dispatch_op* run_machine::running_dispatch(std::uint32_t op, std::size_t k) {
    if (phase_ != phase::tool_step) {
        return nullptr;
    }
    for (auto& d : dispatches_) {
        if (d.op == op && !d.done && k < d.calls.size()) {
            return &d;
        }
    }
    return nullptr;
}

void run_machine::on_tool_started(std::uint32_t op, std::size_t k) {
    const dispatch_op* d = running_dispatch(op, k);
    if (d && observed()) {
        const api::tool_call& c = step_calls_[d->calls[k]];
        emit(events::tool_call_started{turn_, c.id, c.name, c.arguments});
    }
}

void run_machine::on_tool_progress(std::uint32_t op, std::size_t k, const tools::call_progress& p) {
    const dispatch_op* d = running_dispatch(op, k);
    // Nothing after the call's result (a straggler's report).
    if (d && observed() && !slots_[d->calls[k]].result) {
        const api::tool_call& c = step_calls_[d->calls[k]];
        emit(events::tool_call_progress{turn_, c.id, c.name, p.progress, p.total, p.message});
    }
}

void run_machine::on_tool_finished(
    std::uint32_t op,
    std::size_t k,
    tools::tool_result result,
    std::chrono::microseconds took,
    std::vector<pending_approval> child_pending
) {
    const dispatch_op* d = running_dispatch(op, k);
    if (!d) {
        return;
    }
    call_slot& s = slots_[d->calls[k]];
    if (s.settled()) {
        return; // reported twice: the first report stands
    }
    if (!child_pending.empty()) {
        // No result: the call waits for its child's approvals (run_machine_approvals.cpp).
        s.child_pending = std::move(child_pending);
        return;
    }
    if (observed()) {
        const api::tool_call& c = step_calls_[d->calls[k]];
        emit(events::tool_call_finished{turn_, c.id, c.name, took, result.is_error, result.content}
        );
    }
    s.result = std::move(result);
}

void run_machine::on_dispatch_done(
    std::uint32_t op, bool cancelled, std::optional<std::string> failure
) {
    if (phase_ != phase::tool_step) {
        return;
    }
    for (auto& d : dispatches_) {
        if (d.op != op || d.done) {
            continue;
        }
        d.done = true;
        --in_flight_;
        step_cancelled_ = step_cancelled_ || cancelled;
        // A call the dispatch never reported (it failed as a whole): its outcome is unknown.
        for (std::size_t k = 0; k < d.calls.size(); ++k) {
            call_slot& s = slots_[d.calls[k]];
            if (s.settled()) {
                continue;
            }
            give_result(
                d.calls[k],
                tools::result_status::handler_exception,
                "tool " + nlohmann::json(step_calls_[d.calls[k]].name).dump() +
                    " failed: the tool dispatch failed (" +
                    failure.value_or("results are missing") + "); its result is lost"
            );
        }
        return;
    }
}

void run_machine::on_review(std::uint32_t op, critic_review review) {
    for (auto& r : reviews_) {
        if (r.op != op || r.done) {
            continue;
        }
        r.done = true;
        --in_flight_;
        result_.critic_usage += review.usage;
        result_.reviews.push_back(review);
        if (observed()) {
            emit(events::critic_verdict{
                review.turn,
                review.critic,
                std::string(to_string(review.gate)),
                review.call_id,
                review.verdict.decision,
                review.verdict.reasons,
                review.error,
                review.latency,
                review.usage});
        }
        step_reviews_[r.slot] = std::move(review);
        return;
    }
}

void run_machine::on_cancelled() {
    cancelled_ = true;
}

void run_machine::on_fatal(run_error e) {
    if (!fatal_) {
        fatal_ = std::move(e);
    }
    cancelled_ = true;
    if (phase_ == phase::finishing) {
        stop(stop_reason::error); // the stop already decided gives way to the failure
    }
}

void run_machine::settle_before_tools(clock_type::time_point now) {
    before_tools_settled_ = true;
    std::vector<std::size_t> approved;
    for (std::size_t i : covered_) {
        call_slot& s = slots_[i];
        std::vector<critic_decision> decisions;
        std::vector<const critic_review*> mine;
        for (std::size_t idx : s.reviews) {
            decisions.push_back(step_reviews_[idx]->verdict.decision);
            mine.push_back(&*step_reviews_[idx]);
        }
        const critic_decision d = combine_decisions(decisions, cfg_.critic_policy.combine);
        if (d == critic_decision::approve && !cancelled_) {
            if (!hold(i)) {
                approved.push_back(i);
            }
            continue;
        }
        if (d == critic_decision::approve) {
            give_result(
                i,
                tools::result_status::cancelled,
                "cancelled: the run was cancelled before this call started"
            );
        } else {
            give_result(i, tools::result_status::refused, refusal_text(d, mine));
        }
    }
    if (cancelled_) {
        step_cancelled_ = true;
    }
    if (!approved.empty()) {
        start_dispatch(std::move(approved), batch_deadline_.left(now));
    }
    request_approvals();
}

void run_machine::give_result(std::size_t i, tools::result_status status, std::string content) {
    const api::tool_call& c = step_calls_[i];
    tools::tool_result r;
    r.tool_call_id = c.id;
    r.name = c.name;
    r.is_error = true;
    r.status = status;
    r.content = std::move(content);
    // No tool_call_started: the call never ran.
    if (observed()) {
        emit(events::tool_call_finished{
            turn_, c.id, c.name, std::chrono::microseconds(0), true, r.content});
    }
    slots_[i].result = std::move(r);
}

bool run_machine::dispatch_end_due() const noexcept {
    if (phase_ != phase::tool_step) {
        return false;
    }
    return std::any_of(dispatches_.begin(), dispatches_.end(), [this](const dispatch_op& d) {
        return !d.done && std::all_of(d.calls.begin(), d.calls.end(), [this](std::size_t i) {
            return slots_[i].settled();
        });
    });
}

void run_machine::advance_tool_step(clock_type::time_point now) {
    if (!before_tools_settled_) {
        for (std::size_t i : covered_) {
            for (std::size_t idx : slots_[i].reviews) {
                if (!step_reviews_[idx]) {
                    return;
                }
            }
        }
        settle_before_tools(now);
        return;
    }
    release_decided(now);
    if (in_flight_ > 0) {
        return;
    }
    // The fixed point of a step: everything but the calls waiting for approval has settled.
    bool out_of_time = false;
    if (std::vector<pending_approval> waiting = undecided(); !waiting.empty()) {
        if (cancelled_) {
            step_cancelled_ = true;
            abandon_undecided(
                "cancelled: the run was cancelled while this call waited for approval; it did "
                "not run"
            );
        } else if (run_deadline_.passed(now)) {
            out_of_time = true;
            abandon_undecided(
                "not run: the run's deadline passed while this call waited for approval"
            );
        } else if (paused_) {
            result_.pending_approvals = std::move(waiting);
            return stop(stop_reason::awaiting_approval);
        } else {
            if (!asked_) {
                asked_ = true;
                run_action a;
                a.type = run_action_type::await_approval;
                a.payload = approval_wait{std::move(waiting), run_deadline_};
                push(std::move(a));
            }
            return;
        }
    }
    // Every call has its result: append them in the model's order.
    wafer::conversation& conv = result_.conversation;
    bool hand_off = false;
    for (auto& s : slots_) {
        tools::tool_result& r = *s.result;
        hand_off = hand_off || (s.ends_run && !r.is_error);
        conv.add_tool_result(std::move(r.tool_call_id), std::move(r.content), r.is_error);
    }
    slots_.clear();
    if (step_cancelled_ || cancelled_) {
        return stop(stop_reason::cancelled);
    }
    if (out_of_time) {
        return stop(stop_reason::deadline);
    }
    if (hand_off) {
        return stop(stop_reason::handoff); // after_step critics have nothing left to gate
    }
    if (has_gate(gate::after_step)) {
        begin_step_gate(gate::after_step, {});
        return;
    }
    phase_ = phase::turn_begin;
}

void run_machine::begin_step_gate(gate g, std::string_view answer) {
    phase_ = g == gate::after_step ? phase::after_step : phase::final_answer;
    reviews_.clear();
    step_reviews_.clear();
    const auto& msgs = result_.conversation.messages();
    for (std::size_t ci = 0; ci < cfg_.critics.size(); ++ci) {
        if (!cfg_.critics[ci].gates.contains(g)) {
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
            input = after_step_input(
                task_, msgs[a - 1], std::span<const api::message>(msgs).subspan(a)
            );
        } else {
            // Everything since the task (the last user message that is not wafer's feedback).
            input = final_answer_input(task_, msgs, answer);
        }
        start_review(ci, g, std::move(input), std::nullopt);
    }
}

void run_machine::settle_step_gate() {
    const gate g = phase_ == phase::after_step ? gate::after_step : gate::final_answer;
    std::vector<critic_decision> decisions;
    std::vector<const critic_review*> all;
    for (const auto& r : step_reviews_) {
        decisions.push_back(r->verdict.decision);
        all.push_back(&*r);
    }
    const critic_decision d = decisions.empty()
                                  ? critic_decision::approve
                                  : combine_decisions(decisions, cfg_.critic_policy.combine);
    if (cancelled_) {
        return stop(stop_reason::cancelled);
    }
    if (d == critic_decision::deny) {
        if (g == gate::final_answer) {
            result_.final_text.clear();
        }
        return stop(stop_reason::critic_denied);
    }
    if (d == critic_decision::approve) {
        if (g == gate::final_answer) {
            phase_ = phase::finishing; // stop_reason was set with the answer
        } else {
            phase_ = phase::turn_begin;
        }
        return;
    }
    // Revise: another turn with the feedback, if the budget (and for an answer, the turn
    // limit) allows.
    const bool exhausted = result_.revisions >= cfg_.critic_policy.max_revisions ||
                           (g == gate::final_answer && final_turn());
    if (exhausted) {
        if (cfg_.critic_policy.on_exhausted == revisions_exhausted_policy::stop) {
            return stop(stop_reason::revisions_exhausted);
        }
        phase_ = g == gate::final_answer ? phase::finishing : phase::turn_begin;
        return;
    }
    ++result_.revisions;
    result_.conversation.add_user(revision_feedback(g, all));
    phase_ = phase::turn_begin;
}

void run_machine::finish(clock_type::time_point now) {
    // Whatever stopped the run, leave a history that can be sent again as it is; a run that
    // waits for approvals keeps its open step as it is, to continue it.
    if (result_.stop_reason != stop_reason::awaiting_approval) {
        result_.conversation.repair();
    }
    if (wants_json(cfg_.request) && !result_.final_text.empty()) {
        result_.final_json = parse_json(result_.final_text);
    }
    result_.duration = since(setup_.started, now);
    if (observed()) {
        events::run_finished fin{
            std::string(to_string(result_.stop_reason)),
            result_.final_text,
            std::nullopt,
            result_.usage,
            result_.turns.size(),
            result_.duration,
            result_.queue_wait};
        if (result_.error) {
            fin.error = result_.error->code.message();
            if (auto d = result_.error->diagnostics.to_string(); !d.empty()) {
                *fin.error += ": " + d;
            }
        }
        emit(std::move(fin));
    }
    phase_ = phase::done;
}

} // namespace wafer::detail
