// What the driver needs for tracing besides telemetry::run_trace: the observer that marks a
// traced request's first chunk, and wall-clock times of steady-clock instants.
#pragma once

#include <wafer/model.hpp>
#include <wafer/telemetry/tracer.hpp>

#include <boost/asio/awaitable.hpp>

#include <chrono>
#include <cstdint>
#include <string>

#include "loop/deadline.hpp"

namespace wafer::detail {

// Marks a traced request's first streamed piece (time to first chunk), then passes the pieces
// on to the run's own observer, if any.
class first_chunk_observer final : public model_observer {
public:
    first_chunk_observer(telemetry::run_trace& trace, std::uint32_t op, model_observer* next)
        : trace_(&trace), op_(op), next_(next) {}

    boost::asio::awaitable<void> on_reasoning_delta(std::string text) override {
        mark();
        if (next_) {
            co_await next_->on_reasoning_delta(std::move(text));
        }
    }
    boost::asio::awaitable<void> on_content_delta(std::string text) override {
        mark();
        if (next_) {
            co_await next_->on_content_delta(std::move(text));
        }
    }

private:
    void mark() {
        if (!seen_) {
            seen_ = true;
            trace_->first_chunk(op_, std::chrono::system_clock::now());
        }
    }
    telemetry::run_trace* trace_;
    std::uint32_t op_;
    model_observer* next_;
    bool seen_ = false;
};

// The wall-clock time of a steady-clock instant (spans carry Unix times).
inline std::chrono::system_clock::time_point wall_time(clock_type::time_point t) {
    return std::chrono::system_clock::now() -
           std::chrono::duration_cast<std::chrono::system_clock::duration>(clock_type::now() - t);
}

} // namespace wafer::detail
