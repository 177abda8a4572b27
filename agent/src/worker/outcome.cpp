#include "worker/outcome.hpp"

#include <wafer/store/error.hpp>

namespace wafer::detail {

queue_decision decide_outcome(const run_end& end) {
    if (end.claim_lost) {
        return {
            worker_outcome::lost,
            "the claim was lost: its lease expired and another worker "
            "took the run over"};
    }
    if (!end.result) {
        if (end.thrown == store::errc::lease_held) {
            return {worker_outcome::lost, end.thrown_text};
        }
        // Given back, or the store out of reach: another worker (or this one, later) resumes
        // it from its journal; there is nothing wrong with the run itself.
        if (end.given_back || end.thrown == store::errc::unavailable) {
            return {worker_outcome::released, end.thrown_text};
        }
        return {
            worker_outcome::failed,
            end.thrown_text.empty() ? "the run's driver failed" : end.thrown_text};
    }
    const run_result& r = *end.result;
    switch (r.stop_reason) {
    case stop_reason::cancelled:
        return {worker_outcome::released, {}};
    case stop_reason::awaiting_approval:
        return {worker_outcome::paused, {}};
    case stop_reason::error: {
        std::string why = "the run ended with an error";
        if (r.error) {
            const std::string& detail = r.error->diagnostics.detail;
            why += ": " + (detail.empty() ? r.error->code.message() : detail);
        }
        return {worker_outcome::failed, std::move(why)};
    }
    default:
        return {worker_outcome::completed, {}};
    }
}

} // namespace wafer::detail
