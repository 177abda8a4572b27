// The thin asynchronous side of admission control: requests wait on a timer until the sans-io
// core (api::admission_controller) admits them; one timer wakes the core at resets and deadlines.
#pragma once

#include <wafer/api/admission.hpp>
#include <wafer/api/usage.hpp>
#include <wafer/error.hpp>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/system/error_code.hpp>

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string_view>
#include <unordered_map>

namespace wafer::detail {

class admission_gate;

/// An admitted request's reservation. Settle it with the reply's usage; dropped unsettled, the
/// whole reservation counts (a stream abandoned midway was still processed).
class admission_ticket {
public:
    admission_ticket() = default;
    admission_ticket(std::weak_ptr<admission_gate> gate, api::admission_controller::ticket id)
        : gate_(std::move(gate)), id_(id) {}
    admission_ticket(admission_ticket&& o) noexcept
        : gate_(std::move(o.gate_)), id_(std::exchange(o.id_, 0)) {}
    admission_ticket& operator=(admission_ticket&& o) noexcept {
        if (this != &o) {
            settle_tokens(std::nullopt);
            gate_ = std::move(o.gate_);
            id_ = std::exchange(o.id_, 0);
        }
        return *this;
    }
    ~admission_ticket() { settle_tokens(std::nullopt); }

    /// The response head arrived: the server has counted the request.
    void acknowledge() noexcept;
    /// `used`: tokens the server reported; nullopt keeps the reservation. Idempotent.
    void settle_tokens(std::optional<std::int64_t> used) noexcept;
    void settle_usage(const std::optional<api::usage>& u) noexcept;

private:
    std::weak_ptr<admission_gate> gate_;
    api::admission_controller::ticket id_ = 0;
};

class admission_gate : public std::enable_shared_from_this<admission_gate> {
public:
    admission_gate(boost::asio::any_io_executor ex, const api::admission_config& cfg);

    /// Waits until the request may be sent. Errors: errc::admission_timeout (diag.detail says
    /// why), errc::cancelled. `waited` is the time spent queued.
    boost::asio::awaitable<boost::system::error_code> async_admit(
        const api::request_options& opts,
        std::int64_t tokens,
        admission_ticket& out,
        std::chrono::microseconds& waited,
        diagnostics& diag
    );

    /// A reply's headers (any status).
    template <class HeaderList>
    void observe(const HeaderList& headers) {
        core_.observe(headers, std::chrono::steady_clock::now());
        dispatch();
    }
    /// A 429 (after observe()).
    void rate_limited(
        std::string_view code,
        std::string_view message,
        std::optional<std::chrono::milliseconds> retry_after
    );
    void settle(api::admission_controller::ticket id, std::optional<std::int64_t> used);
    void acknowledge(api::admission_controller::ticket id) noexcept { core_.acknowledge(id); }

    const api::admission_controller& core() const noexcept { return core_; }

private:
    struct waiter {
        boost::asio::steady_timer signal;
        std::optional<api::admission_controller::outcome> result;
    };
    // Wakes the waiters the core decided and re-arms the timer for its next wakeup.
    void dispatch();

    boost::asio::any_io_executor ex_;
    api::admission_controller core_;
    boost::asio::steady_timer timer_;
    std::optional<std::chrono::steady_clock::time_point> armed_at_;
    std::unordered_map<api::admission_controller::ticket, waiter*> waiters_;
    api::admission_controller::ticket next_ = 1;
};

} // namespace wafer::detail
