// The MCP client against servers that misbehave: wafer-mcp-fault-server (tests/mcp/fault_server)
// over stdio and Streamable HTTP on 127.0.0.1, one fault at a time. For each fault, what a user
// relies on: a clear error naming the server (and the call), the right mcp::errc, nothing that
// hangs, memory bounded by the message limit, and the other tools (of the same connection, of
// other servers) going on.
#include <wafer/agent.hpp>
#include <wafer/mcp/http_transport.hpp>
#include <wafer/scripted_model.hpp>
#include <wafer/tools/mcp/client.hpp>
#include <wafer/tools/mcp/line_framer.hpp>
#include <wafer/tools/mcp/server_tool_set.hpp>
#include <wafer/tools/mcp/server_tools.hpp>
#include <wafer/tools/registry.hpp>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <arpa/inet.h>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdlib>
#include <fcntl.h>
#include <filesystem>
#include <fstream>
#include <memory>
#include <netinet/in.h>
#include <optional>
#include <poll.h>
#include <string>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>
#include <vector>

#include "mcp_fault_server.hpp"
#include "mcp_servers.hpp"
#include "run_coro.hpp"

namespace asio = boost::asio;
namespace fs = std::filesystem;
namespace mcp = wafer::tools::mcp;
using nlohmann::json;
using wafer::scripted_model;
using wafer::testing::run_coro;
using namespace std::chrono_literals;
using turn = scripted_model::turn;

namespace {

using clock_type = std::chrono::steady_clock;
using wafer::testing::mcp_servers::expect_error;
using wafer::testing::mcp_servers::failure;
using namespace wafer::testing::mcp_faults;

json obj(std::string_view text) {
    return json::parse(text);
}

// The default limit of one message (stdio lines and HTTP bodies alike).
constexpr std::size_t limit = mcp::line_framer::default_max_line;
// How far memory may rise while a 50 MiB message is refused: a few times the 8 MiB limit (the
// SSE parser holds a line and an event's data, about 24 MiB measured), well under the message.
// Under AddressSanitizer freed memory stays in its quarantine (256 MiB), so resident memory
// says nothing there: the bound is checked in the other builds.
constexpr std::size_t memory_bound = 40U << 20U;
#if defined(__SANITIZE_ADDRESS__)
constexpr bool memory_measurable = false;
#else
constexpr bool memory_measurable = true;
#endif

bool any_contains(const std::vector<std::string>& v, std::string_view part) {
    return std::any_of(v.begin(), v.end(), [part](const std::string& s) {
        return s.find(part) != std::string::npos;
    });
}

std::string joined(const std::vector<std::string>& v) {
    std::string out;
    for (const auto& s : v) {
        out += s + "\n";
    }
    return out;
}

// The resident memory of this process.
std::size_t rss_bytes() {
    std::ifstream in("/proc/self/statm");
    std::size_t total = 0;
    std::size_t resident = 0;
    in >> total >> resident;
    return resident * static_cast<std::size_t>(::sysconf(_SC_PAGESIZE));
}

// Samples the resident memory every few milliseconds on the test's executor (between the
// client's reads) until stopped: how far it rose above where it started.
struct rss_watch {
    explicit rss_watch(const asio::any_io_executor& ex)
        : timer(ex), base(rss_bytes()), peak(base) {}
    asio::steady_timer timer;
    std::size_t base;
    std::size_t peak;
    bool stopped = false;
    std::size_t growth() const { return peak > base ? peak - base : 0; }
    void stop() {
        stopped = true;
        timer.cancel();
    }
    static asio::awaitable<void> run(std::shared_ptr<rss_watch> w) {
        while (!w->stopped) {
            w->peak = std::max(w->peak, rss_bytes());
            w->timer.expires_after(2ms);
            boost::system::error_code ec;
            co_await w->timer.async_wait(asio::redirect_error(asio::use_awaitable, ec));
        }
    }
};

std::shared_ptr<rss_watch> watch_memory(const asio::any_io_executor& ex) {
    auto w = std::make_shared<rss_watch>(ex);
    asio::co_spawn(ex, rss_watch::run(w), [](const std::exception_ptr&) {});
    return w;
}

// A listening socket on 127.0.0.1 that nobody should connect to (another origin).
class decoy {
public:
    decoy() {
        fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
        sockaddr_in a{};
        a.sin_family = AF_INET;
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        REQUIRE(::bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
        REQUIRE(::listen(fd_, 8) == 0);
        socklen_t len = sizeof a;
        ::getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len);
        port_ = ntohs(a.sin_port);
    }
    ~decoy() { ::close(fd_); }
    decoy(const decoy&) = delete;
    decoy& operator=(const decoy&) = delete;
    std::string origin() const { return "http://127.0.0.1:" + std::to_string(port_); }
    /// Whether a connection came (and is waiting to be accepted).
    bool contacted() const {
        const int c = ::accept(fd_, nullptr, nullptr);
        if (c >= 0) {
            ::close(c);
            return true;
        }
        return false;
    }

private:
    int fd_ = -1;
    int port_ = 0;
};

mcp::request_limits short_limits() {
    return mcp::request_limits{1500ms, 3000ms};
}

std::vector<std::string> tool_names(const wafer::api::chat_request& req) {
    std::vector<std::string> out;
    for (const auto& t : req.tools) {
        out.push_back(t.name);
    }
    return out;
}

std::optional<wafer::api::message>
tool_message(const wafer::run_result& r, const std::string& call_id) {
    for (const auto& m : r.conversation.messages()) {
        if (m.role == wafer::api::role::tool && m.tool_call_id == call_id) {
            return m;
        }
    }
    return std::nullopt;
}

} // namespace

