// The sans-io decisions of MCP's Streamable HTTP transport (agent/src/mcp/streamable_http.hpp),
// form elicitation defaults, and the session's entry points for message transports.
#include <wafer/api/sse_parser.hpp>
#include <wafer/tools/mcp/elicitation.hpp>
#include <wafer/tools/mcp/session.hpp>

#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

#include "mcp/streamable_http.hpp"

namespace mcp = wafer::tools::mcp;
namespace http = wafer::mcp::detail;
using nlohmann::json;
using namespace std::chrono_literals;

TEST_SUITE("unit/mcp_http") {
    TEST_CASE("endpoint URLs: scheme, host, port, path and query; the rest refused") {
        std::string why;
        auto a = http::parse_endpoint("http://127.0.0.1:3001/mcp", why);
        REQUIRE(a);
        CHECK_FALSE(a->tls);
        CHECK(a->host == "127.0.0.1");
        CHECK(a->port == 3001);
        CHECK(a->target == "/mcp");
        CHECK(a->host_header == "127.0.0.1:3001");
        auto b = http::parse_endpoint("https://example.com/v1/mcp?tenant=a%20b", why);
        REQUIRE(b);
        CHECK(b->tls);
        CHECK(b->port == 443);
        CHECK(b->target == "/v1/mcp?tenant=a%20b");
        CHECK(b->host_header == "example.com");
        auto c = http::parse_endpoint("http://[::1]:8080", why);
        REQUIRE(c);
        CHECK(c->host == "::1");
        CHECK(c->target == "/");
        CHECK(c->host_header == "[::1]:8080");
        CHECK_FALSE(http::parse_endpoint("ftp://example.com/", why));
        CHECK(why.find("http or https") != std::string::npos);
        CHECK_FALSE(http::parse_endpoint("http://user:pw@example.com/", why));
        CHECK_FALSE(http::parse_endpoint("/relative", why));
        CHECK_FALSE(http::parse_endpoint("http:///nohost", why));
    }

    TEST_CASE("configured headers: tokens only, no line breaks, none the transport sets") {
        CHECK(http::check_header("Authorization", "Bearer abc").empty());
        CHECK(http::check_header("X-Api-Key", "k").empty());
        CHECK_FALSE(http::check_header("Bad Name", "v").empty());
        CHECK_FALSE(http::check_header("", "v").empty());
        CHECK_FALSE(http::check_header("X-A", "one\r\nX-Injected: two").empty());
        CHECK_FALSE(http::check_header("X-A", std::string("a\0b", 3)).empty());
        CHECK_FALSE(http::check_header("mcp-session-id", "x").empty());
        CHECK_FALSE(http::check_header("Content-Length", "1").empty());
        CHECK_FALSE(http::check_header("Host", "evil").empty());
    }

    TEST_CASE("outgoing messages: requests with ids, notifications, cancels, responses") {
        auto r =
            http::read_outgoing(R"({"jsonrpc":"2.0","id":7,"method":"tools/call","params":{}})");
        CHECK(r.type == http::outgoing::kind::request);
        CHECK(r.id == 7);
        CHECK(r.method == "tools/call");
        auto n = http::read_outgoing(
            R"({"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":7,"reason":"x"}})"
        );
        CHECK(n.type == http::outgoing::kind::notification);
        REQUIRE(n.cancels);
        CHECK(*n.cancels == 7);
        auto a = http::read_outgoing(R"({"jsonrpc":"2.0","id":"s1","result":{}})");
        CHECK(a.type == http::outgoing::kind::response);
        CHECK_FALSE(a.cancels);
    }

    TEST_CASE(
        "request bytes: POST with both Accept types, session id and version after the handshake"
    ) {
        std::string why;
        const auto ep = *http::parse_endpoint("http://127.0.0.1:9/mcp", why);
        const std::vector<std::pair<std::string, std::string>> headers{
            {"Authorization", "Bearer t"}};
        http::request_fields f;
        f.url = &ep;
        f.headers = &headers;
        std::string out;
        http::write_post(out, f, R"({"a":1})");
        CHECK(out.starts_with("POST /mcp HTTP/1.1\r\nHost: 127.0.0.1:9\r\n"));
        CHECK(out.find("Accept: application/json, text/event-stream\r\n") != std::string::npos);
        CHECK(out.find("Content-Type: application/json\r\n") != std::string::npos);
        CHECK(out.find("Authorization: Bearer t\r\n") != std::string::npos);
        CHECK(out.find("Mcp-Session-Id") == std::string::npos);
        CHECK(out.find("MCP-Protocol-Version") == std::string::npos);
        CHECK(out.ends_with("Content-Length: 7\r\n\r\n{\"a\":1}"));
        f.session_id = "abc";
        f.protocol_version = "2025-11-25";
        f.last_event_id = "ev-3";
        http::write_get(out, f);
        CHECK(out.starts_with("GET /mcp HTTP/1.1\r\n"));
        CHECK(out.find("Mcp-Session-Id: abc\r\n") != std::string::npos);
        CHECK(out.find("MCP-Protocol-Version: 2025-11-25\r\n") != std::string::npos);
        CHECK(out.find("Accept: text/event-stream\r\n") != std::string::npos);
        CHECK(out.find("Last-Event-ID: ev-3\r\n") != std::string::npos);
        http::write_delete(out, f);
        CHECK(out.starts_with("DELETE /mcp HTTP/1.1\r\n"));
        CHECK(out.find("Mcp-Session-Id: abc\r\n") != std::string::npos);
    }

    TEST_CASE("responses: JSON, event streams, no body; forgotten sessions; resume delays") {
        using h = wafer::api::header_list;
        CHECK(
            http::classify_body(
                200, h{{"content-type", "application/json; charset=utf-8"}}, true
            ) == http::body_type::json
        );
        CHECK(
            http::classify_body(200, h{{"content-type", "text/event-stream"}}, true) ==
            http::body_type::event_stream
        );
        CHECK(http::classify_body(202, h{}, false) == http::body_type::none);
        CHECK(
            http::classify_body(200, h{{"content-type", "text/html"}}, true) ==
            http::body_type::other
        );
        CHECK(http::session_gone(404, "", true));
        CHECK_FALSE(http::session_gone(404, "", false));
        CHECK(http::session_gone(
            400,
            R"({"jsonrpc":"2.0","error":{"code":-32000,"message":"Bad Request: No valid session ID provided"}})",
            true
        ));
        CHECK_FALSE(http::session_gone(400, R"({"error":{"message":"bad params"}})", true));
        CHECK(http::resume_delay(500UL, 0) == 500ms);
        CHECK(http::resume_delay(std::nullopt, 0) == 1000ms);
        CHECK(http::resume_delay(std::nullopt, 1) == 1500ms);
        CHECK(http::resume_delay(std::nullopt, 50) == 30000ms);
        CHECK(http::resume_delay(10'000'000UL, 0) == 30000ms);
        CHECK(http::valid_session_id("1868a90c-aa"));
        CHECK_FALSE(http::valid_session_id(""));
        CHECK_FALSE(http::valid_session_id("has space"));
        CHECK_FALSE(http::valid_session_id("nl\n"));
        const auto d = http::describe_status(500, "oops\x1b[31m");
        CHECK(d.find("HTTP 500") == 0);
        CHECK(d.find('\x1b') == std::string::npos);
    }

    TEST_CASE("SSE: the last event id and retry survive events without data (priming events)") {
        wafer::api::sse_parser p;
        p.feed("id: event-1\nretry: 500\n\n");
        CHECK_FALSE(p.next());
        CHECK(p.last_event_id() == "event-1");
        REQUIRE(p.reconnection_time());
        CHECK(*p.reconnection_time() == 500);
        p.feed("id: event-2\ndata: {}\n\n");
        auto ev = p.next();
        REQUIRE(ev);
        CHECK(ev->data == "{}");
        CHECK(p.last_event_id() == "event-2");
        CHECK(*p.reconnection_time() == 500);
    }
}

