// api::client: request building, the retry loop, and the non-streaming operations.
#include <wafer/api/client.hpp>
#include <wafer/api/error_body.hpp>
#include <wafer/api/retry_policy.hpp>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <nlohmann/json.hpp>

#include <cstdio>
#include <random>

#include "api/detail/admission_gate.hpp"
#include "api/detail/http_connection.hpp"
#include "api/detail/http_pool.hpp"
#include "api/detail/http_stream_state.hpp"
#include "api/detail/proxy.hpp"
#include "api/detail/tls_context.hpp"

// GCC 12 reports a false -Wmismatched-new-delete on asio's coroutine frame allocator for some
// coroutines (GCC bug 109224); the frame's operator new/delete do match.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
#endif

namespace wafer::api {

namespace asio = boost::asio;
using boost::system::error_code;

namespace {

constexpr std::size_t max_error_body = 1024 * 1024;

asio::awaitable<void> default_sleep(std::chrono::milliseconds d) {
    asio::steady_timer t(co_await asio::this_coro::executor, d);
    auto [ec] = co_await t.async_wait(asio::as_tuple(asio::use_awaitable));
    (void)ec; // cancellation is checked by the caller
}

asio::awaitable<bool> cancelled_now() {
    auto cs = co_await asio::this_coro::cancellation_state;
    co_return cs.cancelled() != asio::cancellation_type::none;
}

// A request as the retry loop sees it.
struct request_spec {
    std::string method;
    std::string path; // under the base URL's path, e.g. "/chat/completions"
    std::string body; // empty for GET
    bool stream = false;
    std::chrono::milliseconds connect_timeout{};
    std::chrono::milliseconds read_timeout{};
    int max_retries = 0;
    // Admission control: whose request it is, and the tokens it reserves (prompt + completion).
    bool admit = false; // chat requests only; model listings and warming never queue
    request_options opts;
    std::int64_t admission_tokens = 0;
    // W3C trace context of the request's span (request_options::traceparent); empty: none.
    std::string traceparent;
};

std::string too_large_text(std::string_view what, std::size_t cap) {
    return std::string(what) + " exceeds max_response_bytes (" + std::to_string(cap) + " bytes)";
}

// A Content-Length over the cap fails before any body byte is read.
bool declared_too_large(const detail::response_head& head, std::size_t cap, diagnostics& diag) {
    if (head.framing != detail::http_body_decoder::framing::length || head.content_length <= cap) {
        return false;
    }
    diag.detail = too_large_text(
        "the response body (Content-Length " + std::to_string(head.content_length) + ")", cap
    );
    return true;
}

} // namespace

struct client::impl {
    asio::any_io_executor ex;
    client_config cfg;
    endpoint ep;
    std::string pool_key;
    std::optional<detail::proxy_target> proxy;
    std::shared_ptr<asio::ssl::context> tls;
    std::shared_ptr<detail::http_pool> pool;
    std::string fixed_headers;
    // Null when admission control is off for this endpoint.
    std::shared_ptr<detail::admission_gate> gate;

    impl(asio::any_io_executor e, client_config c) : ex(std::move(e)), cfg(std::move(c)) {
        error_code ec;
        ep = parse_base_url(cfg.base_url, ec);
        if (ec) {
            diagnostics d;
            d.detail = "malformed base_url";
            throw wafer::error(ec, d);
        }
        pool_key =
            std::string(ep.tls ? "https://" : "http://") + ep.host + ":" + std::to_string(ep.port);
        if (cfg.proxy && !cfg.proxy->url.empty()) {
            const bool applies =
                cfg.proxy->from_environment ? ep.tls && !is_loopback_host(ep.host) : true;
            if (applies && !bypasses_proxy(ep.host, ep.port, cfg.no_proxy)) {
                proxy = detail::parse_proxy_url(cfg.proxy->url);
                if (!proxy) {
                    diagnostics d;
                    // The URL may carry a password: it is never quoted.
                    d.detail = detail::is_tls_proxy_url(cfg.proxy->url)
                                   ? "an https:// proxy (TLS to the proxy) is not supported: use "
                                     "http://host:port; the tunnel through it to an https "
                                     "endpoint is still TLS"
                                   : "malformed proxy URL";
                    throw wafer::error(make_error_code(errc::invalid_request), d);
                }
            }
        }
        // Loading the system CA store costs tens of milliseconds and a few hundred KB; a plain
        // http endpoint never needs it.
        if (ep.tls) {
            tls = detail::make_tls_context(cfg.verify_tls, cfg.ca_file, ec);
        }
        if (ec) {
            diagnostics d;
            d.detail = "TLS setup: " + ec.message();
            throw wafer::error(make_error_code(errc::tls_failed), d);
        }
        pool = std::make_shared<detail::http_pool>(
            cfg.max_idle_connections, cfg.idle_connection_timeout
        );
        if (!cfg.sleep) {
            cfg.sleep = default_sleep;
        }
        if (!cfg.random) {
            // Shared, not captured by `this`: config() copies must stay valid after the client.
            auto rng = std::make_shared<std::mt19937_64>(std::random_device{}());
            cfg.random = [rng] {
                return std::uniform_real_distribution<double>(0.0, 1.0)(*rng);
            };
        }
        if (!cfg.now) {
            cfg.now = [] {
                return std::chrono::system_clock::now();
            };
        }
        if (cfg.read_buffer_bytes < 4096) {
            cfg.read_buffer_bytes = 4096;
        }
        fixed_headers = build_fixed_headers();
        if (admission_enabled_for(cfg.admission, ep.host)) {
            gate = std::make_shared<detail::admission_gate>(ex, cfg.admission);
        }
    }

