// A run store on PostgreSQL: durable runs shared by processes on several machines.
#pragma once

#include <wafer/store/run_store.hpp>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>

#include <chrono>
#include <cstddef>
#include <memory>
#include <string>

namespace wafer::store {

namespace postgres {
struct client;
} // namespace postgres

struct postgres_options {
    /// The PostgreSQL schema (namespace) holding wafer's tables, created if missing: several
    /// wafer deployments (or tests) may share one database in different schemas.
    std::string schema = "wafer";
    /// Connections the store opens at most (operations beyond wait for one to be free).
    std::size_t max_connections = 4;
    /// How long async_open waits for the server (down at start: it retries with backoff), and
    /// how long an operation whose connection broke keeps reconnecting and retrying before it
    /// fails with errc::unavailable.
    std::chrono::milliseconds connect_timeout{10'000};
    /// First and longest wait between two attempts to connect (doubling in between).
    std::chrono::milliseconds reconnect_backoff{50};
    std::chrono::milliseconds reconnect_backoff_max{1'000};
};

/// Runs and journals in PostgreSQL (schema: agent/src/store/SCHEMA.md, "PostgreSQL"), with the
/// semantics of sqlite_store: the same rows, journal, leases with fencing and errors. Times
/// (created_ms, at_ms, lease expiry) come from the server's clock, so that processes on
/// machines whose clocks disagree still agree on whose lease has expired.
///
/// I/O: libpq in non-blocking mode on the connection's socket, waited for by the executor given
/// to async_open (no thread of its own, none per query). Operations run on a strand of that
/// executor and complete on the caller's executor; the executor must keep running while the
/// store is used. Up to postgres_options::max_connections connections are pooled.
///
/// Each operation is one statement (a server-side function for appends and leases), hence one
/// transaction. Connection loss (server restarted, network) is retried on a new connection for
/// up to connect_timeout: reads and leases are idempotent; creates and appends carry a token
/// recorded in the same transaction, so a retry of one that committed returns its result
/// instead of repeating it. When the time is up: errc::unavailable. Errors never show the
/// connection string's password.
///
/// Operations are not cancellable. Destroy the store only when no operation is in flight; the
/// destructor closes the connections on the store's strand.
///
/// Thread safety: every operation may be called concurrently from any thread and executor.
class postgres_store final : public run_store {
public:
    /// The schema version this build writes and reads (older ones are upgraded).
    static constexpr int schema_version = 1;

    /// Connects to `conninfo` (a `postgresql://` URI or `key=value` pairs, as libpq takes them),
    /// creates or upgrades the schema, and returns the store. Errors: unavailable (no server
    /// within connect_timeout; the detail has libpq's reason), schema_too_new (written by a
    /// newer wafer), corrupt (wafer's tables are there without their version), io.
    static boost::asio::awaitable<std::unique_ptr<postgres_store>>
    async_open(boost::asio::any_io_executor ex, std::string conninfo, postgres_options opts = {});

    ~postgres_store() override;

    /// The connection string without its password, as errors name the store.
    const std::string& name() const noexcept;

    boost::asio::awaitable<void> async_create_run(run_info run) override;
    boost::asio::awaitable<std::uint64_t> async_append(
        std::string run_id, std::string owner, std::vector<journal_entry> entries, run_update update
    ) override;
    boost::asio::awaitable<std::optional<run_info>> async_find_run(std::string run_id) override;
    boost::asio::awaitable<std::vector<journal_entry>>
    async_read_journal(std::string run_id, std::uint64_t after_seq = 0) override;
    boost::asio::awaitable<std::vector<run_info>> async_list_runs(run_filter filter) override;
    boost::asio::awaitable<bool> async_acquire_lease(
        std::string run_id,
        std::string owner,
        std::chrono::milliseconds ttl,
        std::string take_over_from = {}
    ) override;
    boost::asio::awaitable<void>
    async_release_lease(std::string run_id, std::string owner) override;

    /// The connection pool and its strand, shared with postgres_queue (internal).
    const std::shared_ptr<postgres::client>& shared_client() const noexcept { return client_; }

private:
    explicit postgres_store(std::shared_ptr<postgres::client> c);
    std::shared_ptr<postgres::client> client_;
};

} // namespace wafer::store
