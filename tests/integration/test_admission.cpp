// Admission control against the rate-limited fake server: many concurrent runs through the real
// client and agent loop stay inside a tokens-per-minute limit; the fake's headers, 429 bodies
// and model lookup look like Cerebras's.
#include <wafer/agent.hpp>
#include <wafer/api/client.hpp>
#include <wafer/cerebras_model.hpp>
#include <wafer/testing/fake_server.hpp>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>

#include <doctest/doctest.h>

#include <algorithm>
#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "concurrent_runs.hpp"
#include "run_coro.hpp"

namespace asio = boost::asio;
using namespace std::chrono_literals;
using wafer::agent;
using wafer::agent_config;
using wafer::errc;
using wafer::run_options;
using wafer::run_result;
using wafer::stop_reason;
using wafer::testing::fake_server;
using wafer::testing::reply;
using wafer::testing::run_coro;
namespace api = wafer::api;

namespace {

constexpr const char* glm = "zai-glm-4.7";

asio::awaitable<void> no_sleep(std::chrono::milliseconds) {
    co_return;
}

using outcome = wafer::testing::runs_outcome;

// Concurrent one-turn runs through one client; the fake answers `answer`.
struct bench {
    asio::io_context ioc;
    std::unique_ptr<fake_server> server;
    std::shared_ptr<api::client> client;
    agent_config cfg;

    bench(
        wafer::testing::rate_limits limits,
        bool admission,
        std::int64_t max_completion,
        std::string answer = "done"
    ) {
        wafer::testing::fake_server_config sc;
        sc.limits = limits;
        server = std::make_unique<fake_server>(ioc.get_executor(), std::move(sc));
        server->set_responder([answer](const api::chat_request&) { return reply::text(answer); });
        api::client_config cc;
        cc.base_url = server->base_url();
        cc.admission.enabled = admission;
        // Known before the first reply (an account's documented limit); the headers confirm it.
        cc.admission.tokens_per_minute = limits.tokens_per_minute;
        cc.admission.minute = limits.minute;
        cc.sleep = no_sleep; // without admission, retries hammer at once
        client = std::make_shared<api::client>(ioc.get_executor(), cc);
        cfg.model = std::make_shared<wafer::cerebras_model>(client, glm);
        cfg.request.max_completion_tokens = max_completion;
    }

    outcome run_all(std::size_t runs, std::optional<std::chrono::milliseconds> run_timeout = {}) {
        cfg.limits.run_timeout = run_timeout;
        auto out = std::make_shared<outcome>();
        run_coro(
            ioc, wafer::testing::run_concurrently(std::make_shared<agent>(cfg), out, runs), 60s
        );
        return *out;
    }
};

} // namespace