TEST_SUITE("unit/mcp_session") {
    TEST_CASE("whole messages from a message transport; lost answers end their request") {
        mcp::session s;
        const auto t0 = mcp::session_clock::now();
        s.start(t0);
        s.take_output();
        s.receive_message(
            R"({"jsonrpc":"2.0","id":1,"result":{"protocolVersion":"2025-11-25","capabilities":{},"serverInfo":{"name":"x","version":"1"}}})",
            t0
        );
        REQUIRE(s.ready());
        s.take_events();
        const auto a = s.request("tools/list", json::object(), t0);
        const auto b = s.request("tools/list", json::object(), t0);
        CHECK(s.awaiting(a));
        s.abandon(a, mcp::errc::transport, "the stream broke");
        CHECK_FALSE(s.awaiting(a));
        s.abandon(a, mcp::errc::transport, "twice"); // no second event
        s.receive_message(
            R"({"jsonrpc":"2.0","id":)" + std::to_string(b) + R"(,"result":{"tools":[]}})", t0
        );
        const auto events = s.take_events();
        REQUIRE(events.size() == 2);
        const auto& lost = std::get<mcp::response_event>(events[0]);
        CHECK(lost.id == a);
        REQUIRE(lost.failure);
        CHECK(*lost.failure == mcp::errc::transport);
        CHECK(lost.detail == "the stream broke");
        const auto& ok = std::get<mcp::response_event>(events[1]);
        CHECK(ok.id == b);
        CHECK_FALSE(ok.failure);
        // Nothing was said to the server about the lost request.
        CHECK(s.take_output().find("cancelled") == std::string::npos);
    }

    TEST_CASE("a lost initialize closes the connection with its reason") {
        mcp::session s;
        s.start(mcp::session_clock::now());
        s.abandon(1, mcp::errc::unauthorized, "HTTP 401");
        CHECK(s.closed());
        const auto events = s.take_events();
        REQUIRE_FALSE(events.empty());
        const auto& closed = std::get<mcp::closed_event>(events.back());
        CHECK(closed.reason == mcp::errc::unauthorized);
    }
}

TEST_SUITE("unit/mcp_elicitation") {
    TEST_CASE("form defaults: each fitting default, nothing else") {
        const json schema = json::parse(R"({
            "type": "object",
            "properties": {
                "name": {"type": "string", "default": "John Doe"},
                "age": {"type": "integer", "default": 30},
                "score": {"type": "number", "default": 95.5},
                "status": {"type": "string", "enum": ["active", "inactive"], "default": "active"},
                "verified": {"type": "boolean", "default": true},
                "bad_enum": {"type": "string", "enum": ["a"], "default": "z"},
                "wrong_type": {"type": "integer", "default": "thirty"},
                "float_int": {"type": "integer", "default": 4.0},
                "none": {"type": "string"}
            }
        })");
        const json d = mcp::elicitation_defaults(schema);
        CHECK(
            d ==
            json::parse(
                R"({"name":"John Doe","age":30,"score":95.5,"status":"active","verified":true,"float_int":4})"
            )
        );
        CHECK(d["float_int"].is_number_integer());
        CHECK(mcp::elicitation_defaults(json("not a schema")) == json::object());
        CHECK(mcp::elicitation_defaults(json::parse(R"({"properties":[1]})")) == json::object());
        CHECK(mcp::elicitation_answer("accept", d)["content"] == d);
        CHECK_FALSE(mcp::elicitation_answer("decline", d).contains("content"));
    }
}
