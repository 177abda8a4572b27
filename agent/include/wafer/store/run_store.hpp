// The journal of durable runs: what a run store keeps and the interface every store implements.
#pragma once

#include <boost/asio/awaitable.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace wafer::store {

/// Where a run is in its life, as the store records it.
enum class run_status {
    /// A process is driving it (or was, and crashed: see run_info::lease_owner and resume).
    running,
    /// It stopped at calls that need approval; approve/deny and resume continue it.
    awaiting_approval,
    /// It stopped (final answer, a limit, an error, cancellation); a resume needs a new message.
    finished,
};

std::string_view to_string(run_status s) noexcept;
/// Parses the text to_string gives; nullopt for anything else.
std::optional<run_status> parse_run_status(std::string_view s) noexcept;

/// One input of the run machine, in the order the machine received it. The store keeps `body`
/// verbatim (JSON text written by the journal codec); it never interprets it.
struct journal_entry {
    /// 1, 2, 3, ... within a run, assigned by the store on append.
    std::uint64_t seq = 0;
    /// What the entry records: "model_reply", "model_failed", "tools_started", "tool_result",
    /// "review", "approval", "user_message", "cancelled", "stopped", ... (the codec's names).
    std::string kind;
    /// Wall-clock time of the append, milliseconds since the Unix epoch (set by the store).
    std::int64_t at_ms = 0;
    /// JSON text.
    std::string body;

    friend bool operator==(const journal_entry&, const journal_entry&) = default;
};

/// A run's row: what listing and resuming need without reading the journal.
struct run_info {
    std::string id;
    /// The run that started this one as a child (empty for a top-level run).
    std::string parent_id;
    /// agent_config::name.
    std::string agent;
    /// The run's input (the user's task).
    std::string task;
    /// Free-form scope for listing, e.g. the CLI's workspace directory (may be empty).
    std::string scope;
    run_status status = run_status::running;
    /// to_string(stop_reason) once finished or paused; empty while running.
    std::string stop_reason;
    std::size_t turns = 0;
    std::int64_t prompt_tokens = 0;
    std::int64_t completion_tokens = 0;
    /// Milliseconds since the Unix epoch (set by the store).
    std::int64_t created_ms = 0;
    std::int64_t updated_ms = 0;
    /// JSON text: what the machine was constructed from (input, starting history, limits that
    /// matter for replay). Written once at creation.
    std::string setup;
    /// The process holding the run's lease (empty if none) and when the lease ends.
    std::string lease_owner;
    std::int64_t lease_expires_ms = 0;

    friend bool operator==(const run_info&, const run_info&) = default;
};

/// What an append changes in the run's row besides its journal (all optional).
struct run_update {
    std::optional<run_status> status;
    std::optional<std::string> stop_reason;
    std::optional<std::size_t> turns;
    std::optional<std::int64_t> prompt_tokens;
    std::optional<std::int64_t> completion_tokens;
    /// Give up the appending owner's lease in the same transaction (a run that stops).
    bool release_lease = false;
    /// Whether the commit must reach stable storage before the append completes (a store that
    /// syncs, e.g. sqlite_durability::full). False: it may wait for the next commit that does;
    /// a crash of the process never loses it, a power loss may. The journal syncs what makes a
    /// call "started" (so that it never runs twice) and the end of a run, and defers results:
    /// one lost to a power loss leaves its call in doubt, never repeated.
    bool sync = true;
};

/// Which runs async_list_runs returns, newest (by updated_ms) first.
struct run_filter {
    /// Only runs with this scope (any scope if empty).
    std::string scope;
    /// Only runs with this status.
    std::optional<run_status> status;
    /// Only top-level runs (no parent_id) when true.
    bool top_level_only = false;
    /// At most this many (0: no limit).
    std::size_t limit = 0;
};

/// A store of durable runs: a row per run and its journal.
///
/// Errors: operations throw wafer::error with a wafer::store::errc code (store/error.hpp) and
/// diagnostics naming the store and, where it helps, the run: run_not_found, run_exists,
/// lease_held (another owner's lease has not expired), schema_too_new, corrupt, io, unavailable
/// (a server store that stayed unreachable through its reconnect attempts).
///
/// Leases: a run is driven by one owner at a time. async_acquire_lease succeeds if the run has
/// no lease, its lease expired, or `owner` already holds it; async_append with a non-empty
/// `owner` is refused (lease_held) unless that owner holds an unexpired lease, so a process
/// that lost its lease cannot write (fencing). An append with an empty owner (approvals from
/// another process) is refused only while someone else holds an unexpired lease.
///
/// Atomicity: each call is one transaction; an append's entries and row update land together
/// or not at all. Entries appended concurrently (by different runs) may share one commit.
///
/// Thread safety: all operations may be called concurrently from any threads and executors;
/// each completes on the caller's executor.
class run_store {
public:
    virtual ~run_store() = default;
    run_store(const run_store&) = delete;
    run_store& operator=(const run_store&) = delete;

    /// Records a new run (created_ms, updated_ms set by the store; status, lease_owner and
    /// lease_expires_ms as given, so a creator may hold the lease from the start). Throws
    /// run_exists if the id is taken.
    virtual boost::asio::awaitable<void> async_create_run(run_info run) = 0;

    /// Appends `entries` (their seq and at_ms are assigned here, in order, continuing the run's
    /// journal) and applies `update`, in one transaction. Returns the seq of the last entry (the
    /// journal's length if `entries` is empty). Throws run_not_found or lease_held.
    virtual boost::asio::awaitable<std::uint64_t> async_append(
        std::string run_id, std::string owner, std::vector<journal_entry> entries, run_update update
    ) = 0;

    /// The run's row, or nullopt.
    virtual boost::asio::awaitable<std::optional<run_info>> async_find_run(std::string run_id) = 0;

    /// The run's journal from `after_seq + 1` on, in order. Throws run_not_found.
    virtual boost::asio::awaitable<std::vector<journal_entry>>
    async_read_journal(std::string run_id, std::uint64_t after_seq = 0) = 0;

    /// Runs matching `filter`, newest first.
    virtual boost::asio::awaitable<std::vector<run_info>> async_list_runs(run_filter filter) = 0;

    /// Takes or renews the run's lease for `ttl`. Returns false if another owner holds an
    /// unexpired lease, unless that owner is `take_over_from` (a holder the caller knows is
    /// dead, e.g. a crashed process on this host). Throws run_not_found.
    virtual boost::asio::awaitable<bool> async_acquire_lease(
        std::string run_id,
        std::string owner,
        std::chrono::milliseconds ttl,
        std::string take_over_from = {}
    ) = 0;

    /// Gives the lease up if `owner` holds it (no effect otherwise).
    virtual boost::asio::awaitable<void>
    async_release_lease(std::string run_id, std::string owner) = 0;

protected:
    run_store() = default;
};

} // namespace wafer::store