    // The request head lines that never change for this client (everything but the request
    // line, Accept, the retry count and the body's headers), built once.
    std::string build_fixed_headers() const {
        std::string r = "Host: ";
        const bool v6 = ep.host.find(':') != std::string::npos;
        r += v6 ? "[" + ep.host + "]" : ep.host;
        if (ep.port != (ep.tls ? 443 : 80)) {
            r += ':';
            r += std::to_string(ep.port);
        }
        r += "\r\nUser-Agent: wafer/" WAFER_VERSION_STRING "\r\n";
        if (!cfg.api_key.empty()) {
            r += "Authorization: Bearer ";
            r += cfg.api_key;
            r += "\r\n";
        }
        for (const auto& [name, value] : cfg.headers) {
            r += name;
            r += ": ";
            r += value;
            r += "\r\n";
        }
        return r;
    }

    // Serialises the request into `r` (the connection's reused buffer): head and body go out in
    // one write.
    void build_request(const request_spec& spec, int retries, std::string& r) const {
        char num[24];
        r.clear();
        r.reserve(
            fixed_headers.size() + spec.path.size() + ep.path_prefix.size() + ep.query.size() +
            192 + spec.body.size()
        );
        r += spec.method;
        r += ' ';
        r += ep.path_prefix;
        r += spec.path;
        if (!ep.query.empty()) {
            r += '?'; // the base URL's query (an API version, a deployment) goes with every request
            r += ep.query;
        }
        r += " HTTP/1.1\r\n";
        r += fixed_headers;
        r += spec.stream ? "Accept: text/event-stream\r\n" : "Accept: application/json\r\n";
        if (!spec.traceparent.empty()) {
            r += "traceparent: ";
            r += spec.traceparent;
            r += "\r\n";
        }
        if (cfg.send_retry_count) {
            r += "x-stainless-retry-count: ";
            r.append(num, static_cast<std::size_t>(std::snprintf(num, sizeof num, "%d", retries)));
            r += "\r\n";
        }
        if (spec.method != "GET") {
            r += "Content-Type: application/json\r\nContent-Length: ";
            r.append(
                num,
                static_cast<std::size_t>(std::snprintf(num, sizeof num, "%zu", spec.body.size()))
            );
            r += "\r\n";
        }
        r += "\r\n";
        r += spec.body;
    }

    // Reads a whole body into `out` (cap `cap`).
    static asio::awaitable<error_code> read_body(
        detail::http_connection& conn,
        const detail::response_head& head,
        std::string& out,
        std::size_t cap,
        std::chrono::milliseconds timeout
    ) {
        detail::http_body_decoder body;
        body.reset(head.framing, head.content_length);
        for (;;) {
            if (conn.size() > 0 && !body.done()) {
                error_code bec;
                auto n = body.feed(
                    conn.data(), conn.size(), [&out](std::string_view d) { out += d; }, bec
                );
                conn.consume(n);
                if (bec) {
                    co_return bec;
                }
                if (out.size() > cap) {
                    co_return make_error_code(errc::response_too_large);
                }
            }
            if (body.done()) {
                co_return error_code{};
            }
            auto ec = co_await conn.async_fill(timeout);
            if (ec == asio::error::eof || ec == asio::ssl::error::stream_truncated) {
                if (body.on_eof()) {
                    co_return error_code{};
                }
                co_return make_error_code(errc::connection_failed);
            }
            if (ec) {
                co_return detail::map_io_error(ec, false);
            }
        }
    }

