// A run store in memory: the whole run_store interface, for tests of code that journals runs.
#pragma once

#include <wafer/store/run_store.hpp>

#include <memory>

namespace wafer::store {

/// Keeps runs and journals in memory; they die with the object. Behaves as sqlite_store does
/// (same errors, leases, ordering) except for durability.
///
/// Thread safety: every operation may be called concurrently from any thread (one mutex); each
/// completes on the caller's executor, without suspending.
class memory_store final : public run_store {
public:
    memory_store();
    ~memory_store() override;

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
    struct state;
    std::unique_ptr<state> state_;
};

} // namespace wafer::store
