// Many runs of one agent at once, counted: the workload of the admission tests
// (tests/integration/test_admission.cpp) and benchmark (bench/admission_bench.cpp).
#pragma once

#include <wafer/agent.hpp>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <memory>
#include <string>

namespace wafer::testing {

/// What the runs ended with.
struct runs_outcome {
    std::size_t completed = 0;
    std::size_t failed = 0;
    std::size_t rate_limited = 0; ///< failed runs whose error was a 429
    std::size_t queued_runs = 0;  ///< runs with a non-zero queue wait
    std::chrono::microseconds max_queue_wait{0};
    std::int64_t tokens = 0; ///< total_tokens of the completed runs
    std::string first_error;
};

/// Starts `runs` runs of `a` at once (input "task <i>: reply done", run ids "run-<i>") and
/// completes when all have finished.
inline boost::asio::awaitable<void> run_concurrently(
    std::shared_ptr<const agent> a, std::shared_ptr<runs_outcome> out, std::size_t runs
) {
    namespace asio = boost::asio;
    auto ex = co_await asio::this_coro::executor;
    asio::steady_timer done(ex, std::chrono::steady_clock::time_point::max());
    auto remaining = std::make_shared<std::size_t>(runs);
    for (std::size_t i = 0; i < runs; ++i) {
        run_options o;
        o.run_id = "run-" + std::to_string(i);
        asio::co_spawn(
            ex,
            a->async_run("task " + std::to_string(i) + ": reply done", std::move(o)),
            [a, out, remaining, &done](std::exception_ptr e, run_result r) {
                if (e || r.stop_reason != stop_reason::completed) {
                    ++out->failed;
                    if (r.error && r.error->diagnostics.http_status == 429) {
                        ++out->rate_limited;
                    }
                    if (out->first_error.empty() && r.error) {
                        out->first_error =
                            r.error->code.message() + ": " + r.error->diagnostics.to_string();
                    }
                } else {
                    ++out->completed;
                    out->tokens += r.usage.total_tokens;
                }
                if (r.queue_wait.count() > 0) {
                    ++out->queued_runs;
                }
                out->max_queue_wait = std::max(out->max_queue_wait, r.queue_wait);
                if (--*remaining == 0) {
                    done.cancel();
                }
            }
        );
    }
    co_await done.async_wait(asio::as_tuple(asio::use_awaitable));
}

} // namespace wafer::testing
