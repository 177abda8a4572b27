// The admission limiter's sans-io rules: reserve, settle, reset, 429, fairness, priorities,
// deadlines and what the headers may say.
#include <wafer/api/admission.hpp>

#include <doctest/doctest.h>

#include <string>
#include <utility>
#include <vector>

using namespace std::chrono_literals;
using wafer::api::admission_config;
using wafer::api::admission_controller;
using wafer::api::request_options;
using outcome = admission_controller::outcome;
using headers = std::vector<std::pair<std::string, std::string>>;

namespace {

const admission_controller::time_point t0{std::chrono::hours(1000)};

request_options key(std::string k, int priority = 0) {
    request_options o;
    o.run_key = std::move(k);
    o.priority = priority;
    return o;
}

admission_config tpm(std::int64_t limit) {
    admission_config c;
    c.tokens_per_minute = limit;
    return c;
}

// The queued requests admitted since the last call; their replies arrive at once.
std::vector<admission_controller::ticket> admitted(admission_controller& a) {
    std::vector<admission_controller::ticket> out;
    for (const auto& d : a.take_decisions()) {
        if (d.result == outcome::admitted) {
            out.push_back(d.id);
            a.acknowledge(d.id);
        }
    }
    return out;
}

headers cerebras_headers(std::string limit, std::string remaining, std::string reset) {
    return {
        {"x-ratelimit-limit-requests-day", "14400"},
        {"x-ratelimit-limit-tokens-minute", std::move(limit)},
        {"x-ratelimit-remaining-requests-day", "14399"},
        {"x-ratelimit-remaining-tokens-minute", std::move(remaining)},
        {"x-ratelimit-reset-requests-day", "33011.382867097855"},
        {"x-ratelimit-reset-tokens-minute", std::move(reset)},
    };
}

} // namespace

