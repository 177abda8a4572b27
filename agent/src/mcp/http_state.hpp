// One Streamable HTTP connection's state, shared by the coroutines of the transport
// (http_transport.cpp): its connections, the session it keeps, the exchanges in flight.
// http_post.cpp sends the session's messages (a POST each); http_streams.cpp reads what comes
// back (bodies, event streams and their resumption, the server's GET stream).
#pragma once

#include <wafer/api/sse_parser.hpp>
#include <wafer/mcp/http_transport.hpp>
#include <wafer/tools/mcp/jsonrpc.hpp>
#include <wafer/tools/mcp/transport.hpp>

#include <boost/asio/redirect_error.hpp>
#include <boost/asio/ssl/error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <nlohmann/json.hpp>

#include <map>
#include <set>
#include <stdexcept>
#include <utility>

#include "api/detail/http_body.hpp"
#include "api/detail/http_connection.hpp"
#include "api/detail/proxy.hpp"
#include "mcp/oauth/authorizer.hpp"
#include "mcp/streamable_http.hpp"

namespace wafer::mcp::detail {

namespace asio = boost::asio;
namespace tm = tools::mcp;
using boost::system::error_code;
using wafer::detail::http_body_decoder;
using wafer::detail::http_connection;
using wafer::detail::response_head;

// A request's answer may take as long as its tool runs: the session's deadlines end it, and a
// request it gave up has its connection closed. These bound only what the session cannot see.
inline constexpr std::chrono::hours answer_timeout{24};
inline constexpr std::chrono::seconds write_timeout{30};
inline constexpr std::chrono::seconds notification_timeout{30};
inline constexpr std::size_t read_buffer_bytes = 64U << 10U;
inline constexpr std::size_t max_error_body = 64U << 10U;
inline constexpr std::size_t max_idle_connections = 4;
// Resumptions of one stream in a row without an event between them.
inline constexpr int max_resumes = 5;

// One HTTP exchange in flight: abort() and a cancel close its connection and wake its timer.
// It lives in a coroutine frame and is listed in the transport's state for as long: the
// destructor unlists it, also when the frame is destroyed without resuming (an io_context
// shutting down), so that abort() never reaches a freed exchange.
struct exchange {
    exchange(const asio::any_io_executor& ex, std::set<exchange*>& live_list)
        : timer(ex, asio::steady_timer::time_point::max()), live(live_list) {
        live.insert(this);
    }
    ~exchange() {
        live.erase(this);
        if (requests != nullptr) {
            if (const auto it = requests->find(request_id);
                it != requests->end() && it->second == this) {
                requests->erase(it);
            }
        }
    }
    exchange(const exchange&) = delete;
    exchange& operator=(const exchange&) = delete;

    // Lists it as the exchange of request `id` (a cancel of that request stops it).
    void carry(std::map<std::int64_t, exchange*>& by_request, std::int64_t id) {
        requests = &by_request;
        request_id = id;
        by_request[id] = this;
    }

    std::unique_ptr<http_connection> conn;
    asio::steady_timer timer;
    bool cancelled = false;
    void stop() noexcept {
        cancelled = true;
        if (conn) {
            conn->close();
        }
        timer.cancel();
    }

private:
    std::set<exchange*>& live;
    std::map<std::int64_t, exchange*>* requests = nullptr;
    std::int64_t request_id = 0;
};

// What a lost request's error says: the client names the method of a request itself
// ("tools/call: ..."), not of the handshake, whose failure is the connect's.
inline std::string lost_detail(std::string_view method, std::string text) {
    if (method == "initialize" || method == "server/discover") {
        return std::string(method) + ": " + text;
    }
    return text;
}

inline bool eof(const error_code& ec) {
    return ec == asio::error::eof || ec == asio::ssl::error::stream_truncated;
}

// The JSON-RPC error in an HTTP error body, if it answers request `id`.
inline bool is_error_for(std::string_view body, std::int64_t id) {
    const auto j = wafer::tools::mcp::nesting_within(body, wafer::tools::mcp::max_nesting)
                       ? nlohmann::json::parse(body, nullptr, false)
                       : nlohmann::json(nlohmann::json::value_t::discarded);
    if (!j.is_object()) {
        return false;
    }
    const auto e = j.find("error");
    const auto i = j.find("id");
    return e != j.end() && e->is_object() && i != j.end() && i->is_number_integer() &&
           i->get<std::int64_t>() == id;
}

struct http_state : std::enable_shared_from_this<http_state> {
    http_state(const asio::any_io_executor& executor, http_server s, detail::endpoint_url u)
        : ex(executor), server(std::move(s)), url(std::move(u)),
          initialized_signal(executor, asio::steady_timer::time_point::max()),
          reinit_signal(executor, asio::steady_timer::time_point::max()) {}

