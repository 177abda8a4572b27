// `wafer worker` and `wafer submit`: runs queued in a PostgreSQL store and driven by workers on
// any number of machines (wafer/worker.hpp).
#pragma once

#include <cstddef>
#include <string>
#include <vector>

#include "commands.hpp"

namespace wafer::cli {

/// `wafer worker --store postgresql://...`: claims runs and drives them as `wafer run` would,
/// with the agent flags each was submitted with, until SIGTERM or SIGINT (a drain: no new
/// claims, running runs get drain_timeout_s, then are given back to the queue).
struct worker_flags : model_flags, store_flags {
    std::size_t concurrency = 4;
    unsigned lease_ttl_s = 30;
    unsigned drain_timeout_s = 30;
    /// The worker's name in its claims (default: host, pid and a random part).
    std::string name;
    /// --max-runs: drain after this many runs left the worker (0: no limit).
    std::size_t max_runs = 0;
};

/// `wafer submit --store postgresql://... TASK` (or `--file FILE.jsonl`): queues runs for
/// workers, with this command line's agent flags.
struct submit_flags : run_flags {
    /// A JSONL file of runs: a task string, or {"id"?, "input", "model"?, "workspace"?,
    /// "max_turns"?} per line ("-": standard input).
    std::string file;
    /// --id: the run id of a single task (default: a new one).
    std::string id;
    /// Claims that may lapse (a worker crashed with the run) before it is failed as poison.
    int max_attempts = 3;
    /// Wait until every submitted run has left the queue, printing how each ended.
    bool wait = false;
};

int worker(const worker_flags& flags);
int submit(const submit_flags& flags);

} // namespace wafer::cli
