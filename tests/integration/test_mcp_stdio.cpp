// The MCP client over stdio against real servers: @modelcontextprotocol/server-everything from
// npm (tests/mcp/package-lock.json; ctest's mcp_servers fixture installs it and sets
// WAFER_MCP_SERVERS), and small shell scripts for servers that misbehave.
#include <wafer/tools/mcp/client.hpp>
#include <wafer/tools/mcp/server_tools.hpp>
#include <wafer/tools/registry.hpp>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

#include <chrono>
#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <string>
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

mcp::stdio_server everything() {
    mcp::stdio_server s;
    s.name = "everything";
    s.command = "node";
    s.args = {servers_dir() + "/@modelcontextprotocol/server-everything/dist/index.js", "stdio"};
    return s;
}

// Servers are passed as named objects: GCC 12 miscompiles an aggregate built in a co_await
// expression (a double free).

// A server written in sh: `script` runs with the client's messages on its stdin.
mcp::stdio_server script_server(std::string script) {
    mcp::stdio_server s;
    s.name = "script";
    s.command = "/bin/sh";
    s.args = {"-c", std::move(script)};
    return s;
}

// The initialize answer a script sends for id 1.
const std::string init_reply =
    R"({"jsonrpc":"2.0","id":1,"result":{"protocolVersion":"2025-11-25","capabilities":{"tools":{}},"serverInfo":{"name":"sh","version":"1"}}})";

} // namespace

