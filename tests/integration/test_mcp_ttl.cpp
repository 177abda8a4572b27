// 2026 list TTLs (ttlMs, cacheScope; mcp.md §4.5) end to end: a server_tool_set lists a 2026
// server's tools again once its listing went stale and a turn starts, never by polling; a failed
// listing keeps the old tools and is tried again less often. Against wafer-mcp-fault-server
// --stateless (--ttl-ms) over stdio, without a listen, so that only the TTL can show the change its
// `change_tools` makes.
#include <wafer/agent.hpp>
#include <wafer/scripted_model.hpp>
#include <wafer/tools/mcp/client.hpp>
#include <wafer/tools/mcp/server_tool_set.hpp>
#include <wafer/tools/mcp/server_tools.hpp>
#include <wafer/tools/registry.hpp>

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <memory>
#include <string>
#include <vector>

#include "mcp_fault_server.hpp"
#include "mcp_servers.hpp"
#include "run_coro.hpp"

namespace asio = boost::asio;
namespace mcp = wafer::tools::mcp;
using nlohmann::json;
using wafer::testing::run_coro;
using wafer::testing::mcp_servers::obj;
using namespace wafer::testing::mcp_faults;
using namespace std::chrono_literals;

namespace {

asio::awaitable<void> pause(std::chrono::milliseconds d) {
    asio::steady_timer t(co_await asio::this_coro::executor, d);
    co_await t.async_wait(asio::use_awaitable);
}

std::size_t listings(const fs::path& log) {
    std::size_t n = 0;
    for (const json& m : log_messages(log)) {
        n += m.is_object() && m.value("method", "") == "tools/list" ? 1U : 0U;
    }
    return n;
}

bool offers(const wafer::tools::registry& reg, const std::string& name) {
    return reg.find(name) != nullptr;
}

// One server's tools in a registry, its client not listening: what the TTL alone does.
struct ttl_rig {
    std::shared_ptr<wafer::tools::registry> reg = std::make_shared<wafer::tools::registry>();
    std::shared_ptr<mcp::server_tool_set> set;
    std::shared_ptr<mcp::client> client;
    std::vector<mcp::tool_set_update> updates;

    asio::awaitable<void> start(const mcp::stdio_server& server) {
        auto ex = co_await asio::this_coro::executor;
        mcp::tool_set_options so;
        so.on_update = [this](const mcp::tool_set_update& u) {
            updates.push_back(u);
        };
        set = mcp::server_tool_set::create(ex, so);
        mcp::client_options o;
        o.session.era = mcp::protocol_era::automatic;
        o.listen = false;
        o.on_list_changed = set->list_changed_handler();
        client = co_await mcp::client::async_connect(server, o);
        co_await set->async_start(reg, client);
    }
    // What the agent does at a turn: turn_starting(), then a snapshot of the registry.
    std::shared_ptr<const wafer::tools::registry> turn() const {
        reg->turn_starting();
        return reg->snapshot();
    }
    // `n` turns, one every 100 ms.
    asio::awaitable<void> turns_every_100ms(int n) const {
        for (int i = 0; i < n; ++i) {
            co_await pause(100ms);
            static_cast<void>(turn());
        }
    }
    asio::awaitable<void> change_tools() {
        co_await mcp::async_call_tool(*client, "change_tools", json::object());
    }
};

} // namespace

