// Context compaction: strategies that shrink a conversation's request when it nears the model's
// window, composed into tiers that run cheapest first. Each is a sans-io function from the
// history to an edit; applying an edit keeps a record with the original messages, so nothing is
// lost (conversation::compactions, conversation::full_messages). README.md "Context management".
#pragma once

#include <wafer/api/chat_request.hpp>
#include <wafer/context_window.hpp>
#include <wafer/conversation.hpp>
#include <wafer/model.hpp>

#include <cstddef>
#include <cstdint>
#include <functional>
#include <limits>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace wafer {

/// Context management of an agent (agent_config::context).
struct context_config {
    /// Compact at all. Off: requests grow until the server refuses them.
    bool enabled = true;
    /// The window in tokens; unset: the model's (model_info::context_window), else
    /// known_context_window(model id). Unknown: only an overflow error triggers a compaction.
    std::optional<std::int64_t> window;
    /// Compact before a request whose estimate passes this fraction of the budget (window less
    /// max_completion_tokens) ...
    double trigger = 0.8;
    /// ... until it is under this fraction (lower than `trigger`, so that the prefix stays
    /// byte-identical, hence cacheable, for many turns after a compaction).
    double target = 0.6;
    /// The tiers, in order; a pass stops as soon as the request is under `target`.
    std::vector<compaction_strategy> tiers = {
        compaction_strategy::clamp_tool_results,
        compaction_strategy::dedupe_reads,
        compaction_strategy::drop_reasoning,
        compaction_strategy::clear_tool_results,
        compaction_strategy::summarise,
    };
    /// clamp_tool_results: the largest result kept whole, in characters; 0: a tenth of the
    /// budget (at least 2,048 characters).
    std::size_t clamp_chars = 0;
    /// clear_tool_results, drop_reasoning and summarise keep the latest this many call/result
    /// pairs (and the messages after them) as they are: fewer when they would take more than half
    /// of the target, the latest always. clamp_tool_results clamps those only above that half.
    std::size_t keep_pairs = 4;
    /// clear_tool_results leaves results shorter than this alone.
    std::size_t clear_min_chars = 256;
    /// summarise: the model that writes summaries (null: the agent's), the prompt (empty: the
    /// built-in "compaction" template of prompts/), and the summary's length limit.
    std::shared_ptr<wafer::model> summary_model;
    std::string summary_prompt;
    std::int64_t summary_max_tokens = 4096;
    /// Set `prompt_cache_key` to the run id on every request (unless the request sets one):
    /// unset means on for Cerebras models (known_context_window knows them), off otherwise.
    std::optional<bool> prompt_cache_key;
};

/// Whether compaction must leave message `i` alone: system messages and user messages that
/// wafer did not write (the task, project instructions, follow-ups, critics' feedback).
bool is_protected(const conversation& c, std::size_t i) noexcept;

/// The index where the kept tail begins: the assistant message of the `keep_pairs`-th last tool
/// result (everything from there on is left alone), or of an earlier-ending one so that the
/// tail's messages stay within `max_chars` (the last pair is kept whatever its size); 0 when
/// there are fewer results (all is kept), size() when `keep_pairs` is 0.
std::size_t kept_tail_start(
    const conversation& c,
    std::size_t keep_pairs,
    std::size_t max_chars = std::numeric_limits<std::size_t>::max()
) noexcept;

// The strategies. Each is a pure function of the history: the same input gives the same edit.

// `tail` is where the kept tail begins (kept_tail_start).

/// Results longer than `max_chars`; from `tail` on, only those longer than `tail_max_chars`
/// (0: `max_chars`), so that what the model just read stays whole unless it alone is too big.
history_edit clamp_tool_results(
    const conversation& c,
    std::size_t max_chars,
    std::size_t tail = std::numeric_limits<std::size_t>::max(),
    std::size_t tail_max_chars = 0
);
/// `is_read_only(tool name)`: whether a call of the tool only reads (tool_options::read_only).
history_edit
dedupe_reads(const conversation& c, const std::function<bool(std::string_view)>& is_read_only);
history_edit drop_reasoning(const conversation& c, std::size_t tail);
history_edit clear_tool_results(const conversation& c, std::size_t tail, std::size_t min_chars);

