// One HTTP/1.1 connection (plain or TLS, direct or through a CONNECT proxy) with its own read
// buffer, plus the response-head reader. Used only through the client; not thread-safe.
#pragma once

#include <wafer/api/error_body.hpp>
#include <wafer/error.hpp>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <variant>

#include "api/detail/http_body.hpp"
#include "api/detail/proxy.hpp"
#include "api/detail/tls_context.hpp"

namespace wafer::detail {

/// What a connection attempt needs to know.
struct connect_params {
    bool tls = true;
    std::string host;
    unsigned short port = 443;
    bool verify = true;
    std::optional<proxy_target> proxy;
    std::chrono::milliseconds timeout{5'000};
};

/// The parsed status line and header fields of a response.
struct response_head {
    int status = 0;
    api::header_list headers;
    bool keep_alive = false;
    http_body_decoder::framing framing = http_body_decoder::framing::until_eof;
    std::uint64_t content_length = 0;
};

/// One connection. Plain http connections are a bare socket: no SSL object and no TLS record
/// buffers (about 40 KB per connection). The read buffer starts small and grows only while reads
/// keep filling it, up to the configured maximum.
///
/// Timeouts cost no system call per read or write: each operation only records its deadline,
/// and one watchdog timer per connection, started by the first operation of a request and
/// re-armed only when it fires, cancels the pending operation of a connection whose deadline
/// passed. park() stops it, so an idle pooled connection keeps no wait pending (Beast's
/// tcp_stream re-arms a timer, one timerfd_settime, per operation). A plain request is written
/// straight to the non-blocking socket, waiting for room only when the socket has none.
class http_connection {
public:
    /// `ctx` is used (and kept alive) only when `tls` is set. `max_buffer` caps the read buffer
    /// and thus the largest response head.
    http_connection(
        boost::asio::any_io_executor ex,
        std::shared_ptr<boost::asio::ssl::context> ctx,
        bool tls,
        std::size_t max_buffer
    );
    ~http_connection();
    http_connection(const http_connection&) = delete;
    http_connection& operator=(const http_connection&) = delete;

    /// Resolve, TCP connect, proxy CONNECT and TLS handshake, all within p.timeout. Failures map to
    /// resolve_failed, connection_failed, proxy_failed, tls_failed, timeout or cancelled;
    /// `detail` receives a human-readable reason. p.tls must match the constructor's `tls`.
    boost::asio::awaitable<boost::system::error_code>
    async_connect(connect_params p, std::string& detail);

    /// Set by a failed async_connect when a retry cannot help: the certificate was rejected, or
    /// the proxy answered CONNECT with a refusal.
    bool refused = false;

    /// The outgoing request: build it here, then async_write() sends it. The connection owns the
    /// bytes for the whole write (no copy into the operation).
    std::string& request_buffer() noexcept { return out_; }

    /// Writes request_buffer() in one write within `timeout`, then releases it.
    boost::asio::awaitable<boost::system::error_code> async_write(std::chrono::milliseconds timeout
    );

    /// Reads at least one byte into the buffer's free space within `timeout` (the idle timeout).
    /// Returns eof when the peer closed the connection, and errc::response_too_large when the
    /// buffer is at its maximum and holds no consumed bytes to make room.
    boost::asio::awaitable<boost::system::error_code> async_fill(std::chrono::milliseconds timeout);

    /// Reads and parses a response head (1xx responses are skipped). `got_bytes` tells whether any
    /// response byte arrived (a reused connection that closes without one is merely stale).
    boost::asio::awaitable<boost::system::error_code>
    async_read_head(response_head& out, std::chrono::milliseconds timeout, bool& got_bytes);

    /// Buffered, unconsumed bytes.
    const char* data() const noexcept { return buf_.get() + begin_; }
    std::size_t size() const noexcept { return end_ - begin_; }
    void consume(std::size_t n) noexcept {
        begin_ += n;
        if (begin_ == end_) {
            begin_ = end_ = 0;
        }
    }
    /// Bytes currently allocated for reading (for tests and statistics).
    std::size_t buffer_capacity() const noexcept { return cap_; }

    /// Closes the socket immediately (no TLS close_notify: a discarded connection needs none).
    void close() noexcept;
    bool is_open() const noexcept;
    /// Prepares for a stay in the pool: no deadline armed and no timer wait pending (it would
    /// keep io_context::run() from returning), a read buffer above kept_buffer released.
    void park() noexcept;

    /// Pool bookkeeping.
    std::string key;
    bool reused = false;
    std::chrono::steady_clock::time_point idle_since{};

    /// The read buffer's first allocation; it doubles from here while reads fill it.
    static constexpr std::size_t initial_buffer = 1024;
    /// The largest read buffer a parked connection keeps.
    static constexpr std::size_t kept_buffer = 8192;

private:
    struct watchdog;

    boost::asio::ip::tcp::socket& lowest() noexcept;
    const boost::asio::ip::tcp::socket& lowest() const noexcept;
    // Sets the deadline of the operation about to start.
    void arm(std::chrono::steady_clock::time_point deadline);
    // Clears the deadline after an operation; an abort the watchdog caused becomes a timeout.
    boost::system::error_code settle(boost::system::error_code ec) noexcept;
    // Makes room for a read: compacts, or grows when the last read filled the free space.
    bool prepare_read() noexcept;

    std::shared_ptr<boost::asio::ssl::context> ctx_; // must outlive stream_
    std::variant<boost::asio::ip::tcp::socket, tls_stream> stream_;
    std::shared_ptr<watchdog> watch_;
    std::string out_;
    std::unique_ptr<char[]> buf_; // uninitialised: untouched pages cost no memory
    std::size_t cap_ = 0;
    std::size_t max_ = 0;
    std::size_t begin_ = 0;
    std::size_t end_ = 0;
    bool last_read_filled_ = false;
};

/// Maps an I/O error to wafer's codes: timeouts (beast::error::timeout) to errc::timeout,
/// operation_aborted to cancelled, SSL errors to tls_failed, anything else to connection_failed.
boost::system::error_code
map_io_error(const boost::system::error_code& ec, bool during_tls) noexcept;

} // namespace wafer::detail
