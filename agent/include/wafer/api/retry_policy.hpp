// The official SDKs' retry rules as pure functions (reference: cerebras-api.md §7). The client
// does the sleeping; everything here is sans-io and deterministic given its inputs.
#pragma once

#include <chrono>
#include <optional>
#include <string_view>

namespace wafer::api {

/// Retry knobs. The defaults are the Python SDK's.
struct retry_config {
    /// Retries after the first attempt (2 means at most 3 attempts). 0 disables retries.
    int max_retries = 2;
    /// Backoff base in seconds: the k-th retry waits min(initial * 2^k, max) * (1 - 0.25 * U).
    double initial_delay_s = 0.5;
    double max_delay_s = 8.0;
    /// A server-advised delay (retry-after-ms / retry-after) is used only if 0 < delay <= this.
    std::chrono::milliseconds max_server_delay{60'000};
};

/// What one attempt produced, as far as the retry decision cares.
struct attempt_outcome {
    /// True if the attempt failed before a response status arrived (connect, TLS, timeout, reset).
    bool transport_error = false;
    /// The HTTP status when a response arrived.
    int status = 0;
    /// Raw header values, absent when the header was not sent.
    std::optional<std::string_view> should_retry;   ///< x-should-retry
    std::optional<std::string_view> retry_after_ms; ///< retry-after-ms (float milliseconds)
    std::optional<std::string_view> retry_after;    ///< retry-after (float seconds or HTTP-date)
};

/// Whether the outcome is retryable at all (ignores the retry budget):
/// transport errors; `x-should-retry: true` forces, `false` vetoes; else 408, 409, 429 and >= 500.
bool is_retryable(const attempt_outcome& o) noexcept;

/// Parses an HTTP-date (IMF-fixdate, RFC 850 or asctime). Returns nullopt if malformed or if the
/// year is outside 1970..2200 (a system_clock time_point cannot hold year 0215 or 9999).
std::optional<std::chrono::system_clock::time_point> parse_http_date(std::string_view s) noexcept;

/// The server-advised delay: retry-after-ms (float ms) first, then retry-after as float seconds,
/// then as an HTTP-date relative to `now`. Returns nullopt if neither header parses. The result
/// is clamped to [0, 365 days] (a date in the past or a negative value gives 0; NaN, infinities
/// and 1e300 never reach an integer conversion); callers apply their own bounds.
std::optional<std::chrono::milliseconds> server_retry_delay(
    std::optional<std::string_view> retry_after_ms,
    std::optional<std::string_view> retry_after,
    std::chrono::system_clock::time_point now
) noexcept;

/// The delay before the next retry, `retries_taken` retries having been made already (0 before the
/// first retry). `u` is a uniform draw from [0, 1). The server delay wins when
/// 0 < delay <= cfg.max_server_delay; otherwise min(initial * 2^k, max) * (1 - 0.25 * u).
std::chrono::milliseconds retry_delay(
    const retry_config& cfg,
    int retries_taken,
    const attempt_outcome& o,
    double u,
    std::chrono::system_clock::time_point now
) noexcept;

/// The decision after an attempt: retry (and after how long) or give up.
struct retry_decision {
    bool retry = false;
    std::chrono::milliseconds delay{0};
};

/// Combines is_retryable, the budget (retries_taken < cfg.max_retries) and retry_delay.
retry_decision decide_retry(
    const retry_config& cfg,
    int retries_taken,
    const attempt_outcome& o,
    double u,
    std::chrono::system_clock::time_point now
) noexcept;

} // namespace wafer::api
