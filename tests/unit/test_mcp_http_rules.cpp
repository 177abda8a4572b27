// The sans-io decisions of MCP's Streamable HTTP transport (agent/src/mcp/streamable_http.hpp),
// form elicitation defaults, and the session's entry points for message transports.
#include <wafer/api/sse_parser.hpp>
#include <wafer/tools/mcp/config.hpp>
#include <wafer/tools/mcp/elicitation.hpp>
#include <wafer/tools/mcp/jsonrpc.hpp>
#include <wafer/tools/mcp/mrtr.hpp>
#include <wafer/tools/mcp/server_tools.hpp>
#include <wafer/tools/mcp/session.hpp>

#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

#include <algorithm>

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

TEST_SUITE("unit/mcp_http") {
    TEST_CASE("2026 header values: plain, Base64 for what a header cannot carry, none for null") {
        CHECK(*http::header_value(json("us-west1")) == "us-west1");
        CHECK(*http::header_value(json("two words")) == "two words");
        CHECK(http::header_value(json("")) == std::optional<std::string>(""));
        CHECK(*http::header_value(json("Hello, 世界")) == "=?base64?SGVsbG8sIOS4lueVjA==?=");
        CHECK(*http::header_value(json(" padded ")) == "=?base64?IHBhZGRlZCA=?=");
        CHECK(http::header_value(json("a\tb"))->starts_with("=?base64?"));
        CHECK(http::header_value(json("line\r\nbreak"))->starts_with("=?base64?"));
        CHECK(http::header_value(json("=?base64?abc?="))->starts_with("=?base64?PT9i"));
        CHECK(*http::header_value(json(42)) == "42");
        CHECK(*http::header_value(json(-7)) == "-7");
        CHECK(*http::header_value(json(true)) == "true");
        CHECK_FALSE(http::header_value(json(nullptr)));
        CHECK_FALSE(http::header_value(json(1.5)));
        CHECK_FALSE(http::header_value(json::object()));
    }

    TEST_CASE("2026 request fields: method, name, annotated arguments") {
        const auto out = http::read_outgoing(
            R"({"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"execute_sql","arguments":{"region":"us-west1","opts":{"tenant":7},"query":"x","gone":null},"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28"}}})"
        );
        CHECK(out.protocol_version == "2026-07-28");
        const std::vector<mcp::param_header> params{
            {"Region", {"region"}},
            {"Tenant", {"opts", "tenant"}},
            {"Gone", {"gone"}},
            {"Missing", {"nope"}}};
        const auto f = http::stateless_fields(out, &params);
        const std::vector<std::pair<std::string, std::string>> want{
            {"Mcp-Method", "tools/call"},
            {"Mcp-Name", "execute_sql"},
            {"Mcp-Param-Region", "us-west1"},
            {"Mcp-Param-Tenant", "7"}};
        CHECK(f == want);
        const auto read = http::read_outgoing(
            R"({"jsonrpc":"2.0","id":4,"method":"resources/read","params":{"uri":"file:///a b","_meta":{}}})"
        );
        const auto g = http::stateless_fields(read, nullptr);
        REQUIRE(g.size() == 2);
        CHECK(g[1] == std::pair<std::string, std::string>{"Mcp-Name", "file:///a b"});
    }
}