    // One attempt up to the response head. On success `conn` holds the connection.
    static asio::awaitable<error_code> attempt(
        std::shared_ptr<impl> self,
        const request_spec& spec,
        int retries,
        std::unique_ptr<detail::http_connection>& conn,
        detail::response_head& head,
        diagnostics& diag
    ) {
        conn = self->pool->take(self->pool_key);
        for (int tries = 0;; ++tries) {
            if (!conn) {
                conn = std::make_unique<detail::http_connection>(
                    self->ex, self->tls, self->ep.tls, self->cfg.read_buffer_bytes
                );
                conn->key = self->pool_key;
                detail::connect_params p{
                    self->ep.tls,
                    self->ep.host,
                    self->ep.port,
                    self->cfg.verify_tls,
                    self->proxy,
                    spec.connect_timeout};
                std::string why;
                auto cec = co_await conn->async_connect(std::move(p), why);
                if (cec) {
                    diag.refused = conn->refused;
                    conn.reset();
                    diag.detail = std::move(why);
                    co_return cec;
                }
                self->pool->note_connect();
            }
            bool got_bytes = false;
            self->build_request(spec, retries, conn->request_buffer());
            auto ec = co_await conn->async_write(spec.read_timeout);
            const char* phase = "write request";
            if (!ec) {
                phase = "read response head";
                ec = co_await conn->async_read_head(head, spec.read_timeout, got_bytes);
            }
            if (!ec) {
                co_return error_code{};
            }
            const bool stale =
                conn->reused && !got_bytes && tries == 0 && ec != boost::beast::error::timeout &&
                ec != asio::error::operation_aborted && ec.category() != error_category();
            conn.reset(); // an errored connection is never reused
            if (stale) {
                continue; // the server closed an idle keep-alive connection: retry on a fresh one
            }
            if (ec.category() != error_category()) {
                diag.detail = std::string(phase) + ": " + ec.message();
                co_return detail::map_io_error(ec, false);
            }
            diag.detail = phase;
            co_return ec;
        }
    }

    // The retry loop. On success (2xx head) returns with `conn` and `head` set.
    static asio::awaitable<error_code> exchange(
        std::shared_ptr<impl> self,
        request_spec spec,
        std::unique_ptr<detail::http_connection>& conn,
        detail::response_head& head,
        diagnostics& diag,
        detail::admission_ticket& ticket
    ) {
        co_await asio::this_coro::throw_if_cancelled(false);
        std::chrono::microseconds queued{0};
        for (int retries = 0;; ++retries) {
            diag = diagnostics{};
            diag.attempts = retries + 1;
            head = detail::response_head{};
            if (self->gate && spec.admit) {
                std::chrono::microseconds waited{0};
                auto aec = co_await self->gate->async_admit(
                    spec.opts, spec.admission_tokens, ticket, waited, diag
                );
                queued += waited;
                diag.queue_wait = queued;
                if (aec) {
                    diag.attempts = retries;
                    co_return aec;
                }
            }
            auto ec = co_await attempt(self, spec, retries, conn, head, diag);
            if (self->gate && head.status != 0) {
                ticket.acknowledge();
                self->gate->observe(head.headers);
            }
            if (ec == errc::cancelled || co_await cancelled_now()) {
                conn.reset();
                diag.detail = "cancelled";
                co_return make_error_code(errc::cancelled);
            }
            attempt_outcome outcome;
            if (ec) {
                ticket.settle_tokens(std::nullopt); // it may have been processed
                if (ec == errc::invalid_request || ec == errc::response_too_large || diag.refused) {
                    co_return ec;
                }
                outcome.transport_error = true;
            } else if (head.status >= 200 && head.status < 300) {
                co_return error_code{};
            } else {
                std::string body;
                auto bec = co_await read_body(
                    *conn,
                    head,
                    body,
                    std::min(self->cfg.max_response_bytes, max_error_body),
                    spec.read_timeout
                );
                if (!bec && head.keep_alive &&
                    head.framing != detail::http_body_decoder::framing::until_eof) {
                    self->pool->put(std::move(conn));
                }
                conn.reset();
                if (co_await cancelled_now()) {
                    co_return make_error_code(errc::cancelled);
                }
                ec = make_error_code(
                    read_error_response(head.status, head.headers, body, diag, self->cfg.now())
                );
                diag.queue_wait = queued;
                // An error reply used no tokens; a 429 says the budget is spent until its reset.
                ticket.settle_tokens(0);
                if (self->gate && head.status == 429) {
                    self->gate->rate_limited(diag.code, diag.message, diag.retry_after);
                }
                outcome.status = head.status;
                outcome.should_retry = find_header(head.headers, "x-should-retry");
                outcome.retry_after_ms = find_header(head.headers, "retry-after-ms");
                outcome.retry_after = find_header(head.headers, "retry-after");
            }
            retry_config rc = self->cfg.retry;
            rc.max_retries = spec.max_retries;
            const auto decision =
                decide_retry(rc, retries, outcome, self->cfg.random(), self->cfg.now());
            redact(diag, self->cfg.api_key);
            if (!decision.retry) {
                co_return ec;
            }
            // Under admission control a 429's retry waits in the queue for the reset instead.
            if (!(self->gate && outcome.status == 429)) {
                co_await self->cfg.sleep(decision.delay);
            }
            if (co_await cancelled_now()) {
                diag.detail = "cancelled";
                co_return make_error_code(errc::cancelled);
            }
        }
    }

