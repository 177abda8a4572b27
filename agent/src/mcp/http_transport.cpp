// Streamable HTTP as a tools::mcp::transport: one coroutine per message (a POST), one for the
// server's GET stream; each owns its connection, which abort() closes. streamable_http.hpp
// decides what the requests hold and what the answers mean.
#include <wafer/api/sse_parser.hpp>
#include <wafer/mcp/http_transport.hpp>
#include <wafer/tools/mcp/jsonrpc.hpp>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/ssl/error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <nlohmann/json.hpp>

#include <array>
#include <map>
#include <set>
#include <stdexcept>
#include <utility>

#include "api/detail/http_body.hpp"
#include "api/detail/http_connection.hpp"
#include "api/detail/proxy.hpp"
#include "api/detail/tls_context.hpp"
#include "mcp/oauth/authorizer.hpp"
#include "mcp/streamable_http.hpp"

namespace wafer::mcp {

namespace asio = boost::asio;
namespace tm = tools::mcp;
using boost::system::error_code;
using wafer::detail::http_body_decoder;
using wafer::detail::http_connection;
using wafer::detail::response_head;

namespace {

// A request's answer may take as long as its tool runs: the session's deadlines end it, and a
// request it gave up has its connection closed. These bound only what the session cannot see.
constexpr std::chrono::hours answer_timeout{24};
constexpr std::chrono::seconds write_timeout{30};
constexpr std::chrono::seconds notification_timeout{30};
constexpr std::size_t read_buffer_bytes = 64U << 10U;
constexpr std::size_t max_error_body = 64U << 10U;
constexpr std::size_t max_idle_connections = 4;
// Resumptions of one stream in a row without an event between them.
constexpr int max_resumes = 5;

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
std::string lost_detail(std::string_view method, std::string text) {
    if (method == "initialize" || method == "server/discover") {
        return std::string(method) + ": " + text;
    }
    return text;
}

bool eof(const error_code& ec) {
    return ec == asio::error::eof || ec == asio::ssl::error::stream_truncated;
}

// The JSON-RPC error in an HTTP error body, if it answers request `id`.
bool is_error_for(std::string_view body, std::int64_t id) {
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

} // namespace

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

    // A tools/list page: the x-mcp-header arguments of its tools, for their calls' headers.
    void learn_headers(std::string_view message) {
        const auto j = wafer::tools::mcp::nesting_within(message, wafer::tools::mcp::max_nesting)
                           ? nlohmann::json::parse(message, nullptr, false)
                           : nlohmann::json(nlohmann::json::value_t::discarded);
        const auto id = j.is_object() ? j.find("id") : j.end();
        if (id == j.end() || !id->is_number_integer() ||
            !listings.contains(id->get<std::int64_t>())) {
            return;
        }
        listings.erase(id->get<std::int64_t>());
        const auto result = j.find("result");
        if (result == j.end() || !result->is_object()) {
            return;
        }
        const auto tools = result->find("tools");
        if (tools == result->end() || !tools->is_array()) {
            return;
        }
        for (const auto& t : *tools) {
            if (auto info = tools::mcp::read_tool_info(t)) {
                tool_headers[info->name] = std::move(info->param_headers);
            }
        }
    }
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

    // Reads a whole body, up to `cap` bytes (more: errc::response_too_large).
    static asio::awaitable<error_code>
    read_body(http_connection& conn, const response_head& head, std::string& out, std::size_t cap) {
        http_body_decoder body;
        body.reset(head.framing, head.content_length);
        for (;;) {
            if (conn.size() > 0 && !body.done()) {
                error_code bec;
                const auto n = body.feed(
                    conn.data(), conn.size(), [&out](std::string_view d) { out += d; }, bec
                );
                conn.consume(n);
                if (bec) {
                    co_return bec;
                }
                if (out.size() > cap) {
                    co_return make_error_code(wafer::errc::response_too_large);
                }
            }
            if (body.done()) {
                co_return error_code{};
            }
            const error_code ec = co_await conn.async_fill(answer_timeout);
            if (eof(ec)) {
                co_return body.on_eof() ? error_code{}
                                        : make_error_code(wafer::errc::connection_failed);
            }
            if (ec) {
                co_return ec;
            }
        }
    }

