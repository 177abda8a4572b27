// mcp::session, sans-io: the 2026 `subscriptions/listen` (mcp.md §2.3). The request, its
// acknowledgment, the notifications that name it, its graceful end, its cancellation, and
// that it never times out.
#include <wafer/tools/mcp/session.hpp>

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

json meta_of(std::int64_t listen) {
    return {{"io.modelcontextprotocol/subscriptionId", listen}};
}

// A 2026 session past server/discover.
session stateless_session() {
    session_config cfg;
    cfg.era = protocol_era::stateless;
    session s(cfg);
    s.start(t0);
    const auto out = sent(s);
    REQUIRE(out.size() == 1);
    REQUIRE(out[0]["method"] == "server/discover");
    s.receive(
        line(
            {{"jsonrpc", "2.0"},
             {"id", out[0]["id"]},
             {"result",
              {{"resultType", "complete"},
               {"supportedVersions", {"2026-07-28"}},
               {"capabilities", {{"tools", {{"listChanged", true}}}}},
               {"serverInfo", {{"name", "modern"}, {"version", "2"}}}}}}
        ),
        t0
    );
    REQUIRE(s.ready());
    (void)s.take_output();
    (void)s.take_events();
    return s;
}

} // namespace

TEST_SUITE("unit/mcp_session") {
    TEST_CASE("listen: the request carries what is asked and the request metadata") {
        auto s = stateless_session();
        subscriptions want;
        want.tools_list_changed = true;
        want.resources = {"file:///project/config.json"};
        const auto id = s.listen(want, t0);
        CHECK(s.listening(id));
        const auto out = sent(s);
        REQUIRE(out.size() == 1);
        CHECK(out[0]["method"] == "subscriptions/listen");
        CHECK(out[0]["id"] == id);
        const json& n = out[0]["params"]["notifications"];
        CHECK(n == json{{"toolsListChanged", true}, {"resourceSubscriptions", want.resources}});
        CHECK(out[0]["params"]["_meta"]["io.modelcontextprotocol/protocolVersion"] == "2026-07-28");
    }

    TEST_CASE("listen: the acknowledgment, notifications that name it, and a graceful end") {
        auto s = stateless_session();
        subscriptions want;
        want.tools_list_changed = true;
        want.prompts_list_changed = true;
        const auto id = s.listen(want, t0);
        (void)sent(s);

        // The server honours only part of it.
        s.receive(
            line(
                {{"jsonrpc", "2.0"},
                 {"method", "notifications/subscriptions/acknowledged"},
                 {"params",
                  {{"_meta", meta_of(id)}, {"notifications", {{"toolsListChanged", true}}}}}}
            ),
            t0
        );
        auto events = s.take_events();
        const auto acks = only<subscriptions_acknowledged_event>(events);
        REQUIRE(acks.size() == 1);
        CHECK(acks[0].id == id);
        subscriptions granted;
        granted.tools_list_changed = true;
        CHECK(acks[0].granted == granted);

        s.receive(
            line(
                {{"jsonrpc", "2.0"},
                 {"method", "notifications/tools/list_changed"},
                 {"params", {{"_meta", meta_of(id)}}}}
            ),
            t0
        );
        const auto changed = only<list_changed_event>(s.take_events());
        REQUIRE(changed.size() == 1);
        CHECK(changed[0].list == "tools");
        CHECK(changed[0].subscription == id);

        // Hours later it is still open: a listen has no deadline, and holds up no other one.
        CHECK_FALSE(s.next_deadline());
        s.on_time(t0 + 24h);
        CHECK(s.listening(id));
        CHECK(s.take_output().empty());
        const auto other = s.request("tools/list", json::object(), t0 + 24h);
        REQUIRE(s.next_deadline());
        s.on_time(t0 + 24h + 61s);
        const auto timed_out = only<response_event>(s.take_events());
        REQUIRE(timed_out.size() == 1);
        CHECK(timed_out[0].id == other);
        CHECK(s.listening(id));

        // The server ends it gracefully: its result.
        s.receive(
            line(
                {{"jsonrpc", "2.0"},
                 {"id", id},
                 {"result", {{"resultType", "complete"}, {"_meta", meta_of(id)}}}}
            ),
            t0 + 25h
        );
        const auto ended = only<response_event>(s.take_events());
        REQUIRE(ended.size() == 1);
        CHECK(ended[0].id == id);
        CHECK_FALSE(ended[0].failure);
        CHECK_FALSE(s.listening(id));
    }

    TEST_CASE("listen: cancelled by the client, ended by the connection, refused in 2025") {
        SUBCASE("cancel: notifications/cancelled with its id (stdio)") {
            auto s = stateless_session();
            const auto id = s.listen({.tools_list_changed = true}, t0);
            (void)sent(s);
            s.cancel(id, "the agent is done");
            const auto out = sent(s);
            REQUIRE(out.size() == 1);
            CHECK(out[0]["method"] == "notifications/cancelled");
            CHECK(out[0]["params"]["requestId"] == id);
            const auto ended = only<response_event>(s.take_events());
            REQUIRE(ended.size() == 1);
            CHECK(ended[0].failure == errc::cancelled);
            CHECK_FALSE(s.listening(id));
        }
        SUBCASE("the server's stdout ends: the listen ends closed") {
            auto s = stateless_session();
            const auto id = s.listen({.tools_list_changed = true}, t0);
            s.end_of_stream("exited", t0 + 1s);
            const auto ended = only<response_event>(s.take_events());
            REQUIRE(ended.size() == 1);
            CHECK(ended[0].id == id);
            CHECK(ended[0].failure == errc::closed);
        }
        SUBCASE("an acknowledgment of nothing open is noise, not an event") {
            auto s = stateless_session();
            s.receive(
                line(
                    {{"jsonrpc", "2.0"},
                     {"method", "notifications/subscriptions/acknowledged"},
                     {"params", {{"_meta", meta_of(42)}}}}
                ),
                t0
            );
            auto events = s.take_events();
            CHECK(only<subscriptions_acknowledged_event>(events).empty());
            CHECK(only<noise_event>(events).size() == 1);
        }
        SUBCASE("a 2025 connection: refused at once, nothing sent") {
            session s;
            s.start(t0);
            (void)s.take_output();
            s.receive(
                line(
                    {{"jsonrpc", "2.0"},
                     {"id", 1},
                     {"result",
                      {{"protocolVersion", "2025-11-25"},
                       {"capabilities", json::object()},
                       {"serverInfo", {{"name", "old"}, {"version", "1"}}}}}}
                ),
                t0
            );
            (void)s.take_output();
            (void)s.take_events();
            const auto id = s.listen({.tools_list_changed = true}, t0);
            CHECK(s.take_output().empty());
            const auto ended = only<response_event>(s.take_events());
            REQUIRE(ended.size() == 1);
            CHECK(ended[0].id == id);
            CHECK(ended[0].failure == errc::protocol);
            CHECK(ended[0].detail.find("2025-11-25") != std::string::npos);
        }
    }
}