TEST_SUITE("integration/admission") {
    TEST_CASE("200 concurrent runs at a tokens-per-minute limit meet fewer than 1% 429s") {
        wafer::testing::rate_limits limits;
        limits.tokens_per_minute = 400;
        limits.minute = 250ms;
        bench b(limits, true, 20);
        REQUIRE(b.client->admission_enabled());
        const auto started = std::chrono::steady_clock::now();
        const outcome o = b.run_all(200);
        const auto took = std::chrono::steady_clock::now() - started;
        INFO("first error: " << o.first_error);
        CHECK(o.completed == 200);
        CHECK(b.server->rate_limited_count() < 2); // < 1 % of 200 requests
        // They had to queue: 200 runs need several windows of 400 tokens.
        CHECK(o.queued_runs > 0);
        CHECK(b.server->tokens_counted() > 2 * 400);
        CHECK(took > 500ms);
        MESSAGE(
            "admission on: " << std::chrono::duration_cast<std::chrono::milliseconds>(took).count()
                             << " ms, 429s " << b.server->rate_limited_count() << ", tokens "
                             << b.server->tokens_counted()
        );
    }

    TEST_CASE("without admission the same workload meets a 429 storm") {
        wafer::testing::rate_limits limits;
        limits.tokens_per_minute = 400;
        // One long window: however slowly the runs go (a sanitizer build, a loaded machine),
        // 200 of them spend its 400 tokens long before it resets.
        limits.minute = 5s;
        bench b(limits, false, 20);
        REQUIRE_FALSE(b.client->admission_enabled());
        const outcome o = b.run_all(200);
        CHECK(b.server->rate_limited_count() > 20);
        CHECK(o.failed > 0);
    }

    TEST_CASE("a run whose request cannot be admitted before its deadline fails clearly") {
        wafer::testing::rate_limits limits;
        limits.tokens_per_minute = 100;
        limits.minute = 10s; // one window for the whole test
        // The answer (about 100 tokens) spends the window on its own.
        bench b(limits, true, 90, std::string(400, 'x'));
        // The first run takes the window's budget; the second cannot fit before its deadline.
        const outcome first = b.run_all(1);
        REQUIRE(first.completed == 1);
        b.cfg.limits.run_timeout = 2s;
        agent a(b.cfg);
        const auto started = std::chrono::steady_clock::now();
        run_result r = run_coro(b.ioc, a.async_run("again, please", run_options{}), 10s);
        CHECK(std::chrono::steady_clock::now() - started < 1500ms); // decided, not waited out
        CHECK(r.stop_reason == stop_reason::error);
        REQUIRE(r.error);
        CHECK(r.error->code == errc::admission_timeout);
        CHECK(r.error->diagnostics.detail.find("admission queue") != std::string::npos);
        CHECK(b.server->rate_limited_count() == 0);
    }

    TEST_CASE("the fake sends Cerebras's rate-limit headers and request id, and 429 bodies") {
        asio::io_context ioc;
        wafer::testing::fake_server_config sc;
        sc.limits.requests_per_minute = 1;
        sc.limits.minute = 10s;
        fake_server server(ioc.get_executor(), sc);
        server.set_responder([](const api::chat_request&) { return reply::text("hi"); });
        api::client_config cc;
        cc.base_url = server.base_url();
        cc.retry.max_retries = 0;
        api::client c(ioc.get_executor(), cc);
        struct result {
            boost::system::error_code first, second;
            wafer::diagnostics d1, d2;
        };
        auto go = [&]() -> asio::awaitable<result> {
            result r;
            api::chat_request req;
            req.model = glm;
            req.messages.push_back(api::message::user("hello"));
            api::chat_response out;
            r.first = co_await c.async_create(req, out, r.d1);
            r.second = co_await c.async_create(req, out, r.d2);
            co_return r;
        };
        result r = run_coro(ioc, go());
        CHECK_FALSE(r.first);
        CHECK(r.second == errc::rate_limited);
        CHECK(r.d2.http_status == 429);
        CHECK(r.d2.code == "request_quota_exceeded");
        CHECK(r.d2.param == "quota");
        CHECK(r.d2.type == "too_many_requests_error");
        CHECK(r.d2.message == "Requests per minute limit exceeded - too many requests sent.");
        CHECK_FALSE(r.d2.request_id.empty());
        const auto& rs = server.requests();
        REQUIRE(rs.size() == 2);
        std::vector<std::string> names;
        for (const auto& [name, value] : r.d2.rate_limit) {
            names.push_back(name);
        }
        for (const char* h :
             {"x-ratelimit-limit-requests-day",
              "x-ratelimit-limit-tokens-minute",
              "x-ratelimit-remaining-requests-day",
              "x-ratelimit-remaining-tokens-minute",
              "x-ratelimit-reset-requests-day",
              "x-ratelimit-reset-tokens-minute"}) {
            CHECK_MESSAGE(std::find(names.begin(), names.end(), h) != names.end(), h);
        }
        CHECK(server.rate_limited_count() == 1);
    }

    TEST_CASE("GET /v1/models/{id} answers one model, or 404 model_not_found") {
        asio::io_context ioc;
        fake_server server(ioc.get_executor());
        const std::string base = server.base_url();
        // Through the client's plain listing path: the fake still answers the list.
        api::client_config cc;
        cc.base_url = base;
        api::client c(ioc.get_executor(), cc);
        auto models = run_coro(ioc, c.async_models());
        REQUIRE(models.size() == 2);
        // A raw GET for one id, with a tiny HTTP exchange over the client's executor.
        auto get = [&](std::string path) -> asio::awaitable<std::pair<int, std::string>> {
            asio::ip::tcp::socket s(co_await asio::this_coro::executor);
            const asio::ip::tcp::endpoint at(asio::ip::make_address("127.0.0.1"), server.port());
            co_await s.async_connect(at, asio::use_awaitable);
            std::string req = "GET " + path + " HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
            co_await asio::async_write(s, asio::buffer(req), asio::use_awaitable);
            std::string resp;
            auto [ec, n] = co_await asio::async_read(
                s, asio::dynamic_buffer(resp), asio::as_tuple(asio::use_awaitable)
            );
            (void)ec;
            (void)n;
            const int status = std::stoi(resp.substr(9, 3));
            co_return std::pair<int, std::string>(status, resp.substr(resp.find("\r\n\r\n") + 4));
        };
        auto [ok, body] = run_coro(ioc, get("/v1/models/zai-glm-4.7"));
        CHECK(ok == 200);
        CHECK(body.find(R"("id":"zai-glm-4.7")") != std::string::npos);
        CHECK(body.find(R"("object":"model")") != std::string::npos);
        auto [pub, pbody] = run_coro(ioc, get("/public/v1/models/gpt-oss-120b"));
        CHECK(pub == 200);
        CHECK(pbody.find("max_context_length") != std::string::npos);
        auto [missing, mbody] = run_coro(ioc, get("/v1/models/no-such-model"));
        CHECK(missing == 404);
        CHECK(mbody.find("model_not_found") != std::string::npos);
        CHECK(mbody.find("Model no-such-model does not exist") != std::string::npos);
    }
}
