// api::client against the fake server over loopback: retries with exact injected delays, every
// fault, keep-alive reuse, TLS, timeouts, cancellation, secrets.
#include <wafer/api/client.hpp>
#include <wafer/testing/fake_server.hpp>

#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>

#include <doctest/doctest.h>

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "run_coro.hpp"

namespace asio = boost::asio;
using namespace std::chrono_literals;
using wafer::errc;
using wafer::api::chat_request;
using wafer::api::client;
using wafer::api::client_config;
using wafer::testing::delivery;
using wafer::testing::error_shape;
using wafer::testing::fake_server;
using wafer::testing::reply;
using wafer::testing::run_coro;
using wafer::testing::scripted_error;
using wafer::testing::scripted_turn;

namespace {

const std::string secret = "sk-SECRET-123";

asio::awaitable<void> no_sleep() {
    co_return;
}

// A client whose retry sleeps are recorded (and instant) and whose jitter draw is fixed at 0.2:
// backoff delays are then 475 ms, 950 ms, ...
struct harness {
    asio::io_context ioc;
    std::unique_ptr<fake_server> server;
    std::shared_ptr<std::vector<std::chrono::milliseconds>> sleeps =
        std::make_shared<std::vector<std::chrono::milliseconds>>();

    explicit harness(wafer::testing::fake_server_config sc = {}) {
        server = std::make_unique<fake_server>(ioc.get_executor(), std::move(sc));
    }

    client_config config() {
        client_config cfg;
        cfg.api_key = secret;
        cfg.base_url = server->base_url();
        cfg.timeouts.connect = 2s;
        cfg.timeouts.read = 2s;
        cfg.sleep = [rec = sleeps](std::chrono::milliseconds d) {
            rec->push_back(d);
            return no_sleep();
        };
        cfg.random = [] {
            return 0.2;
        };
        return cfg;
    }
};

chat_request hello() {
    chat_request req;
    req.model = "zai-glm-4.7";
    req.messages.push_back(wafer::api::message{.role = wafer::api::role::user, .content = "hi"});
    return req;
}

struct outcome {
    boost::system::error_code ec;
    wafer::diagnostics diag;
    wafer::api::chat_response response;
    std::size_t chunks = 0;
    std::string text;
};

asio::awaitable<outcome> do_create(client& c, chat_request req) {
    outcome o;
    o.ec = co_await c.async_create(std::move(req), o.response, o.diag);
    co_return o;
}

// Opens a stream and pulls it to the end; failures of either phase land in ec/diag.
asio::awaitable<outcome> do_stream(client& c, chat_request req) {
    outcome o;
    wafer::api::chat_stream s;
    o.ec = co_await c.async_stream(std::move(req), s, o.diag);
    if (o.ec) {
        co_return o;
    }
    for (;;) {
        const auto* ch = co_await s.next(o.ec);
        if (!ch) {
            break;
        }
        ++o.chunks;
        o.text += ch->content;
    }
    if (o.ec) {
        o.diag = s.diag();
    }
    o.response = s.response();
    co_return o;
}

void check_no_secret(const outcome& o) {
    const std::string all = o.diag.to_string() + o.diag.type + o.diag.code + o.diag.param +
                            o.diag.message + o.diag.detail + o.diag.request_id + o.ec.message() +
                            wafer::error(o.ec, o.diag).what();
    CHECK(all.find(secret) == std::string::npos);
}

// The test certificates (a CA, and a server certificate for 127.0.0.1 and localhost).
std::string tls_dir() {
    return WAFER_TEST_DATA_DIR "/tls/";
}

wafer::testing::fake_server_config tls_server() {
    wafer::testing::fake_server_config sc;
    sc.tls_cert_file = tls_dir() + "server.pem";
    sc.tls_key_file = tls_dir() + "server.key";
    return sc;
}

scripted_error error_of(int status, error_shape shape) {
    scripted_error e;
    e.status = status;
    e.shape = shape;
    e.message = "failure " + std::to_string(status);
    e.type = "some_error";
    e.code = "some_code";
    e.param = "p";
    return e;
}

} // namespace

