// What carries one MCP connection's messages (a stdio server's pipes, Streamable HTTP): the
// seam between mcp::client, which decides with mcp::session, and the bytes on the wire.
#pragma once

#include <wafer/tools/mcp/error.hpp>
#include <wafer/tools/mcp/session.hpp>

#include <boost/asio/awaitable.hpp>

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

namespace wafer::tools::mcp {

/// What a transport reports to the client it carries. Called on the client's executor, never
/// from inside transport::send.
class transport_events {
public:
    /// Bytes of a stream of newline-framed messages (stdio).
    virtual void on_bytes(std::string_view bytes) = 0;
    /// One whole JSON-RPC message (a transport that frames messages itself: an HTTP body, an
    /// SSE event).
    virtual void on_message(std::string_view message) = 0;
    /// Something unusable that does not end the connection (for the embedder's log).
    virtual void on_noise(std::string what) = 0;
    /// The answer to request `id` cannot come (its HTTP exchange failed): the request ends with
    /// `reason`. The server is not told.
    virtual void on_request_lost(std::int64_t id, errc reason, std::string detail) = 0;
    /// The server refused request `id` without a JSON-RPC answer to it (HTTP 400, 404 or 405
    /// with another body): for the server/discover probe, a server of the initialize
    /// handshake (session::refused); for other requests, as on_request_lost with
    /// errc::transport.
    virtual void on_request_refused(std::int64_t id, std::string detail) = 0;
    /// Nothing more will come: the connection ended (`why` says how, for errors).
    virtual void on_end(std::string why) = 0;
    /// Whether request `id` still waits for its answer (a stream that ends before it may be
    /// resumed).
    virtual bool awaiting(std::int64_t id) const = 0;

    virtual ~transport_events() = default;
};

/// A transport. mcp::client owns one and drives it from a single executor: start() once, then
/// send() in order, on_ready() when the handshake ends, and async_close() or abort() at the end.
class transport {
public:
    virtual ~transport() = default;

    /// Starts reading; events go to `events` while it lives.
    virtual void start(std::weak_ptr<transport_events> events) = 0;
    /// Sends messages, each ending in "\n", in the order given (requests, notifications and
    /// answers to the server's requests alike).
    virtual void send(std::string messages) = 0;
    /// The handshake ended: what the server said (its protocol version goes on later requests
    /// where the transport carries it).
    virtual void on_ready(const server_info& server) { static_cast<void>(server); }
    /// The graceful end the transport's spec describes, each step waiting up to `grace`.
    /// Never throws.
    virtual boost::asio::awaitable<void> async_close(std::chrono::milliseconds grace) = 0;
    /// Ends at once without waiting (the client was destroyed, a connect was abandoned).
    virtual void abort() noexcept = 0;
};

} // namespace wafer::tools::mcp
