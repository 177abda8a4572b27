// What a run offers the runs its tool calls start (agent::as_tool), handed to handlers as
// tools::call_context::host: the parent's run id, deadline and event sinks, and where the
// children's usage goes.
#pragma once

#include <wafer/agent_config.hpp>
#include <wafer/resume.hpp>
#include <wafer/run_result.hpp>
#include <wafer/tools/tool.hpp>

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "compose/child_run.hpp"

namespace wafer::detail {

/// Shared by the driver of the parent run and every child handler; a child that outlives its
/// parent (a cancelled call the dispatch stopped waiting for) finds it detached: events and
/// usage then go nowhere.
///
/// Thread safety: used on the parent run's executor only (children are async handlers).
class run_host final : public tools::call_host {
public:
    std::string run_id;
    std::string agent;
    /// The parent's deadline (none if unset).
    std::optional<std::chrono::steady_clock::time_point> deadline;

    /// The parent's options (their event sinks), or null once the parent is over.
    run_options* parent = nullptr;
    /// Wakes the parent's driver when a child ends (empty once detached).
    std::function<void()> wake;

    /// Children still running, and those that ended.
    std::size_t running = 0;
    std::vector<child_run> children;

    /// Set when the run is journaled: its children are journaled in the same store, under
    /// its lease owner, and go to its child queue if it has one (compose/child_run.hpp).
    std::optional<child_journal> journal;
    /// Children that stopped awaiting approval, by call id: the calls they wait for (with the
    /// child's run id), taken by the driver with the call's result.
    std::map<std::string, std::vector<pending_approval>> paused;

    /// Hands a child's event to the parent's callback (the channel is given to the child).
    void deliver(const event& e) const {
        if (parent != nullptr && parent->on_event) {
            parent->on_event(e);
        }
    }

    void child_started() { ++running; }

    void child_ended(child_run c) {
        --running;
        if (parent != nullptr) {
            children.push_back(std::move(c));
        }
        if (wake) {
            wake();
        }
    }

    void detach() {
        parent = nullptr;
        wake = {};
    }
};

} // namespace wafer::detail
