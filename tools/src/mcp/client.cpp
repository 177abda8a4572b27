// The I/O around mcp::session for a stdio server: four loops (stdout, stderr, the process's
// exit, the session's deadlines) feed the session; pump() acts on what it decided.
#include <wafer/tools/mcp/client.hpp>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <array>
#include <map>
#include <type_traits>
#include <unistd.h>

#include "mcp/stdio_process.hpp"
#include "mcp/text.hpp"

extern char** environ;

namespace wafer::tools::mcp {

namespace asio = boost::asio;
using nlohmann::json;

namespace {

using detail::escaped;

constexpr std::size_t stderr_tail_bytes = 2048;
constexpr std::size_t stderr_shown_bytes = 400;
constexpr std::size_t max_stderr_line = 64U << 10U;

// A request waiting for its response_event (lives in the awaiting coroutine's frame).
struct waiter {
    explicit waiter(const asio::any_io_executor& ex)
        : signal(ex, asio::steady_timer::time_point::max()) {}
    asio::steady_timer signal;
    std::optional<response_event> done;
    progress_handler on_progress;
};

} // namespace

struct client::impl : std::enable_shared_from_this<impl> {
    impl(asio::any_io_executor executor, std::string server_name, client_options options)
        : ex(std::move(executor)), name(std::move(server_name)), opts(std::move(options)),
          s(opts.session), deadline(ex, asio::steady_timer::time_point::max()),
          ready_signal(ex, asio::steady_timer::time_point::max()),
          eof_signal(ex, asio::steady_timer::time_point::max()) {
        s.set_default_limits(opts.limits);
    }

    asio::any_io_executor ex;
    std::string name;
    client_options opts;
    session s;
    std::unique_ptr<detail::stdio_process> proc;

    asio::steady_timer deadline;
    asio::steady_timer::time_point armed = asio::steady_timer::time_point::max();
    std::map<std::int64_t, waiter*> waiters;
    // The handshake's end: ready, or the closed_event that ended it.
    asio::steady_timer ready_signal;
    bool handshake_done = false;
    std::optional<closed_event> closed;
    // Cancelled when stdout ends, so that the exit watcher need not wait.
    asio::steady_timer eof_signal;
    bool stdout_ended = false;
    bool closing = false;

    std::string write_buf;
    bool writing = false;
    bool pumping = false;
    bool pump_again = false;

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

    [[noreturn]] void fail(errc code, std::string detail, std::optional<rpc_error> rpc = {}) const {
        throw error(code, name, std::move(detail), std::move(rpc));
    }

    void start_loops() {
        auto self = shared_from_this();
        asio::co_spawn(ex, read_loop(self), asio::detached);
        asio::co_spawn(ex, stderr_loop(self), asio::detached);
        asio::co_spawn(ex, exit_loop(self), asio::detached);
        asio::co_spawn(ex, deadline_loop(self), asio::detached);
    }

    // Acts on the session's events and output. Re-entrant calls (a callback that sends a
    // request) are folded into the running one.
    void pump() {
        if (pumping) {
            pump_again = true;
            return;
        }
        pumping = true;
        do {
            pump_again = false;
            for (auto& ev : s.take_events()) {
                std::visit([this](auto& e) { on_event(e); }, ev);
            }
            if (std::string out = s.take_output(); !out.empty()) {
                write_buf += out;
                if (!writing) {
                    writing = true;
                    asio::co_spawn(ex, write_loop(shared_from_this()), asio::detached);
                }
            }
        } while (pump_again);
        pumping = false;
        rearm();
    }

    void rearm() {
        const auto next = s.next_deadline().value_or(asio::steady_timer::time_point::max());
        if (next < armed) {
            armed = next;
            deadline.expires_at(next);
        }
    }

