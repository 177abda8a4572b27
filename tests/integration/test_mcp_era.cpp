// protocol_era::automatic over Streamable HTTP (mcp.md §2.5): the client probes with a 2026
// server/discover POST and speaks what the answer shows. Against server-everything's HTTP
// transport (a 2025 server: 400 with an error for id null) and wafer-mcp-fault-server over HTTP
// as a 2025 server, a dual-era one, a gateway that answers the probe 404, one that wants
// authorization and one that is down.
#include <wafer/mcp/http_transport.hpp>
#include <wafer/tools/mcp/client.hpp>
#include <wafer/tools/mcp/server_tools.hpp>

#include <boost/asio/io_context.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

#include <string>
#include <vector>

#include "mcp_fault_server.hpp"
#include "mcp_servers.hpp"
#include "run_coro.hpp"

namespace asio = boost::asio;
namespace mcp = wafer::tools::mcp;
using nlohmann::json;
using wafer::testing::run_coro;
using wafer::testing::mcp_servers::expect_error;
using wafer::testing::mcp_servers::failure;
using wafer::testing::mcp_servers::http_everything;
using wafer::testing::mcp_servers::no_servers;
using wafer::testing::mcp_servers::obj;
using namespace wafer::testing::mcp_faults;
using namespace std::chrono_literals;

namespace {

mcp::client_options automatic() {
    mcp::client_options o;
    o.session.era = mcp::protocol_era::automatic;
    return o;
}

// What one connect found: the protocol version (2026-07-28 for the stateless era) and an echo
// through it.
struct found {
    std::string version;
    std::string echo;
};

found connect_and_echo(const wafer::mcp::http_server& server, std::string_view tool = "echo") {
    asio::io_context ioc;
    return run_coro(
        ioc,
        [&]() -> asio::awaitable<found> {
            found out;
            auto c = co_await wafer::mcp::async_connect_http(server, automatic());
            out.version = c->server().protocol_version;
            const json args = obj(R"({"message":"era probe"})");
            const auto r = co_await mcp::async_call_tool(*c, std::string(tool), args);
            out.echo = r.text;
            co_await c->async_close();
            co_return out;
        }(),
        30s
    );
}

// The JSON-RPC methods the server received, in order.
std::vector<std::string> methods(const fs::path& log) {
    std::vector<std::string> out;
    for (const json& m : log_messages(log)) {
        if (m.is_object() && m.contains("method")) {
            out.push_back(m["method"].get<std::string>());
        }
    }
    return out;
}

} // namespace

TEST_SUITE("mcp/era") {
    TEST_CASE(
        "server-everything over HTTP answers the probe 400 and is spoken to with the handshake" *
        doctest::skip(no_servers())
    ) {
        http_everything srv;
        wafer::mcp::http_server server;
        server.name = "everything";
        server.url = srv.url();
        const found f = connect_and_echo(server);
        CHECK(f.version == "2025-11-25");
        CHECK(f.echo.find("era probe") != std::string::npos);
    }

    TEST_CASE("a dual-era server is found to speak 2026-07-28: no initialize is sent") {
        temp_dir dir;
        const fs::path log = dir.path / "log";
        http_fault srv({"--stateless", "--log", log.string()});
        const found f = connect_and_echo(http_at("dual", srv));
        CHECK(f.version == "2026-07-28");
        CHECK(f.echo == "Echo: era probe");
        const auto sent = methods(log);
        REQUIRE_FALSE(sent.empty());
        CHECK(sent.front() == "server/discover");
        CHECK_FALSE(has(sent, "initialize"));
        // The probe was a 2026 request with its headers, and so are the requests after it.
        bool versioned = false;
        for (const std::string& line : log_lines(log)) {
            versioned = versioned || line.find("\"io.modelcontextprotocol/protocolVersion\"") !=
                                         std::string::npos;
        }
        CHECK(versioned);
    }

    TEST_CASE("a 2025 server's JSON-RPC refusal and a gateway's 404 both lead to initialize") {
        for (const std::vector<std::string>& args :
             {std::vector<std::string>{}, std::vector<std::string>{"--fault", "discover-404"}}) {
            CAPTURE(args.size());
            temp_dir dir;
            const fs::path log = dir.path / "log";
            std::vector<std::string> all = args;
            all.insert(all.end(), {"--log", log.string()});
            http_fault srv(all);
            const found f = connect_and_echo(http_at("legacy", srv));
            CHECK(f.version == "2025-11-25");
            CHECK(f.echo == "Echo: era probe");
            const auto sent = methods(log);
            REQUIRE(sent.size() >= 3);
            CHECK(sent[0] == "server/discover");
            CHECK(sent[1] == "initialize");
            CHECK(sent[2] == "notifications/initialized");
        }
    }

    TEST_CASE("a 401 or a 503 on the probe is no sign of the era: the connect fails at once") {
        struct expectation {
            const char* fault;
            mcp::errc code;
            const char* says;
        };
        for (const expectation e :
             {expectation{"unauthorized", mcp::errc::unauthorized, "401"},
              expectation{"unavailable", mcp::errc::transport, "503"}}) {
            CAPTURE(e.fault);
            temp_dir dir;
            const fs::path log = dir.path / "log";
            http_fault srv({"--fault", e.fault, "--log", log.string()});
            asio::io_context ioc;
            const wafer::mcp::http_server server = http_at("picky", srv);
            const failure f = run_coro(
                ioc,
                expect_error([&]() -> asio::awaitable<void> {
                    co_await wafer::mcp::async_connect_http(server, automatic());
                }),
                30s
            );
            CHECK(f.code == e.code);
            CHECK_MESSAGE(f.what.find(e.says) != std::string::npos, f.what);
            CHECK(f.took < 2s); // not the probe's 3 s wait
            CHECK(methods(log) == std::vector<std::string>{"server/discover"});
        }
    }
}
