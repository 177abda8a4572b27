// SIGINT and SIGTERM for the wafer CLI: the first asks the run to stop (it reports what it
// has), a second one ends the process at once, from the signal handler itself, so it works
// even when the thread that would handle the first is stuck (a blocked write to a full pipe, a
// handler that does not return).
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>

#include <functional>

namespace wafer::cli {

/// Installs the handlers for SIGINT and SIGTERM for as long as it lives (one at a time per
/// process). The first signal calls `on_first` on `ex` (through a self-pipe: the handler only
/// writes one byte); any later one calls _exit(128 + signal number) in the handler: 130 for
/// SIGINT, 143 for SIGTERM. The destructor restores the previous dispositions.
///
/// Thread safety: construct and destroy on one thread; signals may arrive on any thread.
class stop_signals {
public:
    stop_signals(boost::asio::any_io_executor ex, std::function<void(int signal)> on_first);
    ~stop_signals();
    stop_signals(const stop_signals&) = delete;
    stop_signals& operator=(const stop_signals&) = delete;

    /// Stops waiting for the first signal (the handlers stay installed until destruction).
    void cancel();

private:
    void wait();

    boost::asio::posix::stream_descriptor pipe_;
    std::function<void(int)> on_first_;
    unsigned char signal_byte_ = 0;
};

} // namespace wafer::cli