    asio::any_io_executor ex;
    http_server server;
    detail::endpoint_url url;
    std::shared_ptr<asio::ssl::context> tls;
    std::optional<wafer::detail::proxy_target> proxy;
    std::weak_ptr<tm::transport_events> events;
    std::unique_ptr<oauth::authorizer> auth; // with server.oauth

    std::string session_id;
    std::string protocol_version;
    // The initialize request as sent: sent again when the server forgets the session.
    std::string initialize_body;
    // Requests wait until notifications/initialized was answered: on separate connections a
    // request could overtake it.
    bool initialized_done = false;
    asio::steady_timer initialized_signal;
    bool reinitializing = false;
    int session_generation = 0;
    asio::steady_timer reinit_signal;
    // 2026-07-28: no session, no GET stream, no resumption; a cancel closes the stream. Known
    // from the first request after server/discover, which both eras may send (the probe).
    bool stateless = false;
    // The Mcp-Param-* headers of each tool, from the tools/list answers this transport carried.
    std::map<std::string, std::vector<tools::mcp::param_header>> tool_headers;
    std::set<std::int64_t> listings;
    bool get_stream_running = false;
    bool get_stream_refused = false;
    bool closing = false;
    bool aborted = false;

    std::vector<std::unique_ptr<http_connection>> idle;
    std::set<exchange*> live;
    std::map<std::int64_t, exchange*> by_request;

    std::shared_ptr<tm::transport_events> sink() const { return events.lock(); }

    void noise(std::string what) const {
        if (auto ev = sink()) {
            ev->on_noise(std::move(what));
        }
    }
    void lost(std::int64_t id, tm::errc reason, std::string detail) const {
        if (auto ev = sink()) {
            ev->on_request_lost(id, reason, std::move(detail));
        }
    }
    void deliver(std::string_view message) {
        if (!listings.empty()) {
            learn_headers(message);
        }
        if (auto ev = sink()) {
            ev->on_message(message);
        }
    }
    // A tools/list page (http_streams.cpp): the x-mcp-header arguments of its tools.
    void learn_headers(std::string_view message);
    bool awaiting(std::int64_t id) const {
        auto ev = sink();
        return ev && ev->awaiting(id);
    }
    // A failure of one message's exchange: its request ends; for other messages, a log line.
    // Request `id` refused at the HTTP level without a JSON-RPC answer: the session decides
    // what that means (for the server/discover probe: a server of the handshake).
    void refused(std::int64_t id, std::string detail) const {
        if (auto ev = sink()) {
            ev->on_request_refused(id, std::move(detail));
        }
    }
    void failed(const detail::outgoing& out, tm::errc reason, const std::string& detail) const {
        if (out.type == detail::outgoing::kind::request) {
            lost(out.id, reason, lost_detail(out.method, detail));
        } else {
            noise(
                "posting " + (out.method.empty() ? std::string("a response") : out.method) + ": " +
                detail
            );
        }
    }

    detail::request_fields fields(std::string_view last_event_id = {}) const {
        detail::request_fields f;
        f.url = &url;
        f.headers = &server.headers;
        f.session_id = session_id;
        f.protocol_version = protocol_version;
        f.last_event_id = last_event_id;
        if (auth) {
            f.bearer = auth->access_token();
        }
        return f;
    }

    // A 2026 request names its version itself, and its method, name and annotated arguments.
    detail::request_fields fields_for(
        const detail::outgoing& out, std::vector<std::pair<std::string, std::string>>& extra
    ) const {
        detail::request_fields f = fields();
        if (out.protocol_version.empty()) {
            return f;
        }
        f.protocol_version = out.protocol_version;
        const auto h = out.method == "tools/call" && out.name && out.name->is_string()
                           ? tool_headers.find(out.name->get<std::string>())
                           : tool_headers.end();
        extra = detail::stateless_fields(out, h == tool_headers.end() ? nullptr : &h->second);
        f.extra = &extra;
        return f;
    }

