// The MCP client over Streamable HTTP against @modelcontextprotocol/server-everything's
// streamableHttp transport (the TypeScript SDK's server with sessions and resumability), started
// on a free port of 127.0.0.1.
#include <wafer/mcp/http_transport.hpp>
#include <wafer/tools/mcp/client.hpp>
#include <wafer/tools/mcp/server_tools.hpp>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

#include <arpa/inet.h>
#include <chrono>
#include <csignal>
#include <cstdlib>
#include <fcntl.h>
#include <fstream>
#include <netinet/in.h>
#include <sstream>
#include <string>
#include <sys/socket.h>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>
#include <vector>

#include "mcp_servers.hpp"
#include "run_coro.hpp"

namespace asio = boost::asio;
namespace mcp = wafer::tools::mcp;
using nlohmann::json;
using wafer::testing::run_coro;
using namespace std::chrono_literals;
using namespace wafer::testing::mcp_servers;

namespace {

wafer::mcp::http_server server_at(const std::string& url) {
    wafer::mcp::http_server s;
    s.name = "everything";
    s.url = url;
    return s;
}

} // namespace

TEST_SUITE("mcp/http") {
    TEST_CASE(
        "server-everything over HTTP: handshake with a session, tools, calls, parallel calls, "
        "DELETE on close" *
        doctest::skip(no_servers())
    ) {
        http_everything srv;
        asio::io_context ioc;
        struct seen {
            mcp::server_info info;
            std::size_t tools = 0;
            std::string echo;
            std::string sum;
            std::vector<std::string> parallel;
            std::vector<double> progress;
            std::string long_text;
        };
        const seen s = run_coro(
            ioc,
            [&]() -> asio::awaitable<seen> {
                seen out;
                const wafer::mcp::http_server server = server_at(srv.url());
                const mcp::client_options options;
                auto c = co_await wafer::mcp::async_connect_http(server, options);
                out.info = c->server();
                const auto tools = co_await mcp::async_list_tools(*c);
                out.tools = tools.size();
                const auto echo =
                    co_await mcp::async_call_tool(*c, "echo", obj(R"({"message":"hi over http"})"));
                out.echo = echo.text;
                const auto sum =
                    co_await mcp::async_call_tool(*c, "get-sum", obj(R"({"a":2,"b":40})"));
                out.sum = sum.text;
                // Four calls at once: answers matched by id whatever their order.
                using namespace asio::experimental::awaitable_operators;
                auto one = [c](int i) -> asio::awaitable<std::string> {
                    const json args = obj("{\"message\":\"n" + std::to_string(i) + "\"}");
                    auto r = co_await mcp::async_call_tool(*c, "echo", args);
                    co_return r.text;
                };
                auto [a, b, d, e] = co_await (one(1) && one(2) && one(3) && one(4));
                out.parallel = {a, b, d, e};
                // Progress of this request comes on the server's GET stream.
                mcp::call_options opts;
                opts.on_progress = [&out](const mcp::progress_event& p) {
                    out.progress.push_back(p.progress);
                };
                const json long_args = obj(R"({"duration":1,"steps":3})");
                auto r = co_await mcp::async_call_tool(
                    *c, "trigger-long-running-operation", long_args, opts
                );
                out.long_text = r.text;
                co_await c->async_close();
                co_return out;
            }(),
            std::chrono::seconds(60)
        );
        CHECK(s.info.protocol_version == "2025-11-25");
        CHECK(s.info.name.find("everything") != std::string::npos);
        CHECK(s.tools >= 10);
        CHECK(s.echo.find("hi over http") != std::string::npos);
        CHECK(s.sum.find("42") != std::string::npos);
        REQUIRE(s.parallel.size() == 4);
        for (int i = 0; i < 4; ++i) {
            CHECK(
                s.parallel[static_cast<std::size_t>(i)].find("n" + std::to_string(i + 1)) !=
                std::string::npos
            );
        }
        CHECK(s.long_text.find("completed") != std::string::npos);
        CHECK(s.progress == std::vector<double>{1, 2, 3});
        // async_close ended the session on the server (DELETE).
        std::string log;
        for (int i = 0; i < 40 && log.find("termination request") == std::string::npos; ++i) {
            std::this_thread::sleep_for(50ms);
            log = srv.log();
        }
        CHECK_MESSAGE(log.find("Received session termination request") != std::string::npos, log);
    }

    TEST_CASE(
        "a server that forgot the session (restarted) is initialized again and the call goes "
        "through" *
        doctest::skip(no_servers())
    ) {
        http_everything srv;
        asio::io_context ioc;
        struct seen {
            std::string before;
            std::string after;
            std::string again;
        };
        const seen s = run_coro(
            ioc,
            [&]() -> asio::awaitable<seen> {
                seen out;
                const wafer::mcp::http_server server = server_at(srv.url());
                const mcp::client_options options;
                auto c = co_await wafer::mcp::async_connect_http(server, options);
                out.before =
                    (co_await mcp::async_call_tool(*c, "echo", obj(R"({"message":"one"})"))).text;
                srv.stop();
                srv.start();
                out.after =
                    (co_await mcp::async_call_tool(*c, "echo", obj(R"({"message":"two"})"))).text;
                out.again =
                    (co_await mcp::async_call_tool(*c, "echo", obj(R"({"message":"three"})"))).text;
                co_await c->async_close();
                co_return out;
            }(),
            std::chrono::seconds(60)
        );
        CHECK(s.before.find("one") != std::string::npos);
        CHECK(s.after.find("two") != std::string::npos);
        CHECK(s.again.find("three") != std::string::npos);
    }

    TEST_CASE(
        "a cancelled call ends at once and the connection goes on" * doctest::skip(no_servers())
    ) {
        http_everything srv;
        asio::io_context ioc;
        struct seen {
            failure cancelled;
            std::chrono::steady_clock::duration took{};
            std::string after;
        };
        const seen s = run_coro(
            ioc,
            [&]() -> asio::awaitable<seen> {
                seen out;
                const wafer::mcp::http_server server = server_at(srv.url());
                const mcp::client_options options;
                auto c = co_await wafer::mcp::async_connect_http(server, options);
                using namespace asio::experimental::awaitable_operators;
                const auto t0 = std::chrono::steady_clock::now();
                out.cancelled = co_await expect_error([&]() -> asio::awaitable<void> {
                    asio::steady_timer t(co_await asio::this_coro::executor, 300ms);
                    const json args = obj(R"({"duration":30,"steps":30})");
                    auto r = co_await (
                        mcp::async_call_tool(*c, "trigger-long-running-operation", args) ||
                        t.async_wait(asio::use_awaitable)
                    );
                    if (r.index() == 1) {
                        throw mcp::error(mcp::errc::cancelled, "everything", "the timer won");
                    }
                });
                out.took = std::chrono::steady_clock::now() - t0;
                out.after =
                    (co_await mcp::async_call_tool(*c, "echo", obj(R"({"message":"still here"})")))
                        .text;
                co_await c->async_close();
                co_return out;
            }(),
            std::chrono::seconds(60)
        );
        CHECK(s.cancelled.code == mcp::errc::cancelled);
        CHECK(s.took < 10s);
        CHECK(s.after.find("still here") != std::string::npos);
    }

    TEST_CASE("unusable configurations and unreachable servers are clear errors") {
        asio::io_context ioc;
        struct seen {
            failure scheme;
            failure header;
            failure refused;
        };
        const unsigned short closed_port = free_port();
        const seen s = run_coro(
            ioc,
            [&]() -> asio::awaitable<seen> {
                seen out;
                const mcp::client_options options;
                out.scheme = co_await expect_error([&]() -> asio::awaitable<void> {
                    const wafer::mcp::http_server server = server_at("ftp://127.0.0.1/mcp");
                    co_await wafer::mcp::async_connect_http(server, options);
                });
                out.header = co_await expect_error([&]() -> asio::awaitable<void> {
                    wafer::mcp::http_server server = server_at("http://127.0.0.1:1/mcp");
                    server.headers.emplace_back("X-Token", "secret-value\r\nInjected: yes");
                    co_await wafer::mcp::async_connect_http(server, options);
                });
                out.refused = co_await expect_error([&]() -> asio::awaitable<void> {
                    const wafer::mcp::http_server server =
                        server_at("http://127.0.0.1:" + std::to_string(closed_port) + "/mcp");
                    co_await wafer::mcp::async_connect_http(server, options);
                });
                co_return out;
            }(),
            std::chrono::seconds(60)
        );
        CHECK(s.scheme.code == mcp::errc::bad_config);
        CHECK(s.scheme.what.find("http or https") != std::string::npos);
        CHECK(s.header.code == mcp::errc::bad_config);
        CHECK(s.header.what.find("secret-value") == std::string::npos);
        CHECK(s.refused.code == mcp::errc::transport);
        CHECK(s.refused.what.find("cannot connect") != std::string::npos);
    }
}
