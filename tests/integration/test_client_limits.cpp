// api::client against hostile or odd replies (issue 10): bodies over 8 MiB and over the limit,
// streams that are not streams, [DONE] without finish_reason, errors inside a stream, content
// that is not text, TLS verification failures that name their cause.
#include <wafer/api/client.hpp>
#include <wafer/testing/fake_server.hpp>

#include <boost/asio/io_context.hpp>

#include <doctest/doctest.h>

#include <memory>
#include <string>

#include "run_coro.hpp"

namespace asio = boost::asio;
using namespace std::chrono_literals;
using wafer::errc;
using wafer::api::chat_request;
using wafer::api::client;
using wafer::api::client_config;
using wafer::testing::fake_server;
using wafer::testing::raw_reply;
using wafer::testing::reply;
using wafer::testing::run_coro;

namespace {

const std::string secret = "sk-LIMITS-0123456789";

asio::awaitable<void> instant(std::chrono::milliseconds) {
    co_return;
}

struct bench {
    asio::io_context ioc;
    std::unique_ptr<fake_server> server;

    explicit bench(wafer::testing::fake_server_config sc = {})
        : server(std::make_unique<fake_server>(ioc.get_executor(), std::move(sc))) {}

    client_config config() const {
        client_config cfg;
        cfg.api_key = secret;
        cfg.base_url = server->base_url();
        cfg.timeouts.connect = 5s;
        cfg.timeouts.read = 5s;
        cfg.sleep = instant; // a retry would show up as a second request, not as a wait
        return cfg;
    }
};

chat_request question() {
    chat_request req;
    req.model = "zai-glm-4.7";
    req.messages.push_back(wafer::api::message::user("hi"));
    return req;
}

struct result {
    boost::system::error_code ec;
    wafer::diagnostics diag;
    std::string text;
};

asio::awaitable<result> create(client& c) {
    result r;
    wafer::api::chat_response resp;
    r.ec = co_await c.async_create(question(), resp, r.diag);
    if (!r.ec) {
        r.text = resp.first_message().text();
    }
    co_return r;
}

asio::awaitable<result> stream(client& c) {
    result r;
    wafer::api::chat_stream s;
    r.ec = co_await c.async_stream(question(), s, r.diag);
    if (r.ec) {
        co_return r;
    }
    for (;;) {
        const auto* ch = co_await s.next(r.ec);
        if (!ch) {
            break;
        }
        r.text += ch->content;
    }
    if (r.ec) {
        r.diag = s.diag();
    }
    co_return r;
}

std::string completion_json(const std::string& content) {
    return R"({"id":"c1","object":"chat.completion","created":1,"model":"m","choices":[)"
           R"({"index":0,"message":{"role":"assistant","content":")" +
           content + R"("},"finish_reason":"stop"}]})";
}

std::string what(const result& r) {
    return wafer::error(r.ec, r.diag).what();
}

std::string sse(const std::string& data) {
    return "data: " + data + "\n\n";
}

std::string content_chunk(const std::string& text) {
    return sse(
        R"({"id":"c1","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":")" +
        text + R"("}}]})"
    );
}

std::string tls_dir() {
    return WAFER_TEST_DATA_DIR "/tls/";
}

} // namespace