/// The range summarise replaces: the oldest run of unprotected messages before the kept tail
/// that starts and ends on a step boundary (no call separated from its results), at least two
/// messages long, and short enough that its transcript (summary_request) has at most
/// `max_chars` characters; nullopt when there is none.
std::optional<message_range> summary_range(
    const conversation& c,
    std::size_t tail,
    std::size_t max_chars = std::numeric_limits<std::size_t>::max()
);
/// The request that asks for the summary of `range`: `prompt` as the system message, the
/// range's messages rendered as one transcript in a user message, no tools.
api::chat_request summary_request(
    const conversation& c, message_range range, std::string_view prompt, std::int64_t max_tokens
);
/// The edit that replaces `range` with the summary (one user message wafer wrote), or an empty
/// edit when the summary is empty or not shorter than what it replaces.
history_edit summary_edit(const conversation& c, message_range range, std::string_view summary);

/// The window compaction measures against: `cfg.window`, else the model's, else
/// known_context_window(model id); 0 when none is known.
std::int64_t effective_context_window(const context_config& cfg, const model_info& model);
/// The summariser's system prompt: `cfg.summary_prompt`, else the built-in "compaction" template.
const std::string& summary_prompt(const context_config& cfg);

/// What a pass of the cheap tiers needs to know.
struct compaction_plan {
    const context_config* config = nullptr;
    replay_options replay;
    /// The estimator of the run, and the characters of the request that are not messages (tool
    /// definitions).
    const token_estimator* estimator = nullptr;
    std::size_t fixed_chars = 0;
    /// The pass stops once the estimate is at most this many tokens.
    std::int64_t target_tokens = 0;
    /// For clamp_tool_results when config->clamp_chars is 0.
    std::int64_t budget_tokens = 0;
    std::size_t turn = 0;
    compaction_trigger trigger = compaction_trigger::threshold;
    /// For dedupe_reads (null: no tool counts as read-only).
    std::function<bool(std::string_view)> is_read_only;
    /// After a failed summary: clear all but the latest pair and clamp to a quarter.
    bool aggressive = false;
};

/// What a pass did.
struct compaction_pass {
    std::vector<compaction_record> records;
    std::int64_t tokens_before = 0;
    std::int64_t tokens_after = 0;
    /// Whether the request is now under the target.
    bool fits = false;
    /// The pass reached summarise and the request still does not fit: the summariser should
    /// run on this range.
    std::optional<message_range> summary_due;
};

/// The estimated prompt tokens of the request `c` makes under `plan`.
std::int64_t estimate_tokens(const conversation& c, const compaction_plan& plan);

/// Runs the tiers of `plan.config` in order on `c` until the request fits. Each step that
/// changed something is applied (conversation::apply_compaction) and recorded. At summarise the
/// pass stops with `summary_due` set when there is a range to summarise (the caller asks the
/// model, applies summary_edit, and runs an aggressive pass if that fails); an aggressive pass
/// skips summarise and runs the tiers after it.
compaction_pass compact(conversation& c, const compaction_plan& plan);

/// What agent::async_compact did.
struct compaction_result {
    /// The compacted conversation, with its new records.
    wafer::conversation conversation;
    /// The steps made (also the last records of conversation.compactions()).
    std::vector<compaction_record> records;
    std::int64_t tokens_before = 0;
    std::int64_t tokens_after = 0;
    /// The summary failed (the cheap tiers ran again, harder): why.
    std::optional<std::string> summary_error;
};

/// Applies the model's summary of `range` (summary_edit) with a record whose token figures come
/// from `plan`; nullopt, changing nothing, when the summary is not usable (empty, not shorter).
std::optional<compaction_record> apply_summary(
    conversation& c, message_range range, std::string_view summary, const compaction_plan& plan
);

/// Whether a failed request failed because it was longer than the model's context: HTTP 400,
/// 413 or 422 (or a provider error) whose code is `context_length_exceeded`, or whose message
/// says so in the words Cerebras, OpenAI and vLLM-style servers use. `tokens`, when given,
/// receives the request's length in tokens if the message quotes it.
bool is_context_overflow(
    int http_status, std::string_view code, std::string_view message, std::int64_t* tokens = nullptr
);

} // namespace wafer
