// Races an awaitable against a deadline (Boost 1.81 has no cancel_after). parallel_group with
// wait_for_one avoids the `||` pitfall where an error on one side turns into a delayed timeout.
#pragma once

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/deferred.hpp>
#include <boost/asio/experimental/parallel_group.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <chrono>
#include <exception>
#include <optional>

namespace wafer::detail {

/// Completes with the value of `op`, or with nullopt if `deadline` passes first (then `op` has
/// been cancelled and its outcome is dropped). Rethrows what `op` throws.
template <class T>
boost::asio::awaitable<std::optional<T>>
async_with_deadline(boost::asio::awaitable<T> op, std::chrono::steady_clock::time_point deadline) {
    namespace asio = boost::asio;
    auto ex = co_await asio::this_coro::executor;
    asio::steady_timer timer(ex, deadline);
    auto [order, failure, value, timer_ec] =
        co_await asio::experimental::make_parallel_group(
            asio::co_spawn(ex, std::move(op), asio::deferred), timer.async_wait(asio::deferred)
        )
            .async_wait(asio::experimental::wait_for_one(), asio::use_awaitable);
    (void)timer_ec;
    if (order[0] == 1) {
        co_return std::nullopt;
    }
    if (failure) {
        std::rethrow_exception(failure);
    }
    co_return std::optional<T>(std::move(value));
}

} // namespace wafer::detail
