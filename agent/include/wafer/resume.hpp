// Resuming a journaled run: what happens to calls whose outcome the journal does not know.
#pragma once

#include <wafer/approval_channel.hpp>
#include <wafer/event.hpp>
#include <wafer/event_channel.hpp>

#include <nlohmann/json.hpp>

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>

namespace wafer {

namespace store {
class run_store;
struct run_info;
} // namespace store
struct child_queue;

/// A tool call a journaled run handed to its tools and whose result the journal does not have:
/// the process stopped while it ran, or before it started (calls of a dispatch count as started
/// once the dispatch was journaled, so this errs on the side of "may have run").
struct in_doubt_call {
    std::string run_id;
    std::string call_id;
    std::string tool;
    /// The arguments JSON text the model sent.
    std::string arguments;
    /// The registered tool's tool_options::read_only (false for an unknown tool).
    bool read_only = false;
    /// What the handler saw as call_context::idempotency_key.
    std::string idempotency_key;
};

/// What to do with an in-doubt call.
struct reconcile_decision {
    enum class kind {
        /// Run the call again (an idempotent tool, or one that deduplicates by its key).
        run_again,
        /// Record `content` as its result (e.g. looked up in the external system).
        use_result,
        /// Tell the model the outcome is unknown and must be checked before any retry.
        mark_unknown,
    };
    kind action = kind::mark_unknown;
    std::string content;
    bool is_error = false;

    static reconcile_decision run_again() { return {kind::run_again, {}, false}; }
    static reconcile_decision result(std::string content, bool is_error = false) {
        return {kind::use_result, std::move(content), is_error};
    }
    static reconcile_decision unknown() { return {kind::mark_unknown, {}, false}; }
};

/// The run_options::metadata a journaled run was started with (null if none, or if the row's
/// setup does not parse).
nlohmann::json run_metadata(const store::run_info& run);

/// How agent::async_resume continues a run.
struct resume_options {
    /// The store the run was journaled in (required).
    std::shared_ptr<store::run_store> store;
    /// A new user message. Required to continue a run that finished (it then goes on as a new
    /// exchange in the same conversation); not allowed for a run that did not finish.
    std::optional<std::string> message;
    /// Decides for in-doubt calls of tools that are not read_only (read_only calls run again).
    /// Unset: mark_unknown, which gives the call a result with result_status::in_doubt saying
    /// the outcome is unknown after a restart and must be checked before any retry.
    std::function<reconcile_decision(const in_doubt_call&)> reconcile;
    /// Events of the resumed part (as run_options::on_event / events). What the journal
    /// replays is not sent again; seq starts at 1 in each process.
    std::function<void(const event&)> on_event;
    std::shared_ptr<event_channel> events;
    /// As run_options::lease_ttl.
    std::chrono::milliseconds lease_ttl{30'000};
    /// As run_options::approvals: pending calls are asked for again over it.
    std::shared_ptr<approval_channel> approvals;
    /// For a finished run without a message: return its result as its journal replays it
    /// (nothing runs, nothing is written, no lease is taken) instead of throwing. How a resumed
    /// parent reads back a child that finished before the parent recorded it.
    bool read_back = false;
    /// The lease owner to drive the run under (empty: a new one), as run_options::lease_owner.
    std::string lease_owner;
    /// A lease holder known to be gone (e.g. the previous owner of a resumed parent): its
    /// lease is taken over at once, as one of a dead process of this host is.
    std::string take_over_from;
    /// As run_options::parent_run_id, deadline and finish_events (a resumed child run).
    std::string parent_run_id;
    std::optional<std::chrono::steady_clock::time_point> deadline;
    bool finish_events = true;
    /// As run_options::children: where the run's agent::as_tool children run.
    std::shared_ptr<const child_queue> children;
};

} // namespace wafer
