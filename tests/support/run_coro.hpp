// run_coro: run one coroutine on an io_context with a wall-clock deadline, for tests.
#pragma once

#include <boost/asio/awaitable.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>

#include <doctest/doctest.h>

#include <chrono>
#include <exception>
#include <memory>
#include <optional>
#include <type_traits>
#include <utility>
#include <variant>

namespace wafer::testing {

/// Spawns `aw` on `ioc` and runs the context until the coroutine finishes, then returns its
/// value or rethrows its exception in the caller.
///
/// Other work on the context (a fake_server's acceptor and connections) keeps running while the
/// coroutine runs and stays queued afterwards; a later run_coro on the same context resumes it.
/// The context is restarted first if it was stopped.
///
/// If the coroutine is not done after `deadline`, the context is stopped and the test fails
/// (doctest FAIL) with a clear message; the abandoned coroutine is destroyed with the context.
/// Do not use REQUIRE inside the coroutine: let it return values and check them here.
template <class T>
T run_coro(
    boost::asio::io_context& ioc,
    boost::asio::awaitable<T> aw,
    std::chrono::seconds deadline = std::chrono::seconds(10)
) {
    using value_holder = std::conditional_t<std::is_void_v<T>, std::monostate, std::optional<T>>;
    struct state {
        bool done = false;
        std::exception_ptr error;
        value_holder value;
    };
    // Shared with the completion handler, which may outlive this call if the deadline expires.
    auto st = std::make_shared<state>();
    if (ioc.stopped()) {
        ioc.restart();
    }
    boost::asio::co_spawn(ioc, std::move(aw), [st](std::exception_ptr e, auto&&... v) {
        st->error = std::move(e);
        if constexpr (sizeof...(v) > 0) {
            if (!st->error) {
                st->value.emplace(std::forward<decltype(v)>(v)...);
            }
        }
        st->done = true;
    });

    const auto end = std::chrono::steady_clock::now() + deadline;
    bool out_of_work = false;
    while (!st->done) {
        const auto now = std::chrono::steady_clock::now();
        if (now >= end) {
            break;
        }
        ioc.run_one_for(end - now);
        if (!st->done && ioc.stopped()) {
            out_of_work = true; // nothing left that could ever finish the coroutine
            break;
        }
    }
    if (!st->done) {
        ioc.stop();
        if (out_of_work) {
            FAIL("run_coro: the io_context ran out of work before the coroutine finished");
        }
        FAIL("run_coro: the coroutine did not finish within " << deadline.count() << " s");
    }
    if (st->error) {
        std::rethrow_exception(st->error);
    }
    if constexpr (!std::is_void_v<T>) {
        return std::move(*st->value);
    }
}

} // namespace wafer::testing
