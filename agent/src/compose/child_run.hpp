// A durable child run: an agent run started by a parent (an agent::as_tool call under a
// journaled parent, a fan-out child with a store) that lives in the parent's run store, so that
// the parent's resume continues it from its journal instead of starting it again.
#pragma once

#include <wafer/agent.hpp>
#include <wafer/child_queue.hpp>
#include <wafer/resume.hpp>

#include <boost/asio/awaitable.hpp>

#include <chrono>
#include <functional>
#include <memory>
#include <string>

namespace wafer::detail {

/// Where a child run is journaled and whom it runs under.
struct child_journal {
    std::shared_ptr<store::run_store> store;
    /// The lease owner (the parent's; empty: a new one).
    std::string owner;
    /// A holder known to be gone (the resumed parent's previous owner): a child still leased
    /// to it is taken over at once.
    std::string previous_owner;
    std::chrono::milliseconds lease_ttl{30'000};
    std::function<reconcile_decision(const in_doubt_call&)> reconcile;
    /// Set: the child is submitted to this queue for any worker and waited for.
    std::shared_ptr<const child_queue> queue;
};

/// Runs child `ro.run_id` of `runner`: starts it journaled in `j.store` if the store has no
/// such run, reads the result of a finished one back from its journal (it never runs again),
/// and resumes any other from its journal (a crash, a cancellation, approvals). The events,
/// parent id and deadline of `ro` apply to the resumed child too.
///
/// Errors: as agent::async_run and agent::async_resume (store::errc::lease_held while another
/// live process drives the child).
///
/// Object lifetimes: `runner` must outlive the returned awaitable.
boost::asio::awaitable<run_result>
async_run_child(const agent& runner, std::string input, run_options ro, child_journal j);

} // namespace wafer::detail
