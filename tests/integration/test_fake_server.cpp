// The fake Cerebras server, driven over loopback by a minimal Beast client written here (not
// wafer's client), so these tests pin down the wire format other tests rely on.
#include <wafer/testing/fake_server.hpp>
#include <wafer/testing/offline_model.hpp>
#include <wafer/testing/script.hpp>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/connect.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

#include <array>
#include <cctype>
#include <chrono>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "run_coro.hpp"

namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace ssl = asio::ssl;
using tcp = asio::ip::tcp;
using nlohmann::json;
using wafer::testing::delivery;
using wafer::testing::fake_server;
using wafer::testing::fake_server_config;
using wafer::testing::reply;
using wafer::testing::run_coro;
using wafer::testing::scripted_error;
using wafer::testing::scripted_turn;

constexpr auto nothrow = asio::as_tuple(asio::use_awaitable);
const std::string tls_dir = std::string(WAFER_TEST_DATA_DIR) + "/tls";

// ---- a minimal HTTP client ------------------------------------------------------------------

struct http_result {
    unsigned status = 0;
    std::vector<std::pair<std::string, std::string>> headers; ///< lower-case names
    std::string body;
    bool chunked = false;
    boost::system::error_code ec; ///< set when the response did not complete

    std::string header(const std::string& name) const {
        for (const auto& [k, v] : headers) {
            if (k == name) {
                return v;
            }
        }
        return {};
    }
    bool has_header(const std::string& name) const {
        for (const auto& h : headers) {
            if (h.first == name) {
                return true;
            }
        }
        return false;
    }
};

http::request<http::string_body> make_request(
    http::verb method,
    std::string target,
    std::string body = {},
    std::vector<std::pair<std::string, std::string>> headers = {}
) {
    http::request<http::string_body> req{method, target, 11};
    req.set(http::field::host, "127.0.0.1");
    req.set(http::field::accept, "application/json");
    if (method == http::verb::post) {
        req.set(http::field::content_type, "application/json");
    }
    for (const auto& [k, v] : headers) {
        req.set(k, v);
    }
    req.body() = std::move(body);
    req.prepare_payload();
    return req;
}

std::string chat_body(bool stream, const std::string& text = "Say hi") {
    json j = {
        {"model", "zai-glm-4.7"},
        {"messages", json::array({{{"role", "user"}, {"content", text}}})}};
    if (stream) {
        j["stream"] = true;
        j["stream_options"] = {{"include_usage", true}};
    }
    return j.dump();
}

http::request<http::string_body> chat(bool stream, const std::string& text = "Say hi") {
    return make_request(http::verb::post, "/v1/chat/completions", chat_body(stream, text));
}

std::string lower(std::string s) {
    for (auto& c : s) {
        c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    }
    return s;
}

/// Sends each request in turn on one connection and reads each response (stops at an error).
template <class Stream>
asio::awaitable<std::vector<http_result>>
exchange_all(std::shared_ptr<Stream> s, std::vector<http::request<http::string_body>> reqs) {
    std::vector<http_result> out;
    beast::flat_buffer buf;
    for (auto& req : reqs) {
        http_result r;
        auto [wec, wn] = co_await http::async_write(*s, req, nothrow);
        if (wec) {
            r.ec = wec;
            out.push_back(std::move(r));
            break;
        }
        http::response_parser<http::string_body> parser;
        parser.body_limit(boost::none);
        auto [ec, n] = co_await http::async_read(*s, buf, parser, nothrow);
        const auto& res = parser.get();
        r.status = parser.is_header_done() ? res.result_int() : 0;
        for (const auto& f : res) {
            r.headers.emplace_back(lower(std::string(f.name_string())), std::string(f.value()));
        }
        r.body = res.body();
        r.chunked = parser.chunked();
        r.ec = ec;
        out.push_back(std::move(r));
        if (ec) {
            break;
        }
    }
    co_return out;
}

asio::awaitable<std::vector<http_result>>
round_trip(unsigned short port, std::vector<http::request<http::string_body>> reqs) {
    auto ex = co_await asio::this_coro::executor;
    auto s = std::make_shared<beast::tcp_stream>(ex);
    co_await s->async_connect(
        tcp::endpoint(asio::ip::make_address("127.0.0.1"), port), asio::use_awaitable
    );
    co_return co_await exchange_all(s, std::move(reqs));
}

asio::awaitable<http_result> fetch(unsigned short port, http::request<http::string_body> req) {
    std::vector<http::request<http::string_body>> reqs;
    reqs.push_back(std::move(req));
    auto all = co_await round_trip(port, std::move(reqs));
    co_return all.at(0);
}

/// TLS with verification on against the test CA, SNI and hostname check for `host`.
/// Returns the handshake error if it fails.
asio::awaitable<std::pair<boost::system::error_code, std::vector<http_result>>> tls_round_trip(
    unsigned short port, std::string host, std::vector<http::request<http::string_body>> reqs
) {
    auto ex = co_await asio::this_coro::executor;
    ssl::context ctx{ssl::context::tls_client};
    ctx.set_verify_mode(ssl::verify_peer);
    ctx.load_verify_file(tls_dir + "/ca.pem");
    auto s = std::make_shared<ssl::stream<beast::tcp_stream>>(ex, ctx);
    // SSL_set_tlsext_host_name is a macro with a C-style cast; call what it expands to.
    if (SSL_ctrl(
            s->native_handle(),
            SSL_CTRL_SET_TLSEXT_HOSTNAME,
            TLSEXT_NAMETYPE_host_name,
            static_cast<void*>(host.data())
        ) != 1) {
        throw std::runtime_error("SNI");
    }
    s->set_verify_callback(ssl::host_name_verification(host));
    co_await beast::get_lowest_layer(*s).async_connect(
        tcp::endpoint(asio::ip::make_address("127.0.0.1"), port), asio::use_awaitable
    );
    auto [ec] = co_await s->async_handshake(ssl::stream_base::client, nothrow);
    if (ec) {
        co_return std::make_pair(ec, std::vector<http_result>{});
    }
    auto results = co_await exchange_all(s, std::move(reqs));
    co_return std::make_pair(boost::system::error_code{}, std::move(results));
}