    request_spec spec(std::string method, std::string path, std::string body, bool stream) const {
        return request_spec{
            std::move(method),
            std::move(path),
            std::move(body),
            stream,
            cfg.timeouts.connect,
            cfg.timeouts.read,
            cfg.retry.max_retries};
    }

    // What a chat request reserves: the prompt estimate plus its completion limit.
    std::int64_t admission_tokens(
        const chat_request& req, const request_options& opts, const std::string& body
    ) const {
        const std::int64_t prompt = opts.prompt_tokens && *opts.prompt_tokens >= 0
                                        ? *opts.prompt_tokens
                                        : static_cast<std::int64_t>(body.size() / 4);
        const std::int64_t completion = req.max_completion_tokens && *req.max_completion_tokens >= 0
                                            ? *req.max_completion_tokens
                                            : cfg.admission.unset_completion_reserve;
        return prompt + completion;
    }

    request_spec
    chat_spec(const chat_request& req, const request_options& opts, bool stream) const {
        request_spec s = spec("POST", "/chat/completions", serialize(req), stream);
        s.traceparent = opts.traceparent;
        if (gate) {
            s.admit = true;
            s.opts = opts;
            s.admission_tokens = admission_tokens(req, opts, s.body);
        }
        return s;
    }

    // Runs a request and reads its whole 2xx body.
    static asio::awaitable<error_code> fetch(
        std::shared_ptr<impl> self,
        request_spec s,
        std::string& body,
        diagnostics& diag,
        detail::admission_ticket& ticket
    ) {
        co_await asio::this_coro::throw_if_cancelled(false);
        std::unique_ptr<detail::http_connection> conn;
        detail::response_head head;
        const auto read_timeout = s.read_timeout;
        auto ec = co_await exchange(self, std::move(s), conn, head, diag, ticket);
        if (ec) {
            co_return ec;
        }
        const std::size_t cap = self->cfg.max_response_bytes;
        if (declared_too_large(head, cap, diag)) {
            conn.reset();
            co_return make_error_code(errc::response_too_large);
        }
        ec = co_await read_body(*conn, head, body, cap, read_timeout);
        if (ec) {
            conn.reset();
            if (co_await cancelled_now()) {
                co_return make_error_code(errc::cancelled);
            }
            diag.detail = ec == errc::response_too_large ? too_large_text("the response body", cap)
                                                         : "read response body";
            co_return ec.category() == error_category() ? ec
                                                        : make_error_code(errc::connection_failed);
        }
        if (head.keep_alive && head.framing != detail::http_body_decoder::framing::until_eof) {
            conn->reused = false;
            self->pool->put(std::move(conn));
        }
        diag.http_status = head.status;
        read_error_headers(head.headers, diag, self->cfg.now()); // request id, rate limits
        co_return error_code{};
    }

