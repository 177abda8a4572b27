// How big a request is against the model's context window: the known windows, and the prompt
// size estimated from what the provider reported plus what was added since. Sans-io.
#pragma once

#include <wafer/api/message.hpp>
#include <wafer/replay_policy.hpp>

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string_view>

namespace wafer {

/// The context window of a Cerebras model in tokens, from the published catalog
/// (cerebras-api.md §8: gpt-oss-120b and zai-glm-4.7 131,072, ...); nullopt for a model wafer
/// does not know. The server's own figure (`GET /public/v1/models`, `limits.max_context_length`)
/// and agent_config::context.window take precedence.
std::optional<std::int64_t> known_context_window(std::string_view model_id) noexcept;

/// The characters a message costs in a request: its text, the reasoning when `opts` may replay
/// it (any mode but drop, with a carrier; current_turn is counted as all: an over-estimate),
/// tool call names, arguments and ids, plus a small per-message overhead (role and framing).
/// Sizes only: nothing is copied.
std::size_t request_chars(const api::message& m, const replay_options& opts) noexcept;
/// The same, summed over a history.
std::size_t request_chars(std::span<const api::message> ms, const replay_options& opts) noexcept;

/// The prompt size of the next request, calibrated per run.
///
/// Before any report it assumes `default_tokens_per_char` (an over-estimate for English and
/// code). Each reply's `prompt_tokens` for a request of C characters sets the ratio to
/// prompt_tokens / C (clamped to [1/8, 1]), and the estimate of a request of C2 characters is
/// then prompt_tokens + (C2 - C) * ratio: exact for the part already sent, estimated for what
/// was added since (a reply, tool results). After a compaction the history is no longer the one
/// reported: the estimate is C2 * ratio until the next report.
///
/// Thread safety: distinct objects: safe. Shared objects: unsafe.
class token_estimator {
public:
    static constexpr double default_tokens_per_char = 0.3;

    /// A request of `chars` characters was answered with `prompt_tokens` (0: not reported).
    void on_reported(std::int64_t prompt_tokens, std::size_t chars) noexcept;
    /// The history changed other than by appending (a compaction).
    void on_rewritten() noexcept { anchored_ = false; }
    /// The server said a request of `chars` characters had `tokens` tokens (a context-length
    /// error quoting it): the ratio is raised to match if it was lower.
    void on_overflow(std::int64_t tokens, std::size_t chars) noexcept;

    /// The estimated prompt tokens of a request of `chars` characters.
    std::int64_t estimate(std::size_t chars) const noexcept;
    /// Whether a provider report anchors the estimate.
    bool anchored() const noexcept { return anchored_; }
    double tokens_per_char() const noexcept { return ratio_; }

private:
    double ratio_ = default_tokens_per_char;
    bool anchored_ = false;
    std::int64_t anchor_tokens_ = 0;
    std::size_t anchor_chars_ = 0;
};

/// What a request uses of the context window.
struct context_usage {
    /// Estimated prompt tokens of the request (see token_estimator).
    std::int64_t prompt_tokens = 0;
    /// The model's window (0: unknown).
    std::int64_t window = 0;
    /// Held back for the reply: the request's max_completion_tokens (0 when unset).
    std::int64_t reserved = 0;

    /// What the prompt may use: window - reserved (0: unknown).
    std::int64_t budget() const noexcept { return window > reserved ? window - reserved : 0; }
    /// prompt_tokens / budget(), 0 when the window is unknown.
    double fraction() const noexcept {
        return budget() > 0 ? static_cast<double>(prompt_tokens) / static_cast<double>(budget())
                            : 0.0;
    }
    friend bool operator==(const context_usage&, const context_usage&) = default;
};

} // namespace wafer
