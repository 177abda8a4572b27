// The non-streaming Chat Completions response (reference: cerebras-api.md §3).
#pragma once

#include <wafer/api/message.hpp>
#include <wafer/api/usage.hpp>

#include <nlohmann/json_fwd.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace wafer::api {

enum class finish_reason { none, stop, length, content_filter, tool_calls, other };

std::string_view to_string(finish_reason f) noexcept;
/// "stop" → stop, …; an unknown non-empty string → other; empty → none.
finish_reason finish_reason_from_string(std::string_view s) noexcept;

struct choice {
    int index = 0;
    api::message message = empty_message(role::assistant);
    api::finish_reason finish_reason = finish_reason::none;

    friend bool operator==(const choice&, const choice&) = default;
};

struct chat_response {
    std::string id;
    std::string object;
    std::int64_t created = 0;
    std::string model;
    std::string system_fingerprint;
    std::optional<std::string> service_tier;
    std::vector<api::choice> choices;
    std::optional<api::usage> usage;
    std::optional<api::time_info> time_info;

    /// The first choice's message (an empty assistant message if there is no choice).
    const api::message& first_message() const;

    friend bool operator==(const chat_response&, const chat_response&) = default;
};

void to_json(nlohmann::json& j, const chat_response& r);
/// Tolerant: absent and null fields are accepted, unknown fields ignored.
void from_json(const nlohmann::json& j, chat_response& r);

} // namespace wafer::api
