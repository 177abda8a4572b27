// mcp::session, sans-io: the handshake, ids and out-of-order answers, the server's own requests,
// progress against the timeout and its hard maximum, cancellation, and what a hostile server
// sends.
#include <wafer/tools/mcp/config.hpp>
#include <wafer/tools/mcp/jsonrpc.hpp>
#include <wafer/tools/mcp/restart_policy.hpp>
#include <wafer/tools/mcp/server_tool_set.hpp>
#include <wafer/tools/mcp/server_tools.hpp>
#include <wafer/tools/mcp/session.hpp>
#include <wafer/tools/registry.hpp>

#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

#include <string>
#include <variant>
#include <vector>

#include "mcp_session_io.hpp"

using namespace wafer::tools::mcp;
using nlohmann::json;
using wafer::testing::line;
using wafer::testing::only;
using wafer::testing::sent;
using namespace std::chrono_literals;

namespace {

const session_clock::time_point t0{};

json init_result(std::string version = "2025-11-25") {
    return {
        {"jsonrpc", "2.0"},
        {"id", 1},
        {"result",
         {{"protocolVersion", version},
          {"capabilities", {{"tools", {{"listChanged", true}}}}},
          {"serverInfo", {{"name", "srv"}, {"version", "1.2"}}},
          {"instructions", "be nice"}}}};
}

// A session past its handshake; the initialize exchange is consumed.
session ready_session(session_config cfg = {}) {
    session s(std::move(cfg));
    s.start(t0);
    (void)s.take_output();
    s.receive(line(init_result()), t0);
    (void)s.take_output();
    (void)s.take_events();
    return s;
}

json result_for(std::int64_t id, json result) {
    return {{"jsonrpc", "2.0"}, {"id", id}, {"result", std::move(result)}};
}

} // namespace

