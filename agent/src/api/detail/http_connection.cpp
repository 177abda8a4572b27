#include "api/detail/http_connection.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/connect.hpp>
#include <boost/asio/deferred.hpp>
#include <boost/asio/experimental/parallel_group.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/error.hpp>
#include <boost/beast/http/empty_body.hpp>
#include <boost/beast/http/parser.hpp>

#include <algorithm>
#include <cstring>
#include <new>

#include "detail/ascii.hpp"

namespace wafer::detail {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using boost::system::error_code;
using tcp = asio::ip::tcp;

namespace {

constexpr auto use_nothrow = asio::as_tuple(asio::use_awaitable);

asio::awaitable<bool> cancelled_now() {
    auto cs = co_await asio::this_coro::cancellation_state;
    co_return cs.cancelled() != asio::cancellation_type::none;
}

} // namespace

error_code map_io_error(const error_code& ec, bool during_tls) noexcept {
    if (ec == beast::error::timeout) {
        return make_error_code(errc::timeout);
    }
    if (ec == asio::error::operation_aborted) {
        return make_error_code(errc::cancelled);
    }
    if (during_tls && (ec.category() == asio::error::get_ssl_category() ||
                       ec == asio::ssl::error::stream_truncated)) {
        return make_error_code(errc::tls_failed);
    }
    return make_error_code(errc::connection_failed);
}

// The connection's timeout keeper, shared with its timer's handler so that a handler already
// queued when the connection goes away finds `socket` null instead of a dangling connection.
struct http_connection::watchdog {
    using clock = std::chrono::steady_clock;

    explicit watchdog(asio::any_io_executor ex) : timer(std::move(ex)) {}

    asio::steady_timer timer;
    tcp::socket* socket = nullptr;                         // null once the connection is gone
    clock::time_point deadline = clock::time_point::max(); // max: no operation pending
    std::uint64_t generation = 0; // tells a re-armed wait from a superseded one
    bool waiting = false;         // a wait is pending on `timer`
    bool expired = false;         // the pending operation was cancelled for its deadline

    static void start(const std::shared_ptr<watchdog>& self) {
        self->waiting = true;
        const std::uint64_t gen = ++self->generation;
        self->timer.expires_at(self->deadline);
        self->timer.async_wait([self, gen](const error_code&) { self->on_timer(self, gen); });
    }

