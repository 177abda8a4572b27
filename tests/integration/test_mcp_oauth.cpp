// OAuth for HTTP MCP servers end to end against an in-process resource and authorization
// server on 127.0.0.1: the first connection authorizes (discovery, dynamic registration, PKCE,
// the code exchange), a later one starts from the token store and refreshes the expired token
// without the browser step; failures are errc::unauthorized without tokens or secrets in them.
#include <wafer/mcp/http_transport.hpp>
#include <wafer/tools/mcp/client.hpp>
#include <wafer/tools/mcp/server_tools.hpp>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/read_until.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/url/parse.hpp>

#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <sys/stat.h>
#include <unistd.h>

#include "oauth_mock.hpp"
#include "run_coro.hpp"

namespace asio = boost::asio;
namespace mcp = wafer::tools::mcp;
using asio::ip::tcp;
using nlohmann::json;
using wafer::testing::run_coro;

namespace {

using wafer::testing::oauth_mock::mock;

struct browser {
    int visits = 0;
    std::string last_url;
    bool refuse = false;
};

wafer::mcp::http_server
server_for(const mock& m, std::shared_ptr<browser> b, const std::string& store) {
    wafer::mcp::http_server s;
    s.name = "oauth-mock";
    s.url = m.base() + "/mcp";
    wafer::mcp::oauth_config o;
    o.redirect_uri = "http://127.0.0.1:1/callback";
    o.token_store = store;
    // Approves at once: the redirect with a code and the request's state.
    o.authorize = [b](std::string url) -> asio::awaitable<std::string> {
        ++b->visits;
        b->last_url = url;
        if (b->refuse) {
            co_return std::string();
        }
        std::string state;
        for (const auto& p : boost::urls::parse_uri_reference(url)->params()) {
            if (p.key == "state") {
                state = p.value;
            }
        }
        co_return "http://127.0.0.1:1/callback?code=the-code&state=" + state;
    };
    s.oauth = std::move(o);
    return s;
}

asio::awaitable<std::string> connect_and_call(wafer::mcp::http_server server) {
    const mcp::client_options options;
    auto c = co_await wafer::mcp::async_connect_http(server, options);
    const auto tools = co_await mcp::async_list_tools(*c);
    const auto r = co_await mcp::async_call_tool(*c, "echo", json::object());
    co_await c->async_close();
    co_return std::to_string(tools.size()) + " " + r.text;
}

asio::awaitable<std::string> connect_error(wafer::mcp::http_server server) {
    try {
        const mcp::client_options options;
        auto c = co_await wafer::mcp::async_connect_http(server, options);
        co_await c->async_close();
    } catch (const mcp::error& e) {
        co_return std::string(e.code() == mcp::errc::unauthorized ? "unauthorized: " : "other: ") +
            e.what();
    }
    co_return std::string("connected");
}

} // namespace

TEST_SUITE("mcp/oauth") {
    TEST_CASE("authorize once, keep the tokens in a 0600 store, refresh them in a later session") {
        asio::io_context ioc;
        mock m(ioc);
        asio::co_spawn(ioc, mock::accept_loop(&m), asio::detached);
        const auto dir = std::filesystem::temp_directory_path() /
                         ("wafer-oauth-it-" + std::to_string(::getpid()));
        std::filesystem::create_directories(dir);
        const std::string store = (dir / "tokens.json").string();
        auto b = std::make_shared<browser>();

        CHECK(run_coro(ioc, connect_and_call(server_for(m, b, store))) == "1 ok");
        CHECK(b->visits == 1);
        CHECK(m.registrations == 1);
        CHECK(m.code_grants == 1);
        CHECK(b->last_url.find("code_challenge_method=S256") != std::string::npos);
        CHECK(b->last_url.find("resource=http%3A%2F%2F127.0.0.1%3A") != std::string::npos);
        CHECK(m.last_token_body.find("client_secret=very-secret-value") != std::string::npos);
        struct stat st {};
        REQUIRE(::stat(store.c_str(), &st) == 0);
        CHECK((st.st_mode & 0777) == 0600);

        // The server forgets at-1: the next session starts with it, is refused, refreshes.
        m.valid = "expired";
        CHECK(run_coro(ioc, connect_and_call(server_for(m, b, store))) == "1 ok");
        CHECK(b->visits == 1);
        CHECK(m.refresh_grants == 1);
        CHECK(m.registrations == 1);
        CHECK(m.last_token_body.find("grant_type=refresh_token&refresh_token=rt-1") == 0);

        // Nothing valid, no refresh possible, the user refuses: unauthorized, nothing secret.
        m.valid = "expired";
        m.issued = 99; // rt-2 is no longer accepted
        b->refuse = true;
        const std::string e = run_coro(ioc, connect_error(server_for(m, b, store)));
        CHECK(e.starts_with("unauthorized: "));
        CHECK(e.find("gave up") != std::string::npos);
        CHECK(e.find("at-") == std::string::npos);
        CHECK(e.find("rt-") == std::string::npos);
        CHECK(e.find("very-secret-value") == std::string::npos);
        std::filesystem::remove_all(dir);
    }

    TEST_CASE("OAuth without an authorization step or redirect URI is a configuration error") {
        asio::io_context ioc;
        wafer::mcp::http_server s;
        s.name = "x";
        s.url = "http://127.0.0.1:1/mcp";
        s.oauth.emplace();
        const std::string e = run_coro(ioc, connect_error(s));
        CHECK(e.starts_with("other: "));
        CHECK(e.find("authorization step") != std::string::npos);
    }
}
