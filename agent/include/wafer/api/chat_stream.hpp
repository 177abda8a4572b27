// A streamed chat completion, pulled chunk by chunk (the hot path).
#pragma once

#include <wafer/api/accumulator.hpp>
#include <wafer/api/chat_response.hpp>
#include <wafer/api/chunk.hpp>
#include <wafer/api/error_body.hpp>
#include <wafer/error.hpp>

#include <boost/asio/awaitable.hpp>
#include <boost/system/error_code.hpp>

#include <memory>

namespace wafer::detail {
struct http_stream_state;
} // namespace wafer::detail

namespace wafer::api {

/// The body of a successful (2xx) streaming response. Obtained from client::async_stream; pull it
/// with `co_await s.next()` until it returns nullptr.
///
/// Every chunk is also fed to accumulated(), so after the end response() is the whole reply.
///
/// End of stream: "data: [DONE]", or the end of the HTTP body after a chunk that carried a
/// finish_reason (Cerebras sends no [DONE]). Errors:
/// - body ended (or connection closed) before any finish_reason: errc::stream_truncated;
/// - a mid-stream error event {"error":{…},"status_code":N}: errc_from_http_status(N), with
///   diag() filled (http_status = N, type, code, param, message);
/// - a chunk that is not valid JSON or bad chunked framing: errc::invalid_response;
/// - no byte for timeouts.read: errc::timeout; more than max_response_bytes: response_too_large;
/// - connection failures: errc::connection_failed.
/// Streams are never retried once the caller has the stream (bytes may have been consumed).
///
/// Connection reuse: after a clean end with keep-alive the connection returns to the client's
/// pool; on any error, or when the stream is destroyed before its end, it is closed.
///
/// Cancellation: terminal cancellation of the awaiting coroutine aborts the pending read, closes
/// the connection and yields errc::cancelled.
///
/// Thread safety: distinct objects safe, shared objects unsafe. Use it on the client's executor.
class chat_stream {
public:
    /// An empty stream (done() is true).
    chat_stream() noexcept;
    ~chat_stream();
    chat_stream(chat_stream&&) noexcept;
    chat_stream& operator=(chat_stream&&) noexcept;

    /// The next decoded chunk, or nullptr at the end. The pointee (and its views) stays valid
    /// until the next call to next()/try_next(). Throws wafer::error on failure; once failed, every
    /// later call throws the same error.
    boost::asio::awaitable<const chunk_view*> next();

    /// Non-throwing form: on failure returns nullptr and sets ec (details in diag()).
    boost::asio::awaitable<const chunk_view*> next(boost::system::error_code& ec);

    /// Non-blocking fast path: the next chunk if it can be decoded from bytes already received,
    /// else nullptr (then check ec and done(); if neither is set, call next()). No coroutine
    /// frame, no I/O.
    const chunk_view* try_next(boost::system::error_code& ec);

    /// True once the stream ended cleanly or failed (next() will not read any more).
    bool done() const noexcept;

    /// Everything received so far, folded into one message.
    api::accumulator& accumulated() noexcept;
    const api::accumulator& accumulated() const noexcept;
    /// accumulated().to_response().
    chat_response response() const;

    /// HTTP status and response headers (lower-case names), and diagnostics of a failure
    /// (attempts is the number of HTTP attempts it took to open the stream).
    int status() const noexcept;
    const header_list& headers() const noexcept;
    const diagnostics& diag() const noexcept;

    /// Internal: constructed by the client.
    explicit chat_stream(std::unique_ptr<detail::http_stream_state> st) noexcept;

private:
    std::unique_ptr<detail::http_stream_state> st_;
};

} // namespace wafer::api