    void on_timer(const std::shared_ptr<watchdog>& self, std::uint64_t gen) {
        if (gen != generation) {
            return; // superseded by an earlier deadline: that wait is the live one
        }
        waiting = false;
        if (!socket || deadline == clock::time_point::max()) {
            return; // connection gone, or idle: the next operation starts a new wait
        }
        if (clock::now() >= deadline) {
            expired = true;
            deadline = clock::time_point::max();
            error_code ignored;
            socket->cancel(ignored); // the pending operation completes with operation_aborted
            return;
        }
        start(self); // operations since the last arm moved the deadline: wait for the new one
    }
};

http_connection::http_connection(
    asio::any_io_executor ex,
    std::shared_ptr<asio::ssl::context> ctx,
    bool tls,
    std::size_t max_buffer
)
    : ctx_(tls ? std::move(ctx) : nullptr),
      stream_(
          tls ? std::variant<tcp::socket, tls_stream>(std::in_place_type<tls_stream>, ex, *ctx_)
              : std::variant<tcp::socket, tls_stream>(std::in_place_type<tcp::socket>, ex)
      ),
      watch_(std::make_shared<watchdog>(std::move(ex))),
      max_(std::max(max_buffer, initial_buffer)) {
    watch_->socket = &lowest();
}

http_connection::~http_connection() {
    close();
    watch_->socket = nullptr;
    watch_->deadline = watchdog::clock::time_point::max();
    watch_->timer.cancel();
}

tcp::socket& http_connection::lowest() noexcept {
    if (auto* s = std::get_if<tls_stream>(&stream_)) {
        return s->next_layer();
    }
    return std::get<tcp::socket>(stream_);
}

const tcp::socket& http_connection::lowest() const noexcept {
    if (auto* s = std::get_if<tls_stream>(&stream_)) {
        return s->next_layer();
    }
    return std::get<tcp::socket>(stream_);
}

void http_connection::arm(std::chrono::steady_clock::time_point deadline) {
    watchdog& w = *watch_;
    w.deadline = deadline;
    w.expired = false;
    // Usually a wait is already pending for an earlier operation's (later) deadline; it re-arms
    // itself when it fires. Only an earlier deadline needs the timer moved now.
    if (!w.waiting || deadline < w.timer.expiry()) {
        watchdog::start(watch_);
    }
}

error_code http_connection::settle(error_code ec) noexcept {
    watchdog& w = *watch_;
    w.deadline = watchdog::clock::time_point::max();
    if (std::exchange(w.expired, false) && ec == asio::error::operation_aborted) {
        return beast::error::timeout;
    }
    return ec;
}

void http_connection::close() noexcept {
    error_code ignored;
    auto& sock = lowest();
    if (sock.is_open()) {
        sock.shutdown(tcp::socket::shutdown_both, ignored);
        sock.close(ignored);
    }
}

bool http_connection::is_open() const noexcept {
    return lowest().is_open();
}

void http_connection::park() noexcept {
    // A pending wait would keep io_context::run() from returning while the connection idles.
    watchdog& w = *watch_;
    w.deadline = watchdog::clock::time_point::max();
    if (w.waiting) {
        w.waiting = false;
        ++w.generation; // the cancelled wait's handler then does nothing
        w.timer.cancel();
    }
    // A reused connection keeps a moderately grown buffer (the next response likely needs it
    // too, and regrowing costs reads), but not a fast stream's large one while nothing happens.
    if (cap_ > kept_buffer && size() == 0) {
        buf_.reset();
        cap_ = 0;
        begin_ = end_ = 0;
    }
    last_read_filled_ = false;
}

bool http_connection::prepare_read() noexcept {
    const std::size_t pending = end_ - begin_;
    if (cap_ < max_ && (cap_ == 0 || last_read_filled_ || pending == cap_)) {
        // Grow: either nothing is allocated yet, or the previous read filled the free space (a
        // bigger buffer saves system calls on a fast stream), or unconsumed bytes fill it all.
        const std::size_t want = cap_ == 0 ? initial_buffer : cap_ * 2;
        const std::size_t next = std::min(max_, std::max(want, initial_buffer));
        std::unique_ptr<char[]> fresh(new (std::nothrow) char[next]);
        if (fresh) {
            if (pending > 0) {
                std::memcpy(fresh.get(), buf_.get() + begin_, pending);
            }
            buf_ = std::move(fresh);
            cap_ = next;
            begin_ = 0;
            end_ = pending;
        }
    }
    if (end_ == cap_) {
        if (begin_ == 0) {
            return false; // full of unconsumed bytes at the maximum size
        }
        std::memmove(buf_.get(), buf_.get() + begin_, end_ - begin_);
        end_ -= begin_;
        begin_ = 0;
    }
    return cap_ > end_;
}

asio::awaitable<error_code> http_connection::async_connect(connect_params p, std::string& detail) {
    const std::string& dial_host = p.proxy ? p.proxy->host : p.host;
    const unsigned short dial_port = p.proxy ? p.proxy->port : p.port;
    const auto deadline = std::chrono::steady_clock::now() + p.timeout;

    // Resolution has no deadline of its own: race it against a timer.
    auto& layer = lowest();
    tcp::resolver resolver(layer.get_executor());
    asio::steady_timer timer(layer.get_executor(), deadline);
    auto [order, rec, results, tec] =
        co_await asio::experimental::make_parallel_group(
            resolver.async_resolve(dial_host, std::to_string(dial_port), asio::deferred),
            timer.async_wait(asio::deferred)
        )
            .async_wait(asio::experimental::wait_for_one(), asio::use_awaitable);
    (void)tec;
    if (co_await cancelled_now()) {
        co_return make_error_code(errc::cancelled);
    }
    if (order[0] == 1) {
        detail = "resolve " + dial_host + ": timed out";
        co_return make_error_code(errc::timeout);
    }
    if (rec) {
        detail = "resolve " + dial_host + ": " + rec.message();
        co_return make_error_code(errc::resolve_failed);
    }

    // A range connect may move on to the next address after a cancelled attempt, so it is raced
    // against the timer (cancelled as a whole) rather than left to the watchdog.
    auto [corder, cec, ep, ctec] =
        co_await asio::experimental::make_parallel_group(
            asio::async_connect(layer, results, asio::deferred), timer.async_wait(asio::deferred)
        )
            .async_wait(asio::experimental::wait_for_one(), asio::use_awaitable);
    (void)ep;
    (void)ctec;
    if (co_await cancelled_now()) {
        co_return make_error_code(errc::cancelled);
    }
    if (corder[0] == 1) {
        detail = "connect " + dial_host + ":" + std::to_string(dial_port) + ": timed out";
        co_return make_error_code(errc::timeout);
    }
    if (cec) {
        detail = "connect " + dial_host + ":" + std::to_string(dial_port) + ": " + cec.message();
        co_return map_io_error(cec, false);
    }
    error_code ignored;
    layer.set_option(tcp::no_delay(true), ignored);
    // Plain requests are sent straight from async_write, waiting only when the socket is full.
    layer.non_blocking(true, ignored);

    if (p.proxy) {
        arm(deadline);
        const std::string connect = connect_request(*p.proxy, p.host, p.port);
        auto [wec0, wn] = co_await asio::async_write(layer, asio::buffer(connect), use_nothrow);
        const error_code wec = settle(wec0);
        (void)wn;
        if (wec) {
            detail = "proxy CONNECT: " + wec.message();
            co_return wec == beast::error::timeout || wec == asio::error::operation_aborted
                ? map_io_error(wec, false)
                : make_error_code(errc::proxy_failed);
        }
        // Read the proxy's reply head byte-exactly up to the blank line; nothing beyond it may be
        // consumed because the TLS handshake starts right after.
        std::string head;
        while (head.find("\r\n\r\n") == std::string::npos) {
            if (head.size() > 16 * 1024) {
                detail = "proxy CONNECT: reply head too large";
                co_return make_error_code(errc::proxy_failed);
            }
            char c = 0;
            arm(deadline);
            auto [rec1, n] = co_await layer.async_read_some(asio::buffer(&c, 1), use_nothrow);
            const error_code rec2 = settle(rec1);
            if (rec2 || n == 0) {
                detail = "proxy CONNECT: " + rec2.message();
                co_return rec2 == beast::error::timeout || rec2 == asio::error::operation_aborted
                    ? map_io_error(rec2, false)
                    : make_error_code(errc::proxy_failed);
            }
            head += c;
        }
        const int status = parse_status_line(head);
        if (status < 200 || status > 299) {
            detail = "proxy CONNECT: " + head.substr(0, head.find("\r\n"));
            refused = true;
            co_return make_error_code(errc::proxy_failed);
        }
    }

    if (auto* tls = std::get_if<tls_stream>(&stream_)) {
        error_code pec;
        prepare_tls(*tls, p.host, p.verify, pec);
        if (pec) {
            detail = "TLS setup: " + pec.message();
            co_return make_error_code(errc::tls_failed);
        }
        arm(deadline);
        auto [hec0] = co_await tls->async_handshake(asio::ssl::stream_base::client, use_nothrow);
        const error_code hec = settle(hec0);
        if (hec) {
            detail = "TLS handshake with " + p.host + ": " + hec.message();
            if (p.verify) {
                if (auto why = verify_failure(*tls, p.host); !why.empty()) {
                    detail += ": " + why;
                    refused = true; // the same certificate comes back on every attempt
                }
            }
            co_return map_io_error(hec, true);
        }
    }
    co_return error_code{};
}

asio::awaitable<error_code> http_connection::async_write(std::chrono::milliseconds timeout) {
    error_code ec;
    if (auto* tls = std::get_if<tls_stream>(&stream_)) {
        arm(std::chrono::steady_clock::now() + timeout);
        auto [wec, n] = co_await asio::async_write(*tls, asio::buffer(out_), use_nothrow);
        (void)n;
        ec = settle(wec);
    } else {
        // A request fits the socket's send buffer almost always: one send, no wait, no handler.
        auto& sock = std::get<tcp::socket>(stream_);
        std::size_t done = 0;
        while (done < out_.size()) {
            done += sock.write_some(asio::buffer(out_.data() + done, out_.size() - done), ec);
            if (ec == asio::error::would_block || ec == asio::error::try_again) {
                arm(std::chrono::steady_clock::now() + timeout);
                auto [wec] = co_await sock.async_wait(tcp::socket::wait_write, use_nothrow);
                ec = settle(wec);
            }
            if (ec) {
                break;
            }
        }
    }
    // A streaming response can stay open for minutes: do not hold the request bytes meanwhile.
    std::string().swap(out_);
    co_return ec;
}

asio::awaitable<error_code> http_connection::async_fill(std::chrono::milliseconds timeout) {
    if (!prepare_read()) {
        co_return make_error_code(errc::response_too_large); // caller must consume first
    }
    const auto space = asio::buffer(buf_.get() + end_, cap_ - end_);
    arm(std::chrono::steady_clock::now() + timeout);
    error_code ec;
    std::size_t n = 0;
    if (auto* tls = std::get_if<tls_stream>(&stream_)) {
        std::tie(ec, n) = co_await tls->async_read_some(space, use_nothrow);
    } else {
        std::tie(ec, n) =
            co_await std::get<tcp::socket>(stream_).async_read_some(space, use_nothrow);
    }
    ec = settle(ec);
    end_ += n;
    last_read_filled_ = n == space.size();
    if (!ec && n == 0) {
        ec = asio::error::eof;
    }
    co_return ec;
}

asio::awaitable<error_code> http_connection::async_read_head(
    response_head& out, std::chrono::milliseconds timeout, bool& got_bytes
) {
    got_bytes = size() > 0;
    for (;;) {
        http::response_parser<http::empty_body> parser;
        parser.header_limit(static_cast<std::uint32_t>(std::min<std::size_t>(max_, 64 * 1024)));
        // Only the head is parsed here; the body's size is the client's decision
        // (max_response_bytes), not Beast's default 8 MiB body limit.
        parser.body_limit(boost::none);
        while (!parser.is_header_done()) {
            if (size() > 0) {
                error_code pec;
                const auto n = parser.put(asio::buffer(data(), size()), pec);
                consume(n);
                if (pec == http::error::need_more) {
                    pec = {};
                } else if (pec) {
                    co_return make_error_code(errc::invalid_response);
                }
                if (parser.is_header_done()) {
                    break;
                }
            }
            auto ec = co_await async_fill(timeout);
            if (ec) {
                co_return ec == errc::response_too_large ? make_error_code(errc::invalid_response)
                                                         : ec;
            }
            got_bytes = true;
        }
        const auto& msg = parser.get();
        const int status = static_cast<int>(msg.result_int());
        if (status >= 100 && status < 200 && status != 101) {
            continue; // interim response (100 Continue, 103 Early Hints): the real one follows
        }
        out.status = status;
        out.headers.clear();
        for (const auto& f : msg) {
            out.headers.emplace_back(ascii_lower(f.name_string()), std::string(f.value()));
        }
        out.keep_alive = parser.keep_alive();
        if (status == 204 || status == 304) {
            out.framing = http_body_decoder::framing::length;
            out.content_length = 0;
        } else if (parser.chunked()) {
            out.framing = http_body_decoder::framing::chunked;
        } else if (auto len = parser.content_length()) {
            out.framing = http_body_decoder::framing::length;
            out.content_length = *len;
        } else {
            out.framing = http_body_decoder::framing::until_eof;
            out.keep_alive = false;
        }
        co_return error_code{};
    }
}

} // namespace wafer::detail
