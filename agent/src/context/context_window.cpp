#include <wafer/context_window.hpp>

#include <algorithm>
#include <array>
#include <cmath>
#include <utility>

namespace wafer {

namespace {

// Paid-tier windows of the Cerebras catalog (cerebras-api.md §8); free tiers may be smaller,
// which agent_config::context.window or the server's catalog corrects.
constexpr std::array<std::pair<std::string_view, std::int64_t>, 6> known_windows{{
    {"gpt-oss-120b", 131'072},
    {"zai-glm-4.7", 131'072},
    {"qwen-3-235b-a22b-instruct-2507", 131'072},
    {"qwen-3-32b", 131'072},
    {"llama-3.3-70b", 131'072},
    {"llama3.1-8b", 8'192},
}};

// Role, separators and the chat template's markers: a few tokens a message.
constexpr std::size_t message_overhead_chars = 16;

constexpr double min_ratio = 1.0 / 8.0;
constexpr double max_ratio = 1.0;

bool replays_reasoning(const replay_options& opts) noexcept {
    return opts.mode != replay_mode::drop && opts.effective_carrier() != reasoning_carrier::none;
}

} // namespace

std::optional<std::int64_t> known_context_window(std::string_view model_id) noexcept {
    for (const auto& [id, window] : known_windows) {
        if (id == model_id) {
            return window;
        }
    }
    return std::nullopt;
}

std::size_t request_chars(const api::message& m, const replay_options& opts) noexcept {
    std::size_t n = message_overhead_chars;
    if (!m.parts.empty()) {
        for (const auto& p : m.parts) {
            n += p.text.size() + p.url.size();
        }
    } else if (m.content) {
        n += m.content->size();
    }
    if (m.reasoning && replays_reasoning(opts)) {
        n += m.reasoning->size();
    }
    for (const auto& c : m.tool_calls) {
        n += message_overhead_chars + c.id.size() + c.name.size() + c.arguments.size();
    }
    if (m.tool_call_id) {
        n += m.tool_call_id->size();
    }
    return n;
}

std::size_t request_chars(std::span<const api::message> ms, const replay_options& opts) noexcept {
    std::size_t n = 0;
    for (const auto& m : ms) {
        n += request_chars(m, opts);
    }
    return n;
}

void token_estimator::on_reported(std::int64_t prompt_tokens, std::size_t chars) noexcept {
    if (prompt_tokens <= 0 || chars == 0) {
        return;
    }
    ratio_ = std::clamp(
        static_cast<double>(prompt_tokens) / static_cast<double>(chars), min_ratio, max_ratio
    );
    anchored_ = true;
    anchor_tokens_ = prompt_tokens;
    anchor_chars_ = chars;
}

void token_estimator::on_overflow(std::int64_t tokens, std::size_t chars) noexcept {
    if (tokens <= 0 || chars == 0) {
        return;
    }
    const double seen = static_cast<double>(tokens) / static_cast<double>(chars);
    ratio_ = std::clamp(std::max(ratio_, seen), min_ratio, max_ratio);
    anchored_ = false;
}

std::int64_t token_estimator::estimate(std::size_t chars) const noexcept {
    const auto scaled = [this](double c) {
        return static_cast<std::int64_t>(std::ceil(c * ratio_));
    };
    if (!anchored_) {
        return scaled(static_cast<double>(chars));
    }
    if (chars >= anchor_chars_) {
        return anchor_tokens_ + scaled(static_cast<double>(chars - anchor_chars_));
    }
    return std::max<std::int64_t>(
        0, anchor_tokens_ - scaled(static_cast<double>(anchor_chars_ - chars))
    );
}

} // namespace wafer
