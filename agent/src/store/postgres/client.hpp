// What postgres_store and postgres_queue share: the strand, the pool of connections (decisions
// in pool_state, I/O here), and one way to run a statement that reconnects and retries when the
// connection breaks.
#pragma once

#include <wafer/store/error.hpp>
#include <wafer/store/postgres_store.hpp>

#include <boost/asio/any_completion_handler.hpp>
#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/associated_executor.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/execution/outstanding_work.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/prefer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/use_awaitable.hpp>

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

/// Runs `op` on `c`'s strand and resumes the caller on its own executor with the result.
///
/// Not `co_await co_spawn(strand, op, use_awaitable)`: co_spawn drops its hold on the caller's
/// executor (outstanding work) on the strand's thread after it has handed the result over, and
/// the caller, already resumed, may have destroyed its io_context by then. Here the tracked
/// executor travels with the result and is released on the caller's side, after the handler
/// ran (as sqlite_store's jobs do).
template <class R>
boost::asio::awaitable<R> async_on_strand(client& c, boost::asio::awaitable<R> op) {
    namespace asio = boost::asio;
    using handler_type = asio::any_completion_handler<void(std::exception_ptr, R)>;
    auto initiate = [&c](auto handler, asio::awaitable<R> o) {
        asio::any_io_executor work = asio::prefer(
            asio::get_associated_executor(handler), asio::execution::outstanding_work.tracked
        );
        auto done = [h = handler_type(std::move(handler)),
                     work = std::move(work)](std::exception_ptr e, R v) mutable {
            auto ex = asio::prefer(work, asio::execution::outstanding_work.untracked);
            asio::post(
                ex,
                [h = std::move(h), e, v = std::move(v), work = std::move(work)]() mutable {
                    auto keep = std::move(work);
                    std::move(h)(e, std::move(v));
                }
            );
        };
        asio::co_spawn(c.strand, std::move(o), std::move(done));
    };
    return asio::async_initiate<const asio::use_awaitable_t<>&, void(std::exception_ptr, R)>(
        initiate, asio::use_awaitable, std::move(op)
    );
}

/// Throws the store error a failed statement means (io unless the SQLSTATE says otherwise).
void check(const client& c, const result& r, std::string_view what);

} // namespace wafer::store::postgres