TEST_SUITE("unit/mcp_tools") {
    TEST_CASE("x-mcp-header: valid annotations read with their paths, every broken rule refused") {
        std::string why;
        const auto ok = mcp::read_param_headers(
            json::parse(R"({"type":"object","properties":{
            "region":{"type":"string","x-mcp-header":"Region"},
            "opts":{"type":"object","properties":{"tenant":{"type":"integer","x-mcp-header":"Tenant"}}},
            "flag":{"type":"boolean","x-mcp-header":"Flag"},
            "query":{"type":"string"}}})"),
            &why
        );
        REQUIRE(ok);
        CHECK(ok->size() == 3);
        CHECK(
            std::find(ok->begin(), ok->end(), mcp::param_header{"Tenant", {"opts", "tenant"}}) !=
            ok->end()
        );
        const char* bad[] = {
            R"({"properties":{"a":{"type":"string","x-mcp-header":""}}})",
            R"({"properties":{"a":{"type":"number","x-mcp-header":"A"}}})",
            R"({"properties":{"a":{"type":"object","x-mcp-header":"A"}}})",
            R"({"properties":{"a":{"type":"string","x-mcp-header":"A"},"b":{"type":"string","x-mcp-header":"a"}}})",
            R"({"properties":{"a":{"type":"string","x-mcp-header":"Has Space"}}})",
            R"({"properties":{"a":{"type":"string","x-mcp-header":"Co:lon"}}})",
            R"({"properties":{"a":{"type":"string","x-mcp-header":"Ünï"}}})",
            R"({"properties":{"a":{"type":"string","x-mcp-header":"Ctl\u0001"}}})",
            R"({"properties":{"a":{"type":"array","items":{"type":"string","x-mcp-header":"A"}}}})",
            R"({"properties":{"a":{"$ref":"#/$defs/x"}},"$defs":{"x":{"type":"string","x-mcp-header":"A"}}})",
            R"({"properties":{"a":{"type":"string","x-mcp-header":7}}})",
        };
        for (const char* schema : bad) {
            CHECK_MESSAGE(!mcp::read_param_headers(json::parse(schema), &why), schema);
        }
        // A tool with a broken annotation is not offered; one with none is.
        CHECK_FALSE(mcp::read_tool_info(
            json::parse(
                R"({"name":"t","inputSchema":{"type":"object","properties":{"a":{"type":"number","x-mcp-header":"A"}}}})"
            ),
            &why
        ));
        CHECK(why.find("t: ") == 0);
        CHECK(mcp::read_tool_info(json::parse(R"({"name":"u","inputSchema":{"type":"object"}})")));
    }
}

TEST_SUITE("unit/mcp_session") {
    TEST_CASE("stateless era: server/discover instead of initialize, _meta on every request") {
        mcp::session_config cfg;
        cfg.era = mcp::protocol_era::stateless;
        cfg.elicitation = true;
        mcp::session s(cfg);
        const auto t0 = mcp::session_clock::now();
        s.start(t0);
        const json discover = json::parse(s.take_output());
        CHECK(discover["method"] == "server/discover");
        CHECK(
            discover["params"]["_meta"]["io.modelcontextprotocol/protocolVersion"] == "2026-07-28"
        );
        CHECK(
            discover["params"]["_meta"]["io.modelcontextprotocol/clientCapabilities"]["elicitation"]
                .is_object()
        );
        CHECK(discover["params"]["_meta"]["io.modelcontextprotocol/clientInfo"]["name"] == "wafer");
        // A first refusal that names the version is answered with one more discover.
        s.receive_message(
            R"({"jsonrpc":"2.0","id":1,"error":{"code":-32022,"message":"Unsupported protocol version","data":{"supported":["2026-07-28"]}}})",
            t0
        );
        CHECK_FALSE(s.ready());
        const json again = json::parse(s.take_output());
        CHECK(again["method"] == "server/discover");
        CHECK(again["id"] == 2);
        s.receive_message(
            R"({"jsonrpc":"2.0","id":2,"result":{"resultType":"complete","supportedVersions":["2026-07-28"],"capabilities":{"tools":{}},"_meta":{"io.modelcontextprotocol/serverInfo":{"name":"m","version":"9"}},"instructions":"hi","ttlMs":0,"cacheScope":"private"}})",
            t0
        );
        REQUIRE(s.ready());
        CHECK(s.server().name == "m");
        CHECK(s.server().protocol_version == "2026-07-28");
        CHECK(s.server().instructions == "hi");
        CHECK(s.take_output().empty()); // no notifications/initialized
        const auto id = s.request("tools/list", nullptr, t0);
        const json list = json::parse(s.take_output());
        CHECK(list["params"]["_meta"]["io.modelcontextprotocol/protocolVersion"] == "2026-07-28");
        s.take_events();
        // An unknown resultType is a protocol failure of that request.
        s.receive_message(
            R"({"jsonrpc":"2.0","id":)" + std::to_string(id) +
                R"(,"result":{"resultType":"task"}})",
            t0
        );
        const auto events = s.take_events();
        REQUIRE(events.size() == 1);
        const auto& r = std::get<mcp::response_event>(events[0]);
        REQUIRE(r.failure);
        CHECK(*r.failure == mcp::errc::protocol);
    }

    TEST_CASE("stateless era: a server that speaks no version of ours is a clear error; no "
              "discover is fine") {
        mcp::session_config cfg;
        cfg.era = mcp::protocol_era::stateless;
        mcp::session a(cfg);
        a.start(mcp::session_clock::now());
        a.receive_message(
            R"({"jsonrpc":"2.0","id":1,"error":{"code":-32022,"message":"no","data":{"supported":["2027-01-01"]}}})",
            mcp::session_clock::now()
        );
        CHECK(a.closed());
        mcp::session b(cfg);
        b.start(mcp::session_clock::now());
        b.receive_message(
            R"({"jsonrpc":"2.0","id":1,"error":{"code":-32601,"message":"Method not found"}})",
            mcp::session_clock::now()
        );
        CHECK(b.ready());
    }
}

