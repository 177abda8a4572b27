// Answering approvals while the run goes on (run_options::approvals).
#pragma once

#include <wafer/approval.hpp>

#include <memory>
#include <optional>
#include <string>

namespace wafer {

namespace detail {
class approval_port;
}

/// Where a person's decisions reach a running run. With run_options::approvals set, a run does
/// not stop at calls that need approval: it sends events::approval_requested for each, goes on
/// waiting (the rest of the step keeps running; the run's deadline and cancellation still
/// apply), and continues as decisions arrive here. The decisions are journaled like any input.
///
/// A decision counts for a call of the current step that needs approval and has none yet (it
/// may come before approval_requested, while critics still review the call); any other is
/// ignored, as is a second one for the same call. Decisions sent while no run uses the channel
/// wait for the next run that does. Edited arguments that are not a JSON object throw
/// std::invalid_argument.
///
/// One run at a time may use a channel: async_run throws std::invalid_argument for a channel
/// another run is using.
///
/// Thread safety: approve/deny may be called from any thread, concurrently.
class approval_channel {
public:
    approval_channel();
    ~approval_channel();
    approval_channel(const approval_channel&) = delete;
    approval_channel& operator=(const approval_channel&) = delete;

    void decide(std::string call_id, approval_decision decision);
    void approve(std::string call_id, std::optional<std::string> edited_arguments = {}) {
        decide(std::move(call_id), approval_decision::approve(std::move(edited_arguments)));
    }
    void deny(std::string call_id, std::string message = {}) {
        decide(std::move(call_id), approval_decision::deny(std::move(message)));
    }

private:
    friend class detail::approval_port;
    struct state;
    std::shared_ptr<state> state_;
};

} // namespace wafer
