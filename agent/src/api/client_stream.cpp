// api::chat_stream and the streaming hot path.
#include <wafer/api/chat_stream.hpp>
#include <wafer/api/error_body.hpp>

#include <boost/asio/error.hpp>
#include <boost/asio/ssl/error.hpp>

#include <stdexcept>

#include "api/detail/http_stream_state.hpp"

namespace wafer::detail {

using boost::system::error_code;

void http_stream_state::fail(errc e, std::string detail) {
    state = phase::failed;
    error = make_error_code(e);
    if (!detail.empty()) {
        diag.detail = std::move(detail);
    }
    api::redact(diag, secret);
    conn.reset();                     // a connection that errored is never reused
    ticket.settle_usage(acc.usage()); // usage if it came, else the whole reservation
}

void http_stream_state::fail_in_stream(int status) {
    // The 200 on the wire says nothing about this error; only a status inside it does.
    if (status >= 400) {
        diag.http_status = status;
        fail(errc_from_http_status(status), "error event in the stream");
    } else {
        diag.http_status = 0;
        fail(errc::provider_error, "error event in the stream");
    }
}

void http_stream_state::finish(bool reusable) {
    state = phase::finished;
    ticket.settle_usage(acc.usage());
    if (reusable && conn && body.done() && head.keep_alive &&
        body.kind() != http_body_decoder::framing::until_eof && pool) {
        conn->reused = false;
        pool->put(std::move(conn));
    }
    conn.reset();
}

void http_stream_state::end_of_body() {
    if (acc.finished()) {
        finish(true);
    } else {
        fail(errc::stream_truncated, "the stream ended before a chunk with finish_reason");
    }
}

const api::chunk_view* http_stream_state::poll(error_code& ec) {
    for (;;) {
        if (state != phase::open) {
            ec = error;
            return nullptr;
        }
        std::optional<api::sse_event> ev;
        try {
            ev = sse.next();
        } catch (const std::length_error&) {
            fail(errc::response_too_large, "one stream event exceeds the size limit");
            continue;
        }
        if (ev) {
            if (ev->data.empty()) {
                continue;
            }
            if (ev->data.starts_with("[DONE]") && !acc.finished()) {
                // As at EOF: without a finish_reason the answer may be cut short, and an agent
                // must not take half an answer for a whole one. (The SDKs stop iterating at
                // [DONE] and leave finish_reason null; wafer says so instead.)
                fail(
                    errc::stream_truncated,
                    "the stream sent [DONE] before any chunk with "
                    "finish_reason"
                );
                continue;
            }
            if (ev->data.starts_with("[DONE]")) {
                // Take the rest of the body if it is already here, so the connection can be reused.
                if (conn && !body.done() && conn->size() > 0) {
                    error_code bec;
                    auto n = body.feed(
                        conn->data(), conn->size(), [](std::string_view) {}, bec
                    );
                    conn->consume(n);
                    if (bec) {
                        conn.reset();
                    }
                }
                finish(true);
                ec = {};
                return nullptr;
            }
            if (ev->event == "error") {
                diag.http_status = 0;
                const int st = api::read_error_body(ev->data, diag);
                fail_in_stream(st);
                continue;
            }
            error_code dec;
            const api::chunk_view& c = decoder.decode(ev->data, dec);
            if (dec) {
                fail(errc::invalid_response, "malformed stream chunk");
                continue;
            }
            if (c.error) {
                diag.message = std::string(c.error->message);
                diag.type = std::string(c.error->type);
                diag.code = std::string(c.error->code);
                diag.param = std::string(c.error->param);
                fail_in_stream(c.error->status_code);
                continue;
            }
            acc.add(c);
            return &c;
        }
        if (!conn) {
            fail(errc::connection_failed, "no connection");
            continue;
        }
        if (conn->size() > 0 && !body.done()) {
            error_code bec;
            const auto before = total_bytes;
            const auto n = body.feed(
                conn->data(),
                conn->size(),
                [this](std::string_view d) {
                    total_bytes += d.size();
                    sse.feed(d);
                },
                bec
            );
            conn->consume(n);
            if (bec) {
                fail(errc::invalid_response, "malformed chunked transfer encoding");
                continue;
            }
            if (total_bytes > max_bytes) {
                fail(
                    errc::response_too_large,
                    "the stream exceeds max_response_bytes (" + std::to_string(max_bytes) +
                        " bytes)"
                );
                continue;
            }
            if (total_bytes != before || n != 0) {
                continue;
            }
        }
        if (body.done()) {
            end_of_body();
            continue;
        }
        ec = {};
        return nullptr; // need more bytes
    }
}

boost::asio::awaitable<void> http_stream_state::fill(error_code& ec) {
    auto rec = co_await conn->async_fill(read_timeout);
    if (!rec) {
        co_return;
    }
    if (rec == boost::asio::error::eof || rec == boost::asio::ssl::error::stream_truncated) {
        if (body.on_eof()) {
            co_return; // close-delimited body: poll() ends it
        }
        conn.reset();
        end_of_body(); // Cerebras may just close after the last chunk
        ec = error;
        co_return;
    }
    const auto mapped = map_io_error(rec, false);
    fail(static_cast<errc>(mapped.value()), "stream read: " + rec.message());
    ec = error;
}

} // namespace wafer::detail

namespace wafer::api {

chat_stream::chat_stream() noexcept = default;
chat_stream::~chat_stream() = default;
chat_stream::chat_stream(chat_stream&&) noexcept = default;
chat_stream& chat_stream::operator=(chat_stream&&) noexcept = default;
chat_stream::chat_stream(std::unique_ptr<detail::http_stream_state> st) noexcept
    : st_(std::move(st)) {}

const chunk_view* chat_stream::try_next(boost::system::error_code& ec) {
    ec = {};
    if (!st_) {
        return nullptr;
    }
    return st_->poll(ec);
}

boost::asio::awaitable<const chunk_view*> chat_stream::next(boost::system::error_code& ec) {
    ec = {};
    if (!st_) {
        co_return nullptr;
    }
    for (;;) {
        if (const chunk_view* c = st_->poll(ec)) {
            co_return c;
        }
        if (ec || st_->state != detail::http_stream_state::phase::open) {
            co_return nullptr;
        }
        co_await st_->fill(ec);
        if (ec) {
            co_return nullptr;
        }
    }
}

boost::asio::awaitable<const chunk_view*> chat_stream::next() {
    boost::system::error_code ec;
    const chunk_view* c = co_await next(ec);
    if (ec) {
        throw wafer::error(ec, st_->diag);
    }
    co_return c;
}

bool chat_stream::done() const noexcept {
    return !st_ || st_->state != detail::http_stream_state::phase::open;
}

accumulator& chat_stream::accumulated() noexcept {
    if (!st_) {
        st_ = std::make_unique<detail::http_stream_state>();
        st_->state = detail::http_stream_state::phase::finished;
    }
    return st_->acc;
}

const accumulator& chat_stream::accumulated() const noexcept {
    static const accumulator empty;
    return st_ ? st_->acc : empty;
}

chat_response chat_stream::response() const {
    return accumulated().to_response();
}

int chat_stream::status() const noexcept {
    return st_ ? st_->head.status : 0;
}

const header_list& chat_stream::headers() const noexcept {
    static const header_list none;
    return st_ ? st_->head.headers : none;
}

const diagnostics& chat_stream::diag() const noexcept {
    static const diagnostics none;
    return st_ ? st_->diag : none;
}

} // namespace wafer::api
