// What a worker records in the queue for a run that left it: decided without I/O from how the
// run ended, so that the mapping is tested on its own (unit/worker).
#pragma once

#include <wafer/run_result.hpp>
#include <wafer/worker.hpp>

#include <boost/system/error_code.hpp>

#include <optional>
#include <string>

namespace wafer::detail {

/// How a run left the worker's hands.
struct run_end {
    /// The driver's result; nullopt when it threw.
    std::optional<run_result> result;
    /// What it threw (with `thrown_text`, its detail or message).
    boost::system::error_code thrown;
    std::string thrown_text;
    /// A heartbeat found the claim gone (another worker took the run over).
    bool claim_lost = false;
    /// A drain or stop cancelled it.
    bool given_back = false;
};

struct queue_decision {
    worker_outcome outcome = worker_outcome::completed;
    std::string reason;
};

/// The queue operation for `end`: complete (completed, paused), fail (failed, with the
/// reason), release (released) or nothing (lost).
queue_decision decide_outcome(const run_end& end);

} // namespace wafer::detail
