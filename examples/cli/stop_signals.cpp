#include "stop_signals.hpp"

#include <boost/asio/buffer.hpp>

#include <atomic>
#include <cerrno>
#include <csignal>
#include <fcntl.h>
#include <stdexcept>
#include <system_error>
#include <unistd.h>

namespace asio = boost::asio;

namespace wafer::cli {

namespace {

// Shared with the signal handler: only lock-free atomics and a file descriptor.
std::atomic<int> signals_seen{0};
std::atomic<int> notify_fd{-1};
static_assert(std::atomic<int>::is_always_lock_free);

struct sigaction previous_int;
struct sigaction previous_term;

extern "C" void on_stop_signal(int sig) {
    // Async-signal-safe only: atomics, write(2), _exit(2).
    if (signals_seen.fetch_add(1) > 0) {
        ::_exit(128 + sig);
    }
    const int saved_errno = errno;
    const int fd = notify_fd.load();
    if (fd >= 0) {
        const auto byte = static_cast<unsigned char>(sig);
        [[maybe_unused]] const ssize_t n = ::write(fd, &byte, 1);
    }
    errno = saved_errno;
}

} // namespace

stop_signals::stop_signals(asio::any_io_executor ex, std::function<void(int)> on_first)
    : pipe_(ex), on_first_(std::move(on_first)) {
    int fds[2];
    if (::pipe2(fds, O_CLOEXEC | O_NONBLOCK) != 0) {
        throw std::system_error(errno, std::generic_category(), "pipe2");
    }
    pipe_.assign(fds[0]);
    notify_fd.store(fds[1]);
    signals_seen.store(0);

    struct sigaction sa {};
    sa.sa_handler = on_stop_signal;
    sigemptyset(&sa.sa_mask);
    // Restart interrupted reads and writes: the first signal is handled by the io thread.
    sa.sa_flags = SA_RESTART;
    ::sigaction(SIGINT, &sa, &previous_int);
    ::sigaction(SIGTERM, &sa, &previous_term);
    wait();
}

stop_signals::~stop_signals() {
    ::sigaction(SIGINT, &previous_int, nullptr);
    ::sigaction(SIGTERM, &previous_term, nullptr);
    const int fd = notify_fd.exchange(-1);
    if (fd >= 0) {
        ::close(fd);
    }
}

void stop_signals::cancel() {
    boost::system::error_code ignored;
    pipe_.cancel(ignored);
}

void stop_signals::wait() {
    pipe_.async_read_some(
        asio::buffer(&signal_byte_, 1),
        [this](const boost::system::error_code& ec, std::size_t n) {
            // Cancelled (the run ended) or nothing to read: nothing left to do. Later signals
            // never reach here: the handler exits.
            if (!ec && n == 1) {
                on_first_(signal_byte_);
            }
        }
    );
}

} // namespace wafer::cli
