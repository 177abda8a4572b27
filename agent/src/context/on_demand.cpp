// agent::async_compact: the on-demand trigger, outside a run (the sans-io tiers, one summary
// call).
#include <wafer/agent.hpp>

#include <algorithm>

namespace wafer {

boost::asio::awaitable<compaction_result> agent::async_compact(conversation history) const {
    const context_config& cc = cfg_.context;
    compaction_result out;
    const context_usage usage{
        0,
        effective_context_window(cc, cfg_.model->info()),
        cfg_.request.max_completion_tokens.value_or(0)};
    const token_estimator estimator;
    compaction_plan plan;
    plan.config = &cc;
    plan.replay = replay_options::for_model(cfg_.model->id(), cfg_.reasoning.mode);
    plan.replay.family = cfg_.model->family();
    plan.replay.carrier = cfg_.reasoning.carrier;
    plan.estimator = &estimator;
    plan.budget_tokens = usage.budget();
    plan.trigger = compaction_trigger::on_demand;
    plan.turn = history.turn();
    if (cfg_.tools) {
        std::shared_ptr<const tools::registry> reg = cfg_.tools->snapshot();
        plan.is_read_only = [reg](std::string_view name) {
            const tools::tool* t = reg->find(name);
            return t != nullptr && t->options.read_only;
        };
    }
    const std::int64_t before = estimate_tokens(history, plan);
    std::int64_t target = before / 2;
    if (usage.budget() > 0) {
        target = std::min(
            target, static_cast<std::int64_t>(cc.target * static_cast<double>(usage.budget()))
        );
    }
    plan.target_tokens = target;
    out.tokens_before = before;

    compaction_pass pass = compact(history, plan);
    out.records = pass.records;
    bool harder = !pass.fits;
    if (!pass.fits && pass.summary_due) {
        const std::shared_ptr<wafer::model>& m = cc.summary_model ? cc.summary_model : cfg_.model;
        api::chat_request req =
            summary_request(history, *pass.summary_due, summary_prompt(cc), cc.summary_max_tokens);
        req.model = m->id();
        model_reply reply;
        diagnostics diag;
        const boost::system::error_code ec =
            co_await m->async_complete(std::move(req), nullptr, reply, diag);
        if (ec == make_error_code(errc::cancelled)) {
            throw wafer::error(ec, diag);
        }
        std::optional<compaction_record> r;
        if (ec) {
            out.summary_error = diag.to_string();
        } else if (r = apply_summary(history, *pass.summary_due, reply.message.text(), plan); !r) {
            out.summary_error = "the summary was empty or no shorter than what it replaces";
        }
        if (r) {
            harder = r->tokens_after > target;
            out.records.push_back(std::move(*r));
        }
    }
    if (harder) {
        plan.aggressive = true;
        compaction_pass again = compact(history, plan);
        out.records.insert(out.records.end(), again.records.begin(), again.records.end());
    }
    out.tokens_after = estimate_tokens(history, plan);
    out.conversation = std::move(history);
    co_return out;
}

} // namespace wafer
