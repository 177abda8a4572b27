#include <wafer/api/message.hpp>

#include <nlohmann/json.hpp>

#include "detail/json_util.hpp"

namespace wafer::api {

using detail::member;

std::string_view to_string(role r) noexcept {
    switch (r) {
    case role::system:
        return "system";
    case role::developer:
        return "developer";
    case role::user:
        return "user";
    case role::assistant:
        return "assistant";
    case role::tool:
        return "tool";
    }
    return "user";
}

std::optional<role> role_from_string(std::string_view s) noexcept {
    if (s == "system")
        return role::system;
    if (s == "developer")
        return role::developer;
    if (s == "user")
        return role::user;
    if (s == "assistant")
        return role::assistant;
    if (s == "tool")
        return role::tool;
    return std::nullopt;
}

message message::system(std::string text) {
    return {.role = role::system, .content = std::move(text)};
}
message message::user(std::string text) {
    return {.role = role::user, .content = std::move(text)};
}
message message::assistant(std::string text) {
    return {.role = role::assistant, .content = std::move(text)};
}
message message::tool_result(std::string call_id, std::string text) {
    return {.role = role::tool, .content = std::move(text), .tool_call_id = std::move(call_id)};
}

std::string message::text() const {
    if (parts.empty()) {
        return content.value_or(std::string{});
    }
    std::string out;
    for (const auto& p : parts) {
        if (p.type == content_part::kind::text) {
            out += p.text;
        }
    }
    return out;
}

void to_json(nlohmann::json& j, const tool_call& c) {
    j = {
        {"id", c.id},
        {"type", "function"},
        {"function", {{"name", c.name}, {"arguments", c.arguments}}}};
}

void from_json(const nlohmann::json& j, tool_call& c) {
    detail::read_value(j, "id", c.id);
    if (auto* f = member(j, "function")) {
        detail::read_value(*f, "name", c.name);
        detail::read_value(*f, "arguments", c.arguments);
    }
}

void to_json(nlohmann::json& j, const content_part& p) {
    if (p.type == content_part::kind::text) {
        j = {{"type", "text"}, {"text", p.text}};
        return;
    }
    nlohmann::json image = {{"url", p.url}};
    detail::write_optional(image, "detail", p.detail);
    j = {{"type", "image_url"}, {"image_url", std::move(image)}};
}

void from_json(const nlohmann::json& j, content_part& p) {
    if (!j.is_object()) {
        throw nlohmann::json::type_error::create(
            302, std::string("a content part must be an object, not ") + j.type_name(), &j
        );
    }
    std::string type = "text";
    detail::read_value(j, "type", type);
    if (type == "image_url") {
        p.type = content_part::kind::image_url;
        if (auto* img = member(j, "image_url")) {
            if (img->is_string()) {
                p.url = img->get<std::string>();
            } else {
                detail::read_value(*img, "url", p.url);
                detail::read_optional(*img, "detail", p.detail);
            }
        }
    } else if (type == "refusal") { // an assistant's refusal part: its text is the refusal
        p.type = content_part::kind::text;
        detail::read_value(j, "refusal", p.text);
    } else {
        p.type = content_part::kind::text;
        detail::read_value(j, "text", p.text);
    }
}

void to_json(nlohmann::json& j, const message& m) {
    j = nlohmann::json::object();
    j["role"] = to_string(m.role);
    if (!m.parts.empty()) {
        j["content"] = m.parts;
    } else if (m.content) {
        j["content"] = *m.content;
    }
    detail::write_optional(j, "reasoning", m.reasoning);
    if (!m.tool_calls.empty()) {
        j["tool_calls"] = m.tool_calls;
    }
    detail::write_optional(j, "tool_call_id", m.tool_call_id);
    detail::write_optional(j, "name", m.name);
}

void from_json(const nlohmann::json& j, message& m) {
    m = message{};
    if (auto* r = member(j, "role"); r && r->is_string()) {
        m.role = role_from_string(r->get_ref<const std::string&>()).value_or(role::user);
    }
    if (auto* c = member(j, "content")) {
        // The spec allows a string or an array of parts; a number or an object is a broken
        // reply, not an empty answer.
        if (c->is_array()) {
            m.parts = c->get<std::vector<content_part>>();
        } else if (c->is_string()) {
            m.content = c->get<std::string>();
        } else {
            throw nlohmann::json::type_error::create(
                302,
                std::string("message content must be a string or an array of content parts, "
                            "not "
                ) + c->type_name(),
                c
            );
        }
    }
    if (auto* r = member(j, "reasoning")) {
        m.reasoning = detail::text_of(*r);
    }
    if (auto* calls = member(j, "tool_calls"); calls && calls->is_array()) {
        m.tool_calls = calls->get<std::vector<tool_call>>();
    }
    detail::read_optional(j, "tool_call_id", m.tool_call_id);
    detail::read_optional(j, "name", m.name);
}

} // namespace wafer::api
