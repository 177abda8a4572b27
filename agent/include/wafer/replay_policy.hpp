// How a conversation's stored reasoning is replayed to the model ("preserved thinking").
#pragma once

#include <wafer/model_family.hpp>

#include <optional>
#include <string_view>

namespace wafer::api {
struct chat_request;
} // namespace wafer::api

namespace wafer {

/// Which assistant messages keep their reasoning in the next request.
enum class replay_mode {
    /// Every assistant message keeps its reasoning (GLM: with `clear_thinking: false`). Keeps the
    /// model consistent across tool loops and maximises prompt-cache hits. The default.
    preserve_all,
    /// Only assistant messages after the last user message keep their reasoning (the current
    /// tool loop), as GLM's server does by default.
    current_turn,
    /// No reasoning is sent back.
    drop,
};

/// Where replayed reasoning goes in an assistant message.
enum class reasoning_carrier {
    /// Not sent at all.
    none,
    /// The assistant `reasoning` field (GLM, gpt-oss). Never `reasoning_content`.
    field,
    /// Prefixed to content as `<think>REASONING</think>` (qwen raw format); never a field.
    think_tags,
};

std::string_view to_string(replay_mode m) noexcept;
std::optional<replay_mode> replay_mode_from_string(std::string_view s) noexcept;
std::string_view to_string(reasoning_carrier c) noexcept;

/// The carrier a family uses: glm, gpt_oss -> field; qwen -> think_tags; none, unknown -> none.
reasoning_carrier default_carrier(model_family f) noexcept;

/// How build_request_messages replays reasoning. Defaults preserve everything for GLM.
struct replay_options {
    model_family family = model_family::glm;
    replay_mode mode = replay_mode::preserve_all;
    /// Overrides default_carrier(family), e.g. to send `reasoning` to an unknown
    /// OpenAI-compatible server that accepts it.
    std::optional<reasoning_carrier> carrier;

    /// The carrier in effect (the override, else the family's).
    reasoning_carrier effective_carrier() const noexcept {
        return carrier ? *carrier : default_carrier(family);
    }

    /// Options for a model id: its detected family and the given mode.
    static replay_options
    for_model(std::string_view model_id, replay_mode mode = replay_mode::preserve_all);
};

/// Request parameters a family needs for the chosen replay, as a value (sans-io).
struct replay_params {
    /// GLM: false when preserving all reasoning, true for current_turn; unset otherwise.
    std::optional<bool> clear_thinking;
};

/// The parameters the request needs for `opts` (see replay_params).
replay_params required_params(const replay_options& opts) noexcept;

/// Sets the parameters of required_params on `req`, leaving fields the caller already set alone.
void apply_replay_params(api::chat_request& req, const replay_options& opts);

} // namespace wafer