TEST_SUITE("mcp/stdio") {
    TEST_CASE(
        "server-everything: handshake, every tool page, calls through the registry" *
        doctest::skip(no_servers())
    ) {
        asio::io_context ioc;
        struct seen {
            mcp::server_info info;
            std::vector<mcp::tool_info> tools;
            std::vector<std::string> skipped;
            std::string echo;
            std::string sum;
            bool sum_error = true;
            std::string bad_args;
            bool bad_args_error = false;
        };
        const seen s = run_coro(
            ioc,
            [&]() -> asio::awaitable<seen> {
                seen out;
                const mcp::stdio_server server = everything();
                auto c = co_await mcp::client::async_connect(server);
                out.info = c->server();
                out.tools = co_await mcp::async_list_tools(*c);
                wafer::tools::registry reg;
                for (auto& t : mcp::make_registry_tools(c, out.tools, {}, &out.skipped)) {
                    try {
                        reg.add(std::move(t));
                    } catch (const std::exception& e) {
                        out.skipped.push_back(e.what());
                    }
                }
                wafer::tools::tool_call_request call;
                call.id = "c1";
                call.name = "everything__echo";
                call.arguments = std::string(R"({"message":"hi"})");
                // Options as a named object: GCC 12 miscompiles a defaulted by-value argument of
                // an awaited call (the temporary's string is freed from the wrong frame).
                const wafer::tools::dispatch_options dispatch;
                auto echo = co_await reg.async_call(std::move(call), dispatch);
                out.echo = echo.content;
                const auto sum =
                    co_await mcp::async_call_tool(*c, "get-sum", obj(R"({"a":40,"b":2})"));
                out.sum = sum.text;
                out.sum_error = sum.is_error;
                // Arguments the server refuses: a tool error (isError), not a protocol error.
                const auto bad = co_await mcp::async_call_tool(*c, "get-sum", obj(R"({"a":"x"})"));
                out.bad_args = bad.text;
                out.bad_args_error = bad.is_error;
                co_await c->async_close();
                co_return out;
            }(),
            60s
        );
        CHECK(s.info.protocol_version == "2025-11-25");
        CHECK(s.info.name == "mcp-servers/everything");
        CHECK_FALSE(s.info.instructions.empty());
        CHECK(s.info.capabilities.contains("tools"));
        std::vector<std::string> names;
        for (const auto& t : s.tools) {
            names.push_back(t.name);
        }
        CAPTURE(names.size());
        CHECK(std::find(names.begin(), names.end(), "echo") != names.end());
        CHECK(std::find(names.begin(), names.end(), "get-sum") != names.end());
        CHECK(
            std::find(names.begin(), names.end(), "trigger-long-running-operation") != names.end()
        );
        // Capabilities wafer did not declare bring no tools that need them.
        CHECK(std::find(names.begin(), names.end(), "trigger-sampling-request") == names.end());
        // Every schema the server sends compiles in wafer's validator.
        CHECK_MESSAGE(s.skipped.empty(), (s.skipped.empty() ? "" : s.skipped.front()));
        CHECK(s.echo == "Echo: hi");
        CHECK(s.sum.find("42") != std::string::npos);
        CHECK_FALSE(s.sum_error);
        CHECK(s.bad_args_error);
        CHECK(s.bad_args.find("get-sum") != std::string::npos);
    }

    TEST_CASE(
        "server-everything: progress, a timeout and a cancel; the connection goes on" *
        doctest::skip(no_servers())
    ) {
        asio::io_context ioc;
        struct seen {
            std::vector<double> progress;
            std::string done;
            failure timed_out;
            failure cancelled;
            std::chrono::milliseconds cancel_took{};
            std::string after;
        };
        const seen s = run_coro(
            ioc,
            [&]() -> asio::awaitable<seen> {
                using namespace asio::experimental::awaitable_operators;
                seen out;
                const mcp::stdio_server server = everything();
                auto c = co_await mcp::client::async_connect(server);
                mcp::call_options with_progress;
                with_progress.on_progress = [&out](const mcp::progress_event& p) {
                    out.progress.push_back(p.progress);
                };
                const auto r = co_await mcp::async_call_tool(
                    *c,
                    "trigger-long-running-operation",
                    obj(R"({"duration":0.4,"steps":2})"),
                    with_progress
                );
                out.done = r.text;

                out.timed_out = co_await expect_error([&]() -> asio::awaitable<void> {
                    mcp::call_options o;
                    o.limits = mcp::request_limits{300ms, 300ms};
                    co_await mcp::async_call_tool(
                        *c, "trigger-long-running-operation", obj(R"({"duration":5,"steps":5})"), o
                    );
                });

                // The caller gives up (here: a timer wins the race); the call ends at once.
                const auto t0 = std::chrono::steady_clock::now();
                out.cancelled = co_await expect_error([&]() -> asio::awaitable<void> {
                    asio::steady_timer t(co_await asio::this_coro::executor, 200ms);
                    auto res = co_await (
                        mcp::async_call_tool(
                            *c, "trigger-long-running-operation", obj(R"({"duration":5,"steps":5})")
                        ) ||
                        t.async_wait(asio::use_awaitable)
                    );
                    if (res.index() == 1) {
                        throw mcp::error(mcp::errc::cancelled, "everything", "the timer won");
                    }
                });
                out.cancel_took = std::chrono::duration_cast<std::chrono::milliseconds>(
                    std::chrono::steady_clock::now() - t0
                );
                out.after =
                    (co_await mcp::async_call_tool(*c, "echo", obj(R"({"message":"still here"})")))
                        .text;
                co_await c->async_close();
                co_return out;
            }(),
            60s
        );
        CHECK(s.progress == std::vector<double>{1, 2});
        CHECK(s.done.find("completed") != std::string::npos);
        CHECK(s.timed_out.code == mcp::errc::timeout);
        CHECK(s.timed_out.what.find("everything") != std::string::npos);
        CHECK(s.cancelled.code == mcp::errc::cancelled);
        CHECK(s.cancel_took < 2000ms); // generous: it must not wait for the 5 s operation
        CHECK(s.after == "Echo: still here");
    }

    TEST_CASE(
        "server-everything: wafer's keys never reach the server's environment" *
        doctest::skip(no_servers())
    ) {
        ::setenv("CEREBRAS_API_KEY", "csk-mcp-test-secret", 1);
        asio::io_context ioc;
        auto server = everything();
        server.env.push_back({"GIVEN_BY_CONFIG", "yes"});
        const std::string env_text = run_coro(
            ioc,
            [&]() -> asio::awaitable<std::string> {
                auto c = co_await mcp::client::async_connect(server);
                auto r = co_await mcp::async_call_tool(*c, "get-env", json::object());
                co_await c->async_close();
                co_return r.text;
            }(),
            60s
        );
        ::unsetenv("CEREBRAS_API_KEY");
        CHECK(env_text.find("csk-mcp-test-secret") == std::string::npos);
        CHECK(env_text.find("CEREBRAS_API_KEY") == std::string::npos);
        CHECK(env_text.find("\"GIVEN_BY_CONFIG\": \"yes\"") != std::string::npos);
        CHECK(env_text.find("\"PATH\"") != std::string::npos);
    }

    TEST_CASE(
        "server-everything: protocol_era::automatic finds the handshake (it refuses the probe)" *
        doctest::skip(no_servers())
    ) {
        asio::io_context ioc;
        struct seen {
            std::string version;
            std::string echo;
            std::chrono::milliseconds took{0};
        };
        const seen s = run_coro(
            ioc,
            [&]() -> asio::awaitable<seen> {
                seen out;
                mcp::client_options o;
                o.session.era = mcp::protocol_era::automatic;
                const auto start = std::chrono::steady_clock::now();
                auto c = co_await mcp::client::async_connect(everything(), o);
                out.took = std::chrono::duration_cast<std::chrono::milliseconds>(
                    std::chrono::steady_clock::now() - start
                );
                out.version = c->server().protocol_version;
                json args = json::object();
                args["message"] = "probed";
                out.echo = (co_await mcp::async_call_tool(*c, "echo", args)).text;
                co_await c->async_close();
                co_return out;
            }(),
            60s
        );
        CHECK(s.version == "2025-11-25");
        CHECK(s.echo == "Echo: probed");
        MESSAGE("connect with the probe took " << s.took.count() << " ms");
    }

    TEST_CASE("a server that cannot start, or dies during the handshake, is a clear error") {
        asio::io_context ioc;
        mcp::stdio_server missing;
        missing.name = "ghost";
        missing.command = "/nonexistent/mcp-server";
        const failure f1 = run_coro(ioc, expect_error([&]() -> asio::awaitable<void> {
                                        co_await mcp::client::async_connect(missing);
                                    }));
        CHECK(f1.code == mcp::errc::spawn_failed);
        CHECK(f1.what.find("ghost") != std::string::npos);

        const failure f2 =
            run_coro(ioc, expect_error([&]() -> asio::awaitable<void> {
                         const auto dies =
                             script_server("read l; echo 'fatal: no config file' >&2; exit 3");
                         co_await mcp::client::async_connect(dies);
                     }));
        CHECK(f2.code == mcp::errc::closed);
        CHECK(f2.what.find("exited with status 3") != std::string::npos);
        CHECK(f2.what.find("fatal: no config file") != std::string::npos);

        mcp::stdio_server unnamed = script_server("true");
        unnamed.name.clear();
        const failure f3 = run_coro(ioc, expect_error([&]() -> asio::awaitable<void> {
                                        co_await mcp::client::async_connect(unnamed);
                                    }));
        CHECK(f3.code == mcp::errc::bad_config);
    }

    TEST_CASE("a server that never answers the handshake times out, and is killed") {
        asio::io_context ioc;
        mcp::client_options o;
        o.session.initialize_limits = {300ms, 300ms};
        const auto t0 = std::chrono::steady_clock::now();
        const failure f = run_coro(ioc, expect_error([&]() -> asio::awaitable<void> {
                                       const auto silent = script_server("exec sleep 30");
                                       co_await mcp::client::async_connect(silent, o);
                                   }));
        CHECK(f.code == mcp::errc::timeout);
        CHECK(std::chrono::steady_clock::now() - t0 < 5s);
    }

    TEST_CASE("stdout noise is skipped, a crash mid-call fails that call with the exit status") {
        asio::io_context ioc;
        // Banner and an escape sequence before the answer; then it dies on the first request.
        const std::string script = "read l; printf 'Starting server v1\\n\\033[2J\\n%s\\n' '" +
                                   init_reply +
                                   "'; read l; read l; echo 'segfault in handler' >&2; exit 139";
        struct seen {
            std::vector<std::string> noise;
            failure call;
            bool connected_after = true;
            std::string closed_what;
        };
        const seen s = run_coro(ioc, [&]() -> asio::awaitable<seen> {
            seen out;
            mcp::client_options o;
            o.on_noise = [&out](std::string_view w) {
                out.noise.emplace_back(w);
            };
            o.on_closed = [&out](const mcp::error& e) {
                out.closed_what = e.what();
            };
            const auto server = script_server(script);
            auto c = co_await mcp::client::async_connect(server, o);
            out.call = co_await expect_error([&]() -> asio::awaitable<void> {
                co_await mcp::async_call_tool(*c, "anything", json::object());
            });
            out.connected_after = c->connected();
            co_return out;
        }());
        REQUIRE(s.noise.size() == 2);
        CHECK(s.noise[0].find("Starting server v1") != std::string::npos);
        CHECK(s.noise[1].find("\\x1b[2J") != std::string::npos);
        CHECK(s.call.code == mcp::errc::closed);
        CHECK(s.call.what.find("exited with status 139") != std::string::npos);
        CHECK(s.call.what.find("segfault in handler") != std::string::npos);
        CHECK_FALSE(s.connected_after);
        CHECK(s.closed_what.find("exited with status 139") != std::string::npos);
    }

    TEST_CASE("close ends a server that ignores stdin's end, by SIGTERM then SIGKILL") {
        asio::io_context ioc;
        // Answers the handshake, then ignores SIGTERM and EOF: only SIGKILL ends it.
        const std::string script = "trap '' TERM; read l; printf '%s\\n' '" + init_reply +
                                   "'; while :; do sleep 0.05; done";
        mcp::client_options o;
        o.shutdown_grace = 200ms;
        const auto took = run_coro(ioc, [&]() -> asio::awaitable<std::chrono::milliseconds> {
            const auto server = script_server(script);
            auto c = co_await mcp::client::async_connect(server, o);
            const auto t0 = std::chrono::steady_clock::now();
            co_await c->async_close();
            co_await c->async_close(); // idempotent
            co_return std::chrono::duration_cast<std::chrono::milliseconds>(
                std::chrono::steady_clock::now() - t0
            );
        }());
        CHECK(took >= 400ms);
        CHECK(took < 5000ms);
    }

    TEST_CASE("a server that closed its stdin fails the write with EPIPE, never a SIGPIPE; the "
              "thread's signal mask is left as it was") {
        // The default action of SIGPIPE ends the process: the test dies if one is delivered.
        struct sigaction was {};
        struct sigaction dfl {};
        dfl.sa_handler = SIG_DFL;
        REQUIRE(::sigaction(SIGPIPE, &dfl, &was) == 0);
        for (const bool blocked : {false, true}) {
            CAPTURE(blocked);
            sigset_t pipe_set;
            sigemptyset(&pipe_set);
            sigaddset(&pipe_set, SIGPIPE);
            sigset_t before;
            REQUIRE(::pthread_sigmask(blocked ? SIG_BLOCK : SIG_UNBLOCK, &pipe_set, &before) == 0);
            asio::io_context ioc;
            // Answers the handshake, reads notifications/initialized, closes its stdin, waits.
            const std::string script =
                "read l; printf '%s\\n' '" + init_reply + "'; read l; exec 0<&-; sleep 3";
            const failure f = run_coro(ioc, expect_error([&]() -> asio::awaitable<void> {
                                           const auto server = script_server(script);
                                           auto c = co_await mcp::client::async_connect(server);
                                           asio::steady_timer t(ioc, 200ms);
                                           co_await t.async_wait(asio::use_awaitable);
                                           const json args = obj(R"({"message":"x"})");
                                           co_await mcp::async_call_tool(*c, "echo", args);
                                       }));
            CHECK(f.code == mcp::errc::closed);
            CHECK_MESSAGE(f.what.find("Broken pipe") != std::string::npos, f.what);
            sigset_t now;
            REQUIRE(::pthread_sigmask(SIG_BLOCK, nullptr, &now) == 0);
            CHECK((sigismember(&now, SIGPIPE) == 1) == blocked);
            sigset_t pending;
            sigpending(&pending);
            CHECK(sigismember(&pending, SIGPIPE) == 0); // the write's SIGPIPE was taken back
            REQUIRE(::pthread_sigmask(SIG_SETMASK, &before, nullptr) == 0);
        }
        ::sigaction(SIGPIPE, &was, nullptr);
    }
}
