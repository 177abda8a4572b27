#include <wafer/error.hpp>
#include <wafer/event_channel.hpp>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/error.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

namespace wafer {

namespace asio = boost::asio;

namespace {

[[noreturn]] void fail_cancelled() {
    diagnostics d;
    d.message = "event_channel: cancelled";
    throw error(make_error_code(errc::cancelled), std::move(d));
}

// The end-of-stream marker travels in-band, after every event sent before it: Asio's close()
// would discard buffered events.
const boost::system::error_code end_marker = asio::error::eof;

} // namespace

event_channel::event_channel(asio::any_io_executor ex, std::size_t capacity)
    : channel_(std::move(ex), capacity), capacity_(capacity) {}

asio::awaitable<bool> event_channel::async_send(event e) {
    if (!is_open()) {
        co_return false;
    }
    boost::system::error_code ec;
    try {
        auto [send_ec] = co_await channel_.async_send(
            boost::system::error_code{}, std::move(e), asio::as_tuple(asio::use_awaitable)
        );
        ec = send_ec;
    } catch (const boost::system::system_error& ex) {
        // throw_if_cancelled: cancellation was already requested when we got here.
        if (ex.code() != asio::error::operation_aborted) {
            throw;
        }
        fail_cancelled();
    }
    if (!ec) {
        co_return true;
    }
    if (closed_) {
        co_return false; // the consumer closed the channel while we waited
    }
    fail_cancelled();
}

asio::awaitable<std::optional<event>> event_channel::async_receive() {
    if (closed_ || drained_) {
        co_return std::nullopt;
    }
    boost::system::error_code ec;
    event e;
    try {
        // Named result: GCC 12 destroys a co_await temporary twice when it is used in a larger
        // expression (here a tuple assignment).
        auto result = co_await channel_.async_receive(asio::as_tuple(asio::use_awaitable));
        ec = std::get<0>(result);
        e = std::move(std::get<1>(result));
    } catch (const boost::system::system_error& ex) {
        if (ex.code() != asio::error::operation_aborted) {
            throw;
        }
        fail_cancelled();
    }
    if (!ec) {
        co_return std::optional<event>{std::move(e)};
    }
    if (ec == end_marker) {
        drained_ = true;
        co_return std::nullopt;
    }
    if (closed_) {
        co_return std::nullopt;
    }
    fail_cancelled();
}

asio::awaitable<void> event_channel::async_finish() {
    if (!is_open()) {
        co_return;
    }
    finished_ = true; // later sends are dropped, even while the marker waits for room
    boost::system::error_code ec;
    try {
        event marker; // named: see async_receive
        auto [send_ec] = co_await channel_.async_send(
            end_marker, std::move(marker), asio::as_tuple(asio::use_awaitable)
        );
        ec = send_ec;
    } catch (const boost::system::system_error& ex) {
        if (ex.code() != asio::error::operation_aborted) {
            throw;
        }
        fail_cancelled();
    }
    if (ec && !closed_) {
        fail_cancelled();
    }
}

void event_channel::close() {
    if (closed_) {
        return;
    }
    closed_ = true;
    // cancel() completes waiting senders and receivers (they see closed_); close() refuses the
    // rest. Asio's close() alone would leave blocked senders waiting forever.
    channel_.cancel();
    channel_.close();
}

} // namespace wafer
