#include <wafer/event_emitter.hpp>

#include <random>

namespace wafer {

std::string make_run_id() {
    thread_local std::mt19937_64 rng{std::random_device{}()};
    const std::uint64_t v = rng();
    static constexpr char digits[] = "0123456789abcdef";
    std::string out(16, '0');
    for (std::size_t i = 0; i < 16; ++i) {
        out[15 - i] = digits[(v >> (4 * i)) & 0xfu];
    }
    return out;
}

event_emitter::event_emitter(
    std::string run_id, std::string agent, callback cb, std::shared_ptr<event_channel> channel
)
    : run_id_(std::move(run_id)), agent_(std::move(agent)), callback_(std::move(cb)),
      channel_(std::move(channel)) {}

event event_emitter::stamp(event_data data) {
    event e;
    e.seq = ++seq_;
    e.run_id = run_id_;
    e.parent_run_id = parent_run_id_;
    e.agent = agent_;
    // Microseconds: what the JSON form carries, so events round-trip exactly.
    e.time =
        std::chrono::time_point_cast<std::chrono::microseconds>(std::chrono::system_clock::now());
    e.data = std::move(data);
    return e;
}

boost::asio::awaitable<std::uint64_t> event_emitter::async_emit(event_data data) {
    if (!observed()) {
        co_return ++seq_;
    }
    event e = stamp(std::move(data));
    const std::uint64_t seq = e.seq;
    if (callback_) {
        callback_(e);
    }
    if (channel_) {
        // Keep the channel alive across the wait even if set_channel() replaces it meanwhile.
        std::shared_ptr<event_channel> ch = channel_;
        const bool accepted = co_await ch->async_send(std::move(e));
        if (!accepted && channel_ == ch) {
            channel_.reset(); // closed by its consumer: stop paying for it
        }
    }
    co_return seq;
}

// The payload is a named variable, not a temporary in the co_await expression: GCC 12 may
// destroy such temporaries twice.
boost::asio::awaitable<void> delta_forwarder::on_reasoning_delta(std::string text) {
    event_data d = events::reasoning_delta{turn_, std::move(text)};
    co_await emitter_->async_emit(std::move(d));
}

boost::asio::awaitable<void> delta_forwarder::on_content_delta(std::string text) {
    event_data d = events::content_delta{turn_, std::move(text)};
    co_await emitter_->async_emit(std::move(d));
}

} // namespace wafer
