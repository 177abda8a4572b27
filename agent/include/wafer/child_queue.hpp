// Child runs spread over workers: a journaled run's agent::as_tool children submitted to a run
// queue for any worker, instead of run in the parent's process.
#pragma once

#include <chrono>
#include <functional>
#include <memory>

namespace wafer {

namespace store {
class run_queue;
}

/// Where a journaled run's durable children (agent::as_tool calls) run: each is submitted to
/// `queue` with the run id "<parent run id>/<call id>", run_info::agent the child agent's name
/// and the parent's id, so that any worker claims it (its driver picks the agent by name:
/// drive_with(std::vector<agent>)). The parent's call waits until the child finishes and reads
/// its result back from the child's journal; a crash of either side resumes from the journals
/// (a finished child is never run again, a child still queued or claimed is waited for again).
///
/// Differences from a child run in the parent's process: the child's events stay with its
/// worker (they do not reach the parent's observers), the parent's deadline does not reach it
/// (the child's own limits apply, as its worker's agent has them), and cancelling the parent's
/// call stops the wait, not the child. A child that stops for approval is continued in the
/// parent's process once the parent is resumed (agent::async_resume), as a child of a parent
/// without a queue is. A child whose claims all lapsed (poison, run_submission::max_attempts)
/// is a failed call.
///
/// wafer::worker sets this for the runs it drives when worker_options::spread_children is on;
/// fan_out_options::children sends a fan-out's children the same way.
struct child_queue {
    std::shared_ptr<store::run_queue> queue;
    /// Claims of a child that may lapse before it is failed as poison.
    int max_attempts = 3;
    /// How often a waiting parent looks whether its child finished, at most (it starts at a
    /// tenth of this and backs off).
    std::chrono::milliseconds poll{200};
    /// Called on the parent's executor with +1 when one of its calls starts waiting for a
    /// queued child and -1 when it stops: a worker does not count a waiting run against its
    /// concurrency, so that parents cannot hold every slot while their children wait for one.
    std::function<void(int)> on_wait;
};

} // namespace wafer
