#include <wafer/api/chat_response.hpp>

#include "detail/json_util.hpp"

namespace wafer::api {

using detail::member;
using nlohmann::json;

std::string_view to_string(finish_reason f) noexcept {
    switch (f) {
    case finish_reason::none:
        return "";
    case finish_reason::stop:
        return "stop";
    case finish_reason::length:
        return "length";
    case finish_reason::content_filter:
        return "content_filter";
    case finish_reason::tool_calls:
        return "tool_calls";
    case finish_reason::other:
        return "other";
    }
    return "";
}

finish_reason finish_reason_from_string(std::string_view s) noexcept {
    if (s.empty())
        return finish_reason::none;
    if (s == "stop")
        return finish_reason::stop;
    if (s == "length")
        return finish_reason::length;
    if (s == "content_filter")
        return finish_reason::content_filter;
    if (s == "tool_calls")
        return finish_reason::tool_calls;
    return finish_reason::other;
}

const message& chat_response::first_message() const {
    static const message empty = empty_message(role::assistant);
    return choices.empty() ? empty : choices.front().message;
}

void to_json(json& j, const chat_response& r) {
    j = json::object();
    j["id"] = r.id;
    j["object"] = r.object.empty() ? "chat.completion" : r.object;
    j["created"] = r.created;
    j["model"] = r.model;
    if (!r.system_fingerprint.empty()) {
        j["system_fingerprint"] = r.system_fingerprint;
    }
    detail::write_optional(j, "service_tier", r.service_tier);
    json choices = json::array();
    for (const auto& c : r.choices) {
        json entry = {{"index", c.index}, {"message", c.message}};
        if (c.finish_reason != finish_reason::none) {
            entry["finish_reason"] = to_string(c.finish_reason);
        }
        choices.push_back(std::move(entry));
    }
    j["choices"] = std::move(choices);
    detail::write_optional(j, "usage", r.usage);
    detail::write_optional(j, "time_info", r.time_info);
}

void from_json(const json& j, chat_response& r) {
    r = chat_response{};
    detail::read_value(j, "id", r.id);
    detail::read_value(j, "object", r.object);
    detail::read_value(j, "created", r.created);
    detail::read_value(j, "model", r.model);
    detail::read_value(j, "system_fingerprint", r.system_fingerprint);
    detail::read_optional(j, "service_tier", r.service_tier);
    if (auto* cs = member(j, "choices"); cs && cs->is_array()) {
        for (const auto& c : *cs) {
            choice out;
            detail::read_value(c, "index", out.index);
            if (auto* m = member(c, "message")) {
                out.message = m->get<message>();
                out.message.role = role::assistant;
            }
            if (auto* f = member(c, "finish_reason"); f && f->is_string()) {
                out.finish_reason = finish_reason_from_string(f->get_ref<const std::string&>());
            }
            r.choices.push_back(std::move(out));
        }
    }
    detail::read_optional(j, "usage", r.usage);
    detail::read_optional(j, "time_info", r.time_info);
}

} // namespace wafer::api
