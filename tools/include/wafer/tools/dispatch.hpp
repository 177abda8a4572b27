// Options and results of dispatching one batch of tool calls (the calls of one assistant message).
#pragma once

#include <wafer/tools/tool.hpp>
#include <wafer/tools/tool_result.hpp>

#include <chrono>
#include <cstddef>
#include <functional>
#include <memory>
#include <optional>
#include <vector>

namespace wafer::tools {

/// Callbacks for "tool call started / finished" events. Both run on the dispatching coroutine's
/// executor, in the order things happen (starts follow emission order; finishes follow
/// completion order). They must not throw (an exception is swallowed) and must not block.
struct dispatch_observer {
    /// Call `index` (position in the request vector) is about to run. Not called for calls that
    /// never start (batch deadline or cancellation while waiting for their turn).
    std::function<void(std::size_t index)> on_start;
    /// Call `index` has its final result (including failures, timeouts and cancellation).
    std::function<void(std::size_t index, const tool_result& result)> on_finish;
    /// Running call `index` reported progress (call_context::report_progress). Handlers get a
    /// reporter only when this is set.
    std::function<void(std::size_t index, const call_progress& progress)> on_progress;
};

/// How many calls of one dispatch run at once when neither the registry
/// (registry_params::max_concurrent_calls) nor the dispatch (dispatch_options::max_concurrency)
/// says otherwise. A model may emit hundreds of calls in one message; each may be a shell.
inline constexpr std::size_t default_max_concurrent_calls = 16;

/// Options for one dispatch.
struct dispatch_options {
    /// At most this many calls run at once; calls start in emission order. 0: the registry's
    /// cap (registry_params::max_concurrent_calls, default_max_concurrent_calls unless set).
    std::size_t max_concurrency = 0;
    /// Deadline per call, for tools without tool_options::timeout. Unset: none. It runs from the
    /// call's start, so a blocking call queued behind busy pool threads spends it waiting.
    /// Inline handlers run to completion (they cannot be interrupted).
    std::optional<std::chrono::milliseconds> call_timeout;
    /// Deadline for the whole batch: calls still running or waiting when it expires get a
    /// timeout result. Unset: none.
    std::optional<std::chrono::milliseconds> batch_timeout;
    /// Output cap in bytes for tools without tool_options::output_cap (0: none).
    std::size_t output_cap = 64 * 1024;
    /// Maximum number of schema violations listed in an invalid-arguments result.
    std::size_t max_reported_violations = 8;
    /// Prefix of every call's call_context::idempotency_key (none if empty).
    std::string idempotency_scope;
    dispatch_observer observer;
    /// Passed to every handler as call_context::host (the agent sets its run's).
    std::shared_ptr<call_host> host;
};

/// When one call ran. `started`/`finished` are equal for calls that failed before running
/// (unknown tool, invalid arguments) and for calls that never started (batch timeout, cancel).
struct call_timing {
    std::chrono::steady_clock::time_point started;
    std::chrono::steady_clock::time_point finished;
    /// False if the call never started (it timed out or was cancelled while waiting its turn).
    bool ran = false;

    std::chrono::steady_clock::duration duration() const noexcept { return finished - started; }
};

/// The outcome of a dispatch: one result and one timing per request, in emission order.
struct dispatch_result {
    std::vector<tool_result> results;
    std::vector<call_timing> timings;
    /// True if the caller cancelled the dispatch (the unfinished calls are `cancelled`).
    bool cancelled = false;
    /// True if the batch deadline expired (the unfinished calls are `timeout`).
    bool batch_timed_out = false;
};

} // namespace wafer::tools
