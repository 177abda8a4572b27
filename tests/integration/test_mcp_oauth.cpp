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

#include "run_coro.hpp"

namespace asio = boost::asio;
namespace mcp = wafer::tools::mcp;
using asio::ip::tcp;
using nlohmann::json;
using wafer::testing::run_coro;

namespace {

struct request {
    std::string method;
    std::string path;
    std::map<std::string, std::string> headers; // lower-case names
    std::string body;
};

std::map<std::string, std::string> form(std::string_view s) {
    std::map<std::string, std::string> out;
    const std::string target = "/?" + std::string(s); // the view refers to it
    const auto u = boost::urls::parse_uri_reference(target);
    for (const auto& p : u->params()) {
        out[p.key] = p.value;
    }
    return out;
}

// The MCP server and its authorization server on one port. Tokens: "at-N" valid while
// `valid` names it; refresh tokens "rt-N".
struct mock {
    explicit mock(asio::io_context& ioc)
        : acceptor(ioc, tcp::endpoint(asio::ip::address_v4::loopback(), 0)) {
        port = acceptor.local_endpoint().port();
    }
    tcp::acceptor acceptor;
    unsigned short port = 0;
    std::string valid;
    int issued = 0;
    int registrations = 0;
    int code_grants = 0;
    int refresh_grants = 0;
    int unauthorized = 0;
    std::string last_token_body;

    std::string base() const { return "http://127.0.0.1:" + std::to_string(port); }

    std::pair<int, std::string> route(const request& r, std::string& extra) {
        if (r.path == "/mcp" && r.method == "POST") {
            const auto a = r.headers.find("authorization");
            if (a == r.headers.end() || valid.empty() || a->second != "Bearer " + valid) {
                ++unauthorized;
                extra = "WWW-Authenticate: Bearer resource_metadata=\"" + base() + "/prm\"\r\n";
                return {401, R"({"error":"invalid_token"})"};
            }
            const auto m = json::parse(r.body);
            if (!m.contains("id")) {
                return {202, ""};
            }
            json result;
            const std::string method = m["method"];
            if (method == "initialize") {
                result = json::parse(
                    R"({"protocolVersion":"2025-11-25","capabilities":{"tools":{}},"serverInfo":{"name":"mock","version":"1"}})"
                );
            } else if (method == "tools/list") {
                result =
                    json::parse(R"({"tools":[{"name":"echo","inputSchema":{"type":"object"}}]})");
            } else {
                result = json::parse(R"({"content":[{"type":"text","text":"ok"}]})");
            }
            json answer = json::object();
            answer["jsonrpc"] = "2.0";
            answer["id"] = m["id"];
            answer["result"] = result;
            return {200, answer.dump()};
        }
        if (r.path == "/mcp") {
            return {405, ""};
        }
        if (r.path == "/prm") {
            json j = json::object();
            j["resource"] = base() + "/mcp";
            j["authorization_servers"] = json::array({base()});
            return {200, j.dump()};
        }
        if (r.path == "/.well-known/oauth-authorization-server") {
            json j = json::object();
            j["issuer"] = base();
            j["authorization_endpoint"] = base() + "/authorize";
            j["token_endpoint"] = base() + "/token";
            j["registration_endpoint"] = base() + "/register";
            j["code_challenge_methods_supported"] = json::array({"S256"});
            j["token_endpoint_auth_methods_supported"] = json::array({"client_secret_post"});
            return {200, j.dump()};
        }
        if (r.path == "/register") {
            ++registrations;
            return {201, R"({"client_id":"client-1","client_secret":"very-secret-value"})"};
        }
        if (r.path == "/token") {
            last_token_body = r.body;
            const auto f = form(r.body);
            if (f.count("client_secret") == 0 || f.at("client_secret") != "very-secret-value") {
                return {401, R"({"error":"invalid_client"})"};
            }
            if (f.count("grant_type") && f.at("grant_type") == "authorization_code") {
                ++code_grants;
            } else if (f.count("refresh_token") && f.at("refresh_token") == "rt-" + std::to_string(issued)) {
                ++refresh_grants;
            } else {
                return {400, R"({"error":"invalid_grant"})"};
            }
            ++issued;
            valid = "at-" + std::to_string(issued);
            json j = json::object();
            j["access_token"] = valid;
            j["token_type"] = "Bearer";
            j["refresh_token"] = "rt-" + std::to_string(issued);
            return {200, j.dump()};
        }
        return {404, ""};
    }

    static asio::awaitable<void> serve(mock* self, tcp::socket s) {
        std::string buf;
        boost::system::error_code ec;
        const auto n = co_await asio::async_read_until(
            s, asio::dynamic_buffer(buf), "\r\n\r\n", asio::redirect_error(asio::use_awaitable, ec)
        );
        if (ec) {
            co_return;
        }
        request r;
        std::istringstream head(buf.substr(0, n));
        std::string line;
        std::getline(head, line);
        std::istringstream first(line);
        std::string target;
        first >> r.method >> target;
        r.path = target.substr(0, target.find('?'));
        while (std::getline(head, line) && line != "\r") {
            const auto colon = line.find(':');
            if (colon == std::string::npos) {
                continue;
            }
            std::string name = line.substr(0, colon);
            for (char& c : name) {
                c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
            }
            std::string value = line.substr(colon + 1);
            value.erase(0, value.find_first_not_of(' '));
            if (!value.empty() && value.back() == '\r') {
                value.pop_back();
            }
            r.headers[name] = value;
        }
        std::size_t length = 0;
        if (const auto it = r.headers.find("content-length"); it != r.headers.end()) {
            length = std::stoul(it->second);
        }
        r.body = buf.substr(n);
        if (r.body.size() < length) {
            std::string rest(length - r.body.size(), '\0');
            co_await asio::async_read(
                s, asio::buffer(rest), asio::redirect_error(asio::use_awaitable, ec)
            );
            r.body += rest;
        }
        std::string extra;
        const auto [status, body] = self->route(r, extra);
        std::string out =
            "HTTP/1.1 " + std::to_string(status) + " X\r\nConnection: close\r\n" + extra;
        if (!body.empty()) {
            out += "Content-Type: application/json\r\n";
        }
        out += "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
        co_await asio::async_write(
            s, asio::buffer(out), asio::redirect_error(asio::use_awaitable, ec)
        );
    }

    static asio::awaitable<void> accept_loop(mock* self) {
        for (;;) {
            boost::system::error_code ec;
            tcp::socket s =
                co_await self->acceptor.async_accept(asio::redirect_error(asio::use_awaitable, ec));
            if (ec) {
                co_return;
            }
            asio::co_spawn(
                self->acceptor.get_executor(), serve(self, std::move(s)), asio::detached
            );
        }
    }
};

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
