// The connection pool's decisions, without I/O: which connection a request gets, when to open
// one, who waits, and how long to back off after failed connects. The coroutine layer
// (client.cpp) does what it says and reports back.
#pragma once

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <map>

namespace wafer::store::postgres {

struct pool_params {
    std::size_t max_size = 4;
    std::chrono::milliseconds backoff_initial{50};
    std::chrono::milliseconds backoff_max{1'000};
};

class pool_state {
public:
    using slot_id = std::uint64_t;
    enum class slot_state { idle, busy, connecting };

    /// What a request for a connection should do.
    struct decision {
        enum kind {
            /// Use connection `slot` (now busy).
            use,
            /// Open a new connection for slot `slot` (now connecting); report opened/open_failed.
            open,
            /// Wait: every slot is busy or connecting. Call add_waiter and retry when woken.
            wait,
        } what = wait;
        slot_id slot = 0;
    };

    explicit pool_state(pool_params p) : params_(p) {
        params_.max_size = std::max<std::size_t>(params_.max_size, 1);
    }

    decision acquire() {
        for (auto& [id, st] : slots_) {
            if (st == slot_state::idle) {
                st = slot_state::busy;
                return {decision::use, id};
            }
        }
        if (slots_.size() < params_.max_size) {
            const slot_id id = next_++;
            slots_.emplace(id, slot_state::connecting);
            return {decision::open, id};
        }
        return {decision::wait, 0};
    }

    /// A connect for `slot` succeeded: the requester that opened it uses it (busy).
    void opened(slot_id slot) {
        slots_[slot] = slot_state::busy;
        failures_ = 0;
    }

    /// A connect for `slot` failed: the slot is gone. Returns whether a waiter should be woken
    /// (it may try to connect in its turn).
    bool open_failed(slot_id slot) {
        slots_.erase(slot);
        ++failures_;
        return !waiters_.empty();
    }

    /// The requester is done with `slot`: idle again if `reusable`, else dropped (broken). Returns
    /// whether a waiter should be woken.
    bool release(slot_id slot, bool reusable) {
        if (reusable) {
            slots_[slot] = slot_state::idle;
        } else {
            slots_.erase(slot);
        }
        return !waiters_.empty();
    }

    /// How long to wait before the next connect: zero after a success, then doubling from
    /// backoff_initial up to backoff_max with each consecutive failure.
    std::chrono::milliseconds backoff() const {
        if (failures_ == 0) {
            return std::chrono::milliseconds(0);
        }
        auto d = params_.backoff_initial;
        for (unsigned i = 1; i < failures_ && d < params_.backoff_max; ++i) {
            d *= 2;
        }
        return std::min(d, params_.backoff_max);
    }

    unsigned consecutive_failures() const noexcept { return failures_; }

    /// Waiters are woken first come, first served; a waiter's token is whatever the I/O layer
    /// uses to wake it.
    using waiter_token = void*;
    void add_waiter(waiter_token w) { waiters_.push_back(w); }
    void remove_waiter(waiter_token w) {
        waiters_.erase(std::remove(waiters_.begin(), waiters_.end(), w), waiters_.end());
    }
    /// The waiter to wake next (removed from the queue), or nullptr.
    waiter_token next_waiter() {
        if (waiters_.empty()) {
            return nullptr;
        }
        auto w = waiters_.front();
        waiters_.pop_front();
        return w;
    }

    std::size_t size() const noexcept { return slots_.size(); }
    std::size_t count(slot_state s) const {
        return static_cast<std::size_t>(std::count_if(slots_.begin(), slots_.end(), [s](auto& e) {
            return e.second == s;
        }));
    }
    std::size_t waiters() const noexcept { return waiters_.size(); }

private:
    pool_params params_;
    std::map<slot_id, slot_state> slots_;
    std::deque<waiter_token> waiters_;
    slot_id next_ = 1;
    unsigned failures_ = 0;
};

} // namespace wafer::store::postgres
