#include <wafer/api/usage.hpp>

#include <nlohmann/json.hpp>

#include <algorithm>

#include "detail/json_util.hpp"

namespace wafer::api {

usage& usage::operator+=(const usage& o) noexcept {
    prompt_tokens += o.prompt_tokens;
    completion_tokens += o.completion_tokens;
    total_tokens += o.total_tokens;
    cached_tokens += o.cached_tokens;
    reasoning_tokens += o.reasoning_tokens;
    accepted_prediction_tokens += o.accepted_prediction_tokens;
    rejected_prediction_tokens += o.rejected_prediction_tokens;
    return *this;
}

time_info& time_info::operator+=(const time_info& o) noexcept {
    queue_time += o.queue_time;
    prompt_time += o.prompt_time;
    completion_time += o.completion_time;
    total_time += o.total_time;
    created = std::max(created, o.created);
    return *this;
}

void to_json(nlohmann::json& j, const usage& u) {
    j = {
        {"prompt_tokens", u.prompt_tokens},
        {"completion_tokens", u.completion_tokens},
        {"total_tokens", u.total_tokens},
        {"prompt_tokens_details", {{"cached_tokens", u.cached_tokens}}},
        {"completion_tokens_details",
         {{"accepted_prediction_tokens", u.accepted_prediction_tokens},
          {"rejected_prediction_tokens", u.rejected_prediction_tokens},
          {"reasoning_tokens", u.reasoning_tokens}}}};
}

void from_json(const nlohmann::json& j, usage& u) {
    u = usage{};
    detail::read_value(j, "prompt_tokens", u.prompt_tokens);
    detail::read_value(j, "completion_tokens", u.completion_tokens);
    detail::read_value(j, "total_tokens", u.total_tokens);
    if (auto* p = detail::member(j, "prompt_tokens_details")) {
        detail::read_value(*p, "cached_tokens", u.cached_tokens);
    }
    if (auto* c = detail::member(j, "completion_tokens_details")) {
        detail::read_value(*c, "reasoning_tokens", u.reasoning_tokens);
        detail::read_value(*c, "accepted_prediction_tokens", u.accepted_prediction_tokens);
        detail::read_value(*c, "rejected_prediction_tokens", u.rejected_prediction_tokens);
    }
}

void to_json(nlohmann::json& j, const time_info& t) {
    j = {
        {"queue_time", t.queue_time},
        {"prompt_time", t.prompt_time},
        {"completion_time", t.completion_time},
        {"total_time", t.total_time},
        {"created", t.created}};
}

void from_json(const nlohmann::json& j, time_info& t) {
    t = time_info{};
    detail::read_value(j, "queue_time", t.queue_time);
    detail::read_value(j, "prompt_time", t.prompt_time);
    detail::read_value(j, "completion_time", t.completion_time);
    detail::read_value(j, "total_time", t.total_time);
    detail::read_value(j, "created", t.created);
}

} // namespace wafer::api