TEST_SUITE("integration/client") {
    TEST_CASE("non-streaming create: headers, body, keep-alive reuse") {
        harness h;
        h.server->enqueue(reply::text("Hello world"));
        h.server->enqueue(reply::text("Again"));
        client c(h.ioc.get_executor(), h.config());
        auto a = run_coro(h.ioc, do_create(c, hello()));
        auto b = run_coro(h.ioc, do_create(c, hello()));
        REQUIRE(!a.ec);
        REQUIRE(!b.ec);
        CHECK(a.response.first_message().content == "Hello world");
        CHECK(b.response.first_message().content == "Again");
        CHECK(a.diag.attempts == 1);
        CHECK(c.connections_opened() == 1); // two requests, one connection
        CHECK(c.idle_connections() == 1);
        const auto& reqs = h.server->requests();
        REQUIRE(reqs.size() == 2);
        CHECK(reqs[0].method == "POST");
        CHECK(reqs[0].target == "/v1/chat/completions");
        CHECK(reqs[0].header("authorization") == "Bearer " + secret);
        CHECK(reqs[0].header("user-agent") == std::string("wafer/") + WAFER_VERSION_STRING);
        CHECK(reqs[0].header("content-type") == "application/json");
        CHECK(reqs[0].header("x-stainless-retry-count") == "0");
        CHECK(reqs[0].body.find("\"stream\"") == std::string::npos);
        CHECK(h.sleeps->empty());
    }

    TEST_CASE("OpenAI-style base URL ending in /v1 is not doubled") {
        harness h;
        h.server->enqueue(reply::text("ok"));
        auto cfg = h.config();
        cfg.base_url += "/v1";
        client c(h.ioc.get_executor(), cfg);
        auto a = run_coro(h.ioc, do_create(c, hello()));
        CHECK(!a.ec);
        REQUIRE(h.server->requests().size() == 1);
        CHECK(h.server->requests()[0].target == "/v1/chat/completions");
    }

    TEST_CASE("streaming: chunks, accumulation, usage, stream flags, with and without [DONE]") {
        for (bool done : {false, true}) {
            CAPTURE(done);
            harness h;
            scripted_turn t;
            t.reasoning = "think";
            t.content = "The quick brown fox";
            delivery d;
            d.done_marker = done;
            h.server->enqueue(reply::of(t, d));
            h.server->enqueue(reply::of(t, d));
            client c(h.ioc.get_executor(), h.config());
            auto a = run_coro(h.ioc, do_stream(c, hello()));
            REQUIRE_MESSAGE(!a.ec, a.diag.to_string());
            CHECK(a.text == "The quick brown fox");
            CHECK(a.chunks >= 4);
            CHECK(a.response.first_message().content == "The quick brown fox");
            CHECK(a.response.first_message().reasoning == "think");
            CHECK(a.response.choices.at(0).finish_reason == wafer::api::finish_reason::stop);
            CHECK(a.response.usage.has_value());
            auto b = run_coro(h.ioc, do_stream(c, hello()));
            CHECK(!b.ec);
            CHECK(c.connections_opened() == 1); // the stream's connection went back to the pool
            auto sent = h.server->chat_requests();
            REQUIRE(sent.size() == 2);
            CHECK(sent[0].stream == true);
            REQUIRE(sent[0].stream_options);
            CHECK(sent[0].stream_options->include_usage == true);
        }
    }

    TEST_CASE("every error status and body shape: errc, diagnostics, attempts, exact delays") {
        const std::vector<std::pair<int, errc>> cases{
            {400, errc::bad_request},
            {401, errc::authentication_failed},
            {403, errc::permission_denied},
            {404, errc::not_found},
            {408, errc::request_timeout},
            {409, errc::conflict},
            {413, errc::http_status},
            {422, errc::unprocessable_entity},
            {429, errc::rate_limited},
            {500, errc::server_error},
            {503, errc::server_error},
        };
        for (bool stream : {false, true}) {
            for (auto shape : {error_shape::flat, error_shape::nested, error_shape::detail}) {
                for (const auto& [status, expected] : cases) {
                    CAPTURE(stream);
                    CAPTURE(static_cast<int>(shape));
                    CAPTURE(status);
                    harness h;
                    for (int i = 0; i < 3; ++i) {
                        h.server->enqueue(reply::failure(error_of(status, shape)));
                    }
                    client c(h.ioc.get_executor(), h.config());
                    auto o =
                        run_coro(h.ioc, stream ? do_stream(c, hello()) : do_create(c, hello()));
                    CHECK(o.ec == expected);
                    CHECK(o.diag.http_status == status);
                    CHECK(o.diag.message == "failure " + std::to_string(status));
                    if (shape != error_shape::detail) {
                        CHECK(o.diag.type == "some_error");
                        CHECK(o.diag.code == "some_code");
                        CHECK(o.diag.param == "p");
                    }
                    const bool retryable =
                        status == 408 || status == 409 || status == 429 || status >= 500;
                    using v = std::vector<std::chrono::milliseconds>;
                    if (retryable) {
                        CHECK(o.diag.attempts == 3);
                        CHECK(*h.sleeps == v{475ms, 950ms});
                        CHECK(h.server->requests().size() == 3);
                        CHECK(h.server->requests()[2].header("x-stainless-retry-count") == "2");
                    } else {
                        CHECK(o.diag.attempts == 1);
                        CHECK(h.sleeps->empty());
                        CHECK(h.server->requests().size() == 1);
                    }
                    CHECK(c.connections_opened() == 1); // error responses keep the connection
                    check_no_secret(o);
                }
            }
        }
    }

    TEST_CASE("retry headers: retry-after-ms, retry-after seconds and date, bounds, x-should-retry"
    ) {
        using v = std::vector<std::chrono::milliseconds>;
        struct row {
            std::optional<std::string> after_ms, after, should;
            int status;
            int attempts;
            v delays;
        };
        const std::vector<row> rows{
            {"1200", std::nullopt, std::nullopt, 429, 3, {1200ms, 1200ms}},
            {std::nullopt, "2", std::nullopt, 503, 3, {2000ms, 2000ms}},
            {std::nullopt, "0.5", std::nullopt, 503, 3, {500ms, 500ms}},
            {std::nullopt, "120", std::nullopt, 429, 3, {475ms, 950ms}}, // beyond 60 s: backoff
            {"0", std::nullopt, std::nullopt, 429, 3, {475ms, 950ms}},
            {std::nullopt, std::nullopt, "false", 500, 1, {}},
            {std::nullopt, std::nullopt, "true", 400, 3, {475ms, 950ms}},
            {"700", std::nullopt, "true", 401, 3, {700ms, 700ms}},
        };
        for (const auto& r : rows) {
            CAPTURE(r.status);
            CAPTURE(r.after_ms.value_or("-"));
            CAPTURE(r.after.value_or("-"));
            CAPTURE(r.should.value_or("-"));
            harness h;
            for (int i = 0; i < 3; ++i) {
                auto e = error_of(r.status, error_shape::flat);
                e.retry_after_ms = r.after_ms;
                e.retry_after = r.after;
                e.should_retry = r.should;
                h.server->enqueue(reply::failure(e));
            }
            client c(h.ioc.get_executor(), h.config());
            auto o = run_coro(h.ioc, do_create(c, hello()));
            CHECK(o.ec == wafer::errc_from_http_status(r.status));
            CHECK(o.diag.attempts == r.attempts);
            CHECK(*h.sleeps == r.delays);
        }
    }

    TEST_CASE("retry-after as an HTTP-date uses the injected clock") {
        harness h;
        auto e = error_of(503, error_shape::nested);
        e.retry_after = "Thu, 01 Jan 2026 00:00:03 GMT";
        h.server->enqueue(reply::failure(e));
        h.server->enqueue(reply::text("fine"));
        auto cfg = h.config();
        cfg.now = [] {
            return std::chrono::system_clock::time_point(std::chrono::seconds(1767225600));
        };
        client c(h.ioc.get_executor(), cfg);
        auto o = run_coro(h.ioc, do_create(c, hello()));
        CHECK(!o.ec);
        CHECK(o.diag.attempts == 2);
        CHECK(*h.sleeps == std::vector<std::chrono::milliseconds>{3000ms});
    }

    TEST_CASE("success after retries; rate-limit headers and request id reach diagnostics") {
        harness h;
        delivery d;
        d.headers = {{"x-request-id", "req-42"}, {"x-ratelimit-remaining-tokens-minute", "99"}};
        h.server->enqueue(reply::failure(error_of(500, error_shape::flat), d));
        h.server->enqueue(reply::failure(error_of(429, error_shape::flat), d));
        h.server->enqueue(reply::text("made it"));
        client c(h.ioc.get_executor(), h.config());
        auto o = run_coro(h.ioc, do_stream(c, hello()));
        CHECK(!o.ec);
        CHECK(o.text == "made it");
        CHECK(*h.sleeps == std::vector<std::chrono::milliseconds>{475ms, 950ms});

        h.server->enqueue(reply::failure(error_of(400, error_shape::flat), d));
        auto bad = run_coro(h.ioc, do_create(c, hello()));
        CHECK(bad.ec == errc::bad_request);
        CHECK(bad.diag.request_id == "req-42");
        REQUIRE(bad.diag.rate_limit.size() == 1);
        CHECK(bad.diag.rate_limit[0].second == "99");
    }

    TEST_CASE("mid-stream error event: errc from its status_code, no retry, connection closed") {
        harness h;
        scripted_turn t;
        t.content = "one two three four five";
        delivery d;
        d.error_after_chunks = 2;
        d.stream_error = error_of(429, error_shape::nested);
        h.server->enqueue(reply::of(t, d));
        h.server->enqueue(reply::text("after"));
        client c(h.ioc.get_executor(), h.config());
        auto o = run_coro(h.ioc, do_stream(c, hello()));
        CHECK(o.ec == errc::rate_limited);
        CHECK(o.chunks == 2);
        CHECK(o.diag.http_status == 429);
        CHECK(o.diag.message == "failure 429");
        CHECK(o.diag.type == "some_error");
        CHECK(h.sleeps->empty());
        CHECK(h.server->requests().size() == 1);
        auto next = run_coro(h.ioc, do_create(c, hello()));
        CHECK(!next.ec);
        CHECK(c.connections_opened() == 2); // the errored stream's connection was not reused
    }

    TEST_CASE("disconnect after N chunks: stream_truncated, not reused") {
        harness h;
        scripted_turn t;
        t.content = "one two three four five";
        delivery d;
        d.disconnect_after_chunks = 3;
        h.server->enqueue(reply::of(t, d));
        h.server->enqueue(reply::text("after"));
        client c(h.ioc.get_executor(), h.config());
        auto o = run_coro(h.ioc, do_stream(c, hello()));
        CHECK(o.ec == errc::stream_truncated);
        CHECK(o.chunks == 3);
        CHECK(h.sleeps->empty());
        auto next = run_coro(h.ioc, do_create(c, hello()));
        CHECK(!next.ec);
        CHECK(c.connections_opened() == 2);
    }

    TEST_CASE("malformed chunk: invalid_response") {
        harness h;
        scripted_turn t;
        t.content = "one two three";
        delivery d;
        d.malformed_chunk_at = 2;
        h.server->enqueue(reply::of(t, d));
        client c(h.ioc.get_executor(), h.config());
        auto o = run_coro(h.ioc, do_stream(c, hello()));
        CHECK(o.ec == errc::invalid_response);
        CHECK(o.chunks == 2);
        CHECK(c.idle_connections() == 0);
    }

    TEST_CASE("malformed non-streaming body: invalid_response, not retried") {
        harness h;
        delivery d;
        d.malformed_chunk_at = 0;
        h.server->enqueue(reply::of(scripted_turn{.content = "x"}, d));
        client c(h.ioc.get_executor(), h.config());
        auto o = run_coro(h.ioc, do_create(c, hello()));
        CHECK(o.ec == errc::invalid_response);
        CHECK(o.diag.attempts == 1);
    }

    TEST_CASE("slow headers: timeout after retries, with the short configured timeout") {
        harness h;
        delivery d;
        d.header_delay = 400ms;
        for (int i = 0; i < 2; ++i) {
            h.server->enqueue(reply::of(scripted_turn{.content = "late"}, d));
        }
        auto cfg = h.config();
        cfg.timeouts.read = 100ms;
        cfg.retry.max_retries = 1;
        client c(h.ioc.get_executor(), cfg);
        const auto t0 = std::chrono::steady_clock::now();
        auto o = run_coro(h.ioc, do_stream(c, hello()));
        CHECK(o.ec == errc::timeout);
        CHECK(o.diag.attempts == 2);
        CHECK(*h.sleeps == std::vector<std::chrono::milliseconds>{475ms});
        CHECK(std::chrono::steady_clock::now() - t0 < 2s);
        CHECK(c.idle_connections() == 0);
    }

    TEST_CASE("idle timeout between stream chunks: timeout, no retry") {
        harness h;
        delivery d;
        d.chunk_delay = 400ms;
        h.server->enqueue(reply::of(scripted_turn{.content = "a b c"}, d));
        auto cfg = h.config();
        cfg.timeouts.read = 100ms;
        client c(h.ioc.get_executor(), cfg);
        auto o = run_coro(h.ioc, do_stream(c, hello()));
        CHECK(o.ec == errc::timeout);
        CHECK(h.sleeps->empty());
    }

    TEST_CASE("a server that accepts but never answers the TLS handshake: timeout") {
        asio::io_context ioc;
        asio::ip::tcp::acceptor silent(ioc, {asio::ip::make_address("127.0.0.1"), 0});
        asio::ip::tcp::socket held(ioc); // accepted, read from by nobody, never written to
        silent.async_accept(held, [](boost::system::error_code) {});
        client_config cfg;
        cfg.api_key = secret;
        cfg.base_url = "https://127.0.0.1:" + std::to_string(silent.local_endpoint().port());
        cfg.timeouts.connect = 150ms;
        cfg.retry.max_retries = 0;
        client c(ioc.get_executor(), cfg);
        const auto t0 = std::chrono::steady_clock::now();
        auto o = run_coro(ioc, do_create(c, hello()));
        CHECK(o.ec == errc::timeout);
        CHECK(o.diag.detail.find("TLS handshake") != std::string::npos);
        CHECK(std::chrono::steady_clock::now() - t0 < 2s);
        check_no_secret(o);
    }

    TEST_CASE("TLS: the idle timeout between chunks holds over TLS too") {
        const std::string dir = tls_dir();
        harness h(tls_server());
        delivery d;
        d.chunk_delay = 400ms;
        h.server->enqueue(reply::of(scripted_turn{.content = "a b c"}, d));
        auto cfg = h.config();
        cfg.ca_file = dir + "ca.pem";
        cfg.timeouts.read = 100ms;
        client c(h.ioc.get_executor(), cfg);
        auto o = run_coro(h.ioc, do_stream(c, hello()));
        CHECK(o.ec == errc::timeout);
        CHECK(h.sleeps->empty());
    }

    TEST_CASE("a stream slower than the idle timeout in total, but never idle that long, completes"
    ) {
        // 12 chunks 40 ms apart: 480 ms in all, against a 150 ms idle timeout.
        harness h;
        delivery d;
        d.chunk_delay = 40ms;
        h.server->enqueue(reply::of(scripted_turn{.content = "a b c d e f g h i j"}, d));
        h.server->enqueue(reply::text("again"));
        auto cfg = h.config();
        cfg.timeouts.read = 150ms;
        client c(h.ioc.get_executor(), cfg);
        auto o = run_coro(h.ioc, do_stream(c, hello()));
        CHECK_MESSAGE(!o.ec, o.diag.to_string());
        CHECK(o.text == "a b c d e f g h i j");
        // The connection went back to the pool with no deadline left armed: after longer than the
        // idle timeout, the next request reuses it and succeeds.
        asio::steady_timer pause(h.ioc, 300ms);
        run_coro(h.ioc, pause.async_wait(asio::use_awaitable));
        auto o2 = run_coro(h.ioc, do_create(c, hello()));
        CHECK_MESSAGE(!o2.ec, o2.diag.to_string());
        CHECK(c.connections_opened() == 1);
    }

    TEST_CASE("connection refused: connection_failed after retries") {
        asio::io_context ioc;
        unsigned short port = 0;
        {
            asio::ip::tcp::acceptor a(ioc, {asio::ip::make_address("127.0.0.1"), 0});
            port = a.local_endpoint().port();
        } // closed: nothing listens there now
        auto sleeps = std::make_shared<std::vector<std::chrono::milliseconds>>();
        client_config cfg;
        cfg.api_key = secret;
        cfg.base_url = "http://127.0.0.1:" + std::to_string(port);
        cfg.sleep = [sleeps](std::chrono::milliseconds d) {
            sleeps->push_back(d);
            return no_sleep();
        };
        cfg.random = [] {
            return 0.0;
        };
        client c(ioc.get_executor(), cfg);
        auto o = run_coro(ioc, do_create(c, hello()));
        CHECK(o.ec == errc::connection_failed);
        CHECK(o.diag.attempts == 3);
        CHECK(*sleeps == std::vector<std::chrono::milliseconds>{500ms, 1000ms});
        CHECK(!o.diag.detail.empty());
        check_no_secret(o);
    }

    TEST_CASE("the API key never leaks, even when the server echoes it") {
        wafer::testing::fake_server_config sc;
        sc.api_key = "sk-the-right-one";
        harness h(sc);
        client c(h.ioc.get_executor(), h.config());
        auto o = run_coro(h.ioc, do_create(c, hello()));
        CHECK(o.ec == errc::authentication_failed);
        CHECK(o.diag.code == "wrong_api_key");
        check_no_secret(o);

        harness h2;
        auto e = error_of(400, error_shape::flat);
        e.message = "bad key " + secret;
        h2.server->enqueue(reply::failure(e));
        client c2(h2.ioc.get_executor(), h2.config());
        auto o2 = run_coro(h2.ioc, do_create(c2, hello()));
        CHECK(o2.ec == errc::bad_request);
        CHECK(o2.diag.message == "bad key ***");
        check_no_secret(o2);
    }

    TEST_CASE("throwing forms throw wafer::error with diagnostics") {
        harness h;
        h.server->enqueue(reply::failure(error_of(404, error_shape::flat)));
        client c(h.ioc.get_executor(), h.config());
        bool thrown = false;
        try {
            run_coro(h.ioc, c.async_create(hello()));
        } catch (const wafer::error& e) {
            thrown = true;
            CHECK(e.code() == errc::not_found);
            CHECK(e.diag().message == "failure 404");
            CHECK(std::string(e.what()).find(secret) == std::string::npos);
        }
        CHECK(thrown);
    }

    TEST_CASE("models and warm-up") {
        harness h;
        client c(h.ioc.get_executor(), h.config());
        auto models = run_coro(h.ioc, c.async_models());
        REQUIRE(models.size() == 2);
        CHECK(models[0].id == "zai-glm-4.7");
        CHECK(c.connections_opened() == 1);

        harness h2;
        client c2(h2.ioc.get_executor(), h2.config());
        c2.warm_up();
        for (int i = 0; i < 2000 && c2.idle_connections() == 0; ++i) {
            h2.ioc.run_one_for(5ms);
        }
        REQUIRE(c2.idle_connections() == 1);
        CHECK(h2.server->requests().at(0).target == "/v1/tcp_warming");
        h2.server->enqueue(reply::text("warm"));
        auto o = run_coro(h2.ioc, do_create(c2, hello()));
        CHECK(!o.ec);
        CHECK(c2.connections_opened() == 1);
    }

    TEST_CASE("TLS: verified with the test CA; failures without it or with a wrong host name") {
        const std::string dir = tls_dir();
        harness h(tls_server());
        h.server->enqueue(reply::text("secure"));
        h.server->enqueue(reply::text("secure again"));
        auto cfg = h.config();
        cfg.ca_file = dir + "ca.pem";
        REQUIRE(cfg.base_url.starts_with("https://"));
        client c(h.ioc.get_executor(), cfg);
        auto o = run_coro(h.ioc, do_stream(c, hello()));
        CHECK_MESSAGE(!o.ec, o.diag.to_string());
        CHECK(o.text == "secure");
        auto o2 = run_coro(h.ioc, do_create(c, hello()));
        CHECK(!o2.ec);
        CHECK(c.connections_opened() == 1);

        // localhost is in the certificate too.
        auto by_name = cfg;
        by_name.base_url = "https://localhost:" + std::to_string(h.server->port());
        h.server->enqueue(reply::text("by name"));
        client c_name(h.ioc.get_executor(), by_name);
        CHECK(!run_coro(h.ioc, do_create(c_name, hello())).ec);

        auto no_ca = h.config();
        no_ca.retry.max_retries = 0;
        client c3(h.ioc.get_executor(), no_ca);
        auto f = run_coro(h.ioc, do_create(c3, hello()));
        CHECK(f.ec == errc::tls_failed);
        CHECK(!f.diag.detail.empty());

        auto wrong_host = cfg;
        wrong_host.retry.max_retries = 0;
        wrong_host.base_url =
            "https://vm:" + std::to_string(h.server->port()); // /etc/hosts: 127.0.0.1
        client c4(h.ioc.get_executor(), wrong_host);
        auto w = run_coro(h.ioc, do_create(c4, hello()));
        if (w.ec != errc::resolve_failed) { // only meaningful where "vm" resolves to loopback
            CHECK(w.ec == errc::tls_failed);
        }

        auto insecure = h.config();
        insecure.verify_tls = false; // explicit opt-out
        h.server->enqueue(reply::text("unverified"));
        client c5(h.ioc.get_executor(), insecure);
        CHECK(!run_coro(h.ioc, do_create(c5, hello())).ec);
    }
}