TEST_SUITE("unit/mcp_session") {
    TEST_CASE("the handshake: initialize first, initialized only after its answer") {
        session s;
        s.start(t0);
        auto out = sent(s);
        REQUIRE(out.size() == 1);
        CHECK(out[0]["method"] == "initialize");
        CHECK(out[0]["id"] == 1);
        CHECK(out[0]["params"]["protocolVersion"] == "2025-11-25");
        CHECK(out[0]["params"]["clientInfo"]["name"] == "wafer");
        CHECK(out[0]["params"]["clientInfo"].contains("version"));
        // Nothing declared that wafer does not handle.
        CHECK(out[0]["params"]["capabilities"] == json::object());
        CHECK_FALSE(s.ready());

        // A notification before the answer is taken, and initialized is still not sent.
        s.receive(line({{"jsonrpc", "2.0"}, {"method", "notifications/tools/list_changed"}}), t0);
        CHECK(sent(s).empty());
        s.receive(line(init_result("2025-06-18")), t0);
        out = sent(s);
        REQUIRE(out.size() == 1);
        CHECK(out[0] == json{{"jsonrpc", "2.0"}, {"method", "notifications/initialized"}});
        CHECK(s.ready());
        CHECK(s.server().protocol_version == "2025-06-18");
        CHECK(s.server().name == "srv");
        CHECK(s.server().version == "1.2");
        CHECK(s.server().instructions == "be nice");
        CHECK(s.server().capabilities["tools"]["listChanged"] == true);
        const auto events = s.take_events();
        CHECK(only<list_changed_event>(events).size() == 1);
        CHECK(only<ready_event>(events).size() == 1);
    }

    TEST_CASE("roots and elicitation are declared only when configured") {
        session_config cfg;
        cfg.roots.push_back({"file:///work", "work"});
        cfg.elicitation = true;
        session s(cfg);
        s.start(t0);
        const auto out = sent(s);
        CHECK(out[0]["params"]["capabilities"]["roots"] == json{{"listChanged", false}});
        CHECK(out[0]["params"]["capabilities"]["elicitation"] == json{{"form", json::object()}});
    }

    TEST_CASE("a version this client does not speak, or a bad initialize answer, closes") {
        for (const json& bad :
             {init_result("1999-01-01"),
              json{{"jsonrpc", "2.0"}, {"id", 1}, {"result", {{"capabilities", json::object()}}}},
              json{{"jsonrpc", "2.0"}, {"id", 1}, {"result", "yes"}},
              json{
                  {"jsonrpc", "2.0"},
                  {"id", 1},
                  {"error", {{"code", -32602}, {"message", "no"}}}}}) {
            CAPTURE(bad.dump());
            session s;
            s.start(t0);
            (void)s.take_output();
            s.receive(line(bad), t0);
            CHECK(s.closed());
            const auto closed = only<closed_event>(s.take_events());
            REQUIRE(closed.size() == 1);
            CHECK((closed[0].reason == errc::protocol || closed[0].reason == errc::rpc_error));
            CHECK(sent(s).empty()); // no initialized after a failed handshake
        }
    }

    TEST_CASE("the handshake times out") {
        session s;
        s.start(t0);
        (void)s.take_output();
        REQUIRE(s.next_deadline());
        CHECK(*s.next_deadline() == t0 + 30s);
        s.on_time(t0 + 29s);
        CHECK_FALSE(s.closed());
        s.on_time(t0 + 30s);
        CHECK(s.closed());
        const auto closed = only<closed_event>(s.take_events());
        REQUIRE(closed.size() == 1);
        CHECK(closed[0].reason == errc::timeout);
        // initialize is never cancelled with a notification.
        CHECK(sent(s).empty());
    }

    TEST_CASE("protocol_era::automatic: server/discover first, the handshake for legacy servers") {
        session_config cfg;
        cfg.era = protocol_era::automatic;
        cfg.probe_timeout = 2s;
        const auto probed = [&](session& s) {
            s.start(t0);
            const auto out = sent(s);
            REQUIRE(out.size() == 1);
            CHECK(out[0]["method"] == "server/discover");
            CHECK(
                out[0]["params"]["_meta"]["io.modelcontextprotocol/protocolVersion"] == "2026-07-28"
            );
            return out[0]["id"].get<std::int64_t>();
        };
        const auto answers_initialize = [&](session& s) {
            const auto out = sent(s);
            REQUIRE(out.size() == 1);
            CHECK(out[0]["method"] == "initialize");
            json init = init_result();
            init["id"] = out[0]["id"];
            s.receive(line(init), t0);
            CHECK(s.ready());
            CHECK(s.era() == protocol_era::dated);
            CHECK(s.server().protocol_version == "2025-11-25");
            // Later requests are of the handshake's era: no _meta.
            (void)sent(s); // notifications/initialized
            s.request("tools/list", nullptr, t0);
            const auto list = sent(s);
            REQUIRE(list.size() == 1);
            CHECK_FALSE(list[0].contains("params"));
        };
        SUBCASE("a DiscoverResult: stateless") {
            session s(cfg);
            const auto id = probed(s);
            s.receive(
                line(result_for(
                    id,
                    {{"resultType", "complete"},
                     {"supportedVersions", {"2026-07-28"}},
                     {"capabilities", json::object()},
                     {"serverInfo", {{"name", "modern"}, {"version", "2"}}}}
                )),
                t0
            );
            CHECK(s.ready());
            CHECK(s.era() == protocol_era::stateless);
            CHECK(s.server().name == "modern");
            s.request("tools/list", nullptr, t0);
            const auto list = sent(s);
            REQUIRE(list.size() == 1);
            CHECK(list[0]["params"]["_meta"].contains("io.modelcontextprotocol/protocolVersion"));
        }
        for (const int code : {-32601, -32602, -32600, -32000}) {
            CAPTURE(code);
            session s(cfg);
            const auto id = probed(s);
            s.receive(
                line(
                    {{"jsonrpc", "2.0"},
                     {"id", id},
                     {"error", {{"code", code}, {"message", "Method not found"}}}}
                ),
                t0
            );
            CHECK_FALSE(s.ready());
            answers_initialize(s);
        }
        SUBCASE("an UnsupportedProtocolVersion listing 2026-07-28: modern, discover again") {
            session s(cfg);
            const auto id = probed(s);
            s.receive(
                line(
                    {{"jsonrpc", "2.0"},
                     {"id", id},
                     {"error",
                      {{"code", -32022},
                       {"message", "unsupported"},
                       {"data", {{"supported", {"2026-07-28"}}}}}}}
                ),
                t0
            );
            const auto out = sent(s);
            REQUIRE(out.size() == 1);
            CHECK(out[0]["method"] == "server/discover");
            CHECK(s.era() == protocol_era::stateless);
        }
        SUBCASE("no answer within probe_timeout: the handshake; a late answer is ignored") {
            session s(cfg);
            const auto id = probed(s);
            CHECK(*s.next_deadline() == t0 + 2s);
            s.on_time(t0 + 2s);
            CHECK_FALSE(s.closed());
            s.receive(line(result_for(id, {{"supportedVersions", {"2026-07-28"}}})), t0);
            CHECK_FALSE(s.ready());
            answers_initialize(s);
        }
        SUBCASE("the server exits on the probe: closed, probe_lost") {
            session s(cfg);
            (void)probed(s);
            s.end_of_stream("the server exited with status 3", t0);
            CHECK(s.closed());
            CHECK(s.probe_lost());
            const auto closed = only<closed_event>(s.take_events());
            REQUIRE(closed.size() == 1);
            CHECK(closed[0].detail.find("server/discover probe") != std::string::npos);
        }
        SUBCASE("a result that is no DiscoverResult (no supportedVersions): the handshake") {
            session s(cfg);
            const auto id = probed(s);
            s.receive(line(result_for(id, {{"content", json::array()}})), t0);
            CHECK_FALSE(s.ready());
            answers_initialize(s);
        }
        SUBCASE("refused without a JSON-RPC answer (an HTTP 400/404/405): the handshake") {
            session s(cfg);
            const auto id = probed(s);
            s.refused(id, "server/discover: HTTP 400", t0);
            CHECK_FALSE(s.closed());
            answers_initialize(s);
        }
        SUBCASE("lost (an HTTP 401 or 5xx): no sign of the era, the connect ends") {
            session s(cfg);
            const auto id = probed(s);
            s.abandon(id, errc::transport, "server/discover: HTTP 503");
            CHECK(s.closed());
            CHECK(sent(s).empty());
        }
    }

    TEST_CASE("refused: outside the probe, a request ends as a transport failure") {
        session_config cfg;
        cfg.era = protocol_era::stateless;
        session s(cfg);
        s.start(t0);
        const auto discover = sent(s);
        REQUIRE(discover.size() == 1);
        s.refused(discover[0]["id"].get<std::int64_t>(), "server/discover: HTTP 404", t0);
        CHECK(s.closed()); // a server named 2026 that refuses the 2026 probe is unusable
        const auto closed = only<closed_event>(s.take_events());
        REQUIRE(closed.size() == 1);
        CHECK(closed[0].reason == errc::transport);
        CHECK(closed[0].detail == "server/discover: HTTP 404");
    }

    TEST_CASE("answers are matched by id in any order; the server's ids are its own") {
        session s = ready_session();
        const auto a = s.request("tools/list", json::object(), t0);
        const auto b = s.request("tools/call", {{"name", "x"}}, t0);
        CHECK(a == 2);
        CHECK(b == 3);
        auto out = sent(s);
        REQUIRE(out.size() == 2);
        CHECK(out[1]["params"]["name"] == "x");
        CHECK_FALSE(out[1]["params"].contains("_meta"));

        // The server's own request with id 2 (the same number as ours) is not our answer.
        s.receive(line({{"jsonrpc", "2.0"}, {"id", 2}, {"method", "ping"}}), t0);
        out = sent(s);
        REQUIRE(out.size() == 1);
        CHECK(out[0] == json{{"jsonrpc", "2.0"}, {"id", 2}, {"result", json::object()}});
        CHECK(s.open_requests() == 2);

        s.receive(
            line({{"jsonrpc", "2.0"}, {"id", b}, {"error", {{"code", -32602}, {"message", "bad"}}}}
            ),
            t0
        );
        s.receive(line(result_for(a, {{"tools", json::array()}})), t0);
        const auto done = only<response_event>(s.take_events());
        REQUIRE(done.size() == 2);
        CHECK(done[0].id == b);
        CHECK(done[0].failure == errc::rpc_error);
        CHECK(done[0].error.code == -32602);
        CHECK(done[0].error.message == "bad");
        CHECK(done[1].id == a);
        CHECK_FALSE(done[1].failure);
        CHECK(done[1].result["tools"] == json::array());
        CHECK(s.open_requests() == 0);
    }

    TEST_CASE("the server's requests: ping, roots/list, and refusals for the rest") {
        session_config cfg;
        cfg.roots.push_back({"file:///w", "w"});
        session s = ready_session(cfg);
        s.receive(line({{"jsonrpc", "2.0"}, {"id", "r1"}, {"method", "roots/list"}}), t0);
        s.receive(
            line(
                {{"jsonrpc", "2.0"},
                 {"id", 7},
                 {"method", "sampling/createMessage"},
                 {"params", json::object()}}
            ),
            t0
        );
        s.receive(line({{"jsonrpc", "2.0"}, {"id", 8}, {"method", "elicitation/create"}}), t0);
        const auto out = sent(s);
        REQUIRE(out.size() == 3);
        CHECK(out[0]["id"] == "r1");
        CHECK(out[0]["result"]["roots"] == json::array({{{"uri", "file:///w"}, {"name", "w"}}}));
        CHECK(out[1]["id"] == 7);
        CHECK(out[1]["error"]["code"] == -32601);
        CHECK(out[2]["id"] == 8);
        CHECK(out[2]["error"]["code"] == -32601);
        CHECK(only<server_request_event>(s.take_events()).empty());

        // With elicitation declared, its requests go to the embedder, who answers.
        session_config with;
        with.elicitation = true;
        session e = ready_session(with);
        e.receive(
            line(
                {{"jsonrpc", "2.0"},
                 {"id", 0},
                 {"method", "elicitation/create"},
                 {"params", {{"message", "name?"}}}}
            ),
            t0
        );
        const auto asks = only<server_request_event>(e.take_events());
        REQUIRE(asks.size() == 1);
        CHECK(asks[0].method == "elicitation/create");
        CHECK(asks[0].params["message"] == "name?");
        CHECK(sent(e).empty());
        e.respond(asks[0].id, {{"action", "decline"}});
        CHECK(
            sent(e)[0] == json{{"jsonrpc", "2.0"}, {"id", 0}, {"result", {{"action", "decline"}}}}
        );
    }

    TEST_CASE("sampling is declared and its requests reach the embedder only when enabled") {
        session_config cfg;
        cfg.sampling = true;
        session fresh(cfg);
        fresh.start(t0);
        CHECK(sent(fresh)[0]["params"]["capabilities"]["sampling"] == json::object());
        session plain;
        plain.start(t0);
        CHECK_FALSE(sent(plain)[0]["params"]["capabilities"].contains("sampling"));

        session s = ready_session(cfg);
        const json ask = {
            {"messages",
             json::array({{{"role", "user"}, {"content", {{"type", "text"}, {"text", "2+2?"}}}}})},
            {"maxTokens", 20}};
        s.receive(
            line(
                {{"jsonrpc", "2.0"},
                 {"id", 5},
                 {"method", "sampling/createMessage"},
                 {"params", ask}}
            ),
            t0
        );
        const auto asks = only<server_request_event>(s.take_events());
        REQUIRE(asks.size() == 1);
        CHECK(asks[0].method == "sampling/createMessage");
        CHECK(asks[0].params == ask);
        const json answer = {
            {"role", "assistant"},
            {"content", {{"type", "text"}, {"text", "4"}}},
            {"model", "zai-glm-4.7"},
            {"stopReason", "endTurn"}};
        s.respond(asks[0].id, answer);
        CHECK(sent(s)[0] == json{{"jsonrpc", "2.0"}, {"id", 5}, {"result", answer}});
    }

    TEST_CASE("while a person answers an elicitation no request times out for silence; the "
              "hard maximum holds; the answer starts the wait again") {
        session_config cfg;
        cfg.elicitation = true;
        session s = ready_session(cfg);
        request_options o;
        o.limits = request_limits{10s, 120s};
        const auto id = s.request("tools/call", {{"name", "asks"}}, t0, o);
        (void)s.take_output();
        CHECK(*s.next_deadline() == t0 + 10s);
        s.receive(
            line(
                {{"jsonrpc", "2.0"},
                 {"id", "q1"},
                 {"method", "elicitation/create"},
                 {"params", {{"message", "which branch?"}}}}
            ),
            t0 + 2s
        );
        const auto asks = only<server_request_event>(s.take_events());
        REQUIRE(asks.size() == 1);
        CHECK(*s.next_deadline() == t0 + 120s); // only the hard maximum while the form is open
        s.on_time(t0 + 90s);                    // the person takes their time
        CHECK(s.awaiting(id));
        CHECK(only<response_event>(s.take_events()).empty());
        s.respond(asks[0].id, {{"action", "accept"}, {"content", {{"branch", "main"}}}}, t0 + 90s);
        CHECK(*s.next_deadline() == t0 + 100s); // the wait starts again from the answer
        s.on_time(t0 + 99s);
        CHECK(s.awaiting(id));
        s.on_time(t0 + 100s);
        const auto done = only<response_event>(s.take_events());
        REQUIRE(done.size() == 1);
        CHECK(done[0].failure == errc::timeout);

        // A form left open past the hard maximum still ends the call.
        const auto id2 = s.request("tools/call", {{"name", "asks"}}, t0 + 200s, o);
        s.receive(
            line({{"jsonrpc", "2.0"}, {"id", "q2"}, {"method", "elicitation/create"}}), t0 + 201s
        );
        (void)s.take_events();
        s.on_time(t0 + 320s);
        CHECK_FALSE(s.awaiting(id2));
        const auto late = only<response_event>(s.take_events());
        REQUIRE(late.size() == 1);
        CHECK(late[0].detail.find("maximum") != std::string::npos);
    }

    TEST_CASE("progress restarts the timeout but not the hard maximum") {
        session s = ready_session();
        request_options o;
        o.limits = request_limits{10s, 25s};
        o.progress = true;
        const auto id = s.request("tools/call", {{"name", "slow"}}, t0, o);
        CHECK(sent(s)[0]["params"]["_meta"]["progressToken"] == id);
        CHECK(*s.next_deadline() == t0 + 10s);

        auto progress = [&](double p, session_clock::time_point at) {
            s.receive(
                line(
                    {{"jsonrpc", "2.0"},
                     {"method", "notifications/progress"},
                     {"params",
                      {{"progressToken", id}, {"progress", p}, {"total", 3}, {"message", "step"}}}}
                ),
                at
            );
        };
        progress(1, t0 + 8s);
        CHECK(*s.next_deadline() == t0 + 18s);
        s.on_time(t0 + 12s);
        CHECK(s.open_requests() == 1);
        progress(2, t0 + 17s);
        CHECK(*s.next_deadline() == t0 + 25s); // the hard maximum comes first now
        const auto ps = only<progress_event>(s.take_events());
        REQUIRE(ps.size() == 2);
        CHECK(ps[1].progress == 2);
        CHECK(ps[1].total == 3);
        CHECK(ps[1].message == "step");

        s.on_time(t0 + 25s);
        const auto done = only<response_event>(s.take_events());
        REQUIRE(done.size() == 1);
        CHECK(done[0].failure == errc::timeout);
        CHECK(done[0].detail.find("maximum") != std::string::npos);
        // The server is told to stop, and its late answer is dropped quietly.
        const auto out = sent(s);
        REQUIRE(out.size() == 1);
        CHECK(out[0]["method"] == "notifications/cancelled");
        CHECK(out[0]["params"]["requestId"] == id);
        s.receive(line(result_for(id, json::object())), t0 + 26s);
        CHECK(s.take_events().empty());
    }

    TEST_CASE("cancel tells the server once and ends the request") {
        session s = ready_session();
        const auto id = s.request("tools/call", {{"name", "x"}}, t0);
        (void)s.take_output();
        s.cancel(id, "the user stopped");
        s.cancel(id, "again"); // no effect on an ended request
        const auto out = sent(s);
        REQUIRE(out.size() == 1);
        CHECK(out[0]["params"] == json{{"requestId", id}, {"reason", "the user stopped"}});
        const auto done = only<response_event>(s.take_events());
        REQUIRE(done.size() == 1);
        CHECK(done[0].failure == errc::cancelled);
        CHECK_FALSE(s.next_deadline());
    }

    TEST_CASE("garbage, strangers and oversized lines are noise; the connection goes on") {
        session_config cfg;
        cfg.max_message = 512;
        session s = ready_session(cfg);
        const auto id = s.request("ping", nullptr, t0);
        (void)s.take_output();
        s.receive("Server starting on stdio...\n\x1b[31mred\x1b[0m\n", t0);
        s.receive(line(result_for(999, json::object())), t0); // never sent
        s.receive(
            line({{"jsonrpc", "2.0"}, {"id", "s"}, {"result", json::object()}}), t0
        ); // string id
        s.receive(std::string(600, 'x') + "\n", t0);
        s.receive(line(result_for(id, json::object())), t0);
        const auto events = s.take_events();
        const auto noise = only<noise_event>(events);
        REQUIRE(noise.size() == 5);
        CHECK(noise[1].what.find("\\x1b") != std::string::npos); // shown escaped, never raw
        CHECK(noise[1].what.find('\x1b') == std::string::npos);
        CHECK(noise[4].what.find("over the limit") != std::string::npos);
        const auto done = only<response_event>(events);
        REQUIRE(done.size() == 1);
        CHECK_FALSE(done[0].failure);
    }

    TEST_CASE("an oversized answer ends its request at once with transport; the rest goes on") {
        session_config cfg;
        cfg.max_message = 1024;
        session s = ready_session(cfg);
        const auto a = s.request("tools/call", {{"name", "a"}}, t0);
        const auto b = s.request("tools/call", {{"name", "b"}}, t0);
        const auto c = s.request("tools/call", {{"name", "c"}}, t0);
        (void)s.take_output();
        const std::string fill(5000, 'x');
        // The id first, then last (as the TypeScript SDK writes it), in reads of 700 bytes.
        const std::string stream = R"({"jsonrpc":"2.0","id":)" + std::to_string(b) +
                                   R"(,"result":{"t":")" + fill + "\"}}\n" + R"({"result":{"t":")" +
                                   fill + R"("},"jsonrpc":"2.0","id":)" + std::to_string(a) + "}\n";
        for (std::size_t i = 0; i < stream.size(); i += 700) {
            s.receive(std::string_view(stream).substr(i, 700), t0);
        }
        const auto events = s.take_events();
        const auto done = only<response_event>(events);
        REQUIRE(done.size() == 2);
        CHECK(done[0].id == b);
        CHECK(done[0].failure == errc::transport);
        CHECK(
            done[0].detail == "the answer of " + std::to_string(stream.find('\n')) +
                                  " bytes is over the limit of 1024 bytes"
        );
        CHECK(done[1].id == a);
        CHECK(done[1].failure == errc::transport);
        CHECK(only<noise_event>(events).size() == 2);
        CHECK(s.awaiting(c));
        CHECK_FALSE(s.closed());
        CHECK(sent(s).empty()); // nothing to cancel: the server answered
        s.receive(line(result_for(c, json::object())), t0);
        const auto rest = only<response_event>(s.take_events());
        REQUIRE(rest.size() == 1);
        CHECK_FALSE(rest[0].failure);
    }

    TEST_CASE("an oversized answer whose id is in the middle of the line ends its request at "
              "once; a server request of that id does not") {
        session_config cfg;
        cfg.max_message = 1024;
        session s = ready_session(cfg);
        const auto a = s.request("tools/call", {{"name", "a"}}, t0);
        const auto b = s.request("tools/call", {{"name", "b"}}, t0);
        (void)s.take_output();
        const std::string fill(5000, 'x');
        // Neither its first 256 nor its last 64 bytes show the id; a server request with b's id
        // (its own id space) is no answer of b.
        const std::string stream = R"({"jsonrpc":"2.0","result":{"t":")" + fill + R"("},"id":)" +
                                   std::to_string(a) + R"(,"_meta":{"n":")" + fill + "\"}}\n" +
                                   R"({"jsonrpc":"2.0","method":"x","params":{"t":")" + fill +
                                   R"("},"id":)" + std::to_string(b) + R"(,"z":")" + fill + "\"}\n";
        for (std::size_t i = 0; i < stream.size(); i += 333) {
            s.receive(std::string_view(stream).substr(i, 333), t0);
        }
        const auto events = s.take_events();
        const auto done = only<response_event>(events);
        REQUIRE(done.size() == 1);
        CHECK(done[0].id == a);
        CHECK(done[0].failure == errc::transport);
        CHECK(only<noise_event>(events).size() == 2);
        CHECK(s.awaiting(b));
    }

    TEST_CASE("an oversized initialize answer closes the session at once") {
        session_config cfg;
        cfg.max_message = 256;
        session s(cfg);
        s.start(t0);
        (void)s.take_output();
        s.receive(
            R"({"jsonrpc":"2.0","id":1,"result":{"instructions":")" + std::string(1000, 'i') +
                "\"}}\n",
            t0
        );
        const auto closed = only<closed_event>(s.take_events());
        REQUIRE(closed.size() == 1);
        CHECK(closed[0].reason == errc::transport);
        CHECK(closed[0].detail.find("over the limit of 256 bytes") != std::string::npos);
        CHECK(s.closed());
    }

    TEST_CASE("restart_policy: once after a crash, never in a loop, at most max_restarts") {
        using rp = restart_policy;
        const rp::clock::time_point t{};
        restart_limits limits;
        limits.max_restarts = 2;
        limits.min_uptime = 30s;
        SUBCASE("a quick first crash is restarted; a quick second one is not") {
            rp p(limits);
            p.started(t);
            CHECK(p.decide() == "it is running");
            p.ended(t + 1s);
            CHECK_FALSE(p.decide());
            p.started(t + 2s);
            CHECK(p.restarts() == 1);
            p.ended(t + 3s);
            const auto why = p.decide();
            REQUIRE(why);
            CHECK(why->find("exited again 1000 ms after its restart") != std::string::npos);
        }
        SUBCASE("crashes far apart are restarted up to the limit") {
            rp p(limits);
            p.started(t);
            p.ended(t + 1s);
            CHECK_FALSE(p.decide());
            p.started(t + 1s);
            p.ended(t + 60s);
            CHECK_FALSE(p.decide());
            p.started(t + 60s);
            p.ended(t + 200s);
            CHECK(p.restarts() == 2);
            CHECK(p.decide() == "it was restarted 2 times already (the limit)");
        }
        SUBCASE("max_restarts 0: never") {
            limits.max_restarts = 0;
            rp p(limits);
            p.started(t);
            p.ended(t + 1h);
            CHECK(p.decide() == "restarts are off");
        }
    }

    TEST_CASE("the end of the stream ends every open request, after a last unterminated line") {
        session s = ready_session();
        const auto a = s.request("tools/call", {{"name", "a"}}, t0);
        const auto b = s.request("tools/call", {{"name", "b"}}, t0);
        (void)s.take_output();
        s.receive(result_for(a, json::object()).dump(), t0); // no newline yet
        s.end_of_stream("the server exited with status 1", t0);
        const auto events = s.take_events();
        const auto done = only<response_event>(events);
        REQUIRE(done.size() == 2);
        CHECK(done[0].id == a);
        CHECK_FALSE(done[0].failure);
        CHECK(done[1].id == b);
        CHECK(done[1].failure == errc::closed);
        CHECK(done[1].detail == "the server exited with status 1");
        CHECK(only<closed_event>(events).size() == 1);
        // After the end, a request ends at once.
        const auto c = s.request("ping", nullptr, t0);
        const auto late = only<response_event>(s.take_events());
        REQUIRE(late.size() == 1);
        CHECK(late[0].id == c);
        CHECK(late[0].failure == errc::closed);
        CHECK(sent(s).empty());
    }

    TEST_CASE("server logging and list changes come out as events") {
        session s = ready_session();
        s.receive(
            line(
                {{"jsonrpc", "2.0"},
                 {"method", "notifications/message"},
                 {"params", {{"level", "warning"}, {"logger", "db"}, {"data", {{"x", 1}}}}}}
            ),
            t0
        );
        s.receive(line({{"jsonrpc", "2.0"}, {"method", "notifications/prompts/list_changed"}}), t0);
        const auto events = s.take_events();
        const auto logs = only<log_event>(events);
        REQUIRE(logs.size() == 1);
        CHECK(logs[0].level == "warning");
        CHECK(logs[0].logger == "db");
        CHECK(logs[0].data == json{{"x", 1}});
        const auto changed = only<list_changed_event>(events);
        REQUIRE(changed.size() == 1);
        CHECK(changed[0].list == "prompts");
    }
}

