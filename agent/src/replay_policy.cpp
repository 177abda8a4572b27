#include <wafer/api/chat_request.hpp>
#include <wafer/replay_policy.hpp>

#include <array>

namespace wafer {

namespace {
constexpr std::array<std::string_view, 3> mode_names{"preserve_all", "current_turn", "drop"};
constexpr std::array<std::string_view, 3> carrier_names{"none", "field", "think_tags"};
} // namespace

std::string_view to_string(replay_mode m) noexcept {
    return mode_names[static_cast<std::size_t>(m)];
}

std::optional<replay_mode> replay_mode_from_string(std::string_view s) noexcept {
    for (std::size_t i = 0; i < mode_names.size(); ++i) {
        if (mode_names[i] == s) {
            return static_cast<replay_mode>(i);
        }
    }
    return std::nullopt;
}

std::string_view to_string(reasoning_carrier c) noexcept {
    return carrier_names[static_cast<std::size_t>(c)];
}

reasoning_carrier default_carrier(model_family f) noexcept {
    switch (f) {
    case model_family::glm:
    case model_family::gpt_oss:
        return reasoning_carrier::field;
    case model_family::qwen:
        return reasoning_carrier::think_tags;
    case model_family::none:
    case model_family::unknown:
        return reasoning_carrier::none;
    }
    return reasoning_carrier::none;
}

replay_options replay_options::for_model(std::string_view model_id, replay_mode mode) {
    replay_options o;
    o.family = detect_model_family(model_id);
    o.mode = mode;
    return o;
}

replay_params required_params(const replay_options& opts) noexcept {
    replay_params p;
    // clear_thinking is a GLM parameter; other families reject or ignore it.
    if (opts.family == model_family::glm) {
        switch (opts.mode) {
        case replay_mode::preserve_all:
            p.clear_thinking = false;
            break;
        case replay_mode::current_turn:
            p.clear_thinking = true;
            break;
        case replay_mode::drop:
            break;
        }
    }
    return p;
}

void apply_replay_params(api::chat_request& req, const replay_options& opts) {
    const replay_params p = required_params(opts);
    if (p.clear_thinking && !req.clear_thinking) {
        req.clear_thinking = p.clear_thinking;
    }
}

} // namespace wafer