    // Reads an event stream, handing each message to the session, until the stream ends or
    // (for a request) its answer came. `answered` tells which; `clean` that the body ended
    // where its framing said.
    asio::awaitable<void> read_events(
        exchange& x,
        const response_head& head,
        api::sse_parser& parser,
        std::optional<std::int64_t> request,
        bool& answered,
        bool& got_event,
        bool& clean,
        std::string& why
    ) {
        http_body_decoder body;
        body.reset(head.framing, head.content_length);
        http_connection& conn = *x.conn;
        for (;;) {
            if (conn.size() > 0 && !body.done()) {
                error_code bec;
                const auto n = body.feed(
                    conn.data(), conn.size(), [&parser](std::string_view d) { parser.feed(d); }, bec
                );
                conn.consume(n);
                try {
                    while (auto ev = parser.next()) {
                        if (ev->data.empty() || (ev->event != "message" && !ev->event.empty())) {
                            continue; // a priming event, or an event type MCP does not use
                        }
                        got_event = true;
                        deliver(ev->data);
                        if (x.cancelled || aborted) {
                            co_return;
                        }
                        if (request && !awaiting(*request)) {
                            answered = true;
                            clean = body.done();
                            co_return;
                        }
                    }
                } catch (const std::length_error&) {
                    why = "an event over the limit of " + std::to_string(server.max_message) +
                          " bytes";
                    co_return;
                }
                if (bec) {
                    why = "the event stream's framing broke";
                    co_return;
                }
            }
            if (body.done()) {
                clean = true;
                co_return;
            }
            const error_code ec = co_await conn.async_fill(answer_timeout);
            if (eof(ec)) {
                clean = body.on_eof();
                co_return;
            }
            if (ec) {
                why = "reading the event stream failed (" + ec.message() + ")";
                co_return;
            }
        }
    }

    // An event stream to its end, resumed with GET and Last-Event-ID while it breaks before
    // the answer of `request` (or, for the GET stream, while the transport lives).
    asio::awaitable<void> follow_stream(
        exchange& x, response_head head, std::optional<std::int64_t> request, std::string_view what
    ) {
        api::sse_parser parser;
        parser.set_max_event_size(server.max_message);
        int quiet_rounds = 0;
        for (;;) {
            bool answered = false;
            bool got_event = false;
            bool clean = false;
            std::string why;
            co_await read_events(x, head, parser, request, answered, got_event, clean, why);
            if (x.cancelled || aborted) {
                co_return;
            }
            if (answered) {
                if (clean && head.keep_alive) {
                    park(std::move(x.conn));
                }
                co_return;
            }
            if (clean && head.keep_alive) {
                park(std::move(x.conn));
            } else {
                x.conn.reset();
            }
            if (!why.empty() && why.starts_with("an event over")) {
                if (request) {
                    lost(*request, tm::errc::transport, lost_detail(what, why));
                } else {
                    noise("the server's stream: " + why);
                }
                co_return;
            }
            if (request && !awaiting(*request)) {
                co_return; // answered on another stream
            }
            quiet_rounds = got_event ? 0 : quiet_rounds + 1;
            const std::string& last_id = parser.last_event_id();
            if (closing || stateless || quiet_rounds > max_resumes ||
                (request && last_id.empty())) {
                if (request) {
                    lost(
                        *request,
                        tm::errc::transport,
                        lost_detail(
                            what,
                            "the server ended the response stream before the answer" +
                                (why.empty() ? std::string() : " (" + why + ")")
                        )
                    );
                }
                co_return;
            }
            x.timer.expires_after(detail::resume_delay(parser.reconnection_time(), quiet_rounds));
            error_code wec;
            co_await x.timer.async_wait(asio::redirect_error(asio::use_awaitable, wec));
            if (x.cancelled || aborted || (request && !awaiting(*request))) {
                co_return;
            }
            std::string open_why;
            const std::string resume_from = last_id;
            const auto build = [&](std::string& out) {
                detail::write_get(out, fields(resume_from));
            };
            const error_code ec = co_await open(x, build, head, answer_timeout, open_why);
            if (x.cancelled || aborted) {
                co_return;
            }
            const bool stream = !ec && head.status == 200 &&
                                detail::classify_body(head.status, head.headers, true) ==
                                    detail::body_type::event_stream;
            if (!stream) {
                std::string body;
                if (!ec && x.conn) {
                    co_await read_body(*x.conn, head, body, max_error_body);
                }
                x.conn.reset();
                if (!request && !ec && head.status == 405) {
                    get_stream_refused = true;
                    co_return;
                }
                const std::string reason =
                    ec ? open_why : detail::describe_status(head.status, body);
                if (request) {
                    lost(*request, tm::errc::transport, lost_detail(what, "resuming: " + reason));
                } else {
                    noise("the server's stream ended: " + reason);
                }
                co_return;
            }
        }
    }

