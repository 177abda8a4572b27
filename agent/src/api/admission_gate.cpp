// The waiting side of admission control (see api/detail/admission_gate.hpp).
#include "api/detail/admission_gate.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmismatched-new-delete" // GCC bug 109224, as in client.cpp
#endif

namespace wafer::detail {

namespace asio = boost::asio;
using boost::system::error_code;
using steady = std::chrono::steady_clock;
using outcome = api::admission_controller::outcome;

void admission_ticket::settle_tokens(std::optional<std::int64_t> used) noexcept {
    if (id_ == 0) {
        return;
    }
    const auto id = std::exchange(id_, 0);
    if (auto g = gate_.lock()) {
        try {
            g->settle(id, used);
        } catch (...) { // settling must not throw out of a destructor; the window resets anyway
        }
    }
}

void admission_ticket::acknowledge() noexcept {
    if (id_ == 0) {
        return;
    }
    if (auto g = gate_.lock()) {
        g->acknowledge(id_);
    }
}

void admission_ticket::settle_usage(const std::optional<api::usage>& u) noexcept {
    if (!u) {
        settle_tokens(std::nullopt);
        return;
    }
    const std::int64_t total =
        u->total_tokens > 0 ? u->total_tokens : u->prompt_tokens + u->completion_tokens;
    settle_tokens(total);
}

admission_gate::admission_gate(asio::any_io_executor ex, const api::admission_config& cfg)
    : ex_(ex), core_(cfg), timer_(ex) {}

namespace {

std::string waited_text(std::chrono::microseconds waited) {
    return "waited " + std::to_string(waited.count() / 1000) +
           " ms in the admission queue; the rate-limit budget would not allow the request before "
           "the run's deadline";
}

} // namespace

asio::awaitable<error_code> admission_gate::async_admit(
    const api::request_options& opts,
    std::int64_t tokens,
    admission_ticket& out,
    std::chrono::microseconds& waited,
    diagnostics& diag
) {
    waited = std::chrono::microseconds(0);
    const auto id = next_++;
    const auto started = steady::now();
    const outcome first = core_.request(id, opts, tokens, started);
    if (first == outcome::admitted) {
        out = admission_ticket(weak_from_this(), id);
        dispatch(); // admitting may have decided nothing else, but keep the timer right
        co_return error_code{};
    }
    if (first == outcome::timed_out) {
        dispatch();
        diag.detail = waited_text(waited);
        co_return make_error_code(errc::admission_timeout);
    }
    waiter w{asio::steady_timer(ex_, steady::time_point::max()), std::nullopt};
    waiters_.emplace(id, &w);
    dispatch();
    // Woken by dispatch() (the timer cancelled) or by the caller's cancellation.
    if (!w.result) {
        auto [ec] = co_await w.signal.async_wait(asio::as_tuple(asio::use_awaitable));
        (void)ec;
    }
    waiters_.erase(id);
    waited = std::chrono::duration_cast<std::chrono::microseconds>(steady::now() - started);
    if (!w.result) {
        core_.cancel(id, steady::now());
        dispatch();
        diag.detail = "cancelled in the admission queue";
        co_return make_error_code(errc::cancelled);
    }
    if (*w.result == outcome::timed_out) {
        diag.detail = waited_text(waited);
        co_return make_error_code(errc::admission_timeout);
    }
    out = admission_ticket(weak_from_this(), id);
    co_return error_code{};
}

void admission_gate::rate_limited(
    std::string_view code,
    std::string_view message,
    std::optional<std::chrono::milliseconds> retry_after
) {
    core_.observe_rate_limited(
        api::admission_controller::classify_429(code, message), retry_after, steady::now()
    );
    dispatch();
}

void admission_gate::settle(
    api::admission_controller::ticket id, std::optional<std::int64_t> used
) {
    core_.settle(id, used, steady::now());
    dispatch();
}

void admission_gate::dispatch() {
    // Giving back an orphaned admission may admit others: loop until nothing is decided.
    for (auto ds = core_.take_decisions(); !ds.empty(); ds = core_.take_decisions()) {
        for (const auto& d : ds) {
            auto it = waiters_.find(d.id);
            if (it == waiters_.end()) {
                if (d.result == outcome::admitted) {
                    core_.cancel(d.id, steady::now());
                }
                continue;
            }
            it->second->result = d.result;
            it->second->signal.cancel();
        }
    }
    const auto next = core_.next_wakeup();
    if (next == armed_at_) {
        return;
    }
    armed_at_ = next;
    if (!next) {
        timer_.cancel();
        return;
    }
    timer_.expires_at(*next);
    timer_.async_wait([weak = weak_from_this()](const error_code& ec) {
        auto self = weak.lock();
        if (ec == asio::error::operation_aborted || !self) {
            return;
        }
        self->armed_at_.reset();
        self->core_.advance(steady::now());
        self->dispatch();
    });
}

} // namespace wafer::detail
