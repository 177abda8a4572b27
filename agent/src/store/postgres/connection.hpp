// One libpq connection in non-blocking mode, driven by coroutines on the socket's readiness.
//
// libpq does the protocol; this class only waits: PQconnectPoll while connecting, PQflush
// while sending a query, PQconsumeInput/PQisBusy/PQgetResult while its results arrive, each
// wait an async_wait on the socket (a posix::stream_descriptor that never owns the descriptor:
// libpq closes it). Used by one coroutine at a time, on the pool's strand.
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/steady_timer.hpp>

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

// libpq-fe.h, without including it here.
struct pg_conn;

namespace wafer::store::postgres {

/// A query parameter: text (sent as text) or bytes (sent in binary, for bytea); no value: NULL.
struct param {
    std::optional<std::string> value;
    bool binary = false;

    static param text(std::string v) { return {std::move(v), false}; }
    static param bytes(std::string v) { return {std::move(v), true}; }
    static param null() { return {}; }
    static param integer(std::int64_t v) { return {std::to_string(v), false}; }
};

/// What a query returned: rows of text cells (bytea in hex, see decode_bytea), or an error.
struct result {
    /// The statement succeeded (rows, if any, are below).
    bool ok = false;
    /// The connection broke before the query's result arrived (whether it committed is
    /// unknown); the connection is unusable.
    bool connection_lost = false;
    /// For errors: the SQLSTATE and libpq's message (primary message only for SQL errors).
    std::string sqlstate;
    std::string message;
    int rows = 0;
    int cols = 0;
    std::vector<std::optional<std::string>> cells;

    const std::optional<std::string>& at(int row, int col) const {
        return cells[static_cast<std::size_t>(row * cols + col)];
    }
    std::string text(int row, int col) const { return at(row, col).value_or(std::string()); }
    std::int64_t integer(int row, int col) const;
    bool boolean(int row, int col) const { return text(row, col) == "t"; }
    std::string bytes(int row, int col) const;
};

/// Decodes bytea's hex text output (`\x0a1b...`); other text is returned as it is.
std::string decode_bytea(std::string_view text);

class connection {
public:
    explicit connection(boost::asio::any_io_executor ex);
    ~connection();
    connection(const connection&) = delete;
    connection& operator=(const connection&) = delete;

    /// Connects until `deadline`. Returns an empty string on success, else why it failed
    /// (libpq's message, or a timeout).
    boost::asio::awaitable<std::string>
    async_connect(std::string conninfo, std::chrono::steady_clock::time_point deadline);

    /// Sends one query (one statement, or several without parameters) and collects its results
    /// (the last one is returned; an error wins). Never throws for server or connection errors.
    boost::asio::awaitable<result> async_exec(std::string sql, std::vector<param> params = {});

    /// Waits up to `timeout` for notifications (after LISTEN): returns the channel payloads
    /// received (empty on timeout). Sets broken() if the connection is lost.
    boost::asio::awaitable<std::vector<std::string>>
    async_wait_notifications(std::chrono::milliseconds timeout);

    /// Wakes a coroutine waiting in async_wait_notifications (it returns what it has).
    void cancel();

    bool broken() const noexcept { return broken_; }
    /// The server's process id (for tests and diagnostics), 0 if not connected.
    int backend_pid() const noexcept;
    pg_conn* native() const noexcept { return conn_; }

private:
    enum class wait_for { read, write };
    /// Waits for the socket until `timeout`; false if the time ran out (or cancel()).
    boost::asio::awaitable<bool> wait(wait_for what, std::chrono::steady_clock::duration timeout);
    void attach_socket();
    void detach_socket() noexcept;
    std::string error_message() const;
    /// Reads what arrived; false (broken) on failure.
    bool consume();

    boost::asio::any_io_executor ex_;
    pg_conn* conn_ = nullptr;
    boost::asio::posix::stream_descriptor socket_;
    boost::asio::steady_timer timer_;
    bool broken_ = false;
};

} // namespace wafer::store::postgres
