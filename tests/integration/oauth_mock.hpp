// An MCP server and its OAuth authorization server on one port of 127.0.0.1, served by an
// io_context of the test (tests/integration/test_mcp_oauth.cpp, test_mcp_cli_oauth.cpp): protected
// resource metadata, authorization server metadata, dynamic registration, the token endpoint
// (authorization_code and refresh_token grants). The browser step is the test's.
#pragma once

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

#include <nlohmann/json.hpp>

#include <cctype>
#include <map>
#include <sstream>
#include <string>
#include <string_view>
#include <utility>

namespace wafer::testing::oauth_mock {

namespace asio = boost::asio;
using asio::ip::tcp;
using nlohmann::json;

struct request {
    std::string method;
    std::string path;
    std::map<std::string, std::string> headers; // lower-case names
    std::string body;
};

inline std::map<std::string, std::string> form(std::string_view s) {
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

} // namespace wafer::testing::oauth_mock
