// What postgres_store and postgres_queue share: the strand, the pool of connections (decisions
// in pool_state, I/O here), and one way to run a statement that reconnects and retries when the
// connection breaks.
#pragma once

#include <wafer/store/error.hpp>
#include <wafer/store/postgres_store.hpp>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/strand.hpp>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "store/postgres/connection.hpp"
#include "store/postgres/pool_state.hpp"

namespace wafer::store::postgres {

struct client : std::enable_shared_from_this<client> {
    client(boost::asio::any_io_executor ex, std::string conninfo, postgres_options opts);

    boost::asio::strand<boost::asio::any_io_executor> strand;
    /// The connection string as given (with its password: never put it in a message).
    std::string conninfo;
    /// The connection string without the password, for messages ("host=... dbname=...").
    std::string name;
    postgres_options opts;
    /// Run on every new connection: search_path and bytea_output.
    std::string session_sql;
    pool_state pool;
    std::map<pool_state::slot_id, std::unique_ptr<connection>> connections;
    bool closed = false;

    /// A token no other call of any process uses (creates, appends, submits, claims).
    std::string make_token();

    /// Replaces the password, should libpq quote the connection string back.
    std::string scrub(std::string message) const;
    [[noreturn]] void fail(errc e, const std::string& what) const;

    /// On the strand: a connection from the pool (opening one, or waiting for one, until
    /// `deadline`). Throws unavailable when the time is up.
    boost::asio::awaitable<pool_state::slot_id>
    async_acquire(std::chrono::steady_clock::time_point deadline);
    void release(pool_state::slot_id slot, bool reusable);

    /// On the strand: runs one statement; on connection loss, reconnects and runs it again until
    /// opts.connect_timeout has passed since the first attempt, then throws unavailable. (Every
    /// statement the store sends is safe to repeat.) `retry_flag`: index of a parameter set to
    /// "true" on repeats (the server-side functions look their token up then), or -1.
    boost::asio::awaitable<result>
    async_exec(std::string sql, std::vector<param> params, int retry_flag = -1);

    /// A new connection outside the pool (the queue's listener), session set up; nullptr and
    /// `why` set on failure.
    boost::asio::awaitable<std::unique_ptr<connection>>
    async_connect(std::chrono::steady_clock::time_point deadline, std::string& why);

    /// Closes the idle connections and refuses new work (on the strand).
    void close();

private:
    std::string token_prefix_;
    std::uint64_t token_counter_ = 0;
};

/// Throws the store error a failed statement means (io unless the SQLSTATE says otherwise).
void check(const client& c, const result& r, std::string_view what);

} // namespace wafer::store::postgres
