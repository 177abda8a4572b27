// Chat messages as they travel on the wire (reference: cerebras-api.md §2, §3).
#pragma once

#include <nlohmann/json_fwd.hpp>

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace wafer::api {

enum class role { system, developer, user, assistant, tool };

std::string_view to_string(role r) noexcept;
/// Parses a role name; returns nullopt for an unknown one.
std::optional<role> role_from_string(std::string_view s) noexcept;

/// One function call requested by the model. `arguments` is the JSON text exactly as sent.
struct tool_call {
    std::string id;
    std::string name;
    std::string arguments;

    friend bool operator==(const tool_call&, const tool_call&) = default;
};

/// A part of array-form content: {"type":"text","text"} or {"type":"image_url","image_url":{...}}.
struct content_part {
    enum class kind { text, image_url };
    kind type = kind::text;
    std::string text;                  ///< text parts
    std::string url;                   ///< image_url parts
    std::optional<std::string> detail; ///< image_url parts ("auto", "low", "high")

    friend bool operator==(const content_part&, const content_part&) = default;
};

/// A message of any role. Unset optionals are omitted on the wire, never sent as null.
struct message {
    api::role role = api::role::user;
    /// String content. Ignored when `parts` is non-empty.
    std::optional<std::string> content;
    /// Array-form content (text and image parts).
    std::vector<content_part> parts;
    /// The model's reasoning, kept verbatim (assistant only; Cerebras `reasoning` field).
    std::optional<std::string> reasoning;
    /// Tool calls requested by the assistant.
    std::vector<tool_call> tool_calls;
    /// The call a tool message answers (tool only).
    std::optional<std::string> tool_call_id;
    /// Optional participant name.
    std::optional<std::string> name;

    static message system(std::string text);
    static message user(std::string text);
    static message assistant(std::string text);
    static message tool_result(std::string call_id, std::string text);

    /// The text content, joining text parts; empty if there is none.
    std::string text() const;

    friend bool operator==(const message&, const message&) = default;
};

/// An empty message of the given role.
inline message empty_message(role r) {
    message m;
    m.role = r;
    return m;
}

void to_json(nlohmann::json& j, const tool_call& c);
void from_json(const nlohmann::json& j, tool_call& c);
void to_json(nlohmann::json& j, const content_part& p);
void from_json(const nlohmann::json& j, content_part& p);
void to_json(nlohmann::json& j, const message& m);
/// Tolerant: absent and null fields are accepted, unknown fields ignored; text-part arrays in
/// `reasoning` are joined into one string.
void from_json(const nlohmann::json& j, message& m);

} // namespace wafer::api