TEST_SUITE("unit/admission") {
    TEST_CASE("admission is on for Cerebras hosts and off elsewhere unless configured") {
        admission_config c;
        CHECK(wafer::api::admission_enabled_for(c, "api.cerebras.ai"));
        CHECK(wafer::api::admission_enabled_for(c, "API.Cerebras.AI."));
        CHECK_FALSE(wafer::api::admission_enabled_for(c, "127.0.0.1"));
        CHECK_FALSE(wafer::api::admission_enabled_for(c, "notcerebras.ai"));
        CHECK_FALSE(wafer::api::admission_enabled_for(c, "cerebras.ai.example.com"));
        c.enabled = true;
        CHECK(wafer::api::admission_enabled_for(c, "127.0.0.1"));
        c.enabled = false;
        CHECK_FALSE(wafer::api::admission_enabled_for(c, "api.cerebras.ai"));
    }

    TEST_CASE("a request is reserved up front and what does not fit waits") {
        admission_controller a(tpm(1000));
        CHECK(a.request(1, key("a"), 600, t0) == outcome::admitted);
        CHECK(a.tokens_minute().used == 600);
        CHECK(a.request(2, key("b"), 600, t0) == outcome::queued);
        CHECK(a.queued() == 1);
        CHECK(a.take_decisions().empty());
    }

    TEST_CASE("settling with the reported usage frees what was not used") {
        admission_controller a(tpm(1000));
        REQUIRE(a.request(1, key("a"), 600, t0) == outcome::admitted);
        REQUIRE(a.request(2, key("b"), 600, t0) == outcome::queued);
        a.settle(1, 150, t0 + 1ms);
        CHECK(admitted(a) == std::vector<admission_controller::ticket>{2});
        CHECK(a.tokens_minute().used == 750);
        // Unknown tickets and a second settle change nothing.
        a.settle(1, 10, t0 + 2ms);
        a.settle(99, 10, t0 + 2ms);
        CHECK(a.tokens_minute().used == 750);
    }

    TEST_CASE("the window resets at the reset time the headers give") {
        admission_controller a(tpm(1000));
        REQUIRE(a.request(1, key("a"), 900, t0) == outcome::admitted);
        a.acknowledge(1); // its reply's head: the server counted it in this window
        a.observe(cerebras_headers("1000", "100", "2.5"), t0);
        REQUIRE(a.request(2, key("a"), 500, t0) == outcome::queued);
        REQUIRE(a.next_wakeup());
        CHECK(*a.next_wakeup() == t0 + 2500ms);
        a.advance(t0 + 2499ms);
        CHECK(admitted(a).empty());
        a.advance(t0 + 2500ms);
        CHECK(admitted(a) == std::vector<admission_controller::ticket>{2});
        // The first request settles in the new window: it no longer counts.
        a.settle(1, 900, t0 + 2600ms);
        CHECK(a.tokens_minute().used == 500);
    }

    TEST_CASE("a request still on its way at the reset counts in the new window") {
        admission_config c = tpm(1000);
        c.minute = 1s;
        admission_controller a(c);
        REQUIRE(a.request(1, key("a"), 700, t0) == outcome::admitted); // not answered yet
        REQUIRE(a.request(2, key("a"), 400, t0) == outcome::queued);
        a.advance(t0 + 1s);
        CHECK(a.tokens_minute().used == 700);
        CHECK(admitted(a).empty());
        a.settle(1, 100, t0 + 1100ms); // it landed in the new window and used 100
        CHECK(admitted(a) == std::vector<admission_controller::ticket>{2});
        CHECK(a.tokens_minute().used == 500);
    }

    TEST_CASE("without headers the configured minute is the window") {
        admission_config c = tpm(100);
        c.minute = 200ms;
        admission_controller a(c);
        REQUIRE(a.request(1, key("a"), 100, t0) == outcome::admitted);
        a.acknowledge(1);
        REQUIRE(a.request(2, key("a"), 50, t0 + 10ms) == outcome::queued);
        a.advance(t0 + 200ms);
        CHECK(admitted(a) == std::vector<admission_controller::ticket>{2});
    }

    TEST_CASE("headers teach the limit before any configuration, and remaining only raises use") {
        admission_controller a;
        CHECK(a.request(1, key("a"), 5000, t0) == outcome::admitted);
        a.observe(cerebras_headers("6000", "2000", "30"), t0);
        CHECK(a.tokens_minute().limit == 6000);
        CHECK(a.tokens_minute().used == 5000); // ours (5000) beats the server's 4000
        a.observe(cerebras_headers("6000", "500", "30"), t0);
        CHECK(a.tokens_minute().used == 5500); // someone else used more
        CHECK(a.request(2, key("a"), 1000, t0) == outcome::queued);
        CHECK(a.requests_day().limit == 14400);
    }

    TEST_CASE("a later window in the headers means the server already reset") {
        admission_controller a(tpm(1000));
        REQUIRE(a.request(1, key("a"), 1000, t0) == outcome::admitted);
        a.acknowledge(1);
        a.observe(cerebras_headers("1000", "0", "1"), t0);
        REQUIRE(a.request(2, key("a"), 100, t0) == outcome::queued);
        // 1 s later the server reports a fresh window ending in 59 s.
        a.observe(cerebras_headers("1000", "900", "59"), t0 + 1s);
        CHECK(admitted(a) == std::vector<admission_controller::ticket>{2});
        CHECK(a.tokens_minute().used == 200); // the server's 100 and ours
    }

    TEST_CASE("limits that change mid-run take effect at once") {
        admission_controller a(tpm(1000));
        REQUIRE(a.request(1, key("a"), 400, t0) == outcome::admitted);
        a.observe(cerebras_headers("500", "100", "30"), t0);
        CHECK(a.request(2, key("a"), 200, t0) == outcome::queued);
        a.observe(cerebras_headers("2000", "1600", "30"), t0 + 1ms);
        CHECK(admitted(a) == std::vector<admission_controller::ticket>{2});
    }

    TEST_CASE("nonsense header values are ignored") {
        CHECK(wafer::api::parse_rate_count("123") == 123);
        CHECK(wafer::api::parse_rate_count(" 7 ") == 7);
        for (const char* v : {"", "-1", "abc", "1.5", "12abc", "99999999999999999999", "0x10"}) {
            CHECK_MESSAGE(!wafer::api::parse_rate_count(v), v);
        }
        CHECK(wafer::api::parse_rate_reset("33011.382867097855") == 33'011'383ms);
        CHECK(wafer::api::parse_rate_reset("0") == 0ms);
        for (const char* v : {"", "-3", "nan", "inf", "1e400", "1e9", "soon", "+1", "1.0s"}) {
            CHECK_MESSAGE(!wafer::api::parse_rate_reset(v), v);
        }
        admission_controller a(tpm(1000));
        a.observe(
            headers{
                {"x-ratelimit-limit-tokens-minute", "0"},
                {"x-ratelimit-remaining-tokens-minute", "-5"},
                {"x-ratelimit-reset-tokens-minute", "nan"},
                {"x-ratelimit-limit-tokens-fortnight", "1"},
                {"x-ratelimit-limit-requests-day", "lots"},
            },
            t0
        );
        CHECK(a.tokens_minute().limit == 1000);
        CHECK(a.tokens_minute().used == 0);
        CHECK_FALSE(a.tokens_minute().reset_at);
        CHECK_FALSE(a.requests_day().limit);
        CHECK(a.request(1, key("a"), 1000, t0) == outcome::admitted);
    }

    TEST_CASE("a 429 shrinks the budget to nothing until the reset") {
        admission_controller a(tpm(100000));
        REQUIRE(a.request(1, key("a"), 10, t0) == outcome::admitted);
        a.observe(cerebras_headers("100000", "99990", "4"), t0);
        a.observe_rate_limited(admission_controller::exhausted::tokens, std::nullopt, t0);
        CHECK(a.request(2, key("a"), 10, t0 + 1ms) == outcome::queued);
        a.advance(t0 + 3999ms);
        CHECK(admitted(a).empty());
        a.advance(t0 + 4s);
        CHECK(admitted(a) == std::vector<admission_controller::ticket>{2});
    }

    TEST_CASE("a 429 without reset headers waits for retry-after") {
        admission_controller a;
        a.observe_rate_limited(admission_controller::exhausted::requests_minute, 300ms, t0);
        CHECK(a.request(1, key("a"), 10, t0) == outcome::queued);
        CHECK(a.next_wakeup() == t0 + 300ms);
        a.advance(t0 + 300ms);
        CHECK(admitted(a) == std::vector<admission_controller::ticket>{1});
    }

    TEST_CASE("429 bodies name the budget that ran out") {
        using ex = admission_controller::exhausted;
        CHECK(
            admission_controller::classify_429(
                "request_quota_exceeded",
                "Requests per minute limit exceeded - too many requests sent."
            ) == ex::requests_minute
        );
        CHECK(
            admission_controller::classify_429(
                "token_quota_exceeded",
                "Tokens per minute limit exceeded - too many tokens processed."
            ) == ex::tokens
        );
        CHECK(
            admission_controller::classify_429(
                "request_quota_exceeded", "Requests per day limit exceeded"
            ) == ex::requests_day
        );
        CHECK(
            admission_controller::classify_429(
                "queue_exceeded", "We're experiencing high traffic"
            ) == ex::tokens
        );
    }

    TEST_CASE("queued runs are admitted round-robin, not one run's backlog first") {
        admission_controller a(tpm(100));
        REQUIRE(a.request(1, key("busy"), 100, t0) == outcome::admitted);
        // "busy" queues three, then "quiet" one.
        for (admission_controller::ticket t : {2u, 3u, 4u}) {
            REQUIRE(a.request(t, key("busy"), 50, t0) == outcome::queued);
        }
        REQUIRE(a.request(5, key("quiet"), 50, t0) == outcome::queued);
        std::vector<admission_controller::ticket> order;
        auto step = [&](admission_controller::ticket done) {
            a.settle(done, 100, t0 + 1ms);
            for (auto t : admitted(a)) {
                order.push_back(t);
            }
        };
        step(1);             // settled at what it reserved: the window stays full
        a.advance(t0 + 60s); // the window turns: 100 tokens = two requests of 50
        for (auto t : admitted(a)) {
            order.push_back(t);
        }
        CHECK(order == std::vector<admission_controller::ticket>{2, 5});
        a.advance(t0 + 120s);
        for (auto t : admitted(a)) {
            order.push_back(t);
        }
        CHECK(order == std::vector<admission_controller::ticket>{2, 5, 3, 4});
    }

    TEST_CASE("the queue head is never overtaken by a later request that fits") {
        admission_controller a(tpm(1000));
        REQUIRE(a.request(1, key("a"), 800, t0) == outcome::admitted);
        REQUIRE(a.request(2, key("b"), 500, t0) == outcome::queued);
        CHECK(a.request(3, key("c"), 100, t0) == outcome::queued); // would fit, but 2 is first
        a.settle(1, 300, t0 + 1ms);                                // 300 used: 2 fits, then 3
        CHECK(admitted(a) == std::vector<admission_controller::ticket>{2, 3});
    }

    TEST_CASE("higher priorities go first, within a priority arrival order") {
        admission_controller a(tpm(100));
        REQUIRE(a.request(1, key("a"), 100, t0) == outcome::admitted);
        a.acknowledge(1);
        REQUIRE(a.request(2, key("low"), 100, t0) == outcome::queued);
        REQUIRE(a.request(3, key("high", 5), 100, t0) == outcome::queued);
        REQUIRE(a.request(4, key("high2", 5), 100, t0) == outcome::queued);
        a.advance(t0 + 60s);
        CHECK(admitted(a) == std::vector<admission_controller::ticket>{3});
        a.advance(t0 + 120s);
        CHECK(admitted(a) == std::vector<admission_controller::ticket>{4});
        a.advance(t0 + 180s);
        CHECK(admitted(a) == std::vector<admission_controller::ticket>{2});
    }

    TEST_CASE("a request that cannot fit before its deadline times out at once") {
        admission_controller a(tpm(1000));
        REQUIRE(a.request(1, key("a"), 1000, t0) == outcome::admitted);
        a.settle(1, 1000, t0); // used up, nothing in flight to free
        request_options o = key("b");
        o.deadline = t0 + 10s; // the window turns at t0 + 60 s
        CHECK(a.request(2, o, 10, t0 + 1ms) == outcome::timed_out);
        CHECK(a.queued() == 0);
        o.deadline = t0 + 61s;
        CHECK(a.request(3, o, 10, t0 + 1ms) == outcome::queued);
    }

    TEST_CASE("a waiting request times out when its deadline passes") {
        admission_controller a(tpm(1000));
        REQUIRE(a.request(1, key("a"), 1000, t0) == outcome::admitted); // may settle lower
        request_options o = key("b");
        o.deadline = t0 + 5s;
        REQUIRE(a.request(2, o, 10, t0) == outcome::queued);
        CHECK(a.next_wakeup() == t0 + 5s);
        a.advance(t0 + 5s);
        auto d = a.take_decisions();
        REQUIRE(d.size() == 1);
        CHECK(d[0].id == 2);
        CHECK(d[0].result == outcome::timed_out);
        CHECK(a.queued() == 0);
    }

    TEST_CASE("a cancelled waiter leaves the queue and unblocks those behind it") {
        admission_controller a(tpm(1000));
        REQUIRE(a.request(1, key("a"), 600, t0) == outcome::admitted);
        REQUIRE(a.request(2, key("b"), 900, t0) == outcome::queued);
        REQUIRE(a.request(3, key("c"), 300, t0) == outcome::queued);
        a.cancel(2, t0 + 1ms);
        CHECK(admitted(a) == std::vector<admission_controller::ticket>{3});
        a.cancel(1, t0 + 2ms); // an admitted request given up counts as nothing used
        CHECK(a.tokens_minute().used == 300);
    }

    TEST_CASE("a request larger than the whole budget goes alone into an empty window") {
        admission_controller a(tpm(100));
        CHECK(a.request(1, key("a"), 500, t0) == outcome::admitted);
        CHECK(a.request(2, key("a"), 1, t0) == outcome::queued);
    }

    TEST_CASE("requests per minute and per day are budgets too") {
        admission_config c;
        c.requests_per_minute = 2;
        admission_controller a(c);
        CHECK(a.request(1, key("a"), 1, t0) == outcome::admitted);
        CHECK(a.request(2, key("a"), 1, t0) == outcome::admitted);
        CHECK(a.request(3, key("a"), 1, t0) == outcome::queued);
        a.settle(1, 1, t0 + 1ms); // a settled request still counts for its minute
        CHECK(admitted(a).empty());
        a.advance(t0 + 60s);
        CHECK(admitted(a) == std::vector<admission_controller::ticket>{3});
        a.observe(
            headers{
                {"x-ratelimit-limit-requests-day", "3"},
                {"x-ratelimit-remaining-requests-day", "0"}},
            t0 + 60s
        );
        CHECK(a.request(4, key("a"), 1, t0 + 61s) == outcome::queued);
    }
}
