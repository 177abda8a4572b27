// OAuth for the CLI's HTTP MCP servers (see mcp_oauth.hpp).
#include "mcp_oauth.hpp"

#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read_until.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>

#include <cstdint>
#include <iostream>
#include <stdexcept>
#include <system_error>

#include "store.hpp"
#include "visible.hpp"

namespace wafer::cli {

namespace asio = boost::asio;
namespace fs = std::filesystem;
using asio::ip::tcp;
using boost::system::error_code;

namespace {

constexpr std::size_t max_request_head = 16U << 10U;
constexpr std::chrono::seconds request_read_timeout{10};

// A page that says what happened and nothing the request carried (no reflected input).
constexpr std::string_view done_page =
    "<!doctype html><html><head><meta charset=\"utf-8\"><title>wafer</title></head><body>"
    "<p>wafer received the authorization. You can close this window.</p></body></html>";

std::string http_answer(int status, std::string_view reason, std::string_view body) {
    return "HTTP/1.1 " + std::to_string(status) + " " + std::string(reason) +
           "\r\nContent-Type: text/html; charset=utf-8\r\nCache-Control: no-store\r\n"
           "Connection: close\r\nContent-Length: " +
           std::to_string(body.size()) + "\r\n\r\n" + std::string(body);
}

// The request target of a "GET <target> HTTP/1.x" request line whose path is /callback.
std::optional<std::string> callback_target(std::string_view head) {
    const auto eol = head.find("\r\n");
    const std::string_view line = head.substr(0, eol);
    if (!line.starts_with("GET ")) {
        return std::nullopt;
    }
    const auto sp = line.find(' ', 4);
    if (sp == std::string_view::npos) {
        return std::nullopt;
    }
    const std::string_view target = line.substr(4, sp - 4);
    const std::string_view path = target.substr(0, target.find('?'));
    if (path != "/callback") {
        return std::nullopt;
    }
    return std::string(target);
}

asio::awaitable<std::string> refuse_browser(std::string server) {
    throw std::runtime_error(
        "\"" + server + "\" needs authorization: run `wafer mcp login " + server +
        "` (it opens the authorization in a browser), then try again"
    );
    co_return std::string();
}

} // namespace

std::optional<fs::path> mcp_token_store() {
    if (auto dir = wafer_state_dir()) {
        return *dir / "mcp-oauth.json";
    }
    return std::nullopt;
}

unsigned short oauth_callback_port(const std::string& server, const std::string& url) {
    // FNV-1a: the same number from every build, unlike std::hash.
    std::uint32_t h = 2166136261U;
    for (const char c : server + '\n' + url) {
        h ^= static_cast<unsigned char>(c);
        h *= 16777619U;
    }
    return static_cast<unsigned short>(49152U + h % 16384U);
}

wafer::mcp::oauth_config cli_oauth(const std::string& server, const std::string& url, bool browse) {
    wafer::mcp::oauth_config o;
    const unsigned short port = oauth_callback_port(server, url);
    o.redirect_uri = "http://127.0.0.1:" + std::to_string(port) + "/callback";
    if (const auto store = mcp_token_store()) {
        std::error_code ec;
        fs::create_directories(store->parent_path(), ec);
        o.token_store = store->string();
    }
    if (browse) {
        o.authorize = [server, port](std::string authorization_url) {
            return async_browser_step(server, std::move(authorization_url), port, browser_wait);
        };
    } else {
        o.authorize = [server](std::string) {
            return refuse_browser(server);
        };
    }
    return o;
}

asio::awaitable<std::string> async_browser_step(
    std::string server,
    std::string authorization_url,
    unsigned short port,
    std::chrono::milliseconds wait
) {
    using namespace asio::experimental::awaitable_operators;
    auto ex = co_await asio::this_coro::executor;
    const tcp::endpoint at(asio::ip::address_v4::loopback(), port);
    tcp::acceptor acceptor(ex);
    error_code ec;
    acceptor.open(at.protocol(), ec);
    if (!ec) {
        acceptor.set_option(tcp::acceptor::reuse_address(true), ec);
        acceptor.bind(at, ec);
    }
    if (!ec) {
        acceptor.listen(asio::socket_base::max_listen_connections, ec);
    }
    const std::string back = "http://127.0.0.1:" + std::to_string(port) + "/callback";
    if (ec) {
        throw std::runtime_error(
            "cannot listen on " + back + " for the browser's return (" + ec.message() + ")"
        );
    }
    // The URL comes from the authorization server's metadata: shown escaped, never opened.
    std::cerr << "mcp " << visible(server)
              << ": to authorize wafer, open this address in a browser:\n  "
              << visible(authorization_url) << "\n(waiting up to "
              << std::chrono::duration_cast<std::chrono::seconds>(wait).count()
              << " s for the browser to come back to " << back << ")\n"
              << std::flush;
    asio::steady_timer deadline(ex, wait);
    for (;;) {
        tcp::socket socket(ex);
        const auto got = co_await (
            acceptor.async_accept(socket, asio::use_awaitable) ||
            deadline.async_wait(asio::use_awaitable)
        );
        if (got.index() == 1) {
            break;
        }
        std::string head;
        asio::steady_timer read_limit(ex, request_read_timeout);
        error_code rec;
        const auto read = co_await (
            asio::async_read_until(
                socket,
                asio::dynamic_buffer(head, max_request_head),
                "\r\n\r\n",
                asio::redirect_error(asio::use_awaitable, rec)
            ) ||
            read_limit.async_wait(asio::use_awaitable)
        );
        if (read.index() == 1 || rec) {
            continue; // a stalled or oversized request: the next one
        }
        const auto target = callback_target(head);
        const std::string answer =
            target ? http_answer(200, "OK", done_page) : http_answer(404, "Not Found", "not found");
        error_code wec;
        co_await asio::async_write(
            socket, asio::buffer(answer), asio::redirect_error(asio::use_awaitable, wec)
        );
        socket.shutdown(tcp::socket::shutdown_both, wec);
        if (target) {
            co_return "http://127.0.0.1:" + std::to_string(port) + *target;
        }
    }
    throw std::runtime_error(
        "the browser did not come back to " + back + " within " +
        std::to_string(std::chrono::duration_cast<std::chrono::seconds>(wait).count()) + " s"
    );
}

} // namespace wafer::cli
