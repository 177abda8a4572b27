// The official SDKs' retry rules (cerebras-api.md §7), sans-io.
#include <wafer/api/retry_policy.hpp>

#include <doctest/doctest.h>

#include <chrono>

using namespace std::chrono_literals;
using wafer::api::attempt_outcome;
using wafer::api::decide_retry;
using wafer::api::retry_config;
using wafer::api::retry_delay;

namespace {

// Thu, 01 Jan 2026 00:00:00 GMT
const auto t0 = std::chrono::system_clock::time_point(std::chrono::seconds(1767225600));

attempt_outcome status(int s) {
    attempt_outcome o;
    o.status = s;
    return o;
}

} // namespace

TEST_SUITE("unit/retry_policy") {
    TEST_CASE("retryable statuses are 408, 409, 429 and >= 500; others are not") {
        for (int s : {408, 409, 429, 500, 502, 503, 504, 599}) {
            CHECK_MESSAGE(wafer::api::is_retryable(status(s)), s);
        }
        for (int s : {400, 401, 403, 404, 413, 422, 402}) {
            CHECK_MESSAGE(!wafer::api::is_retryable(status(s)), s);
        }
        attempt_outcome transport;
        transport.transport_error = true;
        CHECK(wafer::api::is_retryable(transport));
    }

    TEST_CASE("x-should-retry true forces and false vetoes") {
        auto forced = status(400);
        forced.should_retry = "true";
        CHECK(wafer::api::is_retryable(forced));
        auto vetoed = status(503);
        vetoed.should_retry = "false";
        CHECK(!wafer::api::is_retryable(vetoed));
        auto other = status(503);
        other.should_retry = "maybe"; // neither: the status decides
        CHECK(wafer::api::is_retryable(other));
    }

    TEST_CASE("budget: max_retries retries, then give up; 0 disables") {
        retry_config cfg;
        CHECK(decide_retry(cfg, 0, status(500), 0.0, t0).retry);
        CHECK(decide_retry(cfg, 1, status(500), 0.0, t0).retry);
        CHECK(!decide_retry(cfg, 2, status(500), 0.0, t0).retry);
        cfg.max_retries = 0;
        CHECK(!decide_retry(cfg, 0, status(500), 0.0, t0).retry);
        CHECK(!decide_retry(retry_config{}, 0, status(400), 0.0, t0).retry);
    }

    TEST_CASE("backoff is min(0.5 * 2^k, 8) * (1 - 0.25 * u)") {
        retry_config cfg;
        const auto o = status(500);
        CHECK(retry_delay(cfg, 0, o, 0.0, t0) == 500ms);
        CHECK(retry_delay(cfg, 1, o, 0.0, t0) == 1000ms);
        CHECK(retry_delay(cfg, 2, o, 0.0, t0) == 2000ms);
        CHECK(retry_delay(cfg, 3, o, 0.0, t0) == 4000ms);
        CHECK(retry_delay(cfg, 4, o, 0.0, t0) == 8000ms);
        CHECK(retry_delay(cfg, 10, o, 0.0, t0) == 8000ms);
        CHECK(retry_delay(cfg, 0, o, 0.5, t0) == 438ms); // 0.5 * 0.875 = 0.4375 s
        CHECK(retry_delay(cfg, 1, o, 0.5, t0) == 875ms);
        CHECK(retry_delay(cfg, 0, o, 0.999, t0) == 375ms);
        CHECK(retry_delay(cfg, 5, o, 1.0, t0) == 6000ms);
    }

    TEST_CASE("retry-after-ms wins over retry-after, both as floats") {
        retry_config cfg;
        auto o = status(429);
        o.retry_after_ms = "1500.4";
        o.retry_after = "7";
        CHECK(retry_delay(cfg, 0, o, 0.3, t0) == 1500ms);
        o.retry_after_ms.reset();
        CHECK(retry_delay(cfg, 0, o, 0.3, t0) == 7000ms);
        o.retry_after = "0.25";
        CHECK(retry_delay(cfg, 1, o, 0.3, t0) == 250ms);
        o.retry_after_ms = "garbage"; // unparsable: fall through to retry-after
        CHECK(retry_delay(cfg, 1, o, 0.3, t0) == 250ms);
    }

    TEST_CASE("server delay used only when 0 < delay <= 60 s, else backoff") {
        retry_config cfg;
        auto o = status(429);
        o.retry_after = "60";
        CHECK(retry_delay(cfg, 0, o, 0.0, t0) == 60000ms);
        o.retry_after = "61";
        CHECK(retry_delay(cfg, 0, o, 0.0, t0) == 500ms);
        o.retry_after = "0";
        CHECK(retry_delay(cfg, 1, o, 0.0, t0) == 1000ms);
        o.retry_after = "-3";
        CHECK(retry_delay(cfg, 0, o, 0.0, t0) == 500ms);
        o.retry_after.reset();
        o.retry_after_ms = "60001";
        CHECK(retry_delay(cfg, 0, o, 0.0, t0) == 500ms);
    }

    TEST_CASE("retry-after as HTTP-date, relative to now") {
        retry_config cfg;
        auto o = status(503);
        o.retry_after = "Thu, 01 Jan 2026 00:00:05 GMT";
        CHECK(retry_delay(cfg, 0, o, 0.0, t0) == 5000ms);
        o.retry_after = "Thursday, 01-Jan-26 00:00:30 GMT"; // RFC 850
        CHECK(retry_delay(cfg, 0, o, 0.0, t0) == 30000ms);
        o.retry_after = "Thu Jan  1 00:00:02 2026"; // asctime
        CHECK(retry_delay(cfg, 0, o, 0.0, t0) == 2000ms);
        o.retry_after = "Wed, 31 Dec 2025 23:59:59 GMT"; // in the past: backoff
        CHECK(retry_delay(cfg, 0, o, 0.0, t0) == 500ms);
        o.retry_after = "Thu, 01 Jan 2026 00:02:00 GMT"; // beyond 60 s: backoff
        CHECK(retry_delay(cfg, 0, o, 0.0, t0) == 500ms);
        o.retry_after = "not a date";
        CHECK(retry_delay(cfg, 0, o, 0.0, t0) == 500ms);
    }

    TEST_CASE("hostile retry headers: huge, negative and far-away values stay in range") {
        using wafer::api::server_retry_delay;
        const std::chrono::milliseconds year = 24h * 365;
        CHECK(server_retry_delay("1e300", std::nullopt, t0) == year);
        CHECK(server_retry_delay("9223372036854775808", std::nullopt, t0) == year);
        CHECK(server_retry_delay("-5", std::nullopt, t0) == 0ms);
        CHECK(server_retry_delay("2.6", std::nullopt, t0) == 3ms);
        CHECK(server_retry_delay(std::nullopt, "1e300", t0) == year);
        CHECK(server_retry_delay(std::nullopt, "1e15", t0) == year);
        CHECK(server_retry_delay(std::nullopt, "-1e300", t0) == 0ms);
        // Year 0215 and 9999 do not fit a system_clock time_point: the header is ignored.
        CHECK(!wafer::api::parse_http_date("Sun, 06 Nov 0215 08:49:37 GMT"));
        CHECK(!wafer::api::parse_http_date("Fri, 31 Dec 9999 23:59:59 GMT"));
        CHECK(!server_retry_delay(std::nullopt, "Sun, 06 Nov 0215 08:49:37 GMT", t0));
        CHECK(server_retry_delay(std::nullopt, "Thu, 01 Jan 2026 00:00:30 GMT", t0) == 30s);
        // A huge delay is over max_server_delay: the client backs off as usual instead.
        retry_config cfg;
        attempt_outcome o = status(429);
        o.retry_after_ms = "1e300";
        const auto d = retry_delay(cfg, 0, o, 0.0, t0);
        CHECK(d > 0ms);
        CHECK(d <= std::chrono::milliseconds(static_cast<long>(cfg.max_delay_s * 1000)));
        o.retry_after_ms.reset();
        o.retry_after = "Sun, 06 Nov 0215 08:49:37 GMT";
        CHECK(retry_delay(cfg, 0, o, 0.0, t0) == d);
    }

    TEST_CASE("parse_http_date") {
        using namespace std::chrono;
        auto d = wafer::api::parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT");
        REQUIRE(d);
        CHECK(duration_cast<seconds>(d->time_since_epoch()).count() == 784111777);
        CHECK(wafer::api::parse_http_date("Sunday, 06-Nov-94 08:49:37 GMT") == d);
        CHECK(wafer::api::parse_http_date("Sun Nov  6 08:49:37 1994") == d);
        CHECK(!wafer::api::parse_http_date(""));
        CHECK(!wafer::api::parse_http_date("Sun, 06 Nov 1994"));
        CHECK(!wafer::api::parse_http_date("Sun, 32 Nov 1994 08:49:37 GMT"));
        CHECK(!wafer::api::parse_http_date("Sun, 06 Foo 1994 08:49:37 GMT"));
    }

    TEST_CASE("transport errors always back off (no headers)") {
        attempt_outcome o;
        o.transport_error = true;
        o.retry_after = "3"; // cannot happen on the wire, and is ignored
        CHECK(retry_delay(retry_config{}, 1, o, 0.0, t0) == 1000ms);
        const auto d = decide_retry(retry_config{}, 0, o, 0.2, t0);
        CHECK(d.retry);
        CHECK(d.delay == 475ms);
    }

    TEST_CASE("custom bounds are honoured") {
        retry_config cfg{
            .max_retries = 5, .initial_delay_s = 1.0, .max_delay_s = 3.0, .max_server_delay = 10s};
        CHECK(retry_delay(cfg, 0, status(500), 0.0, t0) == 1000ms);
        CHECK(retry_delay(cfg, 3, status(500), 0.0, t0) == 3000ms);
        auto o = status(429);
        o.retry_after = "11";
        CHECK(retry_delay(cfg, 0, o, 0.0, t0) == 1000ms);
        CHECK(decide_retry(cfg, 4, o, 0.0, t0).retry);
        CHECK(!decide_retry(cfg, 5, o, 0.0, t0).retry);
    }
}