    void park(std::unique_ptr<http_connection> c) {
        if (aborted || !c || !c->is_open() || c->size() != 0 ||
            idle.size() >= max_idle_connections) {
            return;
        }
        c->park();
        idle.push_back(std::move(c));
    }

    // Opens (or reuses) x.conn, sends what `build` writes and reads the response head. A
    // reused connection the server had closed is replaced once. `why` says what failed.
    template <class Build>
    asio::awaitable<error_code> open(
        exchange& x,
        Build build,
        response_head& head,
        std::chrono::milliseconds head_timeout,
        std::string& why
    ) {
        for (int tries = 0;; ++tries) {
            if (tries == 0 && !idle.empty()) {
                x.conn = std::move(idle.back());
                idle.pop_back();
                x.conn->reused = true;
            } else {
                x.conn = std::make_unique<http_connection>(ex, tls, url.tls, read_buffer_bytes);
                wafer::detail::connect_params p;
                p.tls = url.tls;
                p.host = url.host;
                p.port = url.port;
                p.verify = server.verify_tls;
                p.proxy = proxy;
                p.timeout = server.connect_timeout;
                std::string reason;
                const error_code cec = co_await x.conn->async_connect(std::move(p), reason);
                if (cec) {
                    why = "cannot connect to " + url.origin + " (" +
                          (reason.empty() ? cec.message() : reason) + ")";
                    x.conn.reset();
                    co_return cec;
                }
            }
            build(x.conn->request_buffer());
            error_code ec = co_await x.conn->async_write(write_timeout);
            bool got_bytes = false;
            if (!ec) {
                ec = co_await x.conn->async_read_head(head, head_timeout, got_bytes);
            }
            if (!ec) {
                co_return ec;
            }
            const bool stale = x.conn->reused && !got_bytes && !x.cancelled && tries == 0;
            x.conn.reset();
            if (!stale) {
                why = "the request to " + url.origin + " failed (" + ec.message() + ")";
                co_return ec;
            }
        }
    }

    // http_streams.cpp: a whole body (at most `cap` bytes); an event stream to the answer of
    // `request` (or its end); the same, resumed with Last-Event-ID while it breaks before the
    // answer; the server's own GET stream.
    static asio::awaitable<error_code>
    read_body(http_connection& conn, const response_head& head, std::string& out, std::size_t cap);

    // How an event stream that read_events read ended.
    struct stream_end {
        bool answered = false;  // the answer of the request came
        bool got_event = false; // a message came
        bool clean = false;     // the body ended where its framing said
        bool oversized = false; // an event over server.max_message
        std::string why;        // what broke, if anything did
    };
    asio::awaitable<stream_end> read_events(
        exchange& x,
        const response_head& head,
        api::sse_parser& parser,
        std::optional<std::int64_t> request
    );
    asio::awaitable<void> follow_stream(
        exchange& x, response_head head, std::optional<std::int64_t> request, std::string_view what
    );
    static asio::awaitable<void> get_stream(std::shared_ptr<http_state> self);

    // http_post.cpp: requests wait for notifications/initialized; a forgotten session is
    // initialized again once for all; one message, one POST, and what its answer means.
    asio::awaitable<void> wait_initialized(exchange& x);
    asio::awaitable<void> reinitialize(std::shared_ptr<http_state> self, int seen_generation);
    static asio::awaitable<void>
    post(std::shared_ptr<http_state> self, std::string body, detail::outgoing out);

    asio::awaitable<void> post_exchange(
        std::shared_ptr<http_state> self,
        exchange& x,
        const std::string& body,
        const detail::outgoing& out
    );
    void on_initialized_posted(const std::shared_ptr<http_state>& self);
    // Streams stop, the session is DELETEd (bounded by `grace`), then abort().
    asio::awaitable<void> close(std::chrono::milliseconds grace);

    void abort() noexcept {
        aborted = true;
        closing = true;
        for (exchange* x : live) {
            x->stop();
        }
        idle.clear();
        initialized_signal.cancel();
        reinit_signal.cancel();
    }
};

} // namespace wafer::mcp::detail