    asio::awaitable<void> wait_initialized(exchange& x) {
        while (!initialized_done && !aborted && !x.cancelled) {
            error_code ec;
            co_await initialized_signal.async_wait(asio::redirect_error(asio::use_awaitable, ec));
        }
    }

    // The server forgot the session: initialize again (once for all the requests that saw it),
    // without the old session id.
    asio::awaitable<void> reinitialize(std::shared_ptr<http_state> self, int seen_generation) {
        if (session_generation != seen_generation) {
            co_return;
        }
        if (reinitializing) {
            while (reinitializing && !aborted) {
                error_code ec;
                co_await reinit_signal.async_wait(asio::redirect_error(asio::use_awaitable, ec));
            }
            co_return;
        }
        reinitializing = true;
        session_id.clear();
        exchange x(ex, live);
        const std::array<std::string_view, 2> handshake = {
            initialize_body, R"({"jsonrpc":"2.0","method":"notifications/initialized"})"};
        for (const std::string_view body : handshake) {
            response_head head;
            std::string why;
            const auto build = [&](std::string& out) {
                detail::write_post(out, fields(), body);
            };
            const error_code ec = co_await open(x, build, head, notification_timeout, why);
            if (ec || aborted) {
                break;
            }
            if (const auto id = api::find_header(head.headers, "mcp-session-id");
                id && detail::valid_session_id(*id) && session_id.empty()) {
                session_id = std::string(*id);
            }
            // The first event of an initialize stream is its answer: no need to read further.
            std::string answer;
            if (detail::classify_body(head.status, head.headers, true) ==
                detail::body_type::event_stream) {
                x.conn.reset();
            } else {
                const error_code bec =
                    co_await read_body(*x.conn, head, answer, server.max_message);
                if (!bec && head.keep_alive) {
                    park(std::move(x.conn));
                }
                x.conn.reset();
            }
            if (head.status >= 300) {
                noise(
                    "initializing the session again: " +
                    detail::describe_status(head.status, answer)
                );
                break;
            }
        }
        ++session_generation;
        reinitializing = false;
        reinit_signal.cancel();
        if (!get_stream_running && !get_stream_refused && !closing && !aborted) {
            asio::co_spawn(ex, get_stream(self), asio::detached);
        }
    }

    // One message the session sent.
    static asio::awaitable<void>
    post(std::shared_ptr<http_state> self, std::string body, detail::outgoing out) {
        exchange x(self->ex, self->live);
        if (out.type == detail::outgoing::kind::request) {
            x.carry(self->by_request, out.id);
        }
        try {
            co_await self->post_exchange(self, x, body, out);
        } catch (const std::exception& e) {
            // A fault here must end the request, never leave it to its timeout.
            if (!self->aborted) {
                self->failed(
                    out, tm::errc::transport, std::string("the exchange failed: ") + e.what()
                );
            }
        }
        self->listings.erase(out.id);
        if (out.method == "notifications/initialized") {
            self->on_initialized_posted(self
            ); // whatever its answer: requests must not wait forever
        }
    }

