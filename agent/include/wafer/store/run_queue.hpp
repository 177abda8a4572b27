// A queue of runs to start, shared by workers: submit, claim under a lease, heartbeat, finish.
#pragma once

#include <boost/asio/awaitable.hpp>

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>

namespace wafer::store {

/// A run to start: its row in the run store is created by the submit (status running, no
/// lease), its queue entry with it.
struct run_submission {
    /// The run's id (unique in the store; a taken id is refused with errc::run_exists).
    std::string id;
    std::string parent_id;
    std::string agent;
    /// The run's input (the user's task).
    std::string task;
    std::string scope;
    /// JSON text: what the run machine is constructed from (run_info::setup).
    std::string setup;
    /// Claims that may end without the run finished (the worker crashed or hung and its lease
    /// expired) before the run is failed as poison instead of being claimed again.
    int max_attempts = 3;
};

/// A worker's hold on a run, as async_claim gave it.
struct run_claim {
    std::string run_id;
    /// The fencing token, "WORKER#GENERATION": the run's lease owner while the claim holds.
    /// Pass it as the owner of run_store appends: once the claim is lost (expired and claimed
    /// by another worker, whose generation is higher), the store refuses its writes
    /// (errc::lease_held).
    std::string owner;
    /// How many times the run was claimed (this claim included).
    std::uint64_t generation = 0;
    /// 1 for the first claim; more when an earlier claim's worker lost it.
    int attempt = 0;
    /// When the claim lapses unless renewed by async_heartbeat (server clock, ms since epoch).
    std::int64_t lease_expires_ms = 0;
    /// The run's submission.
    std::string agent;
    std::string task;
    std::string setup;
    std::string parent_id;
    std::string scope;
};

/// Where a queued run is.
enum class queue_state {
    /// Waiting for a worker.
    queued,
    /// A worker holds it (see owner and lease_expires_ms).
    claimed,
    /// Its worker completed it.
    done,
    /// Failed: by its worker (async_fail), or as poison after max_attempts lost claims.
    failed,
};

/// A queue entry, for inspection.
struct queue_entry {
    std::string run_id;
    queue_state state = queue_state::queued;
    int attempts = 0;
    int max_attempts = 0;
    /// The last claim's owner (fencing token), empty if never claimed.
    std::string owner;
    std::int64_t lease_expires_ms = 0;
    /// Why it failed.
    std::string reason;
};

/// A queue of runs for workers (wafer worker), over a run store that holds their rows and
/// journals.
///
/// A worker claims a run, drives it with its claim's owner as the lease owner of every append,
/// renews the claim with async_heartbeat well within its ttl, and ends it with async_complete
/// (done), async_fail (failed with a reason) or async_release (back to the queue, the attempt
/// not counted: a graceful drain). A worker that dies stops renewing; once its claim has expired,
/// the next claim takes the run over with a higher generation, so the dead (or merely stalled)
/// worker's writes are refused, and the new worker resumes the run from its journal. A run
/// whose claims lapsed max_attempts times is failed with the reason instead (run status
/// finished, stop_reason "error").
///
/// Errors: wafer::error with wafer::store::errc codes (run_exists, unavailable, io).
///
/// Thread safety: every operation may be called concurrently from any thread and executor;
/// each completes on the caller's executor.
class run_queue {
public:
    virtual ~run_queue() = default;
    run_queue(const run_queue&) = delete;
    run_queue& operator=(const run_queue&) = delete;

    /// Creates the run and queues it; wakes waiting workers.
    virtual boost::asio::awaitable<void> async_submit(run_submission run) = 0;

    /// Claims the oldest claimable run for `worker` (a name unique among live workers) for
    /// `ttl`, waiting up to `wait` for one to be submitted (0: do not wait). nullopt if none.
    virtual boost::asio::awaitable<std::optional<run_claim>> async_claim(
        std::string worker, std::chrono::milliseconds ttl, std::chrono::milliseconds wait
    ) = 0;

    /// Renews the claim for `ttl` from now (updating claim.lease_expires_ms). False: the claim
    /// is lost (taken over or finished); stop driving the run.
    virtual boost::asio::awaitable<bool>
    async_heartbeat(run_claim& claim, std::chrono::milliseconds ttl) = 0;

    /// Ends the claim: the run is done. False if the claim was lost.
    virtual boost::asio::awaitable<bool> async_complete(run_claim claim) = 0;
    /// Ends the claim: the run failed (`reason` kept; the run's row is marked finished, error).
    virtual boost::asio::awaitable<bool> async_fail(run_claim claim, std::string reason) = 0;
    /// Gives the run back to the queue without counting the attempt.
    virtual boost::asio::awaitable<bool> async_release(run_claim claim) = 0;

    /// The run's queue entry, or nullopt if it was never submitted.
    virtual boost::asio::awaitable<std::optional<queue_entry>> async_find(std::string run_id) = 0;

protected:
    run_queue() = default;
};

} // namespace wafer::store