TEST_SUITE("integration/client_limits") {
    TEST_CASE("a 9 MiB body with Content-Length: read whole under the limit, refused once over it"
    ) {
        const std::string big(9u * 1024u * 1024u, 'a');
        bench b;
        b.server->enqueue(reply::verbatim(raw_reply{200, "application/json", completion_json(big)})
        );
        client ok(b.ioc.get_executor(), b.config());
        result r = run_coro(b.ioc, create(ok), 60s);
        CHECK_MESSAGE(!r.ec, what(r));
        CHECK(r.text.size() == big.size());

        b.server->enqueue(reply::verbatim(raw_reply{200, "application/json", completion_json(big)})
        );
        b.server->enqueue(reply::text("a retry must not happen"));
        auto small = b.config();
        small.max_response_bytes = 4u * 1024u * 1024u;
        client limited(b.ioc.get_executor(), small);
        const std::size_t before = b.server->requests().size();
        result over = run_coro(b.ioc, create(limited), 60s);
        CHECK(over.ec == errc::response_too_large);
        CHECK(b.server->requests().size() == before + 1); // not retried
        CHECK(over.diag.detail.find("max_response_bytes (4194304 bytes)") != std::string::npos);
        CHECK(over.diag.detail.find("Content-Length 9437") != std::string::npos);
    }

    TEST_CASE("a 9 MiB stream: read whole under the limit, refused once over it") {
        std::string body;
        const std::string piece(1024, 'b');
        for (int i = 0; i < 9 * 1024; ++i) {
            body += content_chunk(piece);
        }
        body +=
            sse(R"({"id":"c1","object":"chat.completion.chunk","choices":[{"index":0,"delta":{},)"
                R"("finish_reason":"stop"}]})");
        bench b;
        b.server->enqueue(reply::verbatim(raw_reply{200, "text/event-stream", body}));
        client ok(b.ioc.get_executor(), b.config());
        result r = run_coro(b.ioc, stream(ok), 60s);
        CHECK_MESSAGE(!r.ec, what(r));
        CHECK(r.text.size() == 9u * 1024u * 1024u);

        b.server->enqueue(reply::verbatim(raw_reply{200, "text/event-stream", body}));
        b.server->enqueue(reply::text("a retry must not happen"));
        auto small = b.config();
        small.max_response_bytes = 4u * 1024u * 1024u;
        client limited(b.ioc.get_executor(), small);
        const std::size_t before = b.server->requests().size();
        result over = run_coro(b.ioc, stream(limited), 60s);
        CHECK(over.ec == errc::response_too_large);
        CHECK(b.server->requests().size() == before + 1);
        CHECK(over.diag.detail.find("max_response_bytes (4194304 bytes)") != std::string::npos);
    }

    TEST_CASE("a 200 with HTML to a stream request names the content type and shows the body") {
        bench b;
        b.server->enqueue(reply::verbatim(raw_reply{
            200, "text/html; charset=utf-8", "<html>\x1b[31mSign in</html>\n"}));
        client c(b.ioc.get_executor(), b.config());
        result r = run_coro(b.ioc, stream(c));
        CHECK(r.ec == errc::invalid_response);
        CHECK(
            r.diag.detail ==
            R"(expected text/event-stream, got text/html; charset=utf-8: <html>\x1b[31mSign in</html>\n)"
        );
        CHECK(b.server->requests().size() == 1);
    }

    TEST_CASE("a 200 with a JSON error object to a stream request is that error") {
        bench b;
        b.server->enqueue(reply::verbatim(raw_reply{
            200,
            "application/json",
            R"({"error":{"message":"model is overloaded","type":"overloaded","code":"busy"}})"}));
        client c(b.ioc.get_executor(), b.config());
        result r = run_coro(b.ioc, stream(c));
        CHECK(r.ec == errc::provider_error);
        CHECK(r.diag.message == "model is overloaded");
        CHECK(r.diag.code == "busy");
        CHECK(what(r).find("5xx") == std::string::npos);
        CHECK(what(r).find("stream ended") == std::string::npos);
    }

    TEST_CASE("[DONE] before any finish_reason is a truncated stream, as EOF is") {
        const std::string partial = content_chunk("Half an ans");
        for (const bool done_marker : {true, false}) {
            CAPTURE(done_marker);
            bench b;
            b.server->enqueue(reply::verbatim(raw_reply{
                200, "text/event-stream", partial + (done_marker ? sse("[DONE]") : "")}));
            client c(b.ioc.get_executor(), b.config());
            result r = run_coro(b.ioc, stream(c));
            CHECK(r.ec == errc::stream_truncated);
            CHECK(r.diag.detail.find("finish_reason") != std::string::npos);
        }
        // With a finish_reason, [DONE] ends the stream normally.
        bench b;
        b.server->enqueue(reply::verbatim(raw_reply{
            200,
            "text/event-stream",
            content_chunk("Whole.") +
                sse(R"({"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]})") +
                sse("[DONE]")}));
        client c(b.ioc.get_executor(), b.config());
        result r = run_coro(b.ioc, stream(c));
        CHECK_MESSAGE(!r.ec, what(r));
        CHECK(r.text == "Whole.");
    }

    TEST_CASE("an error inside a stream without a status code is not labelled HTTP 5xx") {
        bench b;
        b.server->enqueue(reply::verbatim(raw_reply{
            200,
            "text/event-stream",
            content_chunk("Hi") +
                sse(R"({"error":{"message":"context too long","type":"invalid_request_error",)"
                    R"("code":"context_length_exceeded"}})")}));
        client c(b.ioc.get_executor(), b.config());
        result r = run_coro(b.ioc, stream(c));
        CHECK(r.ec == errc::provider_error);
        CHECK(r.diag.http_status == 0);
        CHECK(r.diag.code == "context_length_exceeded");
        const std::string text = what(r);
        CHECK(text.find("5xx") == std::string::npos);
        CHECK(text.find("invalid_request_error") != std::string::npos);
        CHECK(text.find("error event in the stream") != std::string::npos);

        // With a status code inside, that status decides.
        b.server->enqueue(reply::verbatim(raw_reply{
            200,
            "text/event-stream",
            sse(R"({"status_code":503,"error":{"message":"busy","type":"server_error"}})")}));
        result r2 = run_coro(b.ioc, stream(c));
        CHECK(r2.ec == errc::server_error);
        CHECK(r2.diag.http_status == 503);
    }

    TEST_CASE("content that is a number is a protocol error, not an empty answer") {
        bench b;
        b.server->enqueue(reply::verbatim(raw_reply{
            200,
            "application/json",
            R"({"choices":[{"index":0,"message":{"role":"assistant","content":42},)"
            R"("finish_reason":"stop"}]})"}));
        client c(b.ioc.get_executor(), b.config());
        result r = run_coro(b.ioc, create(c));
        CHECK(r.ec == errc::invalid_response);
        CHECK(r.diag.detail.find("content must be a string") != std::string::npos);
    }

    TEST_CASE("TLS: a rejected certificate is not retried (the same one comes back every time)") {
        wafer::testing::fake_server_config sc;
        sc.tls_cert_file = tls_dir() + "server.pem";
        sc.tls_key_file = tls_dir() + "server.key";
        bench b(sc);
        auto cfg = b.config(); // no CA file: the test CA is not trusted
        cfg.retry.max_retries = 2;
        client untrusted(b.ioc.get_executor(), cfg);
        result r = run_coro(b.ioc, create(untrusted));
        CHECK(r.ec == errc::tls_failed);
        CHECK(r.diag.refused);
        CHECK(r.diag.attempts == 1);
    }

    TEST_CASE("TLS: a host name the certificate lacks is not reported as an untrusted CA") {
        wafer::testing::fake_server_config sc;
        sc.tls_cert_file = tls_dir() + "server.pem";
        sc.tls_key_file = tls_dir() + "server.key";
        bench b(sc);
        auto cfg = b.config();
        cfg.ca_file = tls_dir() + "ca.pem";
        cfg.retry.max_retries = 0;
        // "127.1" reaches 127.0.0.1 but is a name the certificate (localhost, 127.0.0.1) lacks.
        cfg.base_url = "https://127.1:" + std::to_string(b.server->port());
        client wrong_name(b.ioc.get_executor(), cfg);
        result r = run_coro(b.ioc, create(wrong_name));
        REQUIRE_MESSAGE(r.ec != errc::resolve_failed, "127.1 does not resolve here");
        CHECK(r.ec == errc::tls_failed);
        CHECK_MESSAGE(
            r.diag.detail.find("the certificate is not valid for 127.1 (hostname mismatch)") !=
                std::string::npos,
            r.diag.detail
        );
        CHECK(r.diag.detail.find("trusted CA") == std::string::npos);

        auto no_ca = b.config();
        no_ca.retry.max_retries = 0;
        client untrusted(b.ioc.get_executor(), no_ca);
        result u = run_coro(b.ioc, create(untrusted));
        CHECK(u.ec == errc::tls_failed);
        CHECK_MESSAGE(
            u.diag.detail.find("not signed by a trusted CA") != std::string::npos, u.diag.detail
        );
        CHECK(u.diag.detail.find("hostname mismatch") == std::string::npos);

        // The right name and CA still work.
        b.server->enqueue(reply::text("fine"));
        auto good = b.config();
        good.ca_file = tls_dir() + "ca.pem";
        client ok(b.ioc.get_executor(), good);
        result g = run_coro(b.ioc, create(ok));
        CHECK_MESSAGE(!g.ec, what(g));
    }
}