/// Writes raw bytes and reads everything until the server closes (or `max_wait` passes).
asio::awaitable<std::string> raw_exchange(unsigned short port, std::string request) {
    auto ex = co_await asio::this_coro::executor;
    beast::tcp_stream s(ex);
    co_await s.async_connect(
        tcp::endpoint(asio::ip::make_address("127.0.0.1"), port), asio::use_awaitable
    );
    co_await asio::async_write(s, asio::buffer(request), asio::use_awaitable);
    std::string out;
    std::array<char, 16384> buf{};
    for (;;) {
        s.expires_after(std::chrono::seconds(5));
        auto [ec, n] = co_await s.async_read_some(asio::buffer(buf), nothrow);
        out.append(buf.data(), n);
        if (ec) {
            break;
        }
    }
    co_return out;
}

std::string raw_request(const http::request<http::string_body>& req, bool close = true) {
    auto copy = req;
    copy.keep_alive(!close);
    std::ostringstream ss;
    ss << copy;
    return ss.str();
}

struct chunked_body {
    std::vector<std::string> chunks;
    bool complete = false; ///< the last (zero) chunk arrived
};

/// Decodes a raw HTTP/1.1 response with chunked encoding into its chunks.
chunked_body decode_chunked(const std::string& raw) {
    chunked_body out;
    auto pos = raw.find("\r\n\r\n");
    REQUIRE(pos != std::string::npos);
    pos += 4;
    while (pos < raw.size()) {
        const auto eol = raw.find("\r\n", pos);
        if (eol == std::string::npos) {
            break;
        }
        const auto size = std::stoul(raw.substr(pos, eol - pos), nullptr, 16);
        if (size == 0) {
            out.complete = raw.compare(eol, 4, "\r\n\r\n") == 0;
            break;
        }
        if (eol + 2 + size > raw.size()) {
            out.chunks.push_back(raw.substr(eol + 2));
            break;
        }
        out.chunks.push_back(raw.substr(eol + 2, size));
        pos = eol + 2 + size + 2;
    }
    return out;
}

/// The data payloads of an SSE body; every event must be exactly "data: …\n\n".
std::vector<std::string> sse_data(const std::string& body) {
    std::vector<std::string> out;
    std::size_t pos = 0;
    while (pos < body.size()) {
        const auto end = body.find("\n\n", pos);
        REQUIRE(end != std::string::npos);
        const auto event = body.substr(pos, end - pos);
        REQUIRE(event.rfind("data: ", 0) == 0);
        out.push_back(event.substr(6));
        pos = end + 2;
    }
    return out;
}

std::vector<json> sse_json(const std::string& body) {
    std::vector<json> out;
    for (const auto& d : sse_data(body)) {
        out.push_back(json::parse(d));
    }
    return out;
}

bool is_hex(const std::string& s) {
    return s.find_first_not_of("0123456789abcdef") == std::string::npos;
}

scripted_turn full_turn() {
    scripted_turn t;
    t.reasoning = "The user wants a greeting. I will call the tool.";
    t.content = "Hello there, friend";
    t.tool_calls = {
        {.id = "", .name = "lookup", .arguments = R"({"q":"hi"})"},
        {.id = "abc123def", .name = "add", .arguments = R"({"a":2,"b":3})"}};
    return t;
}

} // namespace

