#include <wafer/api/retry_policy.hpp>

#include <algorithm>
#include <array>
#include <charconv>
#include <cmath>
#include <cstdint>

#include "detail/header_value.hpp"

namespace wafer::api {
namespace {

bool iequals(std::string_view a, std::string_view b) noexcept {
    if (a.size() != b.size()) {
        return false;
    }
    for (std::size_t i = 0; i < a.size(); ++i) {
        auto lower = [](char c) {
            return (c >= 'A' && c <= 'Z') ? static_cast<char>(c + 32) : c;
        };
        if (lower(a[i]) != lower(b[i])) {
            return false;
        }
    }
    return true;
}

// A finite float, the whole (trimmed) string; Python's float() accepts the same for our purposes.
std::optional<double> parse_float(std::string_view s) noexcept {
    s = detail::trim_ows(s);
    if (s.empty()) {
        return std::nullopt;
    }
    if (s.front() == '+') {
        s.remove_prefix(1);
    }
    double v = 0;
    auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    if (ec != std::errc{} || p != s.data() + s.size() || !std::isfinite(v)) {
        return std::nullopt;
    }
    return v;
}

std::optional<int> parse_uint(std::string_view s) noexcept {
    int v = 0;
    auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    if (ec != std::errc{} || p != s.data() + s.size() || v < 0) {
        return std::nullopt;
    }
    return v;
}

// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
std::int64_t days_from_civil(std::int64_t y, unsigned m, unsigned d) noexcept {
    y -= m <= 2 ? 1 : 0;
    const std::int64_t era = (y >= 0 ? y : y - 399) / 400;
    const auto yoe = static_cast<unsigned>(y - era * 400);
    const unsigned doy = (153 * (m + (m > 2 ? static_cast<unsigned>(-3) : 9)) + 2) / 5 + d - 1;
    const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + static_cast<std::int64_t>(doe) - 719468;
}

// Delays are kept within [0, max_delay]: a server's 1e300 must not overflow a conversion (undefined
// behaviour for a double), and anything that long means "not worth waiting for" anyway (the
// retry loop ignores server delays above retry_config::max_server_delay).
constexpr std::chrono::milliseconds max_delay = std::chrono::hours(24 * 365);

std::chrono::milliseconds clamp_ms(double ms) noexcept {
    if (!(ms > 0)) {
        return std::chrono::milliseconds(0); // also NaN
    }
    if (ms >= static_cast<double>(max_delay.count())) {
        return max_delay;
    }
    return std::chrono::milliseconds(std::llround(ms));
}

std::chrono::milliseconds to_ms(double seconds) noexcept {
    return clamp_ms(seconds * 1000.0);
}

} // namespace

bool is_retryable(const attempt_outcome& o) noexcept {
    if (o.transport_error) {
        return true;
    }
    if (o.should_retry) {
        // The SDKs compare the exact strings "true" / "false"; anything else falls through.
        if (*o.should_retry == "true") {
            return true;
        }
        if (*o.should_retry == "false") {
            return false;
        }
    }
    return o.status == 408 || o.status == 409 || o.status == 429 || o.status >= 500;
}

std::optional<std::chrono::system_clock::time_point> parse_http_date(std::string_view s) noexcept {
    // Tokenise on spaces, commas and dashes; this covers IMF-fixdate ("Sun, 06 Nov 1994 08:49:37
    // GMT"), RFC 850 ("Sunday, 06-Nov-94 08:49:37 GMT") and asctime ("Sun Nov  6 08:49:37 1994").
    static constexpr std::array<std::string_view, 12> months{
        "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"};
    int month = -1;
    std::optional<int> day;
    std::optional<int> year;
    int year_digits = 0;
    std::optional<int> hh, mm, ss;
    std::size_t i = 0;
    while (i < s.size()) {
        while (i < s.size() && (s[i] == ' ' || s[i] == ',' || s[i] == '-' || s[i] == '\t')) {
            ++i;
        }
        std::size_t j = i;
        while (j < s.size() && s[j] != ' ' && s[j] != ',' && s[j] != '-' && s[j] != '\t') {
            ++j;
        }
        std::string_view tok = s.substr(i, j - i);
        i = j;
        if (tok.empty()) {
            continue;
        }
        if (tok.find(':') != std::string_view::npos) {
            if (tok.size() != 8 || tok[2] != ':' || tok[5] != ':') {
                return std::nullopt;
            }
            hh = parse_uint(tok.substr(0, 2));
            mm = parse_uint(tok.substr(3, 2));
            ss = parse_uint(tok.substr(6, 2));
            if (!hh || !mm || !ss || *hh > 23 || *mm > 59 || *ss > 60) {
                return std::nullopt;
            }
        } else if (tok[0] >= '0' && tok[0] <= '9') {
            auto v = parse_uint(tok);
            if (!v) {
                return std::nullopt;
            }
            if (!day && tok.size() <= 2) {
                day = *v;
            } else if (!year) {
                year = *v;
                year_digits = static_cast<int>(tok.size());
            } else {
                return std::nullopt;
            }
        } else if (tok.size() >= 3) {
            for (std::size_t m = 0; m < months.size(); ++m) {
                if (iequals(tok.substr(0, 3), months[m]) && (tok.size() == 3)) {
                    month = static_cast<int>(m);
                }
            }
            // Day names and the zone ("GMT"/"UTC") are accepted and ignored.
        }
    }
    if (month < 0 || !day || !year || !hh || *day < 1 || *day > 31) {
        return std::nullopt;
    }
    int y = *year;
    if (year_digits == 2) {
        y += y < 70 ? 2000 : 1900; // RFC 850 two-digit years, as Python's email.utils does
    }
    // system_clock counts nanoseconds in 64 bits: about 1678 to 2262. A date outside what a
    // server could mean (year 0215, 9999) is rejected rather than overflowing.
    if (y < 1970 || y > 2200) {
        return std::nullopt;
    }
    const auto days =
        days_from_civil(y, static_cast<unsigned>(month + 1), static_cast<unsigned>(*day));
    const std::int64_t secs = days * 86400 + *hh * 3600 + *mm * 60 + *ss;
    return std::chrono::system_clock::time_point(std::chrono::seconds(secs));
}

std::optional<std::chrono::milliseconds> server_retry_delay(
    std::optional<std::string_view> retry_after_ms,
    std::optional<std::string_view> retry_after,
    std::chrono::system_clock::time_point now
) noexcept {
    if (retry_after_ms) {
        if (auto v = parse_float(*retry_after_ms)) {
            return clamp_ms(*v);
        }
    }
    if (retry_after) {
        if (auto v = parse_float(*retry_after)) {
            return to_ms(*v);
        }
        if (auto when = parse_http_date(detail::trim_ows(*retry_after))) {
            // Both sides are within a few centuries of 1970: the difference fits.
            const auto d = std::chrono::duration_cast<std::chrono::milliseconds>(*when - now);
            return std::clamp(d, std::chrono::milliseconds(0), max_delay);
        }
    }
    return std::nullopt;
}

std::chrono::milliseconds retry_delay(
    const retry_config& cfg,
    int retries_taken,
    const attempt_outcome& o,
    double u,
    std::chrono::system_clock::time_point now
) noexcept {
    if (!o.transport_error) {
        auto server = server_retry_delay(o.retry_after_ms, o.retry_after, now);
        if (server && server->count() > 0 && *server <= cfg.max_server_delay) {
            return *server;
        }
    }
    const int k = std::clamp(retries_taken, 0, 1000);
    const double base = std::min(cfg.initial_delay_s * std::pow(2.0, k), cfg.max_delay_s);
    const double jitter = 1.0 - 0.25 * std::clamp(u, 0.0, 1.0);
    return to_ms(std::max(base * jitter, 0.0));
}

retry_decision decide_retry(
    const retry_config& cfg,
    int retries_taken,
    const attempt_outcome& o,
    double u,
    std::chrono::system_clock::time_point now
) noexcept {
    if (retries_taken >= cfg.max_retries || !is_retryable(o)) {
        return {};
    }
    return {true, retry_delay(cfg, retries_taken, o, u, now)};
}

} // namespace wafer::api
