// 2026 list changes end to end: the client opens subscriptions/listen after server/discover
// (and again after a stdio restart), hears notifications/tools/list_changed on it, and the
// server's tools in the registry follow. Against wafer-mcp-fault-server --stateless over stdio
// and Streamable HTTP on 127.0.0.1 (its log shows what the client sent).
#include <wafer/mcp/http_transport.hpp>
#include <wafer/tools/mcp/client.hpp>
#include <wafer/tools/mcp/server_tool_set.hpp>
#include <wafer/tools/mcp/server_tools.hpp>
#include <wafer/tools/registry.hpp>

#include <boost/asio/io_context.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <functional>
#include <memory>
#include <string>
#include <type_traits>
#include <vector>

#include "mcp_fault_server.hpp"
#include "mcp_servers.hpp"
#include "run_coro.hpp"

namespace asio = boost::asio;
namespace mcp = wafer::tools::mcp;
using nlohmann::json;
using wafer::testing::run_coro;
using wafer::testing::mcp_servers::expect_error;
using wafer::testing::mcp_servers::obj;
using namespace wafer::testing::mcp_faults;
using namespace std::chrono_literals;

namespace {

// The subscriptions/listen requests of a log.
std::vector<json> listens(const fs::path& log) {
    std::vector<json> out;
    for (auto& m : log_messages(log)) {
        if (m.value("method", "") == "subscriptions/listen") {
            out.push_back(std::move(m));
        }
    }
    return out;
}

// list_changed events as the client reported them, forwarded to a tool set when there is one.
struct changes {
    std::vector<mcp::list_changed_event> seen;
    std::function<void(const mcp::list_changed_event&)> forward;
    std::function<void(const mcp::list_changed_event&)> handler() {
        return [this](const mcp::list_changed_event& e) {
            seen.push_back(e);
            if (forward) {
                forward(e);
            }
        };
    }
    // Events that came on a listen (a restart's own "tools" names none).
    std::size_t on_listen() const {
        return static_cast<std::size_t>(std::count_if(seen.begin(), seen.end(), [](const auto& e) {
            return e.subscription != 0;
        }));
    }
};

// Connects with `ch` hearing the list changes (stdio: the era the server picks; HTTP: 2026) and
// waits for the listen's acknowledgment (up to 5 s: a test then finds subscribed() empty).
template <class Server>
asio::awaitable<std::shared_ptr<mcp::client>> connect_listening(const Server& server, changes& ch) {
    mcp::client_options o;
    o.on_list_changed = ch.handler();
    std::shared_ptr<mcp::client> c;
    if constexpr (std::is_same_v<Server, mcp::stdio_server>) {
        o.session.era = mcp::protocol_era::automatic;
        c = co_await mcp::client::async_connect(server, o);
    } else {
        o.session.era = mcp::protocol_era::stateless;
        c = co_await wafer::mcp::async_connect_http(server, o);
    }
    co_await async_until([&] { return c->subscribed().has_value(); });
    co_return c;
}

} // namespace