TEST_SUITE("mcp/faults") {
    TEST_CASE("stdio: lines that are not JSON-RPC between messages are reported and skipped") {
        asio::io_context ioc;
        struct seen {
            std::vector<std::string> noise;
            std::size_t tools = 0;
            std::string first;
            std::string second;
            bool connected = false;
        };
        const seen s = run_coro(
            ioc,
            [&]() -> asio::awaitable<seen> {
                seen out;
                mcp::client_options o;
                o.on_noise = [&out](std::string_view w) {
                    out.noise.emplace_back(w);
                };
                const auto server = faulty("noisy", "garbage");
                auto c = co_await mcp::client::async_connect(server, o);
                out.tools = (co_await mcp::async_list_tools(*c)).size();
                out.first =
                    (co_await mcp::async_call_tool(*c, "echo", obj(R"({"message":"one"})"))).text;
                out.second =
                    (co_await mcp::async_call_tool(*c, "echo", obj(R"({"message":"two"})"))).text;
                out.connected = c->connected();
                co_await c->async_close();
                co_return out;
            }(),
            30s
        );
        CHECK(s.tools == 1);
        CHECK(s.first == "Echo: one");
        CHECK(s.second == "Echo: two");
        CHECK(s.connected);
        CAPTURE(joined(s.noise));
        CHECK(any_contains(s.noise, "Starting fault server v1"));
        CHECK(any_contains(s.noise, "\\x1b[2J"));
        CHECK(any_contains(s.noise, "invalid UTF-8"));
        CHECK(any_contains(s.noise, "[1,2,3]"));
        CHECK(any_contains(s.noise, "request 99999, which this client never sent"));
        // Seven bad lines in each of the server's bursts (blank lines are not noise): before
        // the handshake, and before and after each of its four answers (the last burst may come
        // after the client closed).
        CHECK(s.noise.size() >= 7 * 8);
    }

    TEST_CASE("stdio: a server that exits in the middle of a call fails it, naming the server and "
              "its exit; without restarts later calls fail at once; another server goes on") {
        asio::io_context ioc;
        struct seen {
            failure crash;
            failure after;
            bool connected = true;
            std::string closed;
            std::string healthy;
        };
        const seen s = run_coro(
            ioc,
            [&]() -> asio::awaitable<seen> {
                seen out;
                const auto healthy_server = faulty("healthy", "none");
                const auto crash_server = faulty("crasher", "exit-mid-call");
                auto healthy = co_await mcp::client::async_connect(healthy_server);
                mcp::client_options o;
                o.restart.max_restarts = 0;
                o.on_closed = [&out](const mcp::error& e) {
                    out.closed = e.what();
                };
                auto c = co_await mcp::client::async_connect(crash_server, o);
                out.crash = co_await expect_error([&]() -> asio::awaitable<void> {
                    co_await mcp::async_call_tool(*c, "crash", json::object());
                });
                out.connected = c->connected();
                out.after = co_await expect_error([&]() -> asio::awaitable<void> {
                    co_await mcp::async_call_tool(*c, "echo", obj(R"({"message":"late"})"));
                });
                out.healthy =
                    (co_await mcp::async_call_tool(*healthy, "echo", obj(R"({"message":"on"})")))
                        .text;
                co_await c->async_close();
                co_await healthy->async_close();
                co_return out;
            }(),
            30s
        );
        CHECK(s.crash.code == mcp::errc::closed);
        CHECK(s.crash.what.find("\"crasher\"") != std::string::npos);
        CHECK(s.crash.what.find("tools/call") != std::string::npos);
        CHECK(s.crash.what.find("exited with status 3") != std::string::npos);
        CHECK(s.crash.what.find("crashing in the middle of tools/call") != std::string::npos);
        CHECK(s.crash.took < 10s);
        CHECK_FALSE(s.connected);
        CHECK(s.closed.find("exited with status 3") != std::string::npos);
        // Later calls end at once: the connection is closed, and restarts are off.
        CHECK(s.after.code == mcp::errc::closed);
        CHECK(s.after.what.find("not started again: restarts are off") != std::string::npos);
        CHECK(s.after.took < 1s);
        CHECK(s.healthy == "Echo: on");
    }

    TEST_CASE("stdio: a server that exits is started again by the next call; the call it died in "
              "is not sent again; one that dies again soon after is not restarted") {
        temp_dir dir;
        const fs::path log = dir.path / "flaky.log";
        asio::io_context ioc;
        struct seen {
            std::string first;
            failure died;
            std::string revived;
            failure died_again;
            failure refused;
            std::vector<std::size_t> restarted;
            int tools_changed = 0;
        };
        const seen s = run_coro(
            ioc,
            [&]() -> asio::awaitable<seen> {
                seen out;
                mcp::client_options o;
                o.on_restarted = [&out](std::size_t n) {
                    out.restarted.push_back(n);
                };
                o.on_list_changed = [&out](const mcp::list_changed_event& e) {
                    out.tools_changed += e.list == "tools" ? 1 : 0;
                };
                // Each process answers one call and exits in the next.
                const auto server =
                    faulty("flaky", "exit-after", {"--calls", "1", "--log", log.string()});
                auto c = co_await mcp::client::async_connect(server, o);
                auto echo = [&](const char* message) -> asio::awaitable<std::string> {
                    json args = json::object();
                    args["message"] = message;
                    const auto r = co_await mcp::async_call_tool(*c, "echo", args);
                    co_return r.text;
                };
                out.first = co_await echo("one");
                out.died =
                    co_await expect_error([&]() -> asio::awaitable<void> { co_await echo("two"); });
                out.revived = co_await echo("three");
                out.died_again = co_await expect_error([&]() -> asio::awaitable<void> {
                    co_await echo("four");
                });
                out.refused = co_await expect_error([&]() -> asio::awaitable<void> {
                    co_await echo("five");
                });
                co_await c->async_close();
                co_return out;
            }(),
            60s
        );
        CHECK(s.first == "Echo: one");
        CHECK(s.died.code == mcp::errc::closed);
        CHECK(s.died.what.find("exited with status 3") != std::string::npos);
        CHECK(s.died.what.find("not sent again") != std::string::npos);
        CHECK(s.revived == "Echo: three");
        CHECK(s.restarted == std::vector<std::size_t>{1});
        CHECK(s.tools_changed == 1); // its tools are listed again by whoever follows them
        CHECK(s.died_again.code == mcp::errc::closed);
        CAPTURE(s.refused.what);
        CHECK(s.refused.code == mcp::errc::closed);
        CHECK(s.refused.what.find("not started again") != std::string::npos);
        CHECK(s.refused.what.find("after its restart") != std::string::npos);
        CHECK(s.refused.took < 1s);
        // Two processes, each initialized once; each message sent once, "five" never.
        std::size_t initializes = 0;
        std::vector<std::string> messages;
        for (const auto& m : log_messages(log)) {
            if (m.value("method", "") == "initialize") {
                ++initializes;
            }
            if (m.value("method", "") == "tools/call") {
                messages.push_back(m["params"]["arguments"].value("message", ""));
            }
        }
        CHECK(initializes == 2);
        CHECK(messages == std::vector<std::string>{"one", "two", "three", "four"});
    }

    TEST_CASE("stdio: calls that come together after a crash share one restart") {
        temp_dir dir;
        const fs::path log = dir.path / "flaky.log";
        asio::io_context ioc;
        struct seen {
            std::string d;
            std::string e;
            std::vector<std::size_t> restarted;
        };
        const seen s = run_coro(
            ioc,
            [&]() -> asio::awaitable<seen> {
                using namespace asio::experimental::awaitable_operators;
                seen out;
                mcp::client_options o;
                o.on_restarted = [&out](std::size_t n) {
                    out.restarted.push_back(n);
                };
                const auto server =
                    faulty("flaky", "exit-after", {"--calls", "2", "--log", log.string()});
                auto c = co_await mcp::client::async_connect(server, o);
                auto echo = [c](std::string message) -> asio::awaitable<std::string> {
                    json args = json::object();
                    args["message"] = std::move(message);
                    const auto r = co_await mcp::async_call_tool(*c, "echo", args);
                    co_return r.text;
                };
                co_await echo("a");
                co_await echo("b");
                co_await expect_error([&]() -> asio::awaitable<void> { co_await echo("c"); });
                auto both = co_await (echo("d") && echo("e"));
                out.d = std::get<0>(both);
                out.e = std::get<1>(both);
                co_await c->async_close();
                co_return out;
            }(),
            60s
        );
        CHECK(s.d == "Echo: d");
        CHECK(s.e == "Echo: e");
        CHECK(s.restarted == std::vector<std::size_t>{1});
        std::size_t initializes = 0;
        for (const auto& m : log_messages(log)) {
            initializes += m.value("method", "") == "initialize" ? 1U : 0U;
        }
        CHECK(initializes == 2);
    }

    TEST_CASE("stdio: a call cancelled while its server is started again gives up its wait, not "
              "the restart; the next call uses the restarted server") {
        temp_dir dir;
        const fs::path log = dir.path / "slow.log";
        asio::io_context ioc;
        struct seen {
            failure cancelled;
            std::string after;
            std::vector<std::size_t> restarted;
        };
        const seen s = run_coro(
            ioc,
            [&]() -> asio::awaitable<seen> {
                using namespace asio::experimental::awaitable_operators;
                seen out;
                mcp::client_options o;
                o.on_restarted = [&out](std::size_t n) {
                    out.restarted.push_back(n);
                };
                // Every process takes 1.5 s to answer initialize, then answers one call.
                const auto server = faulty(
                    "slow",
                    "exit-after",
                    {"--calls", "1", "--init-delay", "1500", "--log", log.string()}
                );
                auto c = co_await mcp::client::async_connect(server, o);
                co_await mcp::async_call_tool(*c, "echo", obj(R"({"message":"a"})"));
                co_await expect_error([&]() -> asio::awaitable<void> {
                    co_await mcp::async_call_tool(*c, "echo", obj(R"({"message":"b"})"));
                });
                // This call starts the restart and gives up 300 ms into its 1.5 s handshake.
                out.cancelled = co_await expect_error([&]() -> asio::awaitable<void> {
                    asio::steady_timer t(co_await asio::this_coro::executor, 300ms);
                    auto res = co_await (
                        mcp::async_call_tool(*c, "echo", obj(R"({"message":"c"})")) ||
                        t.async_wait(asio::use_awaitable)
                    );
                    if (res.index() == 1) {
                        throw mcp::error(mcp::errc::cancelled, "slow", "the timer won");
                    }
                });
                out.after =
                    (co_await mcp::async_call_tool(*c, "echo", obj(R"({"message":"d"})"))).text;
                co_await c->async_close();
                co_return out;
            }(),
            60s
        );
        CHECK(s.cancelled.code == mcp::errc::cancelled);
        CHECK(s.cancelled.took < 1s);
        CHECK(s.after == "Echo: d");
        CHECK(s.restarted == std::vector<std::size_t>{1});
        std::size_t initializes = 0;
        std::vector<std::string> messages;
        for (const auto& m : log_messages(log)) {
            initializes += m.value("method", "") == "initialize" ? 1U : 0U;
            if (m.value("method", "") == "tools/call") {
                messages.push_back(m["params"]["arguments"].value("message", ""));
            }
        }
        CHECK(initializes == 2); // the cancelled call did not cost the restarted process
        CHECK(messages == std::vector<std::string>{"a", "b", "d"});
    }

    TEST_CASE("stdio, protocol_era::automatic: legacy servers that refuse, ignore or exit on the "
              "server/discover probe get the initialize handshake") {
        temp_dir dir;
        asio::io_context ioc;
        struct seen {
            std::vector<std::string> versions;
            std::vector<std::string> echoes;
            std::chrono::milliseconds mute_took{0};
        };
        const seen s = run_coro(
            ioc,
            [&]() -> asio::awaitable<seen> {
                seen out;
                mcp::client_options o;
                o.session.era = mcp::protocol_era::automatic;
                o.session.probe_timeout = 700ms;
                for (const char* fault : {"none", "mute-discover", "exit-on-discover"}) {
                    const fs::path log = dir.path / (std::string(fault) + ".log");
                    const auto server = faulty(fault, fault, {"--log", log.string()});
                    const auto start = clock_type::now();
                    auto c = co_await mcp::client::async_connect(server, o);
                    if (std::string_view(fault) == "mute-discover") {
                        out.mute_took = std::chrono::duration_cast<std::chrono::milliseconds>(
                            clock_type::now() - start
                        );
                    }
                    out.versions.push_back(c->server().protocol_version);
                    const auto r =
                        co_await mcp::async_call_tool(*c, "echo", obj(R"({"message":"era"})"));
                    out.echoes.push_back(r.text);
                    co_await c->async_close();
                }
                co_return out;
            }(),
            60s
        );
        CHECK(s.versions == std::vector<std::string>(3, "2025-11-25"));
        CHECK(s.echoes == std::vector<std::string>(3, "Echo: era"));
        CHECK(s.mute_took >= 700ms);
        CHECK(s.mute_took < 5s);
        // The probe came first; the server that exited on it was started again for initialize.
        const auto methods = [&](const char* fault) {
            std::vector<std::string> out;
            for (const auto& m : log_messages(dir.path / (std::string(fault) + ".log"))) {
                if (m.contains("method") && m.contains("id")) {
                    out.push_back(m["method"].get<std::string>());
                }
            }
            return out;
        };
        const std::vector<std::string> legacy{"server/discover", "initialize", "tools/call"};
        CHECK(methods("none") == legacy);
        CHECK(methods("mute-discover") == legacy);
        CHECK(methods("exit-on-discover") == legacy);
        // Over HTTP: integration/test_mcp_era.cpp.
    }

    TEST_CASE("stdio: a call never answered times out (the server is told) or is cancelled; the "
              "connection goes on") {
        temp_dir dir;
        const fs::path log = dir.path / "hang.log";
        asio::io_context ioc;
        struct seen {
            failure timed_out;
            failure cancelled;
            std::string after;
        };
        const seen s = run_coro(
            ioc,
            [&]() -> asio::awaitable<seen> {
                using namespace asio::experimental::awaitable_operators;
                seen out;
                const auto server = faulty("hanger", "hang", {"--log", log.string()});
                auto c = co_await mcp::client::async_connect(server);
                out.timed_out = co_await expect_error([&]() -> asio::awaitable<void> {
                    mcp::call_options o;
                    o.limits = short_limits();
                    co_await mcp::async_call_tool(*c, "hang", json::object(), o);
                });
                // The caller gives up (a timer wins the race).
                out.cancelled = co_await expect_error([&]() -> asio::awaitable<void> {
                    asio::steady_timer t(co_await asio::this_coro::executor, 300ms);
                    auto res = co_await (
                        mcp::async_call_tool(*c, "hang", json::object()) ||
                        t.async_wait(asio::use_awaitable)
                    );
                    static_cast<void>(res);
                    throw mcp::error(mcp::errc::cancelled, "hanger", "the timer won");
                });
                out.after =
                    (co_await mcp::async_call_tool(*c, "echo", obj(R"({"message":"still"})"))).text;
                co_await c->async_close();
                co_return out;
            }(),
            30s
        );
        CHECK(s.timed_out.code == mcp::errc::timeout);
        CHECK(s.timed_out.what.find("\"hanger\"") != std::string::npos);
        CHECK(s.timed_out.what.find("tools/call had no answer") != std::string::npos);
        CHECK(s.timed_out.took >= 1400ms);
        CHECK(s.timed_out.took < 10s);
        CHECK(s.cancelled.code == mcp::errc::cancelled);
        CHECK(s.cancelled.took < 2s);
        CHECK(s.after == "Echo: still");
        // Both abandoned calls were cancelled on the server.
        std::vector<json> hang_ids;
        for (const auto& m : log_messages(log)) {
            if (m.value("method", "") == "tools/call" && m["params"].value("name", "") == "hang") {
                hang_ids.push_back(m["id"]);
            }
        }
        REQUIRE(hang_ids.size() == 2);
        CHECK(cancel_logged(log, hang_ids[0]));
        CHECK(cancel_logged(log, hang_ids[1]));
    }

    TEST_CASE("stdio: a 50 MB answer is refused at the limit, memory stays bounded, the "
              "connection goes on") {
        asio::io_context ioc;
        struct seen {
            failure huge;
            std::vector<std::string> noise;
            std::size_t growth = 0;
            std::string after;
        };
        const seen s = run_coro(
            ioc,
            [&]() -> asio::awaitable<seen> {
                seen out;
                mcp::client_options o;
                o.on_noise = [&out](std::string_view w) {
                    out.noise.emplace_back(w);
                };
                const auto server = faulty("big", "huge-result");
                auto c = co_await mcp::client::async_connect(server, o);
                auto memory = watch_memory(co_await asio::this_coro::executor);
                out.huge = co_await expect_error([&]() -> asio::awaitable<void> {
                    mcp::call_options co;
                    co.limits = mcp::request_limits{3000ms, 6000ms};
                    co_await mcp::async_call_tool(*c, "huge", json::object(), co);
                });
                memory->stop();
                out.growth = memory->growth();
                out.after =
                    (co_await mcp::async_call_tool(*c, "echo", obj(R"({"message":"after"})"))).text;
                co_await c->async_close();
                co_return out;
            }(),
            60s
        );
        CHECK(s.huge.code == mcp::errc::transport);
        CHECK(s.huge.what.find("\"big\"") != std::string::npos);
        CHECK(s.huge.took < 15s);
        CAPTURE(joined(s.noise));
        CHECK(any_contains(
            s.noise, "a message of 52428800 bytes, over the limit of " + std::to_string(limit)
        ));
        MESSAGE("resident memory rose by " << s.growth / 1024 << " KiB for a 50 MiB answer");
        if (memory_measurable) {
            CHECK(s.growth < memory_bound);
        }
        CHECK(s.after == "Echo: after");
    }

    // The framer keeps the first and last bytes of an oversized line; the session reads the
    // answer's id there and fails that request at once rather than leave it to its timeout.
    TEST_CASE("stdio: a 50 MB answer or tools/list page fails its request at once, naming the "
              "limit") {
        asio::io_context ioc;
        struct seen {
            failure call;
            failure list;
        };
        const seen s = run_coro(
            ioc,
            [&]() -> asio::awaitable<seen> {
                seen out;
                mcp::client_options o;
                o.limits = mcp::request_limits{20'000ms, 20'000ms};
                const auto result_server = faulty("big", "huge-result");
                auto c = co_await mcp::client::async_connect(result_server, o);
                out.call = co_await expect_error([&]() -> asio::awaitable<void> {
                    co_await mcp::async_call_tool(*c, "huge", json::object());
                });
                co_await c->async_close();
                const auto list_server = faulty("bigpage", "huge-list");
                auto l = co_await mcp::client::async_connect(list_server, o);
                out.list = co_await expect_error([&]() -> asio::awaitable<void> {
                    co_await mcp::async_list_tools(*l);
                });
                co_await l->async_close();
                co_return out;
            }(),
            90s
        );
        CHECK(s.call.code == mcp::errc::transport);
        CHECK(s.call.what.find("over the limit of " + std::to_string(limit)) != std::string::npos);
        CHECK(s.call.took < 10s);
        CHECK(s.list.code == mcp::errc::transport);
        CHECK(s.list.what.find("over the limit") != std::string::npos);
        CHECK(s.list.took < 10s);
    }

    TEST_CASE("stdio: a 50 MB tools/list page fails the listing, nothing is registered, the "
              "connection goes on") {
        asio::io_context ioc;
        struct seen {
            failure list;
            std::vector<std::string> names;
            std::size_t growth = 0;
            std::string after;
        };
        const seen s = run_coro(
            ioc,
            [&]() -> asio::awaitable<seen> {
                seen out;
                mcp::client_options o;
                o.limits = mcp::request_limits{3000ms, 6000ms};
                const auto server = faulty("bigpage", "huge-list");
                auto c = co_await mcp::client::async_connect(server, o);
                auto reg = std::make_shared<wafer::tools::registry>();
                const mcp::tool_set_options options;
                auto set =
                    mcp::server_tool_set::create(co_await asio::this_coro::executor, options);
                auto memory = watch_memory(co_await asio::this_coro::executor);
                out.list = co_await expect_error([&]() -> asio::awaitable<void> {
                    co_await set->async_start(reg, c);
                });
                memory->stop();
                out.growth = memory->growth();
                out.names = reg->names();
                out.after =
                    (co_await mcp::async_call_tool(*c, "echo", obj(R"({"message":"after"})"))).text;
                co_await c->async_close();
                co_return out;
            }(),
            60s
        );
        CHECK(s.list.code == mcp::errc::transport);
        CHECK(s.list.what.find("\"bigpage\"") != std::string::npos);
        CHECK(s.list.what.find("tools/list") != std::string::npos);
        CHECK(s.list.took < 15s);
        CHECK(s.names.empty());
        if (memory_measurable) {
            CHECK(s.growth < memory_bound);
        }
        CHECK(s.after == "Echo: after");
    }

    TEST_CASE("stdio: tools whose inputSchema wafer cannot compile are left out with why; the "
              "others are registered") {
        asio::io_context ioc;
        struct seen {
            mcp::tool_set_update update;
            std::vector<std::string> names;
            std::string echo;
        };
        const seen s = run_coro(
            ioc,
            [&]() -> asio::awaitable<seen> {
                seen out;
                const auto server = faulty("schemas", "bad-schema");
                auto c = co_await mcp::client::async_connect(server);
                auto reg = std::make_shared<wafer::tools::registry>();
                const mcp::tool_set_options options;
                auto set =
                    mcp::server_tool_set::create(co_await asio::this_coro::executor, options);
                out.update = co_await set->async_start(reg, c);
                out.names = reg->names();
                wafer::tools::tool_call_request call;
                call.id = "c1";
                call.name = "schemas__echo";
                call.arguments = R"({"message":"valid"})";
                const wafer::tools::dispatch_options dispatch;
                out.echo = (co_await reg->async_call(std::move(call), dispatch)).content;
                co_await c->async_close();
                co_return out;
            }(),
            30s
        );
        CHECK(s.update.failure.empty());
        CHECK(s.update.added == std::vector<std::string>{"schemas__echo"});
        CHECK(s.names == std::vector<std::string>{"schemas__echo"});
        const auto& skipped = s.update.skipped;
        CAPTURE(joined(skipped));
        REQUIRE(skipped.size() == 4);
        CHECK(any_contains(skipped, "not_object: inputSchema is not an object"));
        CHECK(any_contains(skipped, "schemas__remote_ref: its inputSchema cannot be used"));
        CHECK(any_contains(skipped, "remote refs unsupported"));
        CHECK(any_contains(skipped, "schemas__lookahead: its inputSchema cannot be used"));
        CHECK(any_contains(skipped, "schemas__bad_type: its inputSchema cannot be used"));
        CHECK(s.echo == "Echo: valid");
    }

    TEST_CASE("stdio: tool names that collide (with another server's, a built-in, each other) are "
              "left out with why") {
        asio::io_context ioc;
        struct seen {
            mcp::tool_set_update update;
            mcp::tool_set_update bare;
            std::vector<std::string> names;
            std::vector<std::string> bare_names;
            std::string other_echo;
            std::string builtin;
        };
        // Two registries with a built-in read_file.
        auto with_builtin = [] {
            auto r = std::make_shared<wafer::tools::registry>();
            r->add(wafer::tools::make_tool<json>(
                "read_file",
                "The built-in",
                obj(R"({"type":"object"})"),
                [](const json&) { return "built-in"; }
            ));
            return r;
        };
        const auto reg = with_builtin();
        const auto reg2 = with_builtin();
        const seen s = run_coro(
            ioc,
            [&]() -> asio::awaitable<seen> {
                seen out;
                auto ex = co_await asio::this_coro::executor;
                // "srv__other" offers echo as srv__other__echo; "srv" offers "other__echo",
                // which maps to the same name.
                const auto healthy_server = faulty("srv__other", "none");
                const auto clash_server = faulty("srv", "collide");
                auto healthy = co_await mcp::client::async_connect(healthy_server);
                auto c = co_await mcp::client::async_connect(clash_server);
                const mcp::tool_set_options options;
                auto healthy_set = mcp::server_tool_set::create(ex, options);
                static_cast<void>(co_await healthy_set->async_start(reg, healthy));
                auto set = mcp::server_tool_set::create(ex, options);
                out.update = co_await set->async_start(reg, c);
                out.names = reg->names();
                // Without a prefix, the server's read_file meets the built-in.
                mcp::tool_set_options bare_options;
                bare_options.tools.prefix = "";
                auto bare = mcp::server_tool_set::create(ex, bare_options);
                out.bare = co_await bare->async_start(reg2, c);
                out.bare_names = reg2->names();
                const wafer::tools::dispatch_options dispatch;
                wafer::tools::tool_call_request call;
                call.id = "c1";
                call.name = "srv__other__echo";
                call.arguments = R"({"message":"from the first"})";
                out.other_echo = (co_await reg->async_call(std::move(call), dispatch)).content;
                wafer::tools::tool_call_request call2;
                call2.id = "c2";
                call2.name = "read_file";
                call2.arguments = "{}";
                out.builtin = (co_await reg2->async_call(std::move(call2), dispatch)).content;
                co_await c->async_close();
                co_await healthy->async_close();
                co_return out;
            }(),
            30s
        );
        CHECK(s.update.failure.empty());
        CHECK(
            s.update.added == std::vector<std::string>{"srv__echo", "srv__a_b", "srv__read_file"}
        );
        const auto& skipped = s.update.skipped;
        CAPTURE(joined(skipped));
        CHECK(skipped.size() == 4);
        CHECK(any_contains(skipped, "echo: listed twice by the server"));
        CHECK(any_contains(skipped, "srv__a_b: an earlier tool of the server has that name"));
        CHECK(any_contains(skipped, "srv__other__echo: another tool of the registry has that name")
        );
        CHECK(any_contains(skipped, "is longer than 64 characters"));
        CHECK(
            s.names ==
            std::vector<std::string>{
                "read_file", "srv__other__echo", "srv__echo", "srv__a_b", "srv__read_file"}
        );
        // The name kept its first owner.
        CHECK(s.other_echo == "Echo: from the first");
        CHECK(any_contains(s.bare.skipped, "read_file: another tool of the registry has that name")
        );
        CHECK(has(s.bare_names, "echo"));
        CHECK(s.builtin == "built-in");
    }

    TEST_CASE("stdio and HTTP: an unknown protocol version in the initialize answer is a protocol "
              "error naming the version") {
        http_fault http({"--fault", "bad-version"});
        asio::io_context ioc;
        struct seen {
            failure stdio;
            failure over_http;
        };
        const seen s = run_coro(
            ioc,
            [&]() -> asio::awaitable<seen> {
                seen out;
                out.stdio = co_await expect_error([&]() -> asio::awaitable<void> {
                    const auto server = faulty("future", "bad-version");
                    co_await mcp::client::async_connect(server);
                });
                out.over_http = co_await expect_error([&]() -> asio::awaitable<void> {
                    const auto server = http_at("future-http", http);
                    const mcp::client_options o;
                    co_await wafer::mcp::async_connect_http(server, o);
                });
                co_return out;
            }(),
            30s
        );
        for (const auto* f : {&s.stdio, &s.over_http}) {
            CAPTURE(f->what);
            CHECK(f->code == mcp::errc::protocol);
            CHECK(
                f->what.find("\"2099-01-01\", which this client does not speak") !=
                std::string::npos
            );
            CHECK(f->took < 10s);
        }
        CHECK(s.stdio.what.find("\"future\"") != std::string::npos);
        CHECK(s.over_http.what.find("\"future-http\"") != std::string::npos);
    }

    TEST_CASE("HTTP: a 401 without any metadata is an authorization error naming the server") {
        http_fault http({"--fault", "unauthorized"});
        asio::io_context ioc;
        const failure f = run_coro(
            ioc,
            expect_error([&]() -> asio::awaitable<void> {
                const auto server = http_at("locked", http);
                const mcp::client_options o;
                co_await wafer::mcp::async_connect_http(server, o);
            }),
            30s
        );
        CAPTURE(f.what);
        CHECK(f.code == mcp::errc::unauthorized);
        CHECK(f.what.find("\"locked\"") != std::string::npos);
        CHECK(f.what.find("HTTP 401") != std::string::npos);
        CHECK(f.took < 10s);
    }

    TEST_CASE("HTTP: a redirect to another origin is not followed; a transport error naming the "
              "status") {
        for (const int status : {302, 307}) {
            CAPTURE(status);
            decoy other;
            http_fault http(
                {"--fault",
                 "redirect",
                 "--redirect-status",
                 std::to_string(status),
                 "--redirect-to",
                 other.origin() + "/mcp"}
            );
            asio::io_context ioc;
            const failure f = run_coro(
                ioc,
                expect_error([&]() -> asio::awaitable<void> {
                    const auto server = http_at("moved", http);
                    const mcp::client_options o;
                    co_await wafer::mcp::async_connect_http(server, o);
                }),
                30s
            );
            CAPTURE(f.what);
            CHECK(f.code == mcp::errc::transport);
            CHECK(f.what.find("\"moved\"") != std::string::npos);
            CHECK(f.what.find("initialize") != std::string::npos);
            CHECK(f.what.find("HTTP " + std::to_string(status)) != std::string::npos);
            CHECK(f.took < 10s);
            CHECK_FALSE(other.contacted());
        }
    }

    // A 3xx is not followed: the error says it is a redirect and where to (the Location's
    // origin only: its path and query may hold tokens); the other origin is never contacted.
    TEST_CASE("HTTP: a redirect's error says it is a redirect not followed, and where to") {
        decoy other;
        http_fault http({"--fault", "redirect", "--redirect-to", other.origin() + "/mcp?k=secret"});
        asio::io_context ioc;
        const failure f = run_coro(
            ioc,
            expect_error([&]() -> asio::awaitable<void> {
                const auto server = http_at("moved", http);
                const mcp::client_options o;
                co_await wafer::mcp::async_connect_http(server, o);
            }),
            30s
        );
        CAPTURE(f.what);
        CHECK(f.code == mcp::errc::transport);
        CHECK(f.what.find("redirect") != std::string::npos);
        CHECK(f.what.find(other.origin()) != std::string::npos);
        CHECK(f.what.find("secret") == std::string::npos);
        CHECK_FALSE(other.contacted());
    }

    TEST_CASE("HTTP: a 50 MB answer (JSON or event stream) fails its call at once at the limit; "
              "memory stays bounded; the server goes on") {
        for (const bool sse : {false, true}) {
            CAPTURE(sse);
            std::vector<std::string> args{"--fault", "huge-result"};
            if (sse) {
                args.emplace_back("--sse");
            }
            http_fault http(args);
            asio::io_context ioc;
            struct seen {
                failure huge;
                std::size_t growth = 0;
                std::string after;
            };
            const seen s = run_coro(
                ioc,
                [&]() -> asio::awaitable<seen> {
                    seen out;
                    const auto server = http_at("big", http);
                    const mcp::client_options o;
                    auto c = co_await wafer::mcp::async_connect_http(server, o);
                    auto memory = watch_memory(co_await asio::this_coro::executor);
                    out.huge = co_await expect_error([&]() -> asio::awaitable<void> {
                        co_await mcp::async_call_tool(*c, "huge", json::object());
                    });
                    memory->stop();
                    out.growth = memory->growth();
                    out.after =
                        (co_await mcp::async_call_tool(*c, "echo", obj(R"({"message":"after"})")))
                            .text;
                    co_await c->async_close();
                    co_return out;
                }(),
                60s
            );
            CAPTURE(s.huge.what);
            CHECK(s.huge.code == mcp::errc::transport);
            CHECK(s.huge.what.find("\"big\"") != std::string::npos);
            CHECK(s.huge.what.find("tools/call") != std::string::npos);
            CHECK(
                s.huge.what.find("over the limit of " + std::to_string(limit)) != std::string::npos
            );
            CHECK(s.huge.took < 10s);
            MESSAGE("resident memory rose by " << s.growth / 1024 << " KiB (sse: " << sse << ")");
            if (memory_measurable) {
                CHECK(s.growth < memory_bound);
            }
            CHECK(s.after == "Echo: after");
        }
    }

    // The method of a failed request is named once (the client names it; the transport does
    // not again).
    TEST_CASE("HTTP: a failed request's error names its method once") {
        http_fault http({"--fault", "huge-result"});
        asio::io_context ioc;
        const failure f = run_coro(
            ioc,
            expect_error([&]() -> asio::awaitable<void> {
                const auto server = http_at("big", http);
                const mcp::client_options o;
                auto c = co_await wafer::mcp::async_connect_http(server, o);
                co_await mcp::async_call_tool(*c, "huge", json::object());
            }),
            60s
        );
        CAPTURE(f.what);
        CHECK(f.code == mcp::errc::transport);
        CHECK(f.what.find("tools/call: tools/call") == std::string::npos);
    }

    TEST_CASE("HTTP: a 50 MB tools/list page fails the listing at once") {
        http_fault http({"--fault", "huge-list"});
        asio::io_context ioc;
        const failure f = run_coro(
            ioc,
            expect_error([&]() -> asio::awaitable<void> {
                const auto server = http_at("bigpage", http);
                const mcp::client_options o;
                // The client is destroyed without a close: the transport ends at once.
                auto c = co_await wafer::mcp::async_connect_http(server, o);
                co_await mcp::async_list_tools(*c);
            }),
            60s
        );
        CAPTURE(f.what);
        CHECK(f.code == mcp::errc::transport);
        CHECK(f.what.find("tools/list") != std::string::npos);
        CHECK(f.what.find("over the limit") != std::string::npos);
        CHECK(f.took < 10s);
    }

    TEST_CASE("HTTP: a call never answered times out, the cancel is posted, the server goes on") {
        temp_dir dir;
        const fs::path log = dir.path / "hang.log";
        http_fault http({"--fault", "hang", "--log", log.string()});
        asio::io_context ioc;
        struct seen {
            failure timed_out;
            std::string after;
        };
        const seen s = run_coro(
            ioc,
            [&]() -> asio::awaitable<seen> {
                seen out;
                const auto server = http_at("hanger", http);
                const mcp::client_options o;
                auto c = co_await wafer::mcp::async_connect_http(server, o);
                out.timed_out = co_await expect_error([&]() -> asio::awaitable<void> {
                    mcp::call_options co;
                    co.limits = short_limits();
                    co_await mcp::async_call_tool(*c, "hang", json::object(), co);
                });
                out.after =
                    (co_await mcp::async_call_tool(*c, "echo", obj(R"({"message":"still"})"))).text;
                co_await c->async_close();
                co_return out;
            }(),
            30s
        );
        CHECK(s.timed_out.code == mcp::errc::timeout);
        CHECK(s.timed_out.what.find("\"hanger\"") != std::string::npos);
        CHECK(s.timed_out.took < 10s);
        CHECK(s.after == "Echo: still");
        const json id = call_id(log, "hang");
        REQUIRE_FALSE(id.is_null());
        CHECK(eventually([&] { return cancel_logged(log, id); }));
    }

    TEST_CASE("HTTP: a server that exits in the middle of a call fails it at once; later calls "
              "fail fast") {
        http_fault http({"--fault", "exit-mid-call"});
        asio::io_context ioc;
        struct seen {
            failure crash;
            failure after;
        };
        const seen s = run_coro(
            ioc,
            [&]() -> asio::awaitable<seen> {
                seen out;
                const auto server = http_at("crasher", http);
                const mcp::client_options o;
                auto c = co_await wafer::mcp::async_connect_http(server, o);
                out.crash = co_await expect_error([&]() -> asio::awaitable<void> {
                    co_await mcp::async_call_tool(*c, "crash", json::object());
                });
                out.after = co_await expect_error([&]() -> asio::awaitable<void> {
                    co_await mcp::async_call_tool(*c, "echo", obj(R"({"message":"late"})"));
                });
                co_await c->async_close();
                co_return out;
            }(),
            30s
        );
        CAPTURE(s.crash.what);
        CHECK(s.crash.code == mcp::errc::transport);
        CHECK(s.crash.what.find("\"crasher\"") != std::string::npos);
        CHECK(s.crash.what.find("tools/call") != std::string::npos);
        CHECK(s.crash.took < 10s);
        CAPTURE(s.after.what);
        CHECK(s.after.code == mcp::errc::transport);
        // Refused, or reset when it came while the server's sockets were being torn down.
        CHECK(s.after.what.find("\"crasher\"") != std::string::npos);
        CHECK(s.after.took < 10s);
        CHECK(eventually([&] { return http.exit_status().has_value(); }));
    }

    TEST_CASE("HTTP: events that are not the answer are skipped; the call goes on") {
        http_fault http({"--fault", "garbage", "--sse"});
        asio::io_context ioc;
        struct seen {
            std::vector<std::string> noise;
            std::string echo;
        };
        const seen s = run_coro(
            ioc,
            [&]() -> asio::awaitable<seen> {
                seen out;
                const auto server = http_at("noisy", http);
                mcp::client_options o;
                o.on_noise = [&out](std::string_view w) {
                    out.noise.emplace_back(w);
                };
                auto c = co_await wafer::mcp::async_connect_http(server, o);
                out.echo =
                    (co_await mcp::async_call_tool(*c, "echo", obj(R"({"message":"through"})")))
                        .text;
                co_await c->async_close();
                co_return out;
            }(),
            30s
        );
        CHECK(s.echo == "Echo: through");
        CAPTURE(joined(s.noise));
        CHECK(any_contains(s.noise, "not a JSON-RPC message"));
        CHECK(any_contains(s.noise, "request 99999, which this client never sent"));
    }

    // A 200 application/json body that answers no request of ours ends the request at once
    // (errc::protocol), instead of leaving it to its timeout.
    TEST_CASE("HTTP: a JSON answer that is not JSON-RPC fails its call at once") {
        http_fault http({"--fault", "garbage"});
        asio::io_context ioc;
        const failure f = run_coro(
            ioc,
            [&]() -> asio::awaitable<failure> {
                const auto server = http_at("noisy", http);
                const mcp::client_options o;
                auto c = co_await wafer::mcp::async_connect_http(server, o);
                const failure out = co_await expect_error([&]() -> asio::awaitable<void> {
                    co_await mcp::async_call_tool(*c, "garbage", json::object());
                });
                co_await c->async_close();
                co_return out;
            }(),
            90s
        );
        CHECK(f.code == mcp::errc::protocol);
        CHECK(f.what.find("tools/call") != std::string::npos);
        CHECK(f.took < 10s);
    }

    TEST_CASE("HTTP: a schema's remote $ref is never fetched") {
        temp_dir dir;
        const fs::path log = dir.path / "schema.log";
        http_fault http({"--fault", "bad-schema", "--log", log.string()});
        asio::io_context ioc;
        const mcp::tool_set_update u = run_coro(
            ioc,
            [&]() -> asio::awaitable<mcp::tool_set_update> {
                const auto server = http_at("schemas", http);
                const mcp::client_options o;
                auto c = co_await wafer::mcp::async_connect_http(server, o);
                auto reg = std::make_shared<wafer::tools::registry>();
                const mcp::tool_set_options options;
                auto set =
                    mcp::server_tool_set::create(co_await asio::this_coro::executor, options);
                auto update = co_await set->async_start(reg, c);
                co_await c->async_close();
                co_return update;
            }(),
            30s
        );
        CHECK(u.added == std::vector<std::string>{"schemas__echo"});
        CHECK(any_contains(u.skipped, "remote refs unsupported"));
        const auto lines = log_lines(log);
        CHECK(any_contains(lines, "HTTP POST /mcp"));
        CHECK_FALSE(any_contains(lines, "schema.json"));
    }
}

