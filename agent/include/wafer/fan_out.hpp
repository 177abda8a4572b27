// Fan-out: N agent runs at once under one concurrency cap and one token budget, awaited until
// all, the first, or a quorum of them succeeded.
#pragma once

#include <wafer/agent.hpp>
#include <wafer/child_queue.hpp>

#include <boost/asio/awaitable.hpp>

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

namespace wafer {

/// One child run of a fan-out.
struct fan_out_job {
    /// The agent to run (required). Must outlive the fan-out.
    const agent* runner = nullptr;
    std::string input;
    /// Its options. run_id: "<fan-out id>/<index>" when empty; parent_run_id: the fan-out's id
    /// when empty; deadline: the fan-out's when earlier.
    run_options options;
};

/// What the fan-out waits for.
enum class fan_out_wait {
    /// Every child ends (succeeded or not).
    all,
    /// The first child that succeeds; the others are cancelled (or never start).
    first,
    /// fan_out_options::quorum children succeed; the others are cancelled (or never start).
    quorum,
};

struct fan_out_options {
    fan_out_wait wait = fan_out_wait::all;
    /// With fan_out_wait::quorum: how many successes end the wait.
    std::size_t quorum = 1;
    /// Children running at once (0: all). Children start in input order.
    std::size_t max_concurrency = 0;
    /// Prompt + completion tokens all children may use together (their run_result::total_usage,
    /// counted live from their turn_finished events while they run). Once reached, no further
    /// child starts (status skipped); those running finish under their own limits.
    std::optional<std::int64_t> token_budget;
    /// A deadline for every child (as run_options::deadline).
    std::optional<std::chrono::milliseconds> timeout;
    /// What counts as success (default: stop_reason::completed).
    std::function<bool(const run_result&)> succeeded;
    /// Also called with every event of every child (after the job's own on_event).
    std::function<void(const event&)> on_event;
    /// The fan-out's id: the children's parent_run_id (generated when empty; required with
    /// `store`, so that the same fan-out after a crash finds its children).
    std::string run_id;
    /// Journal every child in this store (run ids "<run_id>/<index>" unless the job sets one,
    /// run_info::parent_id the fan-out's id). Calling async_fan_out again with the same run_id
    /// after a crash reads back the children that finished (they never run again), resumes
    /// the unfinished ones from their journals and starts the others.
    std::shared_ptr<store::run_store> store;
    /// For resumed children: as resume_options::reconcile.
    std::function<reconcile_decision(const in_doubt_call&)> reconcile;
    /// With `store`: each child is submitted to this queue for workers (wafer/child_queue.hpp;
    /// run_info::agent is its runner's name) instead of run here, and waited for; a fan-out
    /// called again with the same run_id waits for the children still queued or claimed. Such
    /// a child's events stay with its worker, so `token_budget` counts it once it ended, and
    /// `timeout` does not reach it; a child the fan-out cancels (it lost, or the caller
    /// cancelled) is no longer waited for but runs to its end on its worker.
    std::shared_ptr<const child_queue> children;
};

enum class fan_out_status {
    /// It ended and `succeeded` says yes.
    succeeded,
    /// It ended otherwise, or threw (see fan_out_child::error).
    failed,
    /// Cancelled by the fan-out: it lost (the wait was met) or the caller cancelled.
    cancelled,
    /// Never started: the wait was met, the budget was spent or the caller cancelled first.
    skipped,
};

std::string_view to_string(fan_out_status s) noexcept;

struct fan_out_child {
    fan_out_status status = fan_out_status::skipped;
    /// Set when it ran to an end (cancelled runs end too, with a valid history).
    std::optional<run_result> result;
    /// What the run threw (an event callback's exception), if it did.
    std::string error;
    /// Its run_result::total_usage (zero when skipped).
    api::usage usage;
};

struct fan_out_result {
    /// In input order.
    std::vector<fan_out_child> children;
    /// Indices of the children in the order they ended.
    std::vector<std::size_t> finish_order;
    std::size_t succeeded = 0;
    /// Whether the wait was met (fan_out_wait::all: every child succeeded).
    bool satisfied = false;
    /// The token budget stopped children from starting.
    bool budget_exhausted = false;
    /// The caller cancelled the fan-out.
    bool cancelled = false;
    /// Sum of the children's usage.
    api::usage usage;
    std::string run_id;
};

/// Runs `jobs` as child runs on the caller's executor and completes when the wait is met or
/// nothing is left running. It never leaves a child behind: losers are cancelled and awaited.
///
/// Errors: throws std::invalid_argument for a job without an agent or a quorum of 0 (before
/// anything starts). Children's failures are data (fan_out_child::status / error).
///
/// Cancellation: terminal cancellation from the caller's slot cancels every running child,
/// starts no other, and still completes normally once they ended (fan_out_result::cancelled).
///
/// Object lifetimes: the agents must outlive the returned awaitable; jobs and options are
/// moved into it.
///
/// Thread safety: as agent::async_run (one single-threaded executor or strand).
boost::asio::awaitable<fan_out_result>
async_fan_out(std::vector<fan_out_job> jobs, fan_out_options options);

} // namespace wafer
