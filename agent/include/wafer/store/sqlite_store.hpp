// A run store in one SQLite file: durable runs that survive a crash of the process.
#pragma once

#include <wafer/store/run_store.hpp>

#include <chrono>
#include <filesystem>
#include <memory>
#include <string>

namespace wafer::store {

/// When a commit counts as done.
enum class sqlite_durability {
    /// synchronous=FULL: the write-ahead log is synced at every commit of an append with
    /// run_update::sync (the default), so that it survives power loss; an append without it
    /// is committed as with normal and reaches the disk with the next synced commit.
    full,
    /// synchronous=NORMAL: synced at checkpoints only; a committed append survives a crash of
    /// the process, the last ones may be lost on power loss. Much cheaper per commit.
    normal,
};

/// Which thread does an operation's SQLite work.
enum class sqlite_threading {
    /// Always the store's own thread: the caller's thread never waits for the file, and
    /// operations that arrive while it is busy share one commit (group commit).
    store_thread,
    /// Writes (create, append, leases) on the calling thread when the store is idle and no
    /// other connection holds the file's write lock, the store's thread otherwise (and for
    /// reads): no hand-off between threads and back, which is most of the CPU an append costs at
    /// NORMAL. The calling thread is blocked for the transaction, its sync included at FULL, and
    /// writes started one after the other from one thread commit one by one (no group commit
    /// between the runs of one thread). Checkpoints stay on the store's thread.
    caller_when_idle,
};

struct sqlite_options {
    sqlite_durability durability = sqlite_durability::full;
    sqlite_threading threading = sqlite_threading::store_thread;
    /// How long a write waits for another connection (another process) to release the file.
    std::chrono::milliseconds busy_timeout{5000};
    /// Name of a registered sqlite3_vfs to open the file with (instrumentation, tests); empty:
    /// SQLite's default.
    std::string vfs;
};

/// Runs and journals in one SQLite file (schema: agent/src/store/SCHEMA.md), in WAL mode.
///
/// Construction opens the file, creating it and its directory if missing, and upgrades an older
/// schema. Errors (thrown as wafer::error, code wafer::store::errc, detail naming the file):
/// schema_too_new for a file written by a newer wafer; corrupt for a file that is not a wafer
/// run store or is damaged, which is left untouched; io if it cannot be opened.
///
/// The store has one connection and a thread of its own. Operations queue to that thread and
/// complete on the caller's executor (counted as outstanding work meanwhile). Requests queued
/// while the connection is busy commit together in one transaction (group commit), each in its
/// own savepoint: one refused append does not fail the others. With
/// sqlite_threading::caller_when_idle, a write that finds the connection idle, nothing queued
/// and the file's write lock free runs at once on the calling thread, in a transaction of its
/// own, and the awaiting coroutine resumes there without a hand-off.
/// Either way an operation completes only after its transaction committed, and checkpoints of
/// the write-ahead log run on the store's thread. Operations are not cancellable: once
/// started, they run.
///
/// Several stores, in one process or several, may open the same file: writers wait up to
/// sqlite_options::busy_timeout for each other, and leases are compared against wall-clock
/// time.
///
/// The destructor finishes every queued operation (their completions still go to the callers'
/// executors, which must outlive the store's work), then closes the file.
///
/// Thread safety: every operation may be called concurrently from any thread.
class sqlite_store final : public run_store {
public:
    /// The schema version this build writes and reads (older files are upgraded).
    static constexpr int schema_version = 1;

    explicit sqlite_store(std::filesystem::path file, sqlite_options opts = {});
    ~sqlite_store() override;

    const std::filesystem::path& path() const noexcept;

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

private:
    struct impl;
    std::unique_ptr<impl> impl_;
};

} // namespace wafer::store