TEST_SUITE("mcp/faults") {
    TEST_CASE("agent: with a healthy server and faulty ones, the run completes with the healthy "
              "tools") {
        // crasher exits in its call, hanger never answers, future cannot even connect: each
        // fails alone; the healthy server's echo answers in the same batch and after.
        asio::io_context ioc;
        auto reg = std::make_shared<wafer::tools::registry>();
        auto model = std::make_shared<scripted_model>("zai-glm-4.7");
        model->push(turn::calls(
            {{"call_echo", "healthy__echo", R"({"message":"first"})"},
             {"call_crash", "crasher__crash", "{}"},
             {"call_hang", "hanger__hang", "{}"}}
        ));
        model->push(turn::calls({{"call_echo2", "healthy__echo", R"({"message":"second"})"}}));
        model->push(turn::text("Done with what works."));
        std::vector<mcp::stdio_server> servers;
        servers.push_back(faulty("healthy", "none"));
        servers.push_back(faulty("crasher", "exit-mid-call"));
        servers.push_back(faulty("hanger", "hang"));
        servers.push_back(faulty("future", "bad-version"));
        wafer::agent_config cfg;
        cfg.name = "mcp-faults";
        cfg.model = model;
        cfg.tools = reg;
        // Bounds the test only: the MCP calls end by their own limits long before.
        cfg.limits.tool_call_timeout = 20s;
        const wafer::agent a(std::move(cfg));
        struct seen {
            wafer::run_result result;
            std::string connect_failure;
            std::chrono::milliseconds took{};
        };
        const seen s = run_coro(
            ioc,
            [&]() -> asio::awaitable<seen> {
                seen out;
                auto ex = co_await asio::this_coro::executor;
                mcp::tool_set_options options;
                options.tools.limits = short_limits();
                std::vector<std::shared_ptr<mcp::client>> clients;
                for (const auto& server : servers) {
                    try {
                        auto c = co_await mcp::client::async_connect(server);
                        auto set = mcp::server_tool_set::create(ex, options);
                        static_cast<void>(co_await set->async_start(reg, c));
                        clients.push_back(c);
                    } catch (const mcp::error& e) {
                        out.connect_failure = e.what();
                    }
                }
                std::string input = "Use every tool.";
                const auto t0 = clock_type::now();
                asio::awaitable<wafer::run_result> op = a.async_run(std::move(input));
                out.result = co_await std::move(op);
                out.took =
                    std::chrono::duration_cast<std::chrono::milliseconds>(clock_type::now() - t0);
                for (auto& c : clients) {
                    co_await c->async_close();
                }
                co_return out;
            }(),
            60s
        );
        CHECK(s.connect_failure.find("\"future\"") != std::string::npos);
        CHECK(s.result.stop_reason == wafer::stop_reason::completed);
        CHECK(s.result.final_text == "Done with what works.");
        CHECK(s.took < 15s);
        REQUIRE(model->request_count() == 3);
        const auto offered = tool_names(model->request(0));
        CHECK(
            offered ==
            std::vector<std::string>{
                "healthy__echo", "crasher__echo", "crasher__crash", "hanger__echo", "hanger__hang"}
        );
        const auto echo = tool_message(s.result, "call_echo");
        const auto crash = tool_message(s.result, "call_crash");
        const auto hang = tool_message(s.result, "call_hang");
        const auto echo2 = tool_message(s.result, "call_echo2");
        REQUIRE(echo);
        REQUIRE(crash);
        REQUIRE(hang);
        REQUIRE(echo2);
        CHECK(echo->text() == "Echo: first");
        CHECK(echo2->text() == "Echo: second");
        // The model reads which server and tool failed, and how.
        CAPTURE(crash->text());
        CHECK(crash->text().find("MCP server \"crasher\", tool \"crash\"") != std::string::npos);
        CHECK(crash->text().find("exited with status 3") != std::string::npos);
        CAPTURE(hang->text());
        CHECK(hang->text().find("MCP server \"hanger\", tool \"hang\"") != std::string::npos);
        CHECK(hang->text().find("had no answer") != std::string::npos);
        // The healthy server's tools are offered to the end.
        CHECK(has(tool_names(model->request(2)), "healthy__echo"));
    }
}
