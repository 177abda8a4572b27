// The run machine's context management: measuring each request against the window, the
// compaction passes and the summary call (ARCHITECTURE.md, "Context management").
#include <algorithm>

#include "loop/run_machine.hpp"

namespace wafer::detail {

// ---- context management ------------------------------------------------------------------

std::size_t run_machine::tools_chars() const {
    std::size_t n = 0;
    if (tool_defs_) {
        for (const auto& t : *tool_defs_) {
            n += 32 + t.name.size() + (t.description ? t.description->size() : 0) +
                 (t.parameters ? t.parameters.wire_text().size() : 0);
        }
    }
    return n;
}

compaction_plan run_machine::context_plan(compaction_trigger t, bool aggressive) const {
    compaction_plan plan;
    plan.config = &cfg_.context;
    plan.replay = replay_;
    plan.estimator = &estimator_;
    plan.fixed_chars = tools_chars();
    plan.budget_tokens = result_.context.last.budget();
    plan.turn = turn_;
    plan.trigger = t;
    plan.aggressive = aggressive;
    if (const tools::registry* reg = turn_tools_ ? turn_tools_.get() : cfg_.tools.get()) {
        plan.is_read_only = [reg](std::string_view name) {
            const tools::tool* tool = reg->find(name);
            return tool != nullptr && tool->options.read_only;
        };
    }
    return plan;
}

std::int64_t run_machine::context_target(compaction_trigger t, std::int64_t estimate) const {
    const std::int64_t budget = result_.context.last.budget();
    if (budget <= 0) {
        return estimate / 2; // the window is unknown: halve what the server refused
    }
    auto target = static_cast<std::int64_t>(cfg_.context.target * static_cast<double>(budget));
    if (t == compaction_trigger::overflow) {
        // The estimate was wrong (the server counted more): aim lower than it says.
        target = std::min(target, estimate * 7 / 10);
    }
    return target;
}

void run_machine::publish(const compaction_pass& pass) {
    for (const auto& r : pass.records) {
        ++result_.context.compactions;
        if (observed()) {
            events::context_compacted ev;
            ev.turn = r.turn;
            ev.strategy = std::string(to_string(r.strategy));
            ev.trigger = std::string(to_string(r.trigger));
            ev.first = r.first;
            ev.replaced = r.replaced;
            ev.replacement = r.replacement;
            ev.tokens_before = r.tokens_before;
            ev.tokens_after = r.tokens_after;
            ev.window = window_;
            ev.digest = r.digest;
            emit(std::move(ev));
        }
    }
}

void run_machine::check_context(clock_type::time_point now) {
    phase_ = phase::model_ready;
    const std::optional<compaction_trigger> forced = std::exchange(forced_, std::nullopt);
    if (!cfg_.context.enabled) {
        return;
    }
    const std::int64_t budget = result_.context.last.budget();
    const compaction_trigger t = forced.value_or(compaction_trigger::threshold);
    // Every turn measures; only a turn over the trigger builds a plan.
    const std::int64_t estimate = estimator_.estimate(
        request_chars(result_.conversation.messages(), replay_) + tools_chars()
    );
    const bool over = budget > 0 && static_cast<double>(estimate) >
                                        cfg_.context.trigger * static_cast<double>(budget);
    if (!forced && !over) {
        return;
    }
    compaction_plan plan = context_plan(t, false);
    plan.target_tokens = context_target(t, estimate);
    compaction_pass pass = compact(result_.conversation, plan);
    publish(pass);
    if (pass.fits) {
        return;
    }
    if (pass.summary_due) {
        return start_summary(*pass.summary_due, t, now);
    }
    compact_harder(t);
}

void run_machine::compact_harder(compaction_trigger t) {
    compaction_plan plan = context_plan(t, true);
    plan.target_tokens = context_target(t, estimate_tokens(result_.conversation, plan));
    publish(compact(result_.conversation, plan));
}

void run_machine::start_summary(
    message_range range, compaction_trigger t, clock_type::time_point now
) {
    const std::shared_ptr<wafer::model>& m =
        cfg_.context.summary_model ? cfg_.context.summary_model : cfg_.model;
    model_call call;
    call.turn = turn_;
    call.request = summary_request(
        result_.conversation, range, summary_prompt(cfg_.context), cfg_.context.summary_max_tokens
    );
    call.request.model = m->id();
    call.model = m;
    call.quiet = true;
    call.run_deadline = run_deadline_;
    call.call_deadline = earliest(run_deadline_, deadline::after(now, cfg_.limits.turn_timeout));
    summary_range_ = range;
    summary_trigger_ = t;
    reply_.reset();
    model_failure_.reset();
    run_action a;
    a.type = run_action_type::call_model;
    a.op = summary_op_ = start_op();
    a.payload = std::move(call);
    push(std::move(a));
    phase_ = phase::summarising;
}

void run_machine::take_summary_outcome() {
    std::optional<model_reply> reply = std::exchange(reply_, std::nullopt);
    const std::optional<model_failure> failure = std::exchange(model_failure_, std::nullopt);
    const message_range range = *summary_range_;
    summary_range_.reset();
    phase_ = phase::model_ready;
    if (cancelled_ || failure == model_failure::cancelled) {
        return stop(stop_reason::cancelled);
    }
    if (failure == model_failure::run_deadline) {
        return stop(stop_reason::deadline);
    }
    if (reply) {
        if (reply->usage) {
            result_.usage += *reply->usage;
            result_.context.summary_usage += *reply->usage;
        }
        // A summary that is empty, or no shorter than what it replaces, is not used.
        if (auto r = apply_summary(
                result_.conversation,
                range,
                reply->message.text(),
                context_plan(summary_trigger_, false)
            )) {
            compaction_pass pass;
            pass.records.push_back(std::move(*r));
            publish(pass);
            if (pass.records.back().tokens_after <=
                context_target(summary_trigger_, pass.records.back().tokens_before)) {
                return;
            }
        }
    }
    compact_harder(summary_trigger_);
}

} // namespace wafer::detail
