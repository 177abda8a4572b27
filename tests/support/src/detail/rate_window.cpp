#include "rate_window.hpp"

#include <algorithm>
#include <cstdio>

namespace wafer::testing::detail {

namespace {

constexpr std::int64_t advertised_requests_per_day = 14400;
constexpr std::int64_t advertised_tokens_per_minute = 1'000'000;

scripted_error quota_error(std::string message, std::string code) {
    scripted_error e;
    e.status = 429;
    e.shape = error_shape::flat;
    e.message = std::move(message);
    e.type = "too_many_requests_error";
    e.param = "quota";
    e.code = std::move(code);
    return e;
}

} // namespace

void rate_window::roll(window& w, std::chrono::milliseconds length, clock::time_point now) {
    if (!w.start) {
        w.start = now;
        return;
    }
    if (now - *w.start >= length) {
        // Windows stay aligned to the first one.
        const auto periods = (now - *w.start) / length;
        *w.start += periods * length;
        w.tokens = 0;
        w.requests = 0;
    }
}

std::optional<scripted_error> rate_window::admit(std::int64_t reserve, clock::time_point now) {
    roll(minute_, limits_.minute, now);
    roll(day_, limits_.day, now);
    std::optional<scripted_error> refusal;
    if (limits_.requests_per_day && day_.requests + 1 > *limits_.requests_per_day) {
        refusal = quota_error(
            "Requests per day limit exceeded - too many requests sent.", "request_quota_exceeded"
        );
    } else if (limits_.requests_per_minute && minute_.requests + 1 > *limits_.requests_per_minute) {
        refusal = quota_error(
            "Requests per minute limit exceeded - too many requests sent.", "request_quota_exceeded"
        );
    } else if (limits_.tokens_per_minute && minute_.tokens + reserve > *limits_.tokens_per_minute) {
        refusal = quota_error(
            "Tokens per minute limit exceeded - too many tokens processed.", "token_quota_exceeded"
        );
    }
    if (refusal) {
        ++refused_;
        return refusal;
    }
    ++minute_.requests;
    ++day_.requests;
    return std::nullopt;
}

std::string rate_window::seconds_left(
    const window& w, std::chrono::milliseconds length, clock::time_point now
) {
    const auto end = w.start ? *w.start + length : now + length;
    const double s = std::max(std::chrono::duration<double>(end - now).count(), 0.0);
    char buf[48];
    std::snprintf(buf, sizeof buf, "%.6f", s);
    return buf;
}

std::vector<std::pair<std::string, std::string>> rate_window::headers(clock::time_point now) {
    roll(minute_, limits_.minute, now);
    roll(day_, limits_.day, now);
    const std::int64_t per_day = limits_.requests_per_day.value_or(advertised_requests_per_day);
    const std::int64_t per_minute =
        limits_.tokens_per_minute.value_or(advertised_tokens_per_minute);
    std::vector<std::pair<std::string, std::string>> h{
        {"x-ratelimit-limit-requests-day", std::to_string(per_day)},
        {"x-ratelimit-limit-tokens-minute", std::to_string(per_minute)},
        {"x-ratelimit-remaining-requests-day",
         std::to_string(std::max<std::int64_t>(per_day - day_.requests, 0))},
        {"x-ratelimit-remaining-tokens-minute",
         std::to_string(std::max<std::int64_t>(per_minute - minute_.tokens, 0))},
        {"x-ratelimit-reset-requests-day", seconds_left(day_, limits_.day, now)},
        {"x-ratelimit-reset-tokens-minute", seconds_left(minute_, limits_.minute, now)},
    };
    if (limits_.requests_per_minute) {
        h.emplace_back(
            "x-ratelimit-limit-requests-minute", std::to_string(*limits_.requests_per_minute)
        );
        h.emplace_back(
            "x-ratelimit-remaining-requests-minute",
            std::to_string(
                std::max<std::int64_t>(*limits_.requests_per_minute - minute_.requests, 0)
            )
        );
        h.emplace_back(
            "x-ratelimit-reset-requests-minute", seconds_left(minute_, limits_.minute, now)
        );
    }
    return h;
}

} // namespace wafer::testing::detail
