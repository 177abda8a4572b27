// The run queue on PostgreSQL: SKIP LOCKED claims, leases with fencing, LISTEN/NOTIFY wake-ups.
#pragma once

#include <wafer/store/postgres_store.hpp>
#include <wafer/store/run_queue.hpp>

#include <chrono>
#include <memory>

namespace wafer::store {

struct postgres_queue_options {
    /// How often a waiting claim looks at the queue without a notification (NOTIFY is not
    /// delivered while the listening connection is down, nor for claims that expire).
    std::chrono::milliseconds poll_interval{1'000};
};

/// run_queue in the postgres_store's database and schema (table run_queue, SCHEMA.md), on the
/// store's connections and strand. Claims use `FOR UPDATE SKIP LOCKED`, so concurrent workers
/// never wait for each other's rows and each run is claimed by one of them; the claim is the
/// run's lease in the store (owner WORKER#GENERATION), so the store fences a worker that lost
/// it. Submits and releases NOTIFY a channel that one connection per queue LISTENs on (opened
/// with the first waiting claim, reopened when it breaks); waiting claims also poll every
/// poll_interval. Every operation is one statement and safe to retry (claims and submits carry
/// a token), so connection loss is retried as in postgres_store.
///
/// The store must outlive the queue. Destroy the queue with no operation in flight; its
/// listening connection closes on the strand afterwards.
class postgres_queue final : public run_queue {
public:
    explicit postgres_queue(postgres_store& store, postgres_queue_options opts = {});
    ~postgres_queue() override;

    boost::asio::awaitable<void> async_submit(run_submission run) override;
    boost::asio::awaitable<std::optional<run_claim>> async_claim(
        std::string worker, std::chrono::milliseconds ttl, std::chrono::milliseconds wait
    ) override;
    boost::asio::awaitable<bool>
    async_heartbeat(run_claim& claim, std::chrono::milliseconds ttl) override;
    boost::asio::awaitable<bool> async_complete(run_claim claim) override;
    boost::asio::awaitable<bool> async_fail(run_claim claim, std::string reason) override;
    boost::asio::awaitable<bool> async_release(run_claim claim) override;
    boost::asio::awaitable<std::optional<queue_entry>> async_find(std::string run_id) override;

    struct state;

private:
    // Ends the claim: its entry goes to `to` ("done", "failed" or back to "queued").
    boost::asio::awaitable<bool> async_finish(run_claim claim, std::string to, std::string reason);

    std::shared_ptr<state> state_;
};

} // namespace wafer::store