    static asio::awaitable<error_code> create(
        std::shared_ptr<impl> self,
        chat_request req,
        request_options opts,
        chat_response& out,
        diagnostics& diag
    ) {
        req.stream.reset();
        req.stream_options.reset();
        std::string body;
        detail::admission_ticket ticket;
        request_spec s = self->chat_spec(req, opts, false);
        auto ec = co_await fetch(self, std::move(s), body, diag, ticket);
        if (ec) {
            co_return ec;
        }
        auto j = nlohmann::json::parse(body, nullptr, false);
        if (j.is_discarded() || !j.is_object()) {
            diag.detail = "response body is not a JSON object";
            co_return make_error_code(errc::invalid_response);
        }
        try {
            out = j.get<chat_response>();
            ticket.settle_usage(out.usage);
        } catch (const std::exception& e) {
            diag.detail = std::string("unexpected response shape: ") + e.what();
            redact(diag, self->cfg.api_key);
            co_return make_error_code(errc::invalid_response);
        }
        co_return error_code{};
    }

    // `report`: copy the stream's diagnostics to `diag` on success too (the throwing form drops
    // them, and the x-ratelimit-* fields cost a dozen allocations per copy).
    static asio::awaitable<error_code> stream(
        std::shared_ptr<impl> self,
        chat_request req,
        request_options opts,
        chat_stream& out,
        diagnostics& diag,
        bool report = true
    ) {
        req.stream = true;
        if (!req.stream_options) {
            req.stream_options = api::stream_options{};
        }
        req.stream_options->include_usage = true;
        auto st = std::make_unique<detail::http_stream_state>();
        request_spec s = self->chat_spec(req, opts, true);
        auto ec = co_await exchange(self, std::move(s), st->conn, st->head, diag, st->ticket);
        if (ec) {
            co_return ec;
        }
        const std::size_t cap = self->cfg.max_response_bytes;
        if (declared_too_large(st->head, cap, diag)) {
            co_return make_error_code(errc::response_too_large);
        }
        if (auto type = find_header(st->head.headers, "content-type");
            type && !is_event_stream(*type)) {
            // A 2xx that is not a stream (an HTML page from a proxy, a JSON error object):
            // say what came instead of "the stream ended early".
            std::string body;
            const std::string content_type(*type);
            auto bec = co_await read_body(
                *st->conn, st->head, body, std::min(cap, max_error_body), self->cfg.timeouts.read
            );
            (void)bec; // what arrived is enough to say what it was
            if (co_await cancelled_now()) {
                co_return make_error_code(errc::cancelled);
            }
            diag.http_status = st->head.status;
            read_error_headers(st->head.headers, diag, self->cfg.now());
            const errc e = read_unexpected_stream_body(content_type, body, diag);
            redact(diag, self->cfg.api_key);
            co_return make_error_code(e);
        }
        st->pool = self->pool;
        st->body.reset(st->head.framing, st->head.content_length);
        st->diag.http_status = st->head.status;
        st->diag.attempts = diag.attempts;
        st->diag.queue_wait = diag.queue_wait;
        read_error_headers(st->head.headers, st->diag, self->cfg.now());
        st->secret = self->cfg.api_key;
        st->read_timeout = self->cfg.timeouts.read;
        st->max_bytes = self->cfg.max_response_bytes;
        if (report) {
            diag = st->diag;
        }
        out = chat_stream(std::move(st));
        co_return error_code{};
    }

    // A positive whole number of tokens under one of the names servers use, else nothing.
    static std::optional<std::int64_t> reported_context_window(const nlohmann::json& m) {
        const auto whole = [](const nlohmann::json* v) -> std::optional<std::int64_t> {
            if (v && v->is_number_integer() && v->get<std::int64_t>() > 0) {
                return v->get<std::int64_t>();
            }
            return std::nullopt;
        };
        const auto member = [](const nlohmann::json& o, const char* k) -> const nlohmann::json* {
            auto it = o.find(k);
            return it == o.end() ? nullptr : &*it;
        };
        if (const auto* limits = member(m, "limits"); limits && limits->is_object()) {
            if (auto w = whole(member(*limits, "max_context_length"))) {
                return w;
            }
        }
        for (const char* k : {"max_model_len", "context_length", "context_window"}) {
            if (auto w = whole(member(m, k))) {
                return w;
            }
        }
        return std::nullopt;
    }

