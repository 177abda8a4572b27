// The thin coroutine that runs a run_machine: it does what the machine asks (events, model
// calls, tool dispatches, reviews) and reports every completion back to it.
#pragma once

#include <wafer/agent_config.hpp>
#include <wafer/run_result.hpp>

#include <boost/asio/awaitable.hpp>

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
boost::asio::awaitable<run_result> async_drive(
    const agent_config& cfg,
    const std::vector<agent>& critic_agents,
    run_options& options,
    run_setup setup
);

} // namespace wafer::detail
