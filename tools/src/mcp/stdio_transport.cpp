// Four loops around the child process: stdout to the client, stderr drained into a tail kept
// for errors, the exit watched, and writes queued in order.
#include "mcp/stdio_transport.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <array>
#include <csignal>
#include <utility>

#include "mcp/text.hpp"

namespace wafer::tools::mcp::detail {

namespace asio = boost::asio;

namespace {

constexpr std::size_t stderr_tail_bytes = 2048;
constexpr std::size_t stderr_shown_bytes = 400;
constexpr std::size_t max_stderr_line = 64U << 10U;

} // namespace

struct stdio_transport::state {
    state(
        const asio::any_io_executor& executor,
        const spawn_request& request,
        std::function<void(std::string_view)> stderr_handler
    )
        : ex(executor), proc(executor, request), on_stderr(std::move(stderr_handler)),
          eof_signal(executor, asio::steady_timer::time_point::max()) {}

    asio::any_io_executor ex;
    stdio_process proc;
    std::function<void(std::string_view)> on_stderr;
    std::weak_ptr<transport_events> events;

    // Cancelled when stdout ends, so that the exit watcher need not wait.
    asio::steady_timer eof_signal;
    bool stdout_ended = false;
    bool closing = false;
    bool ended = false;

    std::string write_buf;
    bool writing = false;

    std::string stderr_tail;
    std::string stderr_line;

    std::string stderr_excerpt() const {
        if (stderr_tail.empty()) {
            return {};
        }
        std::string_view t(stderr_tail);
        while (!t.empty() && (t.back() == '\n' || t.back() == '\r')) {
            t.remove_suffix(1);
        }
        const bool cut = t.size() > stderr_shown_bytes;
        if (cut) {
            t = t.substr(t.size() - stderr_shown_bytes);
        }
        return std::string("; its stderr ended with: ") + (cut ? "..." : "") + escaped(t);
    }

    // The end of the connection as the process's state explains it.
    std::string explain(std::string_view what) const {
        std::string d(what);
        if (proc.exit_status()) {
            d += ": the server " + stdio_process::describe_status(*proc.exit_status());
        }
        return d + stderr_excerpt();
    }

    void end(const std::string& why) {
        if (ended) {
            return;
        }
        ended = true;
        if (auto ev = events.lock()) {
            ev->on_end(why);
        }
    }

    static asio::awaitable<void> write_loop(std::shared_ptr<state> self) {
        // co_spawn runs a coroutine inline up to its first suspension: wait for the running
        // handler to end, so that what else it sends (the next calls of every request its
        // read answered) goes out in the same write.
        co_await asio::post(self->ex, asio::use_awaitable);
        while (!self->write_buf.empty()) {
            const std::string chunk = std::exchange(self->write_buf, {});
            try {
                co_await self->proc.async_write(chunk);
            } catch (const boost::system::system_error& e) {
                self->write_buf.clear();
                self->writing = false;
                self->end(self->explain(
                    std::string("cannot write to the server (") + e.code().message() + ")"
                ));
                co_return;
            }
        }
        self->writing = false;
    }

    static asio::awaitable<void> read_loop(std::shared_ptr<state> self) {
        std::array<char, 65536> buf{};
        std::string why = "the server closed its stdout";
        for (;;) {
            std::size_t n = 0;
            try {
                n = co_await self->proc.async_read_out(buf.data(), buf.size());
            } catch (const boost::system::system_error& e) {
                why =
                    std::string("reading the server's stdout failed (") + e.code().message() + ")";
                break;
            }
            if (n == 0) {
                break;
            }
            if (auto ev = self->events.lock()) {
                ev->on_bytes(std::string_view(buf.data(), n));
            }
        }
        self->stdout_ended = true;
        self->eof_signal.cancel();
        // Its exit status explains the end better than the closed pipe does.
        if (!self->closing) {
            co_await self->proc.async_wait_exit_for(std::chrono::milliseconds(500));
        }
        self->end(self->explain(why));
    }

    static asio::awaitable<void> stderr_loop(std::shared_ptr<state> self) {
        std::array<char, 16384> buf{};
        for (;;) {
            std::size_t n = 0;
            try {
                n = co_await self->proc.async_read_err(buf.data(), buf.size());
            } catch (const boost::system::system_error&) {
                break;
            }
            if (n == 0) {
                break;
            }
            const std::string_view chunk(buf.data(), n);
            self->stderr_tail += chunk;
            if (self->stderr_tail.size() > stderr_tail_bytes) {
                self->stderr_tail.erase(0, self->stderr_tail.size() - stderr_tail_bytes);
            }
            for (const char c : chunk) {
                if (c != '\n') {
                    if (self->stderr_line.size() < max_stderr_line) {
                        self->stderr_line += c;
                    }
                    continue;
                }
                if (!self->stderr_line.empty() && self->stderr_line.back() == '\r') {
                    self->stderr_line.pop_back();
                }
                if (self->on_stderr) {
                    self->on_stderr(self->stderr_line);
                }
                self->stderr_line.clear();
            }
        }
        if (!self->stderr_line.empty() && self->on_stderr) {
            self->on_stderr(self->stderr_line);
        }
    }

    // A server may exit while a child of its own keeps stdout open: the exit ends the
    // connection after a moment for the last output to be read.
    static asio::awaitable<void> exit_loop(std::shared_ptr<state> self) {
        try {
            co_await self->proc.async_wait_exit();
        } catch (const boost::system::system_error&) {
            co_return;
        }
        if (!self->stdout_ended) {
            self->eof_signal.expires_after(std::chrono::seconds(1));
            boost::system::error_code ec;
            co_await self->eof_signal.async_wait(asio::redirect_error(asio::use_awaitable, ec));
        }
        self->end(self->explain("the connection ended"));
    }
};

stdio_transport::stdio_transport(
    const asio::any_io_executor& ex,
    const spawn_request& request,
    std::function<void(std::string_view)> on_stderr
)
    : st_(std::make_shared<state>(ex, request, std::move(on_stderr))) {}

stdio_transport::~stdio_transport() {
    abort();
}

void stdio_transport::start(std::weak_ptr<transport_events> events) {
    st_->events = std::move(events);
    asio::co_spawn(st_->ex, state::read_loop(st_), asio::detached);
    asio::co_spawn(st_->ex, state::stderr_loop(st_), asio::detached);
    asio::co_spawn(st_->ex, state::exit_loop(st_), asio::detached);
}

void stdio_transport::send(std::string messages) {
    if (st_->ended || messages.empty()) {
        return;
    }
    st_->write_buf += messages;
    if (!st_->writing) {
        st_->writing = true;
        asio::co_spawn(st_->ex, state::write_loop(st_), asio::detached);
    }
}

asio::awaitable<void> stdio_transport::async_close(std::chrono::milliseconds grace) {
    auto st = st_;
    st->closing = true;
    try {
        co_await st->proc.async_shutdown(grace);
    } catch (const boost::system::system_error&) {
        st->proc.signal_group(SIGKILL);
    }
}

void stdio_transport::abort() noexcept {
    st_->closing = true;
    st_->events.reset();
    st_->proc.close_stdin();
    st_->proc.signal_group(SIGKILL);
}

} // namespace wafer::tools::mcp::detail