TEST_SUITE("unit/mcp_mrtr") {
    TEST_CASE("input_required results read; retries carry the answers and the state, never the old "
              "round's") {
        bool malformed = false;
        CHECK_FALSE(mcp::read_input_required(json::parse(R"({"content":[]})"), malformed));
        CHECK_FALSE(malformed);
        CHECK_FALSE(mcp::read_input_required(json::parse(R"({"resultType":"complete"})"), malformed)
        );
        const auto r = mcp::read_input_required(
            json::parse(
                R"({"resultType":"input_required","inputRequests":{"login":{"method":"elicitation/create","params":{"message":"who?"}}},"requestState":"eyJ\u00e9 x"})"
            ),
            malformed
        );
        REQUIRE(r);
        REQUIRE(r->requests.size() == 1);
        CHECK(r->requests[0].key == "login");
        CHECK(r->requests[0].method == "elicitation/create");
        CHECK(*r->request_state == "eyJ\xc3\xa9 x");
        std::string why;
        CHECK_FALSE(mcp::read_input_required(
            json::parse(R"({"resultType":"input_required"})"), malformed, &why
        ));
        CHECK(malformed);
        CHECK_FALSE(mcp::read_input_required(
            json::parse(R"({"resultType":"input_required","inputRequests":{"a":{"params":{}}}})"),
            malformed
        ));
        CHECK(malformed);
        const json original = json::parse(R"({"name":"t","arguments":{"x":1}})");
        const json retry = mcp::retry_params(
            original, json::parse(R"({"login":{"action":"accept"}})"), r->request_state
        );
        CHECK(retry["inputResponses"]["login"]["action"] == "accept");
        CHECK(retry["requestState"] == "eyJ\xc3\xa9 x");
        CHECK(retry["arguments"]["x"] == 1);
        const json bare = mcp::retry_params(original, json::object(), std::nullopt);
        CHECK_FALSE(bare.contains("requestState"));
        CHECK_FALSE(bare.contains("inputResponses"));
    }
}

TEST_SUITE("unit/mcp_tools") {
    TEST_CASE("a schema nested deeper than any real one is refused, not walked off the stack") {
        std::string deep;
        for (int i = 0; i < 100000; ++i) {
            deep += R"({"type":"object","properties":{"a":)";
        }
        deep += "{}";
        for (int i = 0; i < 100000; ++i) {
            deep += "}}";
        }
        std::string why;
        const json schema = json::parse(deep);
        CHECK_FALSE(mcp::read_param_headers(schema, &why));
        CHECK(why.find("deeper than 256") != std::string::npos);
    }
}

TEST_SUITE("unit/mcp_session") {
    TEST_CASE("a line nested deeper than 512 levels is noise, never copied or printed") {
        std::string deep = R"({"jsonrpc":"2.0","id":2,"result":)";
        for (int i = 0; i < 200000; ++i) {
            deep += "[";
        }
        for (int i = 0; i < 200000; ++i) {
            deep += "]";
        }
        deep += "}";
        std::string why;
        CHECK_FALSE(mcp::read_message(deep, &why));
        CHECK(why.find("deeper than 512") != std::string::npos);
        CHECK(mcp::nesting_within(R"({"a":"[[[[[[","b":[1,{"c":2}]})", 3));
        CHECK_FALSE(mcp::nesting_within("[[[[", 3));
        CHECK(mcp::nesting_within(R"(["\"[[[[["])", 1));
        mcp::session s;
        const auto t0 = mcp::session_clock::now();
        s.start(t0);
        s.receive_message(
            R"({"jsonrpc":"2.0","id":1,"result":{"protocolVersion":"2025-11-25","capabilities":{},"serverInfo":{"name":"x","version":"1"}}})",
            t0
        );
        s.take_events();
        const auto id = s.request("tools/list", nullptr, t0);
        CHECK(id == 2);
        s.receive_message(deep, t0);
        const auto events = s.take_events();
        REQUIRE(events.size() == 1);
        CHECK(std::holds_alternative<mcp::noise_event>(events[0]));
        CHECK(s.awaiting(id));
        CHECK_THROWS_AS(
            mcp::parse_server_config(
                "{\"mcpServers\":" + std::string(1000, '[') + std::string(1000, ']') + "}",
                "x.json",
                mcp::environment_lookup()
            ),
            mcp::error
        );
    }
}