TEST_SUITE("unit/mcp_tools") {
    TEST_CASE("plan_tool_set: taken and repeated names and bad schemas are left out with why") {
        namespace tools = wafer::tools;
        auto ok = [](const json&) {
            return "ok";
        };
        const auto make = [&](const std::string& name, json schema) {
            return tools::make_tool<json>(name, "d", std::move(schema), ok);
        };
        const json obj{{"type", "object"}};
        tools::registry reg;
        reg.add(make("read_file", obj));
        reg.add(make("s__keep", obj));
        reg.add(make("s__old", obj));
        std::vector<tools::tool> candidates;
        candidates.push_back(make("read_file", obj)); // a built-in tool's name
        candidates.push_back(make("s__keep", obj));
        candidates.push_back(make("s__new", obj));
        candidates.push_back(make("s__new", obj)); // "new" and "new." both map here
        candidates.push_back(make("s__bad", json{{"type", "object"}, {"frobnicate", 1}}));
        tool_set_plan p = plan_tool_set(reg, {"s__keep", "s__old"}, std::move(candidates));
        std::vector<std::string> names;
        for (const auto& t : p.add) {
            names.push_back(t.name);
        }
        using list = std::vector<std::string>;
        CHECK(names == list{"s__keep", "s__new"});
        CHECK(p.remove == list{"s__keep", "s__old"});
        CHECK(p.update.added == list{"s__new"});
        CHECK(p.update.removed == list{"s__old"});
        REQUIRE(p.update.skipped.size() == 3);
        CHECK(p.update.skipped[0].starts_with("read_file: another tool of the registry"));
        CHECK(p.update.skipped[1].starts_with("s__new: an earlier tool"));
        CHECK(p.update.skipped[2].starts_with("s__bad: its inputSchema cannot be used"));
        // What is left goes in without an error; the built-in tool is untouched.
        reg.replace(p.remove, std::move(p.add));
        CHECK(reg.names() == list{"read_file", "s__keep", "s__new"});
    }

    TEST_CASE("list freshness: the shortest ttlMs of the pages, absent or negative is 0, one "
              "private page makes the list private") {
        list_freshness f;
        add_page_freshness(f, json{{"ttlMs", 5000}, {"cacheScope", "public"}}, true);
        REQUIRE(f.ttl.has_value());
        CHECK(*f.ttl == 5000ms);
        CHECK(f.cache_scope == "public");
        add_page_freshness(f, json{{"ttlMs", 800}, {"cacheScope", "public"}}, false);
        CHECK(*f.ttl == 800ms);
        CHECK(f.cache_scope == "public");
        add_page_freshness(f, json{{"ttlMs", 9000}, {"cacheScope", "private"}}, false);
        CHECK(*f.ttl == 800ms);
        CHECK(f.cache_scope == "private");
        add_page_freshness(f, json{{"ttlMs", 9000}, {"cacheScope", "public"}}, false);
        CHECK(f.cache_scope == "private"); // stays narrowed
        for (const json& page :
             {json::object(),
              json{{"ttlMs", -5}},
              json{{"ttlMs", "600"}},
              json{{"ttlMs", 1.5}},
              json{{"cacheScope", "everyone"}}}) {
            CAPTURE(page.dump());
            list_freshness g;
            add_page_freshness(g, page, true);
            REQUIRE(g.ttl.has_value());
            CHECK(*g.ttl == 0ms);
            CHECK(g.cache_scope == "private");
        }
    }

    TEST_CASE("tool entries: verbatim schemas, spec defaults for the hints, bad entries refused") {
        const json entry{
            {"name", "get-sum"},
            {"description", "adds"},
            {"inputSchema",
             {{"$schema", "http://json-schema.org/draft-07/schema#"},
              {"type", "object"},
              {"properties", {{"a", {{"type", "number"}}}}}}},
            {"annotations", {{"title", "Sum"}, {"readOnlyHint", true}}}};
        const auto t = read_tool_info(entry);
        REQUIRE(t);
        CHECK(t->name == "get-sum");
        CHECK(t->title == "Sum");
        CHECK(t->input_schema == entry["inputSchema"]);
        CHECK(t->read_only_hint);
        CHECK(t->destructive_hint);
        CHECK_FALSE(t->idempotent_hint);
        CHECK(t->open_world_hint);

        std::string why;
        CHECK_FALSE(read_tool_info(json{{"name", "x"}}, &why));
        CHECK(why == "x: inputSchema is not an object");
        CHECK_FALSE(read_tool_info(json{{"inputSchema", json::object()}}, &why));
        CHECK_FALSE(read_tool_info(json::array(), &why));
    }

    TEST_CASE("registry names: prefixed, mapped to what Chat Completions accepts, bounded") {
        CHECK(registry_name("everything__", "get-sum") == "everything__get-sum");
        CHECK(registry_name("fs__", "read.file v2") == "fs__read_file_v2");
        CHECK(registry_name("s__", std::string(61, 'a')) == "s__" + std::string(61, 'a'));
        CHECK(registry_name("s__", std::string(62, 'a')).empty());
    }

    TEST_CASE("call results: every block type as text, isError, structured content") {
        const json result{
            {"content",
             json::array(
                 {{{"type", "text"}, {"text", "hello"}},
                  {{"type", "image"}, {"mimeType", "image/png"}, {"data", "AAAA"}},
                  {{"type", "resource_link"},
                   {"uri", "file:///a.txt"},
                   {"name", "a.txt"},
                   {"mimeType", "text/plain"}},
                  {{"type", "resource"}, {"resource", {{"uri", "mem://n"}, {"text", "note"}}}},
                  {{"type", "hologram"}, {"x", 1}}}
             )},
            {"structuredContent", {{"sum", 3}}}};
        const auto r = read_call_result(result);
        CHECK_FALSE(r.is_error);
        CHECK(
            r.text == "hello\n[image image/png, 3 bytes]\n[resource link: a.txt <file:///a.txt> "
                      "text/plain]\n[resource <mem://n>]\nnote\n{\"type\":\"hologram\",\"x\":1}"
        );
        CHECK(r.structured == json{{"sum", 3}});

        const auto only_structured =
            read_call_result(json{{"content", json::array()}, {"structuredContent", {{"sum", 3}}}});
        CHECK(only_structured.text == R"({"sum":3})");

        const auto failed = read_call_result(json{
            {"content", json::array({{{"type", "text"}, {"text", "no"}}})}, {"isError", true}});
        CHECK(failed.is_error);
        CHECK(failed.text == "no");
        CHECK(read_call_result(json("x")).is_error);
    }
}