    asio::awaitable<void> post_exchange(
        std::shared_ptr<http_state> self,
        exchange& x,
        const std::string& body,
        const detail::outgoing& out
    ) {
        const bool is_request = out.type == detail::outgoing::kind::request;
        const bool is_initialize = is_request && out.method == "initialize";
        const bool is_discover = is_request && out.method == "server/discover";
        if (is_request && !is_initialize && !is_discover) {
            co_await wait_initialized(x);
        }
        int authorizations = 0;
        for (int attempt = 0;; ++attempt) {
            if (x.cancelled || aborted) {
                co_return;
            }
            const int generation = session_generation;
            const bool sent_session = !session_id.empty();
            response_head head;
            std::string why;
            std::vector<std::pair<std::string, std::string>> extra;
            std::string sent_token;
            const auto build = [&](std::string& o) {
                const auto f = fields_for(out, extra);
                sent_token = std::string(f.bearer);
                detail::write_post(o, f, body);
            };
            const auto head_timeout = is_request ? std::chrono::milliseconds(answer_timeout)
                                                 : std::chrono::milliseconds(notification_timeout);
            const error_code ec = co_await open(x, build, head, head_timeout, why);
            if (x.cancelled || aborted) {
                co_return;
            }
            if (ec) {
                failed(out, tm::errc::transport, why);
                co_return;
            }
            const int status = head.status;
            if (is_initialize && status >= 200 && status < 300) {
                if (const auto id = api::find_header(head.headers, "mcp-session-id")) {
                    if (detail::valid_session_id(*id)) {
                        session_id = std::string(*id);
                    } else {
                        noise("the server's Mcp-Session-Id is not visible ASCII: ignored");
                    }
                }
            }
            if (status >= 200 && status < 300) {
                const auto type = detail::classify_body(
                    status,
                    head.headers,
                    head.framing != http_body_decoder::framing::length || head.content_length > 0
                );
                if (type == detail::body_type::event_stream) {
                    const std::optional<std::int64_t> request =
                        is_request ? std::optional<std::int64_t>(out.id) : std::nullopt;
                    co_await follow_stream(x, head, request, out.method);
                } else {
                    std::string answer;
                    const error_code bec = co_await read_body(
                        *x.conn,
                        head,
                        answer,
                        type == detail::body_type::json ? server.max_message : max_error_body
                    );
                    if (x.cancelled || aborted) {
                        co_return;
                    }
                    if (bec) {
                        failed(
                            out,
                            tm::errc::transport,
                            bec == wafer::errc::response_too_large
                                ? "an answer over the limit of " +
                                      std::to_string(server.max_message) + " bytes"
                                : "reading the answer failed (" + bec.message() + ")"
                        );
                        co_return;
                    }
                    if (head.keep_alive) {
                        park(std::move(x.conn));
                    }
                    x.conn.reset();
                    if (type == detail::body_type::json && !answer.empty()) {
                        deliver(answer);
                        if (is_request && awaiting(out.id)) {
                            lost(
                                out.id,
                                tm::errc::protocol,
                                lost_detail(
                                    out.method,
                                    "the server's JSON answer does not answer the request: " +
                                        api::escaped_excerpt(answer, 120)
                                )
                            );
                        }
                    } else if (is_request) {
                        lost(
                            out.id,
                            tm::errc::protocol,
                            lost_detail(
                                out.method,
                                "the server answered HTTP " + std::to_string(status) +
                                    (type == detail::body_type::none
                                         ? " without a body"
                                         : " with neither JSON nor an event stream")
                            )
                        );
                    }
                }
                co_return;
            }
            std::string answer;
            co_await read_body(*x.conn, head, answer, max_error_body);
            x.conn.reset();
            if (x.cancelled || aborted) {
                co_return;
            }
            if (!is_initialize && attempt == 0 &&
                detail::session_gone(status, answer, sent_session)) {
                co_await reinitialize(self, generation);
                continue;
            }
            if ((status == 401 || status == 403) && auth) {
                std::optional<std::string> challenge;
                if (const auto c = api::find_header(head.headers, "www-authenticate")) {
                    challenge = std::string(*c);
                }
                const bool strict = stateless || !out.protocol_version.empty();
                std::string auth_why;
                const bool again = co_await auth->async_on_refusal(
                    status, std::move(challenge), sent_token, authorizations, strict, auth_why
                );
                if (x.cancelled || aborted) {
                    co_return;
                }
                if (again) {
                    continue;
                }
                failed(out, tm::errc::unauthorized, auth_why);
                co_return;
            }
            if (status == 401 || status == 403) {
                failed(
                    out,
                    tm::errc::unauthorized,
                    "the server answered HTTP " + std::to_string(status) +
                        " (it requires authorization: configure OAuth, or give the server's "
                        "token in its headers)"
                );
                co_return;
            }
            if (is_request && is_error_for(answer, out.id)) {
                deliver(answer);
                co_return;
            }
            if (status >= 300 && status < 400) {
                // Only the origin: a Location's path and query may carry tokens.
                std::string to = "elsewhere";
                if (const auto loc = api::find_header(head.headers, "location")) {
                    std::string ignored;
                    if (const auto where = detail::parse_endpoint(*loc, ignored)) {
                        to = where->origin;
                    } else if (loc->starts_with("/")) {
                        to = url.origin;
                    }
                }
                failed(
                    out,
                    tm::errc::transport,
                    "the server redirected (HTTP " + std::to_string(status) + ") to " +
                        api::escaped_excerpt(to, 200) + "; redirects are not followed"
                );
                co_return;
            }
            if (is_request && (status == 400 || status == 404 || status == 405)) {
                // A 2025 server's answer to a 2026 request (server-everything: 400 with an
                // error for id null), or a wrong endpoint: the session tells which.
                refused(out.id, lost_detail(out.method, detail::describe_status(status, answer)));
                co_return;
            }
            failed(out, tm::errc::transport, detail::describe_status(status, answer));
            co_return;
        }
    }