namespace {

struct cancel_result {
    bool done = false;
    boost::system::error_code ec;
    std::exception_ptr ex;
};

asio::awaitable<boost::system::error_code> stream_all(client& c) {
    auto o = co_await do_stream(c, hello());
    co_return o.ec;
}

// Runs op with a cancellation slot and emits terminal cancellation after `after`.
cancel_result run_cancelled(
    asio::io_context& ioc,
    asio::awaitable<boost::system::error_code> op,
    std::chrono::milliseconds after
) {
    auto res = std::make_shared<cancel_result>();
    asio::cancellation_signal sig;
    asio::co_spawn(
        ioc,
        std::move(op),
        asio::bind_cancellation_slot(
            sig.slot(),
            [res](std::exception_ptr e, boost::system::error_code ec) {
                res->done = true;
                res->ex = e;
                res->ec = ec;
            }
        )
    );
    asio::steady_timer t(ioc, after);
    t.async_wait([&sig](boost::system::error_code) { sig.emit(asio::cancellation_type::terminal); }
    );
    const auto end = std::chrono::steady_clock::now() + 5s;
    while (!res->done && std::chrono::steady_clock::now() < end) {
        ioc.run_one_for(10ms);
    }
    t.cancel();
    return *res;
}

} // namespace

TEST_SUITE("integration/client") {
    TEST_CASE("cancellation mid-stream: errc::cancelled, connection closed") {
        harness h;
        delivery d;
        d.chunk_delay = 200ms;
        h.server->enqueue(reply::of(scripted_turn{.content = "a b c d e f"}, d));
        client c(h.ioc.get_executor(), h.config());
        const auto t0 = std::chrono::steady_clock::now();
        auto r = run_cancelled(h.ioc, stream_all(c), 50ms);
        REQUIRE(r.done);
        CHECK(!r.ex);
        CHECK(r.ec == errc::cancelled);
        CHECK(std::chrono::steady_clock::now() - t0 < 1s);
        CHECK(c.idle_connections() == 0);
    }

    TEST_CASE("cancellation during the retry sleep") {
        harness h;
        auto e = error_of(503, error_shape::flat);
        e.retry_after_ms = "5000";
        h.server->enqueue(reply::failure(e));
        auto cfg = h.config();
        cfg.sleep = nullptr; // the real, cancellable timer
        client c(h.ioc.get_executor(), cfg);
        const auto t0 = std::chrono::steady_clock::now();
        auto r = run_cancelled(h.ioc, stream_all(c), 100ms);
        REQUIRE(r.done);
        CHECK(r.ec == errc::cancelled);
        CHECK(std::chrono::steady_clock::now() - t0 < 2s);
        CHECK(h.server->requests().size() == 1);
    }

    TEST_CASE("destroying a stream early closes its connection") {
        harness h;
        delivery d;
        h.server->enqueue(reply::of(scripted_turn{.content = "a b c d e f"}, d));
        h.server->enqueue(reply::text("next"));
        client c(h.ioc.get_executor(), h.config());
        auto first_chunk_only = [](client& cl) -> asio::awaitable<std::size_t> {
            auto s = co_await cl.async_stream(hello());
            co_await s.next();
            co_return 1;
        };
        CHECK(run_coro(h.ioc, first_chunk_only(c)) == 1);
        CHECK(c.idle_connections() == 0);
        CHECK(!run_coro(h.ioc, do_create(c, hello())).ec);
        CHECK(c.connections_opened() == 2);
    }
}
