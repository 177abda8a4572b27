// Streamable HTTP as a tools::mcp::transport: one coroutine per message (a POST), one for the
// server's GET stream; each owns its connection, which abort() closes. streamable_http.hpp
// decides what the requests hold and what the answers mean.
#include <wafer/mcp/http_transport.hpp>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/this_coro.hpp>

#include <memory>
#include <string>
#include <utility>

#include "api/detail/proxy.hpp"
#include "api/detail/tls_context.hpp"
#include "mcp/http_state.hpp"

namespace wafer::mcp {

namespace asio = boost::asio;
namespace tm = tools::mcp;
using boost::system::error_code;
using detail::http_state;

namespace {

class http_transport final : public tm::transport {
public:
    explicit http_transport(std::shared_ptr<http_state> st) : st_(std::move(st)) {}
    ~http_transport() override { st_->abort(); }
    http_transport(const http_transport&) = delete;
    http_transport& operator=(const http_transport&) = delete;

    void start(std::weak_ptr<tm::transport_events> events) override {
        st_->events = std::move(events);
    }

    void send(std::string messages) override {
        if (st_->aborted) {
            return;
        }
        std::string_view rest(messages);
        while (!rest.empty()) {
            const auto nl = rest.find('\n');
            const std::string_view line = rest.substr(0, nl);
            rest = nl == std::string_view::npos ? std::string_view{} : rest.substr(nl + 1);
            if (line.empty()) {
                continue;
            }
            detail::outgoing out = detail::read_outgoing(line);
            if (out.type == detail::outgoing::kind::request && out.method == "initialize") {
                st_->initialize_body = std::string(line);
            }
            if (!out.protocol_version.empty() && !st_->stateless &&
                out.method != "server/discover") {
                // No handshake: nothing for requests to wait for. (The probe of an era not yet
                // known is a 2026 request too, and an initialize may follow it.)
                st_->stateless = true;
                st_->initialized_done = true;
            }
            if (st_->stateless && out.type == detail::outgoing::kind::notification) {
                // 2026 HTTP has no client notifications: a cancel closes the request's stream.
                if (out.cancels) {
                    if (const auto it = st_->by_request.find(*out.cancels);
                        it != st_->by_request.end()) {
                        it->second->stop();
                    }
                }
                continue;
            }
            if (out.type == detail::outgoing::kind::request && out.method == "tools/list") {
                st_->listings.insert(out.id);
            }
            if (out.cancels) {
                // The cancel is posted (2025: a closed stream is not a cancel); the request's
                // own stream is of no more use.
                if (const auto it = st_->by_request.find(*out.cancels);
                    it != st_->by_request.end()) {
                    it->second->stop();
                }
            }
            asio::co_spawn(
                st_->ex, http_state::post(st_, std::string(line), std::move(out)), asio::detached
            );
        }
    }

    void on_ready(const tm::server_info& server) override {
        st_->protocol_version = server.protocol_version;
    }

    asio::awaitable<void> async_close(std::chrono::milliseconds grace) override {
        auto st = st_;
        co_await st->close(grace);
    }

    void abort() noexcept override { st_->abort(); }

private:
    std::shared_ptr<http_state> st_;
};

} // namespace

std::unique_ptr<tm::transport>
make_http_transport(const asio::any_io_executor& ex, http_server server) {
    const std::string name = server.name.empty() ? std::string("(unnamed)") : server.name;
    std::string why;
    auto url = detail::parse_endpoint(server.url, why);
    if (!url) {
        throw tm::error(tm::errc::bad_config, name, "the URL is unusable: " + why);
    }
    for (const auto& [header, value] : server.headers) {
        if (auto bad = detail::check_header(header, value); !bad.empty()) {
            throw tm::error(
                tm::errc::bad_config,
                name,
                "header " + api::escaped_excerpt(header, 64) + ": " + bad
            );
        }
    }
    auto st = std::make_shared<http_state>(ex, std::move(server), std::move(*url));
    if (!st->server.proxy.empty()) {
        st->proxy = wafer::detail::parse_proxy_url(st->server.proxy);
        if (!st->proxy) {
            throw tm::error(tm::errc::bad_config, name, "the proxy URL is unusable");
        }
    }
    if (st->server.oauth) {
        const auto& o = *st->server.oauth;
        if (!o.authorize || o.redirect_uri.empty()) {
            throw tm::error(
                tm::errc::bad_config, name, "OAuth needs an authorization step and a redirect URI"
            );
        }
        oauth::fetch_settings net;
        net.proxy = st->proxy;
        net.ca_file = st->server.ca_file;
        net.verify_tls = st->server.verify_tls;
        net.connect_timeout = st->server.connect_timeout;
        st->auth = std::make_unique<oauth::authorizer>(ex, o, st->server.url, std::move(net));
        st->auth->on_noise = [s = st.get()](std::string what) {
            s->noise("OAuth: " + what);
        };
    }
    if (st->url.tls) {
        error_code ec;
        st->tls = wafer::detail::make_tls_context(st->server.verify_tls, st->server.ca_file, ec);
        if (ec) {
            throw tm::error(tm::errc::bad_config, name, "TLS setup: " + ec.message());
        }
    }
    return std::make_unique<http_transport>(std::move(st));
}

asio::awaitable<std::shared_ptr<tm::client>>
async_connect_http(http_server server, tm::client_options options) {
    auto ex = co_await asio::this_coro::executor;
    std::string name = server.name;
    auto wire = make_http_transport(ex, std::move(server));
    auto c =
        co_await tm::client::async_connect(std::move(name), std::move(wire), std::move(options));
    co_return c;
}

} // namespace wafer::mcp