TEST_SUITE("mcp/listen") {
    TEST_CASE("a 2026 server's list change reaches the registry through subscriptions/listen") {
        temp_dir dir;
        const fs::path log = dir.path / "log";
        asio::io_context ioc;
        auto reg = std::make_shared<wafer::tools::registry>();
        changes ch;
        struct seen {
            std::string version;
            std::optional<mcp::subscriptions> granted;
            std::vector<std::string> before, after;
            bool refreshed = false;
        };
        const seen s = run_coro(
            ioc,
            [&]() -> asio::awaitable<seen> {
                seen out;
                auto ex = co_await asio::this_coro::executor;
                const mcp::tool_set_options so;
                auto set = mcp::server_tool_set::create(ex, so);
                ch.forward = set->list_changed_handler();
                const auto server = faulty("live", "none", {"--stateless", "--log", log.string()});
                auto c = co_await connect_listening(server, ch);
                out.version = c->server().protocol_version;
                out.granted = c->subscribed();
                static_cast<void>(co_await set->async_start(reg, c));
                out.before = set->names();
                static_cast<void>(co_await mcp::async_call_tool(*c, "change_tools", json::object())
                );
                const std::string added = "live__added";
                out.refreshed = co_await async_until([&] { return has(set->names(), added); });
                out.after = set->names();
                co_await c->async_close();
                co_return out;
            }(),
            30s
        );
        CHECK(s.version == "2026-07-28");
        REQUIRE(s.granted);
        CHECK(s.granted->tools_list_changed);
        CHECK_FALSE(s.granted->prompts_list_changed);
        CHECK(has(s.before, "live__change_tools"));
        CHECK_FALSE(has(s.before, "live__added"));
        CHECK(s.refreshed);
        CHECK(reg->find("live__added") != nullptr);
        // One listen, for what the server's capabilities say may change (tools only), with the
        // request's _meta; the change came on it.
        const auto ls = listens(log);
        REQUIRE(ls.size() == 1);
        CHECK(ls[0]["params"]["notifications"] == json{{"toolsListChanged", true}});
        CHECK(ls[0]["params"]["_meta"]["io.modelcontextprotocol/protocolVersion"] == "2026-07-28");
        REQUIRE(ch.on_listen() == 1);
        CHECK(ch.seen.back().list == "tools");
        CHECK(ch.seen.back().subscription == ls[0]["id"].get<std::int64_t>());
    }

    TEST_CASE("after a stdio server's restart the client listens again") {
        temp_dir dir;
        const fs::path log = dir.path / "log";
        asio::io_context ioc;
        changes ch;
        struct seen {
            mcp::errc crash{};
            std::string after;
            bool relistened = false;
            bool heard = false;
        };
        const seen s = run_coro(
            ioc,
            [&]() -> asio::awaitable<seen> {
                seen out;
                const auto server =
                    faulty("again", "exit-mid-call", {"--stateless", "--log", log.string()});
                auto c = co_await connect_listening(server, ch);
                out.crash = (co_await expect_error([&]() -> asio::awaitable<void> {
                                co_await mcp::async_call_tool(*c, "crash", json::object());
                            })).code;
                out.after =
                    (co_await mcp::async_call_tool(*c, "echo", obj(R"({"message":"back"})"))).text;
                out.relistened = co_await async_until([&] {
                    return c->subscribed().has_value() && listens(log).size() == 2;
                });
                static_cast<void>(co_await mcp::async_call_tool(*c, "change_tools", json::object())
                );
                out.heard = co_await async_until([&] { return ch.on_listen() == 1; });
                co_await c->async_close();
                co_return out;
            }(),
            30s
        );
        CHECK(s.crash == mcp::errc::closed);
        CHECK(s.after == "Echo: back");
        CHECK(s.relistened);
        REQUIRE(s.heard);
        CHECK(ch.seen.back().subscription == listens(log).back()["id"].get<std::int64_t>());
    }

    TEST_CASE("over Streamable HTTP the listen is an open stream that closing the client ends") {
        temp_dir dir;
        const fs::path log = dir.path / "log";
        http_fault http({"--stateless", "--log", log.string()});
        asio::io_context ioc;
        changes ch;
        struct seen {
            std::optional<mcp::subscriptions> granted;
            bool heard = false;
            std::string echo;
        };
        const seen s = run_coro(
            ioc,
            [&]() -> asio::awaitable<seen> {
                seen out;
                const auto server = http_at("web", http);
                auto c = co_await connect_listening(server, ch);
                out.granted = c->subscribed();
                static_cast<void>(co_await mcp::async_call_tool(*c, "change_tools", json::object())
                );
                out.heard = co_await async_until([&] { return ch.on_listen() == 1; });
                // Other requests go on beside the open stream.
                out.echo =
                    (co_await mcp::async_call_tool(*c, "echo", obj(R"({"message":"beside"})")))
                        .text;
                co_await c->async_close();
                co_return out;
            }(),
            30s
        );
        REQUIRE(s.granted);
        CHECK(s.granted->tools_list_changed);
        CHECK(s.heard);
        CHECK(s.echo == "Echo: beside");
        const auto ls = listens(log);
        REQUIRE(ls.size() == 1);
        // Closing the stream is the 2026 HTTP cancel: the server sees its end.
        const std::string closed = "HTTP listen closed " + ls[0]["id"].dump();
        CHECK(eventually([&] { return has(log_lines(log), closed); }));
    }

    TEST_CASE("a listen stream that breaks is opened again, and its lists are listed again") {
        temp_dir dir;
        const fs::path log = dir.path / "log";
        http_fault http({"--stateless", "--log", log.string()});
        asio::io_context ioc;
        changes ch;
        const bool reopened = run_coro(
            ioc,
            [&]() -> asio::awaitable<bool> {
                const auto server = http_at("web", http);
                auto c = co_await connect_listening(server, ch);
                static_cast<void>(co_await mcp::async_call_tool(*c, "drop_listens", json::object())
                );
                // A second later a new listen; its acknowledgment is followed by a "tools"
                // change (whatever changed meanwhile was not heard).
                const bool ok = co_await async_until([&] { return ch.on_listen() == 1; });
                const bool open = c->subscribed().has_value();
                co_await c->async_close();
                co_return ok&& open;
            }(),
            30s
        );
        CHECK(reopened);
        const auto ls = listens(log);
        REQUIRE(ls.size() == 2);
        CHECK(ls[1]["id"] != ls[0]["id"]);
        REQUIRE_FALSE(ch.seen.empty());
        CHECK(ch.seen.back().list == "tools");
        CHECK(ch.seen.back().subscription == ls[1]["id"].get<std::int64_t>());
    }

    TEST_CASE("no listen with client_options::listen off, nor for a 2025 server") {
        for (const bool stateless : {true, false}) {
            CAPTURE(stateless);
            temp_dir dir;
            const fs::path log = dir.path / "log";
            asio::io_context ioc;
            std::vector<std::string> args{"--log", log.string()};
            if (stateless) {
                args.emplace_back("--stateless");
            }
            const std::string echo = run_coro(
                ioc,
                [&]() -> asio::awaitable<std::string> {
                    mcp::client_options o;
                    o.session.era = mcp::protocol_era::automatic;
                    o.listen = !stateless; // a 2025 server gets none even when asked
                    const auto server = faulty("q", "none", args);
                    auto c = co_await mcp::client::async_connect(server, o);
                    auto r = co_await mcp::async_call_tool(*c, "echo", obj(R"({"message":"m"})"));
                    const bool none = !c->subscribed();
                    co_await c->async_close();
                    co_return none ? r.text : "subscribed";
                }(),
                30s
            );
            CHECK(echo == "Echo: m");
            CHECK(listens(log).empty());
        }
    }
}
