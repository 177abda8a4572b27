// Numbers a run's events and delivers them to a callback and/or an event_channel.
#pragma once

#include <wafer/event.hpp>
#include <wafer/event_channel.hpp>
#include <wafer/model.hpp>

#include <boost/asio/awaitable.hpp>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

namespace wafer {

/// A fresh random run id (16 lowercase hex digits).
std::string make_run_id();

/// The event source of one run: assigns `seq` (1, 2, 3, … with no gaps), the run id, the agent
/// name and the time (microsecond precision) to each payload, then delivers the event
/// 1. to the callback, synchronously, in seq order (it must not block; exceptions it throws
///    propagate to the emitting run), then
/// 2. to the channel, awaiting room when it is full (backpressure: a slow pull consumer slows
///    the run). If the channel was closed by its consumer, the emitter drops the event and
///    stops sending to that channel; events still reach the callback.
/// With neither, events are numbered and discarded without being stamped.
///
/// Thread safety: distinct objects: safe. Shared objects: unsafe (one run, one coroutine).
class event_emitter {
public:
    using callback = std::function<void(const event&)>;

    /// An emitter for run `run_id` of agent `agent`.
    event_emitter(
        std::string run_id,
        std::string agent,
        callback cb = {},
        std::shared_ptr<event_channel> channel = {}
    );

    void set_callback(callback cb) { callback_ = std::move(cb); }
    /// Stamps every event with this event::parent_run_id (a child run's).
    void set_parent_run_id(std::string id) { parent_run_id_ = std::move(id); }
    void set_channel(std::shared_ptr<event_channel> channel) { channel_ = std::move(channel); }
    /// Whether anything receives the events. Callers skip building payloads (and streams skip
    /// copying deltas) when nothing does.
    bool observed() const noexcept { return callback_ || channel_; }

    /// The channel still attached (null once its consumer closed it).
    const std::shared_ptr<event_channel>& channel() const noexcept { return channel_; }

    /// Numbers and delivers one event; returns its seq.
    ///
    /// Errors: whatever the callback throws; wafer::error(errc::cancelled) if cancelled while
    /// waiting for room in the channel (the event has then reached the callback only).
    /// Cancellation: terminal, while waiting for the channel.
    boost::asio::awaitable<std::uint64_t> async_emit(event_data data);

    /// Numbers an event without delivering it (for callers with their own transport).
    event stamp(event_data data);

    /// The seq of the last event numbered (0 before the first).
    std::uint64_t last_seq() const noexcept { return seq_; }
    const std::string& run_id() const noexcept { return run_id_; }
    const std::string& agent() const noexcept { return agent_; }

private:
    std::string run_id_;
    std::string agent_;
    std::string parent_run_id_;
    callback callback_;
    std::shared_ptr<event_channel> channel_;
    std::uint64_t seq_ = 0;
};

/// A model_observer that emits reasoning_delta and content_delta events for one turn: pass it to
/// model::async_complete. Backpressure of the emitter's channel reaches the model stream.
///
/// Object lifetimes: the emitter must outlive the forwarder.
class delta_forwarder final : public model_observer {
public:
    delta_forwarder(event_emitter& emitter, std::size_t turn) : emitter_(&emitter), turn_(turn) {}

    boost::asio::awaitable<void> on_reasoning_delta(std::string text) override;
    boost::asio::awaitable<void> on_content_delta(std::string text) override;

private:
    event_emitter* emitter_;
    std::size_t turn_;
};

} // namespace wafer
