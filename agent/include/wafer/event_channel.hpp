// A bounded channel of events for pull consumers, with backpressure.
#pragma once

#include <wafer/event.hpp>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/experimental/channel.hpp>

#include <cstddef>
#include <optional>

namespace wafer {

/// A bounded queue of events between runs (producers, through event_emitter) and a consumer
/// that pulls with `co_await ch.async_receive()`.
///
/// Backpressure: when `capacity` events are waiting, async_send suspends until the consumer
/// takes one, so a slow consumer slows the runs feeding it, and a consumer that stops reading
/// stalls them. To detach without stalling, the consumer calls close(): waiting and later sends
/// complete at once and their events are dropped (the emitter then stops sending to it).
///
/// End of stream: the producer side calls async_finish() when no more events will come; the
/// consumer receives every event sent before it, then std::nullopt. close() ends the stream at
/// once and drops what was buffered.
///
/// Several runs may share one channel (events carry run_id and their own seq).
///
/// Thread safety: distinct objects: safe. Shared objects: unsafe; use it from one thread (or one
/// strand), the one running its executor.
class event_channel {
public:
    /// A channel on `ex` holding up to `capacity` waiting events (0: every send waits for a
    /// receive).
    explicit event_channel(boost::asio::any_io_executor ex, std::size_t capacity = 256);

    event_channel(const event_channel&) = delete;
    event_channel& operator=(const event_channel&) = delete;

    /// Queues an event, waiting while the channel is full. Returns false (event dropped) when
    /// the channel is closed or finished.
    ///
    /// Errors: wafer::error(errc::cancelled) if cancelled while waiting.
    /// Cancellation: terminal; the event is not queued.
    boost::asio::awaitable<bool> async_send(event e);

    /// Takes the next event; waits while there is none. std::nullopt once the stream ended
    /// (finished and drained, or closed).
    ///
    /// Errors: wafer::error(errc::cancelled) if cancelled while waiting.
    /// Cancellation: terminal; no event is lost.
    boost::asio::awaitable<std::optional<event>> async_receive();

    /// Producer side: marks the end of the stream after the events already sent (waits for room
    /// like async_send). Later sends are dropped. Does nothing if already finished or closed.
    boost::asio::awaitable<void> async_finish();

    /// Ends the stream now: buffered events are dropped, waiting senders get false, waiting
    /// receivers std::nullopt. Idempotent.
    void close();

    /// False after close() or async_finish().
    bool is_open() const noexcept { return !closed_ && !finished_; }
    std::size_t capacity() const noexcept { return capacity_; }
    boost::asio::any_io_executor get_executor() { return channel_.get_executor(); }

private:
    using channel_type = boost::asio::experimental::channel<void(boost::system::error_code, event)>;

    channel_type channel_;
    std::size_t capacity_;
    bool closed_ = false;
    bool finished_ = false; // producer sent the end marker
    bool drained_ = false;  // consumer received the end marker
};

} // namespace wafer
