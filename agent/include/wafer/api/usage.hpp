// Token accounting and server timing of one completion (reference: cerebras-api.md §3).
#pragma once

#include <nlohmann/json_fwd.hpp>

#include <cstdint>

namespace wafer::api {

/// The largest token count wafer keeps (2^53, exact in a double). Counts from a server are
/// clamped to [0, max_token_count] (fractions dropped), so summing them never overflows.
inline constexpr std::int64_t max_token_count = std::int64_t{1} << 53;

struct usage {
    std::int64_t prompt_tokens = 0;
    std::int64_t completion_tokens = 0;
    std::int64_t total_tokens = 0;
    /// prompt_tokens_details.cached_tokens
    std::int64_t cached_tokens = 0;
    /// completion_tokens_details.reasoning_tokens
    std::int64_t reasoning_tokens = 0;
    /// completion_tokens_details.accepted_prediction_tokens / rejected_prediction_tokens
    std::int64_t accepted_prediction_tokens = 0;
    std::int64_t rejected_prediction_tokens = 0;

    /// Sums every count, saturating at max_token_count.
    usage& operator+=(const usage& o) noexcept;
    friend bool operator==(const usage&, const usage&) = default;
};

/// Server-side timing in seconds; `created` is a float epoch.
struct time_info {
    double queue_time = 0;
    double prompt_time = 0;
    double completion_time = 0;
    double total_time = 0;
    double created = 0;

    /// Sums the durations; keeps the latest `created`.
    time_info& operator+=(const time_info& o) noexcept;
    friend bool operator==(const time_info&, const time_info&) = default;
};

void to_json(nlohmann::json& j, const usage& u);
void from_json(const nlohmann::json& j, usage& u);
void to_json(nlohmann::json& j, const time_info& t);
void from_json(const nlohmann::json& j, time_info& t);

} // namespace wafer::api