    void on_initialized_posted(const std::shared_ptr<http_state>& self) {
        if (initialized_done) {
            return;
        }
        initialized_done = true;
        initialized_signal.cancel();
        if (!get_stream_running && !closing && !aborted) {
            asio::co_spawn(ex, get_stream(self), asio::detached);
        }
    }

    // The server's own stream (GET): notifications and requests outside any request of ours.
    static asio::awaitable<void> get_stream(std::shared_ptr<http_state> self) {
        self->get_stream_running = true;
        exchange x(self->ex, self->live);
        response_head head;
        std::string why;
        const auto build = [&](std::string& out) {
            detail::write_get(out, self->fields());
        };
        const error_code ec = co_await self->open(x, build, head, answer_timeout, why);
        if (!ec && !x.cancelled && !self->aborted) {
            if (head.status == 200 && detail::classify_body(head.status, head.headers, true) ==
                                          detail::body_type::event_stream) {
                co_await self->follow_stream(x, head, std::nullopt, "the server's stream");
            } else {
                std::string body;
                co_await read_body(*x.conn, head, body, max_error_body);
                if (head.status == 405) {
                    self->get_stream_refused = true; // the server has no stream of its own
                } else if (!self->closing && !self->aborted) {
                    self->noise(
                        "the server's stream (GET): " + detail::describe_status(head.status, body)
                    );
                }
            }
        }
        x.conn.reset();
        self->get_stream_running = false;
    }

    asio::awaitable<void> close(std::chrono::milliseconds grace) {
        closing = true;
        // Requests are over (the session ended them); streams stop now.
        for (exchange* x : live) {
            x->stop();
        }
        if (!session_id.empty() && !aborted) {
            // Ends the session on the server; bounded by the connect timeout and `grace`.
            exchange x(ex, live);
            response_head head;
            std::string why;
            const auto build = [&](std::string& out) {
                detail::write_delete(out, fields());
            };
            const error_code ec = co_await open(x, build, head, grace, why);
            if (!ec && x.conn) {
                std::string body;
                co_await read_body(*x.conn, head, body, max_error_body);
            }
            x.conn.reset();
        }
        abort();
    }

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
