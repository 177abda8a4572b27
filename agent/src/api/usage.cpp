#include <wafer/api/usage.hpp>

#include <nlohmann/json.hpp>

#include <algorithm>

#include "detail/json_util.hpp"

namespace wafer::api {

namespace {

// Counts are in [0, max_token_count] when they come from the wire, but a caller may build a
// usage by hand: clamp both sides so the sum can never overflow.
void add_count(std::int64_t& a, std::int64_t b) noexcept {
    a = std::clamp<std::int64_t>(a, 0, max_token_count) +
        std::clamp<std::int64_t>(b, 0, max_token_count);
    a = std::min(a, max_token_count);
}

} // namespace

usage& usage::operator+=(const usage& o) noexcept {
    add_count(prompt_tokens, o.prompt_tokens);
    add_count(completion_tokens, o.completion_tokens);
    add_count(total_tokens, o.total_tokens);
    add_count(cached_tokens, o.cached_tokens);
    add_count(reasoning_tokens, o.reasoning_tokens);
    add_count(accepted_prediction_tokens, o.accepted_prediction_tokens);
    add_count(rejected_prediction_tokens, o.rejected_prediction_tokens);
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
    constexpr auto max = max_token_count;
    detail::read_count(j, "prompt_tokens", u.prompt_tokens, max);
    detail::read_count(j, "completion_tokens", u.completion_tokens, max);
    detail::read_count(j, "total_tokens", u.total_tokens, max);
    if (auto* p = detail::member(j, "prompt_tokens_details")) {
        detail::read_count(*p, "cached_tokens", u.cached_tokens, max);
    }
    if (auto* c = detail::member(j, "completion_tokens_details")) {
        detail::read_count(*c, "reasoning_tokens", u.reasoning_tokens, max);
        detail::read_count(*c, "accepted_prediction_tokens", u.accepted_prediction_tokens, max);
        detail::read_count(*c, "rejected_prediction_tokens", u.rejected_prediction_tokens, max);
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