    void on_event(response_event& ev) {
        const auto it = waiters.find(ev.id);
        if (it != waiters.end()) {
            it->second->done = std::move(ev);
            it->second->signal.cancel();
        }
    }
    void on_event(progress_event& ev) {
        const auto it = waiters.find(ev.id);
        if (it != waiters.end() && it->second->on_progress) {
            it->second->on_progress(ev);
        }
    }
    void on_event(log_event& ev) {
        if (opts.on_log) {
            opts.on_log(ev);
        }
    }
    void on_event(list_changed_event& ev) {
        if (opts.on_list_changed) {
            opts.on_list_changed(ev);
        }
    }
    void on_event(server_request_event& ev) {
        s.respond_error(
            ev.id,
            rpc_error{rpc_code::method_not_found, "this client has no handler for " + ev.method, {}}
        );
    }
    void on_event(ready_event&) {
        handshake_done = true;
        ready_signal.cancel();
    }
    void on_event(closed_event& ev) {
        const bool was_ready = handshake_done;
        closed = ev;
        handshake_done = true;
        ready_signal.cancel();
        deadline.cancel();
        if (was_ready && !closing && opts.on_closed) {
            opts.on_closed(error(ev.reason, name, ev.detail));
        }
    }
    void on_event(noise_event& ev) {
        if (opts.on_noise) {
            opts.on_noise(ev.what);
        }
    }

    // The end of the connection as the process's state explains it.
    std::string ended(std::string_view what) const {
        std::string d(what);
        if (proc && proc->exit_status()) {
            d += ": the server " + detail::stdio_process::describe_status(*proc->exit_status());
        }
        return d + stderr_excerpt();
    }

    static asio::awaitable<void> write_loop(std::shared_ptr<impl> self) {
        while (!self->write_buf.empty()) {
            const std::string chunk = std::exchange(self->write_buf, {});
            try {
                co_await self->proc->async_write(chunk);
            } catch (const boost::system::system_error& e) {
                self->write_buf.clear();
                self->writing = false;
                if (!self->s.closed()) {
                    self->s.close(
                        errc::closed,
                        self->ended(
                            std::string("cannot write to the server (") + e.code().message() + ")"
                        )
                    );
                    self->pump();
                }
                co_return;
            }
        }
        self->writing = false;
    }

    static asio::awaitable<void> read_loop(std::shared_ptr<impl> self) {
        std::array<char, 65536> buf{};
        std::string why = "the server closed its stdout";
        for (;;) {
            std::size_t n = 0;
            try {
                n = co_await self->proc->async_read_out(buf.data(), buf.size());
            } catch (const boost::system::system_error& e) {
                why =
                    std::string("reading the server's stdout failed (") + e.code().message() + ")";
                break;
            }
            if (n == 0) {
                break;
            }
            self->s.receive(std::string_view(buf.data(), n), session_clock::now());
            self->pump();
        }
        self->stdout_ended = true;
        self->eof_signal.cancel();
        // Its exit status explains the end better than the closed pipe does.
        if (!self->closing) {
            co_await self->proc->async_wait_exit_for(std::chrono::milliseconds(500));
        }
        self->s.end_of_stream(self->ended(why), session_clock::now());
        self->pump();
    }

    static asio::awaitable<void> stderr_loop(std::shared_ptr<impl> self) {
        std::array<char, 16384> buf{};
        for (;;) {
            std::size_t n = 0;
            try {
                n = co_await self->proc->async_read_err(buf.data(), buf.size());
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
                if (self->opts.on_stderr) {
                    self->opts.on_stderr(self->stderr_line);
                }
                self->stderr_line.clear();
            }
        }
        if (!self->stderr_line.empty() && self->opts.on_stderr) {
            self->opts.on_stderr(self->stderr_line);
        }
    }

    // A server may exit while a child of its own keeps stdout open: the exit ends the
    // connection after a moment for the last output to be read.
    static asio::awaitable<void> exit_loop(std::shared_ptr<impl> self) {
        try {
            co_await self->proc->async_wait_exit();
        } catch (const boost::system::system_error&) {
            co_return;
        }
        if (!self->stdout_ended) {
            self->eof_signal.expires_after(std::chrono::seconds(1));
            boost::system::error_code ec;
            co_await self->eof_signal.async_wait(asio::redirect_error(asio::use_awaitable, ec));
        }
        if (!self->s.closed()) {
            self->s.close(errc::closed, self->ended("the connection ended"));
            self->pump();
        }
    }