TEST_SUITE("unit/mcp_config") {
    namespace mcp = wafer::tools::mcp;
    const mcp::variable_lookup vars = [](std::string_view name) -> std::optional<std::string> {
        if (name == "TOKEN") {
            return "t0k";
        }
        if (name == "HOME") {
            return "/home/u";
        }
        return std::nullopt;
    };

    TEST_CASE("stdio and HTTP entries, variables expanded") {
        const auto entries = mcp::parse_server_config(
            R"({"mcpServers": {
                "fs": {"command": "npx", "args": ["-y", "server-filesystem", "${HOME}/src"],
                       "env": {"GITHUB_TOKEN": "${TOKEN}", "LEVEL": "${LEVEL:-info}"}},
                "remote": {"type": "http", "url": "https://mcp.example.com/mcp",
                           "headers": {"Authorization": "Bearer ${TOKEN}"}},
                "off": {"command": "x", "disabled": true}}})",
            ".mcp.json",
            vars
        );
        REQUIRE(entries.size() == 3);
        const auto& fs = entries[0];
        CHECK(fs.name == "fs");
        REQUIRE(fs.stdio);
        CHECK(fs.stdio->name == "fs");
        CHECK(fs.stdio->command == "npx");
        CHECK(fs.stdio->args == std::vector<std::string>{"-y", "server-filesystem", "/home/u/src"});
        CHECK(
            fs.stdio->env ==
            std::vector<std::pair<std::string, std::string>>{
                {"GITHUB_TOKEN", "t0k"}, {"LEVEL", "info"}}
        );
        CHECK(entries[1].name == "off");
        CHECK(entries[1].disabled);
        REQUIRE(entries[2].http);
        CHECK(entries[2].http->url == "https://mcp.example.com/mcp");
        CHECK(entries[2].http->headers[0].second == "Bearer t0k");
    }

    TEST_CASE("each mistake is one clear error naming the file and the server") {
        const std::vector<std::pair<std::string, std::string>> bad{
            {R"({"servers": {}})", "no \"mcpServers\""},
            {R"({"mcpServers": {"a b": {"command": "x"}}})", "server name \"a b\""},
            {R"({"mcpServers": {"s": {"args": ["x"]}}})", "neither \"command\""},
            {R"({"mcpServers": {"s": {"command": "x", "url": "http://h"}}})", "both"},
            {R"({"mcpServers": {"s": {"command": "x", "args": [1]}}})",
             "\"args\" is not an array of strings"},
            {R"({"mcpServers": {"s": {"command": "x", "env": {"A": 1}}}})",
             "\"env\": \"A\" is not a string"},
            {R"({"mcpServers": {"s": {"command": "${NOPE}"}}})", "NOPE is not set"},
            {R"({"mcpServers": {"s": {"url": "ftp://h"}}})", "not an http:// or https:// URL"},
            {R"({"mcpServers": {"s": {"type": "sse", "url": "http://h"}}})", "SSE transport"},
            {R"({"mcpServers": {"s": {"command": "x"},})", "not valid JSON"},
        };
        for (const auto& [text, want] : bad) {
            CAPTURE(text);
            try {
                (void)mcp::parse_server_config(text, "cfg.json", vars);
                FAIL("accepted");
            } catch (const mcp::error& e) {
                CHECK(e.code() == mcp::errc::bad_config);
                CHECK(e.detail().find("cfg.json") != std::string::npos);
                CHECK_MESSAGE(e.detail().find(want) != std::string::npos, e.detail());
            }
        }
    }
    TEST_CASE("startup_timeout: a server's own start limit in seconds; bad values are errors") {
        using namespace std::chrono_literals;
        const auto entries = mcp::parse_server_config(
            R"({"mcpServers": {
                "slow": {"command": "x", "startup_timeout": 30},
                "quick": {"url": "https://h/mcp", "startup_timeout": 0.25},
                "tiny": {"command": "x", "startup_timeout": 0.0001},
                "max": {"command": "x", "startup_timeout": 3600},
                "plain": {"command": "x"}}})",
            "cfg.json",
            vars
        );
        REQUIRE(entries.size() == 5);
        CHECK(entries[0].name == "max");
        CHECK(entries[0].startup_timeout == 3600s);
        CHECK_FALSE(entries[1].startup_timeout);
        CHECK(entries[2].startup_timeout == 250ms);
        CHECK(entries[3].startup_timeout == 30s);
        CHECK(entries[4].startup_timeout == 1ms);
        const std::vector<std::pair<std::string, std::string>> bad{
            {R"({"mcpServers": {"s": {"command": "x", "startup_timeout": "30"}}})",
             "server \"s\": \"startup_timeout\" is not a number of seconds (got \"30\")"},
            {R"({"mcpServers": {"s": {"command": "x", "startup_timeout": true}}})",
             "\"startup_timeout\" is not a number of seconds (got true)"},
            {R"({"mcpServers": {"s": {"command": "x", "startup_timeout": null}}})",
             "is not a number of seconds"},
            {R"({"mcpServers": {"s": {"command": "x", "startup_timeout": 0}}})",
             "\"startup_timeout\" must be more than 0 and at most 3600 seconds (got 0)"},
            {R"({"mcpServers": {"s": {"command": "x", "startup_timeout": -5}}})",
             "must be more than 0 and at most 3600 seconds (got -5)"},
            {R"({"mcpServers": {"s": {"command": "x", "startup_timeout": 3601}}})", "(got 3601)"},
            {R"({"mcpServers": {"s": {"command": "x", "startup_timeout": 1e300}}})",
             "must be more than 0"},
            {R"({"mcpServers": {"s": {"url": "https://h", "startup_timeout": [1]}}})",
             "is not a number of seconds"},
        };
        for (const auto& [text, want] : bad) {
            CAPTURE(text);
            try {
                (void)mcp::parse_server_config(text, "cfg.json", vars);
                FAIL("accepted");
            } catch (const mcp::error& e) {
                CHECK(e.code() == mcp::errc::bad_config);
                CHECK(e.detail().find("cfg.json") != std::string::npos);
                CHECK_MESSAGE(e.detail().find(want) != std::string::npos, e.detail());
            }
        }
    }
}
