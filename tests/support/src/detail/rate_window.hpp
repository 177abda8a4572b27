// The fake server's rate limits (fake_server_config::limits), sans-io: fixed windows, Cerebras's
// header names and 429 bodies.
#pragma once

#include <wafer/testing/fake_server.hpp>

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace wafer::testing::detail {

class rate_window {
public:
    using clock = std::chrono::steady_clock;

    explicit rate_window(const rate_limits& limits) : limits_(limits) {}

    /// Admits a request reserving `reserve` tokens, or returns the 429 to send.
    std::optional<scripted_error> admit(std::int64_t reserve, clock::time_point now);
    /// Counts what an admitted request used.
    void charge(std::int64_t tokens) {
        minute_.tokens += tokens;
        counted_ += tokens;
    }
    /// The x-ratelimit-* headers as of `now`.
    std::vector<std::pair<std::string, std::string>> headers(clock::time_point now);

    std::size_t refused() const noexcept { return refused_; }
    std::int64_t counted() const noexcept { return counted_; }

private:
    struct window {
        std::optional<clock::time_point> start;
        std::int64_t tokens = 0;
        std::int64_t requests = 0;
    };
    static void roll(window& w, std::chrono::milliseconds length, clock::time_point now);
    static std::string
    seconds_left(const window& w, std::chrono::milliseconds length, clock::time_point now);

    rate_limits limits_;
    window minute_;
    window day_;
    std::size_t refused_ = 0;
    std::int64_t counted_ = 0;
};

} // namespace wafer::testing::detail
