// The thin coroutine that runs a run_machine: it does what the machine asks (events, model
// calls, tool dispatches, reviews) and reports every completion back to it.
#pragma once

#include <wafer/agent_config.hpp>
#include <wafer/resume.hpp>
#include <wafer/run_result.hpp>
#include <wafer/store/run_store.hpp>

#include <boost/asio/awaitable.hpp>

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "loop/run_machine.hpp"

namespace wafer {
class agent;
}

namespace wafer::detail {

/// Drives one run to its end. `cfg`, `critic_agents` (one per cfg.critics entry) and `options`
/// must outlive the returned awaitable. Operations the machine started are always finished
/// (or cancelled and finished) before it completes, whatever ends the run.
///
/// Errors: rethrows what an event callback throws, after cancelling and awaiting whatever was
/// in flight.
/// How a journaled run is driven: a fresh run creates its row; a resumed one replays the
/// journal it holds the lease of.
struct drive_journal {
    std::shared_ptr<store::run_store> store;
    /// The lease owner (a resumed run's lease is already held by it).
    std::string owner;
    bool create = true;
    /// For a fresh run's row.
    std::string scope;
    /// run_options::metadata, stored with a fresh run's setup.
    nlohmann::json metadata;
    std::chrono::milliseconds lease_ttl{30'000};
    /// A resumed run's journal, split at its follow-ups: the first segment continues the
    /// setup's input, each next one starts with `message`.
    struct segment {
        std::string message;
        std::vector<store::journal_entry> entries;
    };
    std::vector<segment> segments;
    /// A follow-up to start now (the last segment must have finished).
    std::optional<std::string> message;
    std::function<reconcile_decision(const in_doubt_call&)> reconcile;
    /// The lease owner before this resume (its children's leases are taken over from it).
    std::string previous_owner;
    /// Replay a finished run for its result only: nothing runs and nothing is written.
    bool read_back = false;
    /// The run's parent (run_info::parent_id of a fresh run's row).
    std::string parent_id;
};

boost::asio::awaitable<run_result> async_drive(
    const agent_config& cfg,
    const std::vector<agent>& critic_agents,
    run_options& options,
    run_setup setup,
    std::optional<drive_journal> journal = std::nullopt
);

} // namespace wafer::detail
