// Approvals: tool calls that wait for a person (tool_options::needs_approval), what a paused
// run reports, and how a decision reaches a run journaled in a store.
#pragma once

#include <boost/asio/awaitable.hpp>

#include <cstddef>
#include <optional>
#include <string>
#include <vector>

namespace wafer {

namespace store {
class run_store;
}

/// A tool call that needs approval and has none yet.
struct pending_approval {
    std::string call_id;
    std::string tool;
    /// The arguments JSON text the model sent.
    std::string arguments;
    std::size_t turn = 0;
    /// The run the call belongs to: empty for the run's own calls; a child run's id (agent::
    /// as_tool) for a call its child stopped at. async_decide on the parent forwards to it.
    std::string run_id;

    friend bool operator==(const pending_approval&, const pending_approval&) = default;
};

/// A person's answer to a pending call.
struct approval_decision {
    bool approved = false;
    /// Approved with other arguments (a JSON object's text): the call runs with these, and the
    /// history records them as the call's arguments, so the model sees what ran.
    std::optional<std::string> arguments;
    /// Denied: why, for the model (may be empty).
    std::string message;

    static approval_decision approve(std::optional<std::string> edited_arguments = {}) {
        return {true, std::move(edited_arguments), {}};
    }
    static approval_decision deny(std::string message = {}) {
        return {false, std::nullopt, std::move(message)};
    }

    friend bool operator==(const approval_decision&, const approval_decision&) = default;
};

/// The calls run `run_id` waits for (stop_reason::awaiting_approval) that have no decision
/// recorded yet, in the model's order; empty if the run is not waiting.
/// Throws wafer::error: store::errc::run_not_found, store::errc::corrupt, store::errc::io.
boost::asio::awaitable<std::vector<pending_approval>>
async_pending_approvals(store::run_store& store, std::string run_id);

/// Records a decision on call `call_id` of a run that stopped with awaiting_approval, from any
/// process; agent::async_resume then continues the run with it. Calls left without a decision
/// stay pending (the resumed run stops at them again). The first decision on a call counts.
///
/// Errors (wafer::error; nothing is recorded): store::errc::run_not_found;
/// store::errc::lease_held while a process drives the run; errc::invalid_request if the run is
/// not waiting for approval, `call_id` is not one of its pending calls or already has a
/// decision (the detail lists the pending ones), or edited arguments are not a JSON object.
boost::asio::awaitable<void> async_decide(
    store::run_store& store, std::string run_id, std::string call_id, approval_decision decision
);

/// async_decide with approval_decision::approve(edited_arguments).
boost::asio::awaitable<void> async_approve(
    store::run_store& store,
    std::string run_id,
    std::string call_id,
    std::optional<std::string> edited_arguments = {}
);

/// async_decide with approval_decision::deny(message).
boost::asio::awaitable<void> async_deny(
    store::run_store& store, std::string run_id, std::string call_id, std::string message = {}
);

} // namespace wafer