    static asio::awaitable<error_code>
    models(std::shared_ptr<impl> self, std::vector<model_info>& out, diagnostics& diag) {
        std::string body;
        detail::admission_ticket none; // listing models costs no tokens: never queued
        auto ec = co_await fetch(self, self->spec("GET", "/models", {}, false), body, diag, none);
        if (ec) {
            co_return ec;
        }
        auto j = nlohmann::json::parse(body, nullptr, false);
        const nlohmann::json* data = nullptr;
        if (!j.is_discarded() && j.is_object()) {
            if (auto it = j.find("data"); it != j.end() && it->is_array()) {
                data = &*it;
            }
        }
        if (!data) {
            diag.detail = "models response has no data array";
            co_return make_error_code(errc::invalid_response);
        }
        out.clear();
        for (const auto& m : *data) {
            if (!m.is_object()) {
                continue;
            }
            model_info info;
            info.id = m.value("id", std::string());
            info.object = m.value("object", std::string());
            if (auto c = m.find("created"); c != m.end() && c->is_number_integer()) {
                info.created = c->get<std::int64_t>();
            }
            info.owned_by = m.value("owned_by", std::string());
            info.context_window = reported_context_window(m);
            out.push_back(std::move(info));
        }
        co_return error_code{};
    }

    static asio::awaitable<void> warm(std::shared_ptr<impl> self) {
        request_spec s = self->spec("GET", "/tcp_warming", {}, false);
        s.connect_timeout = std::min(s.connect_timeout, std::chrono::milliseconds(1000));
        s.read_timeout = std::min(s.read_timeout, std::chrono::milliseconds(1000));
        s.max_retries = 0;
        std::string body;
        diagnostics diag;
        detail::admission_ticket none;
        co_await fetch(self, std::move(s), body, diag, none); // errors are swallowed by design
    }
};

client::client(asio::any_io_executor ex, client_config cfg)
    : impl_(std::make_shared<impl>(std::move(ex), std::move(cfg))) {}
client::~client() = default;
client::client(client&&) noexcept = default;
client& client::operator=(client&&) noexcept = default;

asio::any_io_executor client::get_executor() const noexcept {
    return impl_->ex;
}
const client_config& client::config() const noexcept {
    return impl_->cfg;
}

asio::awaitable<error_code>
client::async_create(chat_request req, chat_response& out, diagnostics& diag) {
    return impl::create(impl_, std::move(req), request_options{}, out, diag);
}

asio::awaitable<error_code> client::async_create(
    chat_request req, const request_options& opts, chat_response& out, diagnostics& diag
) {
    return impl::create(impl_, std::move(req), opts, out, diag);
}

// Not a default argument: GCC 12 mishandles a defaulted class parameter of a coroutine.
asio::awaitable<chat_response> client::async_create(chat_request req) {
    return async_create(std::move(req), request_options());
}

asio::awaitable<chat_response> client::async_create(chat_request req, request_options opts) {
    chat_response out;
    diagnostics diag;
    auto ec = co_await impl::create(impl_, std::move(req), std::move(opts), out, diag);
    throw_on_error(ec, diag);
    co_return out;
}

asio::awaitable<error_code>
client::async_stream(chat_request req, chat_stream& out, diagnostics& diag) {
    return impl::stream(impl_, std::move(req), request_options{}, out, diag);
}

asio::awaitable<error_code> client::async_stream(
    chat_request req, const request_options& opts, chat_stream& out, diagnostics& diag
) {
    return impl::stream(impl_, std::move(req), opts, out, diag);
}

asio::awaitable<chat_stream> client::async_stream(chat_request req) {
    return async_stream(std::move(req), request_options());
}

asio::awaitable<chat_stream> client::async_stream(chat_request req, request_options opts) {
    chat_stream out;
    diagnostics diag;
    auto ec = co_await impl::stream(impl_, std::move(req), std::move(opts), out, diag, false);
    throw_on_error(ec, diag);
    co_return out;
}

bool client::admission_enabled() const noexcept {
    return impl_->gate != nullptr;
}

asio::awaitable<error_code> client::async_models(std::vector<model_info>& out, diagnostics& diag) {
    return impl::models(impl_, out, diag);
}

asio::awaitable<std::vector<model_info>> client::async_models() {
    std::vector<model_info> out;
    diagnostics diag;
    auto ec = co_await impl::models(impl_, out, diag);
    throw_on_error(ec, diag);
    co_return out;
}

void client::warm_up() {
    asio::co_spawn(impl_->ex, impl::warm(impl_), asio::detached);
}

std::size_t client::idle_connections() const noexcept {
    return impl_->pool->idle_count();
}
std::size_t client::connections_opened() const noexcept {
    return impl_->pool->opened();
}

} // namespace wafer::api