    static asio::awaitable<void> deadline_loop(std::shared_ptr<impl> self) {
        while (!self->s.closed()) {
            boost::system::error_code ec;
            co_await self->deadline.async_wait(asio::redirect_error(asio::use_awaitable, ec));
            self->armed = asio::steady_timer::time_point::max();
            if (self->s.closed()) {
                break;
            }
            self->s.on_time(session_clock::now());
            self->pump();
        }
    }
};

asio::awaitable<std::shared_ptr<client>> client::async_connect(stdio_server server) {
    return async_connect(std::move(server), client_options());
}

asio::awaitable<json> client::async_request(std::string method, json params) {
    return async_request(std::move(method), std::move(params), call_options());
}

asio::awaitable<std::shared_ptr<client>>
client::async_connect(stdio_server server, client_options options) {
    auto ex = co_await asio::this_coro::executor;
    auto im = std::make_shared<impl>(ex, server.name, std::move(options));
    if (server.name.empty()) {
        throw error(errc::bad_config, "(unnamed)", "the server has no name");
    }
    if (server.command.empty()) {
        im->fail(errc::bad_config, "no command to start");
    }
    detail::spawn_request req;
    req.command = server.command;
    req.args = server.args;
    req.cwd = server.cwd;
    command_environment env = server.environment;
    for (auto& kv : server.env) {
        env.set.push_back(kv);
    }
    req.env = build_command_environment(env, environ);
    try {
        im->proc = std::make_unique<detail::stdio_process>(ex, req);
    } catch (const std::system_error& e) {
        im->fail(errc::spawn_failed, e.what());
    }
    im->start_loops();
    im->s.start(session_clock::now());
    im->pump();
    if (!im->handshake_done) {
        boost::system::error_code ec;
        co_await im->ready_signal.async_wait(asio::redirect_error(asio::use_awaitable, ec));
    }
    if (!im->handshake_done) {
        // The caller cancelled the connect.
        im->closing = true;
        im->s.close(errc::cancelled, "the connect was cancelled");
        im->pump();
        im->proc->signal_group(SIGKILL);
        im->fail(errc::cancelled, "the connect was cancelled");
    }
    if (im->closed) {
        const closed_event ev = *im->closed;
        im->closing = true;
        im->proc->signal_group(SIGKILL);
        im->fail(ev.reason, ev.detail);
    }
    co_return std::shared_ptr<client>(new client(std::move(im)));
}

client::client(std::shared_ptr<impl> state) noexcept : impl_(std::move(state)) {}

client::~client() {
    if (impl_ && !impl_->closing) {
        // Nobody closed it: end it now, without the grace periods (there is nobody to wait).
        impl_->closing = true;
        impl_->s.close(errc::closed, "the client was destroyed");
        impl_->pump();
        impl_->proc->close_stdin();
        impl_->proc->signal_group(SIGKILL);
    }
}

const std::string& client::name() const noexcept {
    return impl_->name;
}

const server_info& client::server() const noexcept {
    return impl_->s.server();
}

bool client::connected() const noexcept {
    return !impl_->s.closed();
}

asio::awaitable<json> client::async_request(std::string method, json params, call_options options) {
    auto self = impl_;
    waiter w(self->ex);
    w.on_progress = std::move(options.on_progress);
    request_options ro;
    ro.limits = options.limits;
    ro.progress = static_cast<bool>(w.on_progress);
    const std::int64_t id = self->s.request(method, std::move(params), session_clock::now(), ro);
    self->waiters[id] = &w;
    self->pump();
    if (!w.done) {
        boost::system::error_code ec;
        co_await w.signal.async_wait(asio::redirect_error(asio::use_awaitable, ec));
    }
    if (!w.done) {
        // Our wait was cancelled: the caller gave up on the request.
        self->s.cancel(id, "cancelled by the client");
        self->pump();
    }
    self->waiters.erase(id);
    if (!w.done) {
        self->fail(errc::cancelled, method + " was cancelled");
    }
    response_event& r = *w.done;
    if (!r.failure) {
        co_return std::move(r.result);
    }
    if (*r.failure == errc::rpc_error) {
        self->fail(
            errc::rpc_error,
            method + " failed: " + std::to_string(r.error.code) + " " + escaped(r.error.message),
            r.error
        );
    }
    self->fail(*r.failure, method + ": " + r.detail);
}

asio::awaitable<void> client::async_close() {
    auto self = impl_;
    if (self->closing) {
        co_return;
    }
    self->closing = true;
    self->s.close(errc::closed, "the client closed the connection");
    self->pump();
    try {
        co_await self->proc->async_shutdown(self->opts.shutdown_grace);
    } catch (const boost::system::system_error&) {
        self->proc->signal_group(SIGKILL);
    }
}

} // namespace wafer::tools::mcp
