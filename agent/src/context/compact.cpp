// The tier runner and the overflow classifier.
#include <wafer/compaction.hpp>
#include <wafer/prompts.hpp>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <limits>

#include "detail/ascii.hpp"

namespace wafer {

namespace {

std::size_t edit_chars_delta_after(
    const conversation& c, const history_edit& e, const replay_options& replay, std::size_t chars
) {
    const auto& ms = c.messages();
    std::size_t before = 0;
    std::size_t after = 0;
    if (!e.rewrites.empty()) {
        for (const auto& [i, m] : e.rewrites) {
            before += request_chars(ms[i], replay);
            after += request_chars(m, replay);
        }
    } else {
        for (std::size_t k = 0; k < e.count; ++k) {
            before += request_chars(ms[e.first + k], replay);
        }
        for (const auto& m : e.replacement) {
            after += request_chars(m, replay);
        }
    }
    return chars - std::min(chars, before) + after;
}

} // namespace

std::int64_t estimate_tokens(const conversation& c, const compaction_plan& plan) {
    const std::size_t chars = request_chars(c.messages(), plan.replay) + plan.fixed_chars;
    return plan.estimator ? plan.estimator->estimate(chars) : token_estimator{}.estimate(chars);
}

compaction_pass compact(conversation& c, const compaction_plan& plan) {
    static const context_config defaults{};
    const context_config& cfg = plan.config ? *plan.config : defaults;
    const token_estimator fallback{};
    const token_estimator& est = plan.estimator ? *plan.estimator : fallback;

    compaction_pass pass;
    std::size_t chars = request_chars(c.messages(), plan.replay) + plan.fixed_chars;
    std::int64_t tokens = est.estimate(chars);
    pass.tokens_before = tokens;

    const std::size_t keep = plan.aggressive ? 1 : std::max<std::size_t>(cfg.keep_pairs, 1);
    std::size_t clamp = cfg.clamp_chars;
    if (clamp == 0) {
        const double tenth = static_cast<double>(plan.budget_tokens) / 10.0;
        clamp = std::max<std::size_t>(
            2'048, static_cast<std::size_t>(tenth / std::max(est.tokens_per_char(), 1e-3))
        );
    }
    if (plan.aggressive) {
        clamp = std::max<std::size_t>(512, clamp / 4);
    }
    // The kept tail gets at most half of the target (a quarter when aggressive), so that a few
    // big results cannot keep the request over it.
    const double ratio = std::max(est.tokens_per_char(), 1e-3);
    const auto target_chars = static_cast<std::size_t>(
        static_cast<double>(std::max<std::int64_t>(plan.target_tokens, 0)) / ratio
    );
    const std::size_t max_tail = std::max<std::size_t>(target_chars / (plan.aggressive ? 4 : 2), 1);

    for (const compaction_strategy s : cfg.tiers) {
        if (tokens <= plan.target_tokens) {
            break;
        }
        history_edit edit;
        const std::size_t tail = kept_tail_start(c, keep, max_tail);
        switch (s) {
        case compaction_strategy::clamp_tool_results:
            edit = clamp_tool_results(c, clamp, tail, std::max(clamp, max_tail));
            break;
        case compaction_strategy::dedupe_reads:
            edit = dedupe_reads(c, plan.is_read_only);
            break;
        case compaction_strategy::drop_reasoning:
            edit = drop_reasoning(c, tail);
            break;
        case compaction_strategy::clear_tool_results:
            edit = clear_tool_results(c, tail, plan.aggressive ? 0 : cfg.clear_min_chars);
            break;
        case compaction_strategy::summarise:
            break;
        }
        if (s == compaction_strategy::summarise) {
            if (plan.aggressive) {
                continue; // the summary already failed: the tiers after it run
            }
            // The transcript gets at most half of the budget.
            std::size_t max_chars = std::numeric_limits<std::size_t>::max();
            if (plan.budget_tokens > 0) {
                max_chars =
                    static_cast<std::size_t>(static_cast<double>(plan.budget_tokens) / ratio / 2.0);
            }
            pass.summary_due = summary_range(c, tail, max_chars);
            if (pass.summary_due) {
                break; // the caller summarises, then goes on
            }
            continue;
        }
        if (edit.empty()) {
            continue;
        }
        const std::size_t after_chars = edit_chars_delta_after(c, edit, plan.replay, chars);
        const std::int64_t after = est.estimate(after_chars);
        compaction_record r;
        r.turn = plan.turn;
        r.strategy = s;
        r.trigger = plan.trigger;
        r.tokens_before = tokens;
        r.tokens_after = after;
        pass.records.push_back(c.apply_compaction(std::move(edit), std::move(r)));
        chars = after_chars;
        tokens = after;
    }
    pass.tokens_after = tokens;
    pass.fits = tokens <= plan.target_tokens;
    if (pass.fits) {
        pass.summary_due.reset();
    }
    return pass;
}

std::int64_t effective_context_window(const context_config& cfg, const model_info& model) {
    return cfg.window.value_or(
        model.context_window.value_or(known_context_window(model.id).value_or(0))
    );
}

const std::string& summary_prompt(const context_config& cfg) {
    static const std::string builtin = prompt_library{}.text("compaction");
    return cfg.summary_prompt.empty() ? builtin : cfg.summary_prompt;
}

std::optional<compaction_record> apply_summary(
    conversation& c, message_range range, std::string_view summary, const compaction_plan& plan
) {
    history_edit edit = summary_edit(c, range, summary);
    if (edit.empty()) {
        return std::nullopt;
    }
    const std::size_t chars = request_chars(c.messages(), plan.replay) + plan.fixed_chars;
    const token_estimator fallback{};
    const token_estimator& est = plan.estimator ? *plan.estimator : fallback;
    compaction_record r;
    r.turn = plan.turn;
    r.strategy = compaction_strategy::summarise;
    r.trigger = plan.trigger;
    r.tokens_before = est.estimate(chars);
    r.tokens_after = est.estimate(edit_chars_delta_after(c, edit, plan.replay, chars));
    return c.apply_compaction(std::move(edit), std::move(r));
}

bool is_context_overflow(
    int http_status, std::string_view code, std::string_view message, std::int64_t* tokens
) {
    if (http_status != 0 && http_status != 400 && http_status != 413 && http_status != 422) {
        return false;
    }
    bool said = code == "context_length_exceeded" || code == "string_above_max_length";
    const std::string lower = detail::ascii_lower(message);
    static constexpr std::string_view phrases[] = {
        "context length",
        "context_length",
        "context window",
        "maximum context",
        "reduce the length of the messages",
        "prompt is too long",
        "input is too long",
        "too many input tokens",
    };
    for (std::string_view p : phrases) {
        said = said || lower.find(p) != std::string::npos;
    }
    if (said && tokens) {
        // The request's length is the largest number the message quotes (it exceeded the
        // limit, the other number it quotes).
        std::int64_t best = 0;
        for (std::size_t i = 0; i < message.size();) {
            if (!std::isdigit(static_cast<unsigned char>(message[i]))) {
                ++i;
                continue;
            }
            std::size_t j = i;
            std::string digits;
            while (j < message.size() &&
                   (std::isdigit(static_cast<unsigned char>(message[j])) || message[j] == ',')) {
                if (message[j] != ',') {
                    digits += message[j];
                }
                ++j;
            }
            std::int64_t v = 0;
            if (auto [p, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), v);
                ec == std::errc{}) {
                best = std::max(best, v);
            }
            i = j;
        }
        *tokens = best >= 256 ? best : 0;
    }
    return said;
}

} // namespace wafer
