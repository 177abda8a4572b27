// Workers: processes that claim queued runs from a run_queue and drive them, on one machine or
// many (`wafer worker`, or a service's own pool).
#pragma once

#include <wafer/agent.hpp>
#include <wafer/conversation.hpp>
#include <wafer/resume.hpp>
#include <wafer/run_result.hpp>
#include <wafer/store/run_queue.hpp>
#include <wafer/store/run_store.hpp>

#include <boost/asio/awaitable.hpp>

#include <nlohmann/json.hpp>

#include <chrono>
#include <cstddef>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace wafer {

/// A run to queue for a worker: what async_run would have been given.
struct queued_run {
    /// Required: the run's id, unique in the store.
    std::string run_id;
    /// The user's task.
    std::string input;
    /// As run_options::history, scope and metadata (metadata is what a worker builds the
    /// run's agent from, e.g. the CLI's agent flags).
    std::optional<conversation> history;
    std::string scope;
    nlohmann::json metadata;
    /// agent_config::name of the agent meant to run it (run_info::agent).
    std::string agent;
    /// As run_submission::max_attempts.
    int max_attempts = 3;
};

/// The queue submission for `run`. Its row's setup is the one async_run writes, so that a
/// worker's agent::async_resume starts the run (its journal is empty) as async_run would have.
/// Throws std::invalid_argument for an empty run_id or max_attempts below 1.
store::run_submission make_submission(queued_run run);

/// How a worker drives one claimed run: resume `claim.run_id` with `options` (store, lease
/// owner, lease ttl, reconcile and read_back filled in by the worker) on an agent configured as
/// the one the run is meant for (e.g. from run_metadata() of the run's row), and return its
/// result. Runs on the worker's executor with a cancellation slot connected: the worker cancels
/// a run whose claim it lost, or that a drain gives back. Throwing is a failure of the run
/// (the queue records it), except store::errc::lease_held (another worker has it).
using run_driver = std::function<
    boost::asio::awaitable<run_result>(const store::run_claim& claim, resume_options options)>;

/// A driver for runs that all use `runner` (which must outlive the worker).
run_driver drive_with(const agent& runner);

/// A driver that picks, for each claimed run, the agent whose agent_config::name is the run's
/// run_info::agent (run_claim::agent): a pipeline's parent and the agents it calls as tools,
/// whose children the worker spreads over workers (worker_options::spread_children). A run
/// meant for no agent of `agents` fails with the reason. Throws std::invalid_argument for an
/// empty list or two agents of one name.
run_driver drive_with(std::vector<agent> agents);

/// How a run left a worker.
enum class worker_outcome {
    /// It ended (answer, limits, critics): queue entry done.
    completed,
    /// It stopped for approval (stop_reason::awaiting_approval): queue entry done; the run goes
    /// on with async_approve / async_deny and async_resume, from any process.
    paused,
    /// It failed (stop_reason::error, or the driver threw): queue entry failed with the reason.
    failed,
    /// A drain or stop cancelled it: given back to the queue (the attempt not counted), for
    /// another worker to resume from its journal.
    released,
    /// The claim was lost (its lease expired and another worker took the run over): this worker
    /// stopped driving it and wrote nothing more.
    lost,
};

std::string_view to_string(worker_outcome o) noexcept;

/// One run's end, as the worker saw it.
struct worker_report {
    std::string run_id;
    /// The claim's fencing token and attempt.
    std::string owner;
    int attempt = 0;
    worker_outcome outcome = worker_outcome::completed;
    /// The run's result (absent when the driver threw).
    std::optional<run_result> result;
    /// Why it failed (failed), or what happened (lost, a queue operation that failed).
    std::string reason;
    /// Whether the queue recorded the outcome (false: the store was unreachable or the claim
    /// already gone; the claim then lapses and the run is claimed again).
    bool recorded = false;
};

/// What a worker did, when async_run returns.
struct worker_stats {
    std::size_t claimed = 0;
    std::size_t completed = 0;
    std::size_t paused = 0;
    std::size_t failed = 0;
    std::size_t released = 0;
    std::size_t lost = 0;
};

struct worker_options {
    /// The worker's name, unique among live workers (empty: "<host>:<pid>:<random>").
    std::string name;
    /// Runs driven at once.
    std::size_t concurrency = 4;
    /// Each claim's lease; renewed every third of it while the run goes on.
    std::chrono::milliseconds lease_ttl{30'000};
    /// How long one claim waits for a submission (NOTIFY wakes it at once). A drain waits for
    /// the claim in flight, so this bounds how long an idle worker takes to drain.
    std::chrono::milliseconds claim_wait{1'000};
    /// After drain(): how long running runs may go on before they are cancelled and released.
    std::chrono::milliseconds drain_timeout{30'000};
    /// Pause after a queue operation failed (the store unreachable past its own retries).
    std::chrono::milliseconds retry_pause{1'000};
    /// As resume_options::reconcile, for every run (unset: in-doubt calls are marked unknown,
    /// never run twice).
    std::function<reconcile_decision(const in_doubt_call&)> reconcile;
    /// Submit the agent::as_tool children of the runs this worker drives to the queue, for any
    /// worker, instead of running them in this worker (wafer/child_queue.hpp). A run while it
    /// waits for a queued child does not count against `concurrency` (so the worker may go
    /// over it for a while once the child is back).
    bool spread_children = false;
    /// Claims a queued child may lose before it is failed as poison (with spread_children).
    int child_max_attempts = 3;
    /// Called on the worker's executor when a run is claimed and when it leaves the worker.
    std::function<void(const store::run_claim&)> on_claim;
    std::function<void(const worker_report&)> on_report;
};

/// Claims runs from a queue and drives them, up to worker_options::concurrency at once, until
/// drained or stopped. Each claimed run is resumed from its journal under the claim's fencing
/// token (a submitted run starts; a run another worker lost goes on where its journal ends:
/// finished tool calls never run again, in-doubt ones follow `reconcile`), its claim renewed
/// by heartbeat while it goes on, and its end recorded in the queue (worker_outcome).
///
/// A worker process that dies stops renewing its claims; once they expire, other workers take
/// the runs over (and the dead worker's writes, should it only have stalled, are refused by the
/// store). A run whose claims lapsed run_submission::max_attempts times is failed as poison.
///
/// Object lifetimes: the store, queue and driver are shared with the worker; the worker must
/// outlive async_run's awaitable.
///
/// Thread safety: async_run, drain and stop on one executor (a single-threaded io_context or
/// a strand): call drain and stop from that executor (e.g. a signal_set's handler).
class worker {
public:
    worker(
        std::shared_ptr<store::run_store> store,
        std::shared_ptr<store::run_queue> queue,
        run_driver driver,
        worker_options options = {}
    );
    ~worker();
    worker(const worker&) = delete;
    worker& operator=(const worker&) = delete;

    /// The name its claims carry (WORKER in "WORKER#GENERATION").
    const std::string& name() const noexcept;

    /// Claims and drives runs until drain() or stop() (or terminal cancellation from the
    /// caller's slot, which stops), then returns once every run it claimed has left it.
    /// Errors: none from runs (they are reports); queue failures are retried after retry_pause.
    boost::asio::awaitable<worker_stats> async_run();

    /// Stops claiming; running runs go on for up to drain_timeout, then are cancelled and
    /// released to the queue.
    void drain();
    /// Stops claiming and cancels running runs now; they are released to the queue.
    void stop();

    /// Runs being driven now.
    std::size_t running() const noexcept;

    struct state;

private:
    std::shared_ptr<state> state_;
};

} // namespace wafer