TEST_SUITE("integration/fake_server") {

    TEST_CASE("binds 127.0.0.1 on an ephemeral port") {
        asio::io_context ioc;
        fake_server server(ioc.get_executor());
        CHECK(server.port() != 0);
        CHECK(server.base_url() == "http://127.0.0.1:" + std::to_string(server.port()));
    }

    TEST_CASE("non-streaming reply is shaped like a real chat.completion") {
        // setup
        asio::io_context ioc;
        fake_server server(ioc.get_executor());
        server.enqueue(reply::of(full_turn()));
        // run
        auto r = run_coro(ioc, fetch(server.port(), chat(false)));
        // check
        REQUIRE(r.status == 200);
        CHECK(r.header("content-type") == "application/json");
        const auto j = json::parse(r.body);
        CHECK(j["id"].get<std::string>().rfind("chatcmpl-", 0) == 0);
        CHECK(j["id"].get<std::string>().size() == 9 + 36);
        CHECK(j["object"] == "chat.completion");
        CHECK(j["created"].is_number_integer());
        CHECK(j["model"] == "zai-glm-4.7");
        CHECK(j["system_fingerprint"].get<std::string>().rfind("fp_", 0) == 0);
        const auto& choice = j["choices"].at(0);
        CHECK(choice["index"] == 0);
        CHECK(choice["finish_reason"] == "tool_calls");
        const auto& m = choice["message"];
        CHECK(m["role"] == "assistant");
        CHECK(m["content"] == "Hello there, friend");
        CHECK(m["reasoning"] == "The user wants a greeting. I will call the tool.");
        REQUIRE(m["tool_calls"].size() == 2);
        const auto id0 = m["tool_calls"][0]["id"].get<std::string>();
        CHECK(id0.size() == 9);
        CHECK(is_hex(id0));
        CHECK(m["tool_calls"][0]["type"] == "function");
        CHECK(m["tool_calls"][0]["function"]["name"] == "lookup");
        CHECK(m["tool_calls"][0]["function"]["arguments"] == R"({"q":"hi"})");
        CHECK(m["tool_calls"][1]["id"] == "abc123def");
        CHECK_FALSE(m["tool_calls"][0].contains("index"));
        const auto& u = j["usage"];
        CHECK(u["prompt_tokens"].get<int>() > 0);
        CHECK(u["completion_tokens"].get<int>() > 0);
        CHECK(
            u["total_tokens"] == u["prompt_tokens"].get<int>() + u["completion_tokens"].get<int>()
        );
        CHECK(u["prompt_tokens_details"]["cached_tokens"] == 0);
        CHECK(u["completion_tokens_details"]["reasoning_tokens"].get<int>() > 0);
        CHECK(j["time_info"]["created"].is_number_float());
        CHECK(j["time_info"]["total_time"].is_number_float());

        // the agent's own wire types read it
        const auto parsed = j.get<wafer::api::chat_response>();
        CHECK(parsed.first_message().tool_calls.size() == 2);
        CHECK(parsed.choices.at(0).finish_reason == wafer::api::finish_reason::tool_calls);
    }

    TEST_CASE("non-streaming reply omits absent content and reasoning") {
        asio::io_context ioc;
        fake_server server(ioc.get_executor());
        server.enqueue(reply::of({.tool_calls = {{.id = "", .name = "f", .arguments = "{}"}}}));
        server.enqueue(reply::text("plain"));
        auto rs = run_coro(ioc, round_trip(server.port(), {chat(false), chat(false)}));
        REQUIRE(rs.size() == 2);
        const auto a = json::parse(rs[0].body)["choices"][0]["message"];
        CHECK_FALSE(a.contains("content"));
        CHECK_FALSE(a.contains("reasoning"));
        CHECK(a["tool_calls"].size() == 1);
        const auto b = json::parse(rs[1].body)["choices"][0];
        CHECK(b["message"]["content"] == "plain");
        CHECK_FALSE(b["message"].contains("reasoning"));
        CHECK_FALSE(b["message"].contains("tool_calls"));
        CHECK(b["finish_reason"] == "stop");
    }

    TEST_CASE("streaming reply: SSE framing and chunk order like the recordings") {
        asio::io_context ioc;
        fake_server server(ioc.get_executor());
        server.enqueue(reply::of(full_turn()));
        auto r = run_coro(ioc, fetch(server.port(), chat(true)));
        REQUIRE(r.status == 200);
        CHECK_FALSE(r.ec);
        CHECK(r.header("content-type") == "text/event-stream; charset=utf-8");
        CHECK(r.chunked);
        CHECK(r.body.find("[DONE]") == std::string::npos);

        const auto events = sse_json(r.body);
        // role, 10 reasoning words, 3 content words, one tool-call chunk, final
        REQUIRE(events.size() == 1 + 10 + 3 + 1 + 1);
        const auto id = events[0]["id"];
        std::string reasoning, content;
        for (std::size_t i = 0; i < events.size(); ++i) {
            const auto& e = events[i];
            CAPTURE(i);
            CHECK(e["id"] == id);
            CHECK(e["object"] == "chat.completion.chunk");
            CHECK(e["created"].is_number_integer());
            CHECK(e["model"] == "zai-glm-4.7");
            CHECK(e["choices"][0]["index"] == 0);
            const auto& d = e["choices"][0]["delta"];
            if (i + 1 < events.size()) {
                CHECK_FALSE(e["choices"][0].contains("finish_reason"));
                CHECK_FALSE(e.contains("usage"));
            }
            if (i == 0) {
                CHECK(d == json{{"role", "assistant"}});
            } else if (i <= 10) {
                reasoning += d.at("reasoning").get<std::string>();
            } else if (i <= 13) {
                content += d.at("content").get<std::string>();
            } else if (i == 14) {
                REQUIRE(d.at("tool_calls").size() == 2);
                for (int k = 0; k < 2; ++k) {
                    const auto& call = d["tool_calls"][static_cast<std::size_t>(k)];
                    CHECK(call["index"] == k);
                    CHECK(call["type"] == "function");
                    CHECK(call["id"].get<std::string>().size() == 9);
                }
                CHECK(d["tool_calls"][1]["function"]["name"] == "add");
                CHECK(d["tool_calls"][1]["function"]["arguments"] == R"({"a":2,"b":3})");
            }
        }
        CHECK(reasoning == full_turn().reasoning);
        CHECK(content == full_turn().content);
        const auto& last = events.back();
        CHECK(last["choices"][0]["delta"] == json::object());
        CHECK(last["choices"][0]["finish_reason"] == "tool_calls");
        CHECK(last["usage"]["prompt_tokens_details"]["cached_tokens"] == 0);
        CHECK(last["usage"]["completion_tokens"].get<int>() > 0);
        CHECK(last["time_info"]["created"].is_number_float());
    }

    TEST_CASE("streaming: chunk_chars splits by bytes without breaking UTF-8; [DONE] on request") {
        asio::io_context ioc;
        fake_server server(ioc.get_executor());
        delivery how;
        how.chunk_chars = 2;
        how.done_marker = true;
        server.enqueue(reply::of({.content = "h\xC3\xA9llo"}, how)); // "héllo"
        auto r = run_coro(ioc, fetch(server.port(), chat(true)));
        const auto data = sse_data(r.body);
        REQUIRE(data.size() == 1 + 4 + 1 + 1);
        CHECK(data.back() == "[DONE]");
        std::vector<std::string> pieces;
        for (std::size_t i = 1; i <= 4; ++i) {
            pieces.push_back(
                json::parse(data[i])["choices"][0]["delta"]["content"].get<std::string>()
            );
        }
        CHECK(pieces == std::vector<std::string>{"h", "\xC3\xA9", "ll", "o"});
    }

    TEST_CASE("HTTP errors: every body shape, status and retry headers verbatim") {
        asio::io_context ioc;
        fake_server server(ioc.get_executor());
        scripted_error flat{
            .status = 429,
            .shape = wafer::testing::error_shape::flat,
            .message = "Requests per minute limit exceeded - too many requests sent.",
            .type = "too_many_requests_error",
            .code = "request_quota_exceeded",
            .param = "quota",
            .retry_after = "2",
            .retry_after_ms = "1500.5",
            .should_retry = "true"};
        delivery with_limits;
        with_limits.headers = {
            {"x-ratelimit-remaining-requests-day", "99"},
            {"x-ratelimit-reset-tokens-minute", "33011.382867097855"}};
        server.enqueue(reply::failure(flat, with_limits));
        server.enqueue(reply::failure({.status = 503, .shape = wafer::testing::error_shape::nested})
        );
        server.enqueue(reply::failure(
            {.status = 422, .shape = wafer::testing::error_shape::detail, .message = "bad field"}
        ));
        server.enqueue(reply::failure({.status = 400, .should_retry = "false"}));

        auto rs = run_coro(
            ioc, round_trip(server.port(), {chat(false), chat(true), chat(false), chat(false)})
        );
        REQUIRE(rs.size() == 4);

        CHECK(rs[0].status == 429);
        CHECK(rs[0].header("content-type") == "application/json");
        CHECK(
            json::parse(rs[0].body) ==
            json{
                {"message", "Requests per minute limit exceeded - too many requests sent."},
                {"type", "too_many_requests_error"},
                {"param", "quota"},
                {"code", "request_quota_exceeded"}}
        );
        CHECK(rs[0].header("retry-after") == "2");
        CHECK(rs[0].header("retry-after-ms") == "1500.5");
        CHECK(rs[0].header("x-should-retry") == "true");
        CHECK(rs[0].header("x-ratelimit-remaining-requests-day") == "99");
        CHECK(rs[0].header("x-ratelimit-reset-tokens-minute") == "33011.382867097855");

        CHECK(rs[1].status == 503); // a streaming request still gets a plain HTTP error
        const auto nested = json::parse(rs[1].body);
        CHECK(nested["status_code"] == 503);
        CHECK(nested["error"]["message"] == "Encountered a server error, please try again.");
        CHECK(nested["error"]["type"] == "server_error");
        CHECK(nested["error"].contains("param"));
        CHECK(nested["error"].contains("code"));
        CHECK_FALSE(rs[1].has_header("retry-after"));

        CHECK(rs[2].status == 422);
        CHECK(json::parse(rs[2].body) == json{{"detail", "bad field"}});

        CHECK(rs[3].status == 400);
        CHECK(rs[3].header("x-should-retry") == "false");
        CHECK_FALSE(rs[3].has_header("retry-after-ms"));
    }

    TEST_CASE("mid-stream error event after N chunks, then a clean end") {
        asio::io_context ioc;
        fake_server server(ioc.get_executor());
        delivery how;
        how.error_after_chunks = 2;
        how.stream_error = {.status = 500, .message = "boom", .type = "server_error"};
        server.enqueue(reply::of({.content = "one two three four"}, how));
        auto r = run_coro(ioc, fetch(server.port(), chat(true)));
        CHECK_FALSE(r.ec); // the chunked body ended properly
        const auto events = sse_json(r.body);
        REQUIRE(events.size() == 3);
        CHECK(events[0]["choices"][0]["delta"]["role"] == "assistant");
        CHECK(events[1]["choices"][0]["delta"]["content"] == "one");
        CHECK(events[2]["status_code"] == 500);
        CHECK(events[2]["error"]["message"] == "boom");
        CHECK(events[2]["error"]["type"] == "server_error");
    }

    TEST_CASE("disconnect after N chunks closes without ending the chunked body") {
        asio::io_context ioc;
        fake_server server(ioc.get_executor());
        delivery how;
        how.disconnect_after_chunks = 3;
        server.enqueue(reply::of({.content = "one two three four"}, how));
        server.enqueue(reply::of({.content = "one two three four"}, how));

        // A parser sees a partial message.
        auto r = run_coro(ioc, fetch(server.port(), chat(true)));
        CHECK(r.ec == http::error::partial_message);
        CHECK(sse_data(r.body).size() == 3);

        // On the wire: three events and no zero-length chunk.
        const auto raw = run_coro(ioc, raw_exchange(server.port(), raw_request(chat(true), false)));
        const auto body = decode_chunked(raw);
        CHECK_FALSE(body.complete);
        std::string joined;
        for (const auto& c : body.chunks) {
            joined += c;
        }
        CHECK(sse_data(joined).size() == 3);
    }

    TEST_CASE("non-streaming disconnect: nothing, or half a body") {
        asio::io_context ioc;
        fake_server server(ioc.get_executor());
        delivery nothing;
        nothing.disconnect_after_chunks = 0;
        delivery half;
        half.disconnect_after_chunks = 1;
        server.enqueue(reply::text("x", nothing));
        server.enqueue(reply::text("a longer reply so half of it is visible", half));
        auto a = run_coro(ioc, fetch(server.port(), chat(false)));
        CHECK(a.ec);
        CHECK(a.status == 0);
        auto b = run_coro(ioc, fetch(server.port(), chat(false)));
        CHECK(b.status == 200);
        CHECK(b.ec == http::error::partial_message);
    }

    TEST_CASE("malformed chunk at position N is not JSON; the rest of the stream is") {
        asio::io_context ioc;
        fake_server server(ioc.get_executor());
        delivery how;
        how.malformed_chunk_at = 1;
        server.enqueue(reply::of({.content = "alpha beta"}, how));
        auto r = run_coro(ioc, fetch(server.port(), chat(true)));
        CHECK_FALSE(r.ec);
        const auto data = sse_data(r.body);
        REQUIRE(data.size() == 4);
        CHECK(json::accept(data[0]));
        CHECK_FALSE(json::accept(data[1]));
        CHECK(json::accept(data[2]));
        CHECK(json::parse(data[3])["choices"][0]["finish_reason"] == "stop");
    }

    TEST_CASE("header delay and inter-chunk delay; paced events are separate HTTP chunks") {
        asio::io_context ioc;
        fake_server server(ioc.get_executor());
        delivery slow_header;
        slow_header.header_delay = std::chrono::milliseconds(60);
        delivery paced;
        paced.chunk_delay = std::chrono::milliseconds(15);
        server.enqueue(reply::text("hi", slow_header));
        server.enqueue(reply::of({.content = "a b c"}, paced));

        auto t0 = std::chrono::steady_clock::now();
        auto a = run_coro(ioc, fetch(server.port(), chat(false)));
        CHECK(a.status == 200);
        CHECK(std::chrono::steady_clock::now() - t0 >= std::chrono::milliseconds(55));

        t0 = std::chrono::steady_clock::now();
        const auto raw = run_coro(ioc, raw_exchange(server.port(), raw_request(chat(true))));
        // 5 events, 4 pauses
        CHECK(std::chrono::steady_clock::now() - t0 >= std::chrono::milliseconds(55));
        const auto body = decode_chunked(raw);
        CHECK(body.complete);
        CHECK(body.chunks.size() == 5);
    }

    TEST_CASE("unpaced streams are coalesced into few large writes") {
        asio::io_context ioc;
        fake_server server(ioc.get_executor());
        std::string content;
        for (int i = 0; i < 20000; ++i) {
            content += " tok";
        }
        delivery how;
        how.chunk_chars = 4;
        server.enqueue(reply::of({.content = content}, how));
        const auto raw = run_coro(ioc, raw_exchange(server.port(), raw_request(chat(true))));
        const auto body = decode_chunked(raw);
        CHECK(body.complete);
        std::string joined;
        for (const auto& c : body.chunks) {
            joined += c;
        }
        const auto data = sse_data(joined);
        CHECK(data.size() == 20000 + 2);
        CHECK(json::parse(data[1])["choices"][0]["delta"]["content"] == " tok");
        CHECK(json::parse(data.back())["usage"]["completion_tokens"] == 20000);
        // ~4 MB of events in 64 KiB chunks: far fewer chunks than events
        CHECK(body.chunks.size() < 200);
    }

    TEST_CASE("raw verbatim reply replays a recorded SSE body byte for byte") {
        std::ifstream in(
            std::string(WAFER_FIXTURES_DIR) +
            "/vercel-ai-glm-4.7/cererebras-structured-output-tools.1.chunks.txt"
        );
        REQUIRE(in);
        std::string recorded, line;
        while (std::getline(in, line)) {
            if (!line.empty()) {
                recorded += "data: " + line + "\n\n";
            }
        }
        asio::io_context ioc;
        fake_server server(ioc.get_executor());
        server.enqueue(reply::verbatim(
            {.status = 200, .content_type = "text/event-stream; charset=utf-8", .body = recorded}
        ));
        server.enqueue(
            reply::verbatim({.status = 418, .content_type = "text/plain", .body = "teapot"})
        );
        auto rs = run_coro(ioc, round_trip(server.port(), {chat(true), chat(false)}));
        REQUIRE(rs.size() == 2);
        CHECK(rs[0].chunked);
        CHECK(rs[0].body == recorded);
        CHECK(rs[1].status == 418);
        CHECK(rs[1].header("content-type") == "text/plain");
        CHECK(rs[1].body == "teapot");
    }

    TEST_CASE("TLS with the test CA: verification and hostname check on") {
        asio::io_context ioc;
        fake_server_config cfg;
        cfg.tls_cert_file = tls_dir + "/server.pem";
        cfg.tls_key_file = tls_dir + "/server.key";
        fake_server server(ioc.get_executor(), cfg);
        CHECK(server.base_url().rfind("https://127.0.0.1:", 0) == 0);
        server.enqueue(reply::text("secure"));
        server.enqueue(reply::text("also secure"));

        auto [ec1, by_name] =
            run_coro(ioc, tls_round_trip(server.port(), "localhost", {chat(false)}));
        REQUIRE_FALSE(ec1);
        REQUIRE(by_name.size() == 1);
        CHECK(json::parse(by_name[0].body)["choices"][0]["message"]["content"] == "secure");

        auto [ec2, by_ip] = run_coro(ioc, tls_round_trip(server.port(), "127.0.0.1", {chat(true)}));
        REQUIRE_FALSE(ec2);
        CHECK(sse_json(by_ip.at(0).body).size() == 4); // role, 2 words, final

        // a name the certificate does not carry fails verification
        auto [ec3, none] =
            run_coro(ioc, tls_round_trip(server.port(), "example.com", {chat(false)}));
        CHECK(ec3);
        CHECK(none.empty());
    }

    TEST_CASE("auth: 403 without a header, 401 with a wrong key, public endpoints open") {
        asio::io_context ioc;
        fake_server_config cfg;
        cfg.api_key = "sk-test-123";
        fake_server server(ioc.get_executor(), cfg);
        server.enqueue(reply::text("ok"));
        auto with_key = [](std::string key) {
            return make_request(
                http::verb::post, "/v1/chat/completions", chat_body(false), {{"Authorization", key}}
            );
        };
        auto rs = run_coro(
            ioc,
            round_trip(
                server.port(),
                {chat(false),
                 with_key("Bearer wrong"),
                 with_key("Bearer sk-test-123"),
                 make_request(http::verb::get, "/v1/models"),
                 make_request(http::verb::get, "/public/v1/models"),
                 make_request(http::verb::get, "/v1/tcp_warming"),
                 make_request(
                     http::verb::get, "/v1/models", {}, {{"Authorization", "Bearer sk-test-123"}}
                 )}
            )
        );
        REQUIRE(rs.size() == 7);
        CHECK(rs[0].status == 403);
        CHECK(json::parse(rs[0].body) == json{{"detail", "Not authenticated"}});
        CHECK(rs[1].status == 401);
        CHECK(
            json::parse(rs[1].body) ==
            json{
                {"message", "Wrong API Key"},
                {"type", "invalid_request_error"},
                {"param", "api_key"},
                {"code", "wrong_api_key"}}
        );
        CHECK(rs[2].status == 200);
        CHECK(rs[3].status == 403);
        CHECK(rs[4].status == 200);
        const auto pub = json::parse(rs[4].body);
        CHECK(pub["data"][0]["limits"]["max_context_length"] == 131072);
        CHECK(pub["data"][0]["limits"].contains("max_completion_tokens"));
        CHECK(rs[5].status == 200);
        CHECK(rs[6].status == 200);
        const auto models = json::parse(rs[6].body);
        CHECK(models["object"] == "list");
        REQUIRE(models["data"].size() == 2);
        CHECK(models["data"][0]["id"] == "zai-glm-4.7");
        CHECK(models["data"][0]["object"] == "model");
        CHECK(models["data"][0].contains("created"));
        CHECK(models["data"][0].contains("owned_by"));
        CHECK(server.pending() == 0);
    }

    TEST_CASE("keep-alive: two requests on one connection; concurrent connections") {
        using namespace asio::experimental::awaitable_operators;
        asio::io_context ioc;
        fake_server server(ioc.get_executor());
        server.enqueue({reply::text("first"), reply::text("second")});
        auto rs = run_coro(ioc, round_trip(server.port(), {chat(false), chat(true)}));
        REQUIRE(rs.size() == 2);
        CHECK(json::parse(rs[0].body)["choices"][0]["message"]["content"] == "first");
        CHECK(sse_json(rs[1].body).at(1)["choices"][0]["delta"]["content"] == "second");
        CHECK(server.open_connections() == 1);

        // three slow replies at once finish together, not one after another
        delivery slow;
        slow.header_delay = std::chrono::milliseconds(150);
        server.enqueue({reply::text("a", slow), reply::text("b", slow), reply::text("c", slow)});
        const auto t0 = std::chrono::steady_clock::now();
        auto [x, y, z] = run_coro(
            ioc,
            fetch(server.port(), chat(false)) && fetch(server.port(), chat(false)) &&
                fetch(server.port(), chat(false))
        );
        CHECK(std::chrono::steady_clock::now() - t0 < std::chrono::milliseconds(400));
        CHECK(x.status == 200);
        CHECK(y.status == 200);
        CHECK(z.status == 200);
    }

    TEST_CASE("records every request; chat_requests parses the bodies") {
        asio::io_context ioc;
        fake_server server(ioc.get_executor());
        server.enqueue(reply::text("ok"));
        auto req = make_request(
            http::verb::post,
            "/v1/chat/completions",
            chat_body(false, "remember me"),
            {{"Authorization", "Bearer sk-rec"}, {"X-Stainless-Retry-Count", "0"}}
        );
        auto rs = run_coro(
            ioc, round_trip(server.port(), {make_request(http::verb::get, "/v1/tcp_warming"), req})
        );
        REQUIRE(rs.size() == 2);
        const auto& recorded = server.requests();
        REQUIRE(recorded.size() == 2);
        CHECK(recorded[0].method == "GET");
        CHECK(recorded[0].target == "/v1/tcp_warming");
        CHECK(recorded[1].method == "POST");
        CHECK(recorded[1].target == "/v1/chat/completions");
        CHECK(recorded[1].header("authorization") == "Bearer sk-rec");
        CHECK(recorded[1].header("x-stainless-retry-count") == "0");
        CHECK(recorded[1].header("content-type") == "application/json");
        CHECK(recorded[1].body == chat_body(false, "remember me"));
        const auto chats = server.chat_requests();
        REQUIRE(chats.size() == 1);
        CHECK(chats[0].model == "zai-glm-4.7");
        REQUIRE(chats[0].messages.size() == 1);
        CHECK(chats[0].messages[0].text() == "remember me");
        server.clear_requests();
        CHECK(server.requests().empty());
    }

    TEST_CASE("404, 405, 400 on bad JSON, 500 on an empty queue, fallback and responder") {
        asio::io_context ioc;
        fake_server_config cfg;
        fake_server server(ioc.get_executor(), cfg);
        server.enqueue(reply::text("kept for the valid request"));
        auto rs = run_coro(
            ioc,
            round_trip(
                server.port(),
                {make_request(http::verb::get, "/v2/nothing"),
                 make_request(http::verb::get, "/v1/chat/completions"),
                 make_request(http::verb::post, "/v1/chat/completions", "{not json"),
                 make_request(http::verb::post, "/v1/chat/completions", R"({"model":"m"})"),
                 chat(false),
                 chat(false)}
            )
        );
        REQUIRE(rs.size() == 6);
        CHECK(rs[0].status == 404);
        CHECK(rs[0].body.empty());
        CHECK(rs[0].header("content-type").rfind("text/plain", 0) == 0);
        CHECK(rs[1].status == 405);
        CHECK(rs[2].status == 400);
        const auto bad = json::parse(rs[2].body);
        CHECK(bad["type"] == "invalid_request_error");
        CHECK(bad.contains("message"));
        CHECK(rs[3].status == 400);
        CHECK(json::parse(rs[3].body)["param"] == "messages");
        CHECK(
            json::parse(rs[4].body)["choices"][0]["message"]["content"] ==
            "kept for the valid request"
        );
        CHECK(rs[5].status == 500);
        CHECK(json::parse(rs[5].body)["code"] == "no_scripted_reply");

        server.set_responder([](const wafer::api::chat_request& req) {
            return reply::text("echo: " + req.messages.back().text());
        });
        auto echoed = run_coro(ioc, fetch(server.port(), chat(false, "ping")));
        CHECK(json::parse(echoed.body)["choices"][0]["message"]["content"] == "echo: ping");

        fake_server_config with_fallback;
        with_fallback.fallback = reply::text("fallback");
        fake_server other(ioc.get_executor(), with_fallback);
        auto fb = run_coro(ioc, round_trip(other.port(), {chat(false), chat(false)}));
        CHECK(json::parse(fb.at(1).body)["choices"][0]["message"]["content"] == "fallback");
    }

    TEST_CASE("Expect: 100-continue is answered") {
        asio::io_context ioc;
        fake_server server(ioc.get_executor());
        server.enqueue(reply::text("continued"));
        auto req = chat(false);
        req.set(http::field::expect, "100-continue");
        const auto raw = run_coro(ioc, raw_exchange(server.port(), raw_request(req)));
        CHECK(raw.rfind("HTTP/1.1 100 Continue\r\n\r\n", 0) == 0);
        CHECK(raw.find("continued") != std::string::npos);
    }

    namespace {
    asio::awaitable<void> stop_after(fake_server* server, std::chrono::milliseconds d) {
        asio::steady_timer t(co_await asio::this_coro::executor);
        t.expires_after(d);
        co_await t.async_wait(asio::use_awaitable);
        server->stop();
    }
    } // namespace

    TEST_CASE("stop() closes open connections, even mid-stream") {
        using namespace asio::experimental::awaitable_operators;
        asio::io_context ioc;
        fake_server server(ioc.get_executor());
        delivery slow;
        slow.chunk_delay = std::chrono::seconds(30);
        server.enqueue(reply::of({.content = "never finishes"}, slow));
        const auto t0 = std::chrono::steady_clock::now();
        auto r = run_coro(
            ioc,
            fetch(server.port(), chat(true)) && stop_after(&server, std::chrono::milliseconds(50)),
            std::chrono::seconds(5)
        );
        CHECK(r.ec);
        CHECK(std::chrono::steady_clock::now() - t0 < std::chrono::seconds(5));
    }

    TEST_CASE("script format: replies, errors, raw and delivery from JSON") {
        const auto script = wafer::testing::script_from_json(json::parse(R"([
        {"reasoning": "think", "content": "hi",
         "tool_calls": [{"name": "f", "arguments": {"x": 1}}],
         "delivery": {"chunk_chars": 3, "done_marker": true, "error_after_chunks": 2,
                      "stream_error": {"status": 503, "message": "overloaded"},
                      "headers": {"x-ratelimit-remaining-requests-day": 7}}},
        {"error": {"status": 429, "shape": "nested", "retry_after_ms": 250, "should_retry": true}},
        {"raw": {"status": 200, "content_type": "text/event-stream", "body": "data: {}\n\n"}}
    ])"));
        REQUIRE(script.size() == 3);
        CHECK(script[0].type == reply::kind::turn);
        CHECK(script[0].turn.tool_calls.at(0).arguments == R"({"x":1})");
        CHECK(script[0].how.chunk_chars == 3);
        CHECK(script[0].how.done_marker);
        CHECK(script[0].how.error_after_chunks == std::optional<std::size_t>(2));
        CHECK(script[0].how.stream_error.status == 503);
        CHECK(script[0].how.headers.at(0).second == "7");
        CHECK(script[1].type == reply::kind::error);
        CHECK(script[1].error.shape == wafer::testing::error_shape::nested);
        CHECK(script[1].error.retry_after_ms == std::optional<std::string>("250"));
        CHECK(script[1].error.should_retry == std::optional<std::string>("true"));
        CHECK(script[2].type == reply::kind::raw);
        CHECK(script[2].raw.body == "data: {}\n\n");

        CHECK_THROWS_AS(
            wafer::testing::script_from_json(json::parse(R"([{"contnet": "typo"}])")),
            std::invalid_argument
        );
        CHECK_THROWS_AS(
            wafer::testing::script_from_json(json::parse(R"([{"error": {"shape": "round"}}])")),
            std::invalid_argument
        );
    }

    TEST_CASE("offline stand-in: echoes, calls a mentioned tool, reports tool results") {
        using namespace wafer::api;
        chat_request req;
        req.model = "zai-glm-4.7";
        req.messages = {message::user("What is the capital of France?")};
        auto plain = wafer::testing::offline_reply(req);
        CHECK(plain.type == reply::kind::turn);
        CHECK(plain.turn.content.find("offline stand-in") != std::string::npos);
        CHECK(plain.turn.content.find("What is the capital of France?") != std::string::npos);
        CHECK_FALSE(plain.turn.reasoning.empty());
        CHECK(plain.turn.tool_calls.empty());
        CHECK(
            wafer::testing::offline_reply(req).turn.content == plain.turn.content
        ); // deterministic

        req.tools = {
            {.name = "read_file",
             .parameters = json::parse(R"({"type":"object","properties":{"path":{"type":"string"},
            "limit":{"type":"integer"}},"required":["path"]})")},
            {.name = "shell",
             .parameters =
                 json::parse(R"({"type":"object","properties":{"command":{"type":"string"}},
            "required":["command"]})")}};
        CHECK(wafer::testing::offline_reply(req).turn.tool_calls.empty()); // no tool mentioned
        req.messages = {message::user("please use read_file on the readme")};
        auto call = wafer::testing::offline_reply(req);
        REQUIRE(call.turn.tool_calls.size() == 1);
        CHECK(call.turn.tool_calls[0].name == "read_file");
        CHECK(json::parse(call.turn.tool_calls[0].arguments) == json{{"path", "."}});
        CHECK(call.turn.content.empty());

        req.tool_choice = tool_choice::function("shell");
        auto forced = wafer::testing::offline_reply(req);
        REQUIRE(forced.turn.tool_calls.size() == 1);
        CHECK(
            json::parse(forced.turn.tool_calls[0].arguments) ==
            json{{"command", "echo offline stand-in"}}
        );

        message assistant{.role = role::assistant};
        assistant.tool_calls = {{.id = "abc", .name = "read_file", .arguments = R"({"path":"."})"}};
        req.tool_choice.reset();
        req.messages.push_back(assistant);
        req.messages.push_back(message::tool_result("abc", "README.md src/"));
        auto after = wafer::testing::offline_reply(req);
        CHECK(after.turn.tool_calls.empty());
        CHECK(after.turn.content.find("README.md src/") != std::string::npos);
        CHECK(after.turn.content.find("read_file") != std::string::npos);

        // JSON modes get JSON; reasoning can be turned off
        chat_request verdict;
        verdict.messages = {message::user("review this")};
        verdict.reasoning_effort = reasoning_effort::none;
        verdict.response_format = response_format::json_schema_of(
            "verdict", json::parse(R"({"type":"object","properties":{"verdict":{"type":"string",
            "enum":["approve","revise","deny"]},"reasons":{"type":"array"}},
            "required":["verdict","reasons"],"additionalProperties":false})")
        );
        auto v = wafer::testing::offline_reply(verdict);
        CHECK(
            json::parse(v.turn.content) == json{{"verdict", "approve"}, {"reasons", json::array()}}
        );
        CHECK(v.turn.reasoning.empty());
    }

    TEST_CASE("offline stand-in served over HTTP reads as a normal streamed turn") {
        asio::io_context ioc;
        fake_server server(ioc.get_executor());
        server.set_responder(wafer::testing::offline_reply);
        auto r = run_coro(ioc, fetch(server.port(), chat(true, "hello offline")));
        std::string content;
        for (const auto& e : sse_json(r.body)) {
            const auto& d = e["choices"][0]["delta"];
            if (d.contains("content")) {
                content += d["content"].get<std::string>();
            }
        }
        CHECK(content.find("hello offline") != std::string::npos);
    }

    TEST_CASE("invalid TLS configuration is rejected at construction") {
        asio::io_context ioc;
        fake_server_config cfg;
        cfg.tls_cert_file = tls_dir + "/server.pem";
        CHECK_THROWS_AS(fake_server(ioc.get_executor(), cfg), std::invalid_argument);
        cfg.tls_key_file = tls_dir + "/does-not-exist.key";
        CHECK_THROWS(fake_server(ioc.get_executor(), cfg));
    }

} // TEST_SUITE
