// One deadline value type for the loop, and the race of an awaitable against a deadline.
#pragma once

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/deferred.hpp>
#include <boost/asio/experimental/parallel_group.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <algorithm>
#include <chrono>
#include <exception>
#include <optional>

namespace wafer::detail {

using clock_type = std::chrono::steady_clock;

/// A point in time by which something must be done, or none. Compared at the clock's full
/// precision; converted to milliseconds (for millisecond APIs such as tool batches) rounding
/// up, since a floor would end a batch up to 1 ms early and let the next step start.
class deadline {
public:
    deadline() = default;
    explicit deadline(clock_type::time_point at) : at_(at) {}
    /// `now + d`, or none without `d`.
    static deadline after(clock_type::time_point now, std::optional<std::chrono::milliseconds> d) {
        return d ? deadline(now + *d) : deadline();
    }

    bool is_set() const noexcept { return at_.has_value(); }
    explicit operator bool() const noexcept { return is_set(); }
    clock_type::time_point at() const noexcept { return *at_; }

    bool passed(clock_type::time_point now) const noexcept { return at_ && now >= *at_; }

    /// What is left, rounded up to whole milliseconds (never negative); nullopt without a deadline.
    std::optional<std::chrono::milliseconds> left(clock_type::time_point now) const {
        if (!at_) {
            return std::nullopt;
        }
        return std::max(
            std::chrono::ceil<std::chrono::milliseconds>(*at_ - now), std::chrono::milliseconds(0)
        );
    }

    /// The earlier of two deadlines (a missing one never wins).
    friend deadline earliest(const deadline& a, const deadline& b) {
        if (!a.at_) {
            return b;
        }
        if (!b.at_) {
            return a;
        }
        return deadline(std::min(*a.at_, *b.at_));
    }

    /// `d` capped by what is left of this deadline.
    std::optional<std::chrono::milliseconds>
    cap(std::optional<std::chrono::milliseconds> d, clock_type::time_point now) const {
        auto l = left(now);
        if (!l) {
            return d;
        }
        return d ? std::min(*d, *l) : *l;
    }

    friend bool operator==(const deadline&, const deadline&) = default;

private:
    std::optional<clock_type::time_point> at_;
};

/// Completes with the value of `op`, or with nullopt if `until` passes first (then `op` has been
/// cancelled and its outcome is dropped). Rethrows what `op` throws. parallel_group with
/// wait_for_one avoids the `||` pitfall where an error on one side becomes a delayed timeout.
template <class T>
boost::asio::awaitable<std::optional<T>>
async_with_deadline(boost::asio::awaitable<T> op, clock_type::time_point until) {
    namespace asio = boost::asio;
    auto ex = co_await asio::this_coro::executor;
    asio::steady_timer timer(ex, until);
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