TEST_SUITE("mcp/ttl") {
    TEST_CASE("a stale 2026 listing is listed again when a turn starts: that turn offers the old "
              "tools, the next the new; no turn, no listing") {
        temp_dir dir;
        const fs::path log = dir.path / "log";
        const auto server =
            faulty("ttl", "none", {"--stateless", "--ttl-ms", "600", "--log", log.string()});
        asio::io_context ioc;
        struct seen {
            mcp::list_freshness first;
            bool fresh_turn_has = true;
            std::size_t listed_while_fresh = 0;
            bool stale_turn_has = true;
            bool refreshed = false;
            bool next_turn_has = false;
            std::size_t listed_after = 0;
            std::size_t listed_idle = 0;
            bool expired = false;
        };
        ttl_rig rig;
        const seen s = run_coro(
            ioc,
            [&]() -> asio::awaitable<seen> {
                seen out;
                co_await rig.start(server);
                out.first = rig.updates.at(0).freshness;
                co_await rig.change_tools(); // the server's list grows; nobody is told
                out.fresh_turn_has = offers(*rig.turn(), "ttl__added");
                co_await pause(100ms);
                out.listed_while_fresh = listings(log);
                co_await pause(600ms);
                out.stale_turn_has = offers(*rig.turn(), "ttl__added");
                out.refreshed = co_await async_until([&] { return rig.updates.size() == 2; });
                out.next_turn_has = offers(*rig.turn(), "ttl__added");
                out.listed_after = listings(log);
                out.expired = rig.updates.back().expired;
                // Fresh again for 600 ms, and then stale with no turn to want it.
                co_await pause(1000ms);
                out.listed_idle = listings(log);
                co_await rig.client->async_close();
                co_return out;
            }(),
            30s
        );
        REQUIRE(s.first.ttl.has_value());
        CHECK(*s.first.ttl == 600ms);
        CHECK(s.first.cache_scope == "public");
        CHECK_FALSE(s.fresh_turn_has);
        CHECK(s.listed_while_fresh == 1);
        CHECK_FALSE(s.stale_turn_has);
        CHECK(s.refreshed);
        CHECK(s.next_turn_has);
        CHECK(s.expired);
        CHECK(s.listed_after == 2);
        CHECK(s.listed_idle == 2);
    }

    TEST_CASE("in the agent loop: a TTL of 0 lists again as each turn begins; a change the "
              "server made is offered from the second turn after it") {
        temp_dir dir;
        const fs::path log = dir.path / "log";
        const auto server =
            faulty("ttl", "none", {"--stateless", "--ttl-ms", "0", "--log", log.string()});
        using turn = wafer::scripted_model::turn;
        auto model = std::make_shared<wafer::scripted_model>("zai-glm-4.7");
        // Each answer takes 150 ms, as a model's do: time for the listing a turn began.
        std::vector<turn> turns{
            turn::calls({{"c1", "ttl__change_tools", "{}"}}),
            turn::calls({{"c2", "ttl__echo", R"({"message":"between"})"}}),
            turn::calls({{"c3", "ttl__added", "{}"}}),
            turn::text("done")};
        for (turn& t : turns) {
            t.delay = 150ms;
            model->push(std::move(t));
        }
        asio::io_context ioc;
        ttl_rig rig;
        const wafer::run_result r = run_coro(
            ioc,
            [&]() -> asio::awaitable<wafer::run_result> {
                co_await rig.start(server);
                wafer::agent_config cfg;
                cfg.name = "ttl";
                cfg.model = model;
                cfg.tools = rig.reg;
                cfg.limits.tool_call_timeout = 20s;
                const wafer::agent a(std::move(cfg));
                std::string input = "Change the tools, then use the new one.";
                asio::awaitable<wafer::run_result> op = a.async_run(std::move(input));
                wafer::run_result out = co_await std::move(op);
                co_await rig.client->async_close();
                co_return out;
            }(),
            30s
        );
        CHECK(r.stop_reason == wafer::stop_reason::completed);
        REQUIRE(model->request_count() == 4);
        const auto offered = [&](std::size_t i) {
            std::vector<std::string> out;
            for (const auto& t : model->request(i).tools) {
                out.push_back(t.name);
            }
            return out;
        };
        CHECK_FALSE(has(offered(0), "ttl__added"));
        CHECK_FALSE(has(offered(1), "ttl__added")); // listed as turn 2 began, before the change
        CHECK(has(offered(2), "ttl__added"));
        std::string added_said;
        for (const auto& m : r.conversation.messages()) {
            if (m.tool_call_id == "c3") {
                added_said = m.text();
            }
        }
        CHECK(added_said == "added ran");
        CHECK(listings(log) == 5); // the start's, and one as each turn began
    }

    TEST_CASE("without ttlMs a 2026 listing is stale at once: one listing per turn at most, "
              "never two at a time") {
        temp_dir dir;
        const fs::path log = dir.path / "log";
        const auto server = faulty("zero", "none", {"--stateless", "--log", log.string()});
        asio::io_context ioc;
        ttl_rig rig;
        const std::vector<std::size_t> counts = run_coro(
            ioc,
            [&]() -> asio::awaitable<std::vector<std::size_t>> {
                std::vector<std::size_t> out;
                co_await rig.start(server);
                // Three turns at once: one listing.
                for (int i = 0; i < 3; ++i) {
                    static_cast<void>(rig.turn());
                }
                co_await async_until([&] { return rig.updates.size() == 2; });
                co_await pause(100ms);
                out.push_back(listings(log));
                static_cast<void>(rig.turn());
                co_await async_until([&] { return rig.updates.size() == 3; });
                out.push_back(listings(log));
                co_await rig.client->async_close();
                co_return out;
            }(),
            30s
        );
        CHECK(counts == std::vector<std::size_t>{2, 3});
        REQUIRE(rig.updates.size() == 3);
        REQUIRE(rig.updates[0].freshness.ttl.has_value());
        CHECK(*rig.updates[0].freshness.ttl == 0ms);
        CHECK(rig.updates[0].freshness.cache_scope == "private"); // said nothing
    }

    TEST_CASE("a 2025 server's listing has no TTL: turns never list it again") {
        temp_dir dir;
        const fs::path log = dir.path / "log";
        const auto server = faulty("old", "none", {"--log", log.string()});
        asio::io_context ioc;
        ttl_rig rig;
        const std::size_t n = run_coro(
            ioc,
            [&]() -> asio::awaitable<std::size_t> {
                co_await rig.start(server);
                for (int i = 0; i < 5; ++i) {
                    static_cast<void>(rig.turn());
                    co_await pause(20ms);
                }
                co_await pause(200ms);
                co_await rig.client->async_close();
                co_return listings(log);
            }(),
            30s
        );
        CHECK(n == 1);
        REQUIRE(rig.updates.size() == 1);
        CHECK_FALSE(rig.updates[0].freshness.ttl.has_value());
        CHECK_FALSE(rig.set->stale());
    }

    TEST_CASE("a listing that fails keeps the old tools and is tried again after 1 s, then 2") {
        temp_dir dir;
        const fs::path log = dir.path / "log";
        const auto server = faulty(
            "shaky", "relist-fails", {"--stateless", "--ttl-ms", "0", "--log", log.string()}
        );
        asio::io_context ioc;
        ttl_rig rig;
        struct seen {
            std::size_t after_failure = 0;
            std::size_t within_a_second = 0;
            std::size_t after_a_second = 0;
            std::size_t within_two_more = 0;
            bool still_offered = false;
        };
        const seen s = run_coro(
            ioc,
            [&]() -> asio::awaitable<seen> {
                seen out;
                co_await rig.start(server);
                static_cast<void>(rig.turn());
                co_await async_until([&] { return rig.updates.size() == 2; });
                out.after_failure = listings(log);
                // Turns keep coming; the retry waits its second.
                co_await rig.turns_every_100ms(6);
                out.within_a_second = listings(log);
                co_await pause(500ms);
                static_cast<void>(rig.turn());
                co_await async_until([&] { return rig.updates.size() == 3; });
                out.after_a_second = listings(log);
                co_await rig.turns_every_100ms(10);
                out.within_two_more = listings(log);
                out.still_offered = offers(*rig.turn(), "shaky__echo");
                co_await rig.client->async_close();
                co_return out;
            }(),
            30s
        );
        REQUIRE(rig.updates.size() >= 3);
        CHECK(rig.updates[1].failure.find("the tool list is unavailable") != std::string::npos);
        CHECK(rig.updates[1].expired);
        CHECK(s.after_failure == 2);
        CHECK(s.within_a_second == 2);
        CHECK(s.after_a_second == 3);
        CHECK(s.within_two_more == 3); // the next try waits 2 s
        CHECK(s.still_offered);
        CHECK(rig.set->stale());
    }
}
