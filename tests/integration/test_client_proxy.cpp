// HTTPS through an HTTP CONNECT proxy: a tiny in-test proxy on loopback relays the tunnel.
#include <wafer/api/client.hpp>
#include <wafer/testing/fake_server.hpp>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>

#include <doctest/doctest.h>

#include <array>
#include <memory>
#include <string>

#include "run_coro.hpp"

namespace asio = boost::asio;
using asio::ip::tcp;
using namespace std::chrono_literals;
using wafer::testing::run_coro;

namespace {

constexpr auto nothrow = asio::as_tuple(asio::use_awaitable);

struct tiny_proxy {
    explicit tiny_proxy(asio::io_context& ioc)
        : acceptor(ioc, {asio::ip::make_address("127.0.0.1"), 0}) {}
    tcp::acceptor acceptor;
    bool refuse = false; // answer 403 instead of opening the tunnel
    int connects = 0;
    std::string last_target;
    std::string url() const {
        return "http://127.0.0.1:" + std::to_string(acceptor.local_endpoint().port());
    }
};

asio::awaitable<void> pipe(std::shared_ptr<tcp::socket> from, std::shared_ptr<tcp::socket> to) {
    std::array<char, 16384> buf{};
    for (;;) {
        auto [ec, n] = co_await from->async_read_some(asio::buffer(buf), nothrow);
        if (ec) {
            break;
        }
        auto [wec, wn] = co_await asio::async_write(*to, asio::buffer(buf.data(), n), nothrow);
        (void)wn;
        if (wec) {
            break;
        }
    }
    boost::system::error_code ignored;
    to->shutdown(tcp::socket::shutdown_send, ignored);
}

asio::awaitable<void> session(std::shared_ptr<tiny_proxy> p, std::shared_ptr<tcp::socket> client) {
    std::string head;
    while (head.find("\r\n\r\n") == std::string::npos) {
        char c = 0;
        auto [ec, n] = co_await client->async_read_some(asio::buffer(&c, 1), nothrow);
        if (ec || n == 0) {
            co_return;
        }
        head += c;
    }
    // "CONNECT host:port HTTP/1.1"
    const auto sp1 = head.find(' ');
    const auto sp2 = head.find(' ', sp1 + 1);
    if (head.rfind("CONNECT ", 0) != 0 || sp2 == std::string::npos) {
        co_return;
    }
    ++p->connects;
    p->last_target = head.substr(sp1 + 1, sp2 - sp1 - 1);
    if (p->refuse) {
        co_await asio::async_write(
            *client,
            asio::buffer(std::string("HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n")),
            nothrow
        );
        co_return;
    }
    const auto colon = p->last_target.rfind(':');
    auto upstream = std::make_shared<tcp::socket>(client->get_executor());
    tcp::endpoint ep(
        asio::ip::make_address(p->last_target.substr(0, colon)),
        static_cast<unsigned short>(std::stoi(p->last_target.substr(colon + 1)))
    );
    auto [cec] = co_await upstream->async_connect(ep, nothrow);
    if (cec) {
        co_return;
    }
    co_await asio::async_write(
        *client, asio::buffer(std::string("HTTP/1.1 200 Connection established\r\n\r\n")), nothrow
    );
    asio::co_spawn(client->get_executor(), pipe(client, upstream), asio::detached);
    asio::co_spawn(client->get_executor(), pipe(upstream, client), asio::detached);
}

asio::awaitable<void> accept_loop(std::shared_ptr<tiny_proxy> p) {
    for (;;) {
        auto sock = std::make_shared<tcp::socket>(p->acceptor.get_executor());
        auto [ec] = co_await p->acceptor.async_accept(*sock, nothrow);
        if (ec) {
            co_return;
        }
        asio::co_spawn(p->acceptor.get_executor(), session(p, sock), asio::detached);
    }
}

wafer::api::chat_request hello() {
    wafer::api::chat_request req;
    req.model = "zai-glm-4.7";
    req.messages.push_back(wafer::api::message{.role = wafer::api::role::user, .content = "hi"});
    return req;
}

asio::awaitable<std::string> stream_text(wafer::api::client& c) {
    auto s = co_await c.async_stream(hello());
    std::string text;
    while (const auto* ch = co_await s.next()) {
        text += ch->content;
    }
    co_return text;
}

asio::awaitable<boost::system::error_code> create_ec(wafer::api::client& c) {
    wafer::api::chat_response out;
    wafer::diagnostics diag;
    co_return co_await c.async_create(hello(), out, diag);
}

} // namespace

TEST_SUITE("integration/client_proxy") {
    TEST_CASE("HTTPS through a CONNECT proxy; refusal is proxy_failed; env proxies skip loopback") {
        asio::io_context ioc;
        const std::string dir = WAFER_TEST_DATA_DIR "/tls/";
        wafer::testing::fake_server_config sc;
        sc.tls_cert_file = dir + "server.pem";
        sc.tls_key_file = dir + "server.key";
        wafer::testing::fake_server server(ioc.get_executor(), sc);
        auto proxy = std::make_shared<tiny_proxy>(ioc);
        asio::co_spawn(ioc, accept_loop(proxy), asio::detached);

        wafer::api::client_config cfg;
        cfg.base_url = server.base_url();
        cfg.ca_file = dir + "ca.pem";
        cfg.proxy = wafer::api::proxy_config{proxy->url()};
        cfg.retry.max_retries = 0;
        cfg.timeouts.read = 2s;
        server.enqueue(wafer::testing::reply::text("through the tunnel"));
        server.enqueue(wafer::testing::reply::text("reused tunnel"));
        {
            wafer::api::client c(ioc.get_executor(), cfg);
            CHECK(run_coro(ioc, stream_text(c)) == "through the tunnel");
            CHECK(proxy->connects == 1);
            CHECK(proxy->last_target == "127.0.0.1:" + std::to_string(server.port()));
            CHECK(!run_coro(ioc, create_ec(c))); // the tunnelled connection is pooled
            CHECK(proxy->connects == 1);
        }

        proxy->refuse = true;
        {
            wafer::api::client c(ioc.get_executor(), cfg);
            CHECK(run_coro(ioc, create_ec(c)) == wafer::errc::proxy_failed);
            CHECK(proxy->connects == 2);
        }

        // NO_PROXY match: direct.
        auto bypass = cfg;
        bypass.no_proxy = "127.0.0.1";
        server.enqueue(wafer::testing::reply::text("direct"));
        {
            wafer::api::client c(ioc.get_executor(), bypass);
            CHECK(!run_coro(ioc, create_ec(c)));
            CHECK(proxy->connects == 2);
        }

        // A proxy from the environment never applies to loopback.
        auto env = cfg;
        env.proxy->from_environment = true;
        server.enqueue(wafer::testing::reply::text("direct too"));
        {
            wafer::api::client c(ioc.get_executor(), env);
            CHECK(!run_coro(ioc, create_ec(c)));
            CHECK(proxy->connects == 2);
        }
        proxy->acceptor.close();
        server.stop();
        ioc.poll();
    }
}
