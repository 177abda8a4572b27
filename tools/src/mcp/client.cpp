// mcp::client: the session driven over a transport. pump() acts on what the session decided;
// one loop serves the session's deadlines.
#include <wafer/tools/mcp/client.hpp>
#include <wafer/tools/mcp/mrtr.hpp>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <algorithm>
#include <map>
#include <type_traits>

#include "mcp/stdio_transport.hpp"
#include "mcp/text.hpp"

extern char** environ;

namespace wafer::tools::mcp {

namespace asio = boost::asio;
using nlohmann::json;

namespace {

using detail::escaped;

// A request waiting for its response_event (lives in the awaiting coroutine's frame).
struct waiter {
    explicit waiter(const asio::any_io_executor& ex)
        : signal(ex, asio::steady_timer::time_point::max()) {}
    asio::steady_timer signal;
    std::optional<response_event> done;
    progress_handler on_progress;
};

} // namespace

struct client::impl : transport_events, std::enable_shared_from_this<impl> {
    impl(asio::any_io_executor executor, std::string server_name, client_options options)
        : ex(std::move(executor)), name(std::move(server_name)), opts(std::move(options)),
          s(opts.session), deadline(ex, asio::steady_timer::time_point::max()),
          ready_signal(ex, asio::steady_timer::time_point::max()), restarts(opts.restart),
          restart_signal(ex, asio::steady_timer::time_point::max()) {
        s.set_default_limits(opts.limits);
    }
    impl(const impl&) = delete;
    impl& operator=(const impl&) = delete;
    ~impl() override = default;

    asio::any_io_executor ex;
    std::string name;
    client_options opts;
    session s;
    std::unique_ptr<transport> wire;

    asio::steady_timer deadline;
    asio::steady_timer::time_point armed = asio::steady_timer::time_point::max();
    std::map<std::int64_t, waiter*> waiters;
    // The handshake's end: ready, or the closed_event that ended it.
    asio::steady_timer ready_signal;
    bool handshake_done = false;
    std::optional<closed_event> closed;
    bool closing = false;
    // Each start of the session (a restart makes a new one): a deadline loop serves its own.
    std::uint64_t generation = 0;

    // stdio: how to start the server again after it exited.
    std::optional<detail::spawn_request> respawn;
    restart_policy restarts;
    bool restarting = false;
    asio::steady_timer restart_signal; // a restart's end, for the requests waiting on it
    // Why the last restart failed (its code and detail), for the requests that waited on it.
    std::optional<std::pair<errc, std::string>> restart_failure;

    bool pumping = false;
    bool pump_again = false;

    // 2026: the open subscriptions/listen (0: none), what the server granted of it, and the
    // reopening of one the transport lost.
    std::int64_t listen_id = 0;
    std::optional<subscriptions> granted;
    bool listen_reopened = false;
    int listen_losses = 0; // in a row, without an acknowledgment between
    static constexpr int max_listen_losses = 5;
    std::optional<asio::steady_timer> listen_retry;

    [[noreturn]] void fail(errc code, std::string detail, std::optional<rpc_error> rpc = {}) const {
        throw error(code, name, std::move(detail), std::move(rpc));
    }

    // transport_events
    void on_bytes(std::string_view bytes) override {
        s.receive(bytes, session_clock::now());
        pump();
    }
    void on_message(std::string_view message) override {
        s.receive_message(message, session_clock::now());
        pump();
    }
    void on_noise(std::string what) override {
        if (opts.on_noise) {
            opts.on_noise(what);
        }
    }
    void on_request_lost(std::int64_t id, errc reason, std::string detail) override {
        s.abandon(id, reason, detail);
        pump();
    }
    void on_request_refused(std::int64_t id, std::string detail) override {
        s.refused(id, detail, session_clock::now());
        pump();
    }
    bool awaiting(std::int64_t id) const override { return s.awaiting(id); }
    void on_end(std::string why) override {
        if (!s.closed()) {
            s.end_of_stream(why, session_clock::now());
            pump();
        }
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
            if (std::string out = s.take_output(); !out.empty() && wire) {
                wire->send(std::move(out));
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
        if (listen_id != 0 && ev.id == listen_id) {
            on_listen_end(ev);
            return;
        }
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
    void on_event(subscriptions_acknowledged_event& ev) {
        if (ev.id != listen_id || listen_id == 0) {
            return;
        }
        granted = ev.granted;
        listen_losses = 0;
        if (std::exchange(listen_reopened, false) && opts.on_list_changed) {
            for (const auto& [list, on] :
                 {std::pair{"tools", ev.granted.tools_list_changed},
                  std::pair{"prompts", ev.granted.prompts_list_changed},
                  std::pair{"resources", ev.granted.resources_list_changed}}) {
                if (on) {
                    list_changed_event changed{list, ev.id};
                    opts.on_list_changed(changed);
                }
            }
        }
    }

    // After the session is ready (2026): a subscriptions/listen for what the server's
    // capabilities say may change.
    void open_listen() {
        listen_id = 0;
        granted.reset();
        if (!opts.listen || s.era() != protocol_era::stateless || s.closed() || closing) {
            return;
        }
        const json& caps = s.server().capabilities;
        const auto changes = [&caps](const char* list) {
            const auto c = caps.find(list);
            if (c == caps.end() || !c->is_object()) {
                return false;
            }
            const auto l = c->find("listChanged");
            return l != c->end() && l->is_boolean() && l->get<bool>();
        };
        subscriptions wanted;
        wanted.tools_list_changed = changes("tools");
        wanted.prompts_list_changed = changes("prompts");
        wanted.resources_list_changed = changes("resources");
        if (!wanted.tools_list_changed && !wanted.prompts_list_changed &&
            !wanted.resources_list_changed) {
            return;
        }
        listen_id = s.listen(wanted, session_clock::now());
    }

    // The listen ended: the server's graceful end and a closed connection are final; a lost
    // one is opened again a second later (a bounded number of times).
    void on_listen_end(const response_event& ev) {
        listen_id = 0;
        granted.reset();
        if (ev.failure == errc::rpc_error) {
            if (opts.on_noise) {
                opts.on_noise(
                    "subscriptions/listen was refused (" + std::to_string(ev.error.code) + " " +
                    escaped(ev.error.message) + "): list changes are not heard of"
                );
            }
            return;
        }
        if (!ev.failure || ev.failure == errc::closed || ev.failure == errc::cancelled || closing ||
            s.closed()) {
            return;
        }
        if (++listen_losses > max_listen_losses) {
            if (opts.on_noise) {
                opts.on_noise(
                    "subscriptions/listen was lost " + std::to_string(max_listen_losses) +
                    " times in a row (" + ev.detail + "): not opened again"
                );
            }
            return;
        }
        listen_retry.emplace(ex, std::chrono::seconds(1));
        listen_retry->async_wait([weak = weak_from_this(),
                                  gen = generation](const boost::system::error_code& ec) {
            auto self = weak.lock();
            if (ec || !self || self->generation != gen || self->listen_id != 0) {
                return;
            }
            self->listen_reopened = true;
            self->open_listen();
            self->pump();
        });
    }
    void on_event(server_request_event& ev) {
        if (!opts.on_server_request) {
            s.respond_error(
                ev.id,
                rpc_error{
                    rpc_code::method_not_found, "this client has no handler for " + ev.method, {}}
            );
            return;
        }
        asio::co_spawn(ex, answer(shared_from_this(), std::move(ev)), asio::detached);
    }

    // The embedder answers a server request; its exception becomes an error answer.
    static asio::awaitable<void> answer(std::shared_ptr<impl> self, server_request_event ev) {
        std::optional<json> result;
        std::string failure;
        try {
            result = co_await self->opts.on_server_request(ev);
        } catch (const std::exception& e) {
            failure = e.what();
        }
        if (result) {
            self->s.respond(ev.id, std::move(*result));
        } else {
            self->s.respond_error(ev.id, rpc_error{rpc_code::internal_error, failure, {}});
        }
        self->pump();
    }
    void on_event(ready_event&) {
        handshake_done = true;
        ready_signal.cancel();
        if (wire) {
            wire->on_ready(s.server());
        }
        listen_reopened = false;
        listen_losses = 0;
        open_listen();
    }
    void on_event(closed_event& ev) {
        const bool was_ready = handshake_done;
        listen_id = 0;
        granted.reset();
        if (listen_retry) {
            listen_retry->cancel();
        }
        if (!closing) {
            restarts.ended(session_clock::now());
        }
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

    static asio::awaitable<void> deadline_loop(std::shared_ptr<impl> self, std::uint64_t gen) {
        while (!self->s.closed() && self->generation == gen) {
            boost::system::error_code ec;
            co_await self->deadline.async_wait(asio::redirect_error(asio::use_awaitable, ec));
            if (self->s.closed() || self->generation != gen) {
                break;
            }
            self->armed = asio::steady_timer::time_point::max();
            self->s.on_time(session_clock::now());
            self->pump();
        }
    }

    // One request on the wire: its result. Throws mcp::error.
    static asio::awaitable<json> async_one(
        std::shared_ptr<impl> self,
        const std::string& method,
        json params,
        const call_options& options
    ) {
        waiter w(self->ex);
        w.on_progress = options.on_progress;
        request_options ro;
        ro.limits = options.limits;
        ro.progress = static_cast<bool>(w.on_progress);
        const bool sent = !self->s.closed();
        const std::int64_t id =
            self->s.request(method, std::move(params), session_clock::now(), ro);
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
        if (*r.failure == errc::closed && sent && self->respawn && !self->closing) {
            self->fail(
                errc::closed,
                method + ": " + r.detail +
                    " (the request is not sent again: it may have had effects)"
            );
        }
        if (*r.failure == errc::rpc_error) {
            self->fail(
                errc::rpc_error,
                method + " failed: " + std::to_string(r.error.code) + " " +
                    escaped(r.error.message),
                r.error
            );
        }
        self->fail(*r.failure, method + ": " + r.detail);
    }

    // Whether an UnsupportedProtocolVersion error's data lists the version this client speaks.
    static bool speaks_stateless(const std::optional<json>& data) {
        if (!data || !data->is_object()) {
            return false;
        }
        const auto supported = data->find("supported");
        return supported != data->end() && supported->is_array() &&
               std::find(
                   supported->begin(), supported->end(), json(std::string(stateless_version))
               ) != supported->end();
    }

    // The answer to one input an input_required result asks for.
    static asio::awaitable<json> async_answer_input(
        std::shared_ptr<impl> self, const std::string& method, const input_request& req
    ) {
        if (req.method == "roots/list") {
            json roots = json::array();
            for (const auto& r : self->opts.session.roots) {
                json entry = json::object();
                entry["uri"] = r.uri;
                if (!r.name.empty()) {
                    entry["name"] = r.name;
                }
                roots.push_back(std::move(entry));
            }
            json out = json::object();
            out["roots"] = std::move(roots);
            co_return out;
        }
        if (req.method == "elicitation/create" && self->opts.session.elicitation &&
            self->opts.on_server_request) {
            server_request_event ev;
            ev.id = req.key;
            ev.method = req.method;
            ev.params = req.params;
            auto answer = co_await self->opts.on_server_request(ev);
            co_return answer;
        }
        self->fail(
            errc::protocol,
            method + ": the server needs " + escaped(req.method, 64) +
                ", which this client does not offer"
        );
    }

    // Starts the transport and the handshake and waits for its end. Throws mcp::error (the
    // transport aborted).
    static asio::awaitable<void> async_open(std::shared_ptr<impl> im) {
        im->handshake_done = false;
        im->closed.reset();
        im->ready_signal.expires_at(asio::steady_timer::time_point::max());
        im->restarts.started(session_clock::now());
        im->wire->start(im);
        asio::co_spawn(im->ex, deadline_loop(im, im->generation), asio::detached);
        im->s.start(session_clock::now());
        im->pump();
        if (!im->handshake_done) {
            boost::system::error_code ec;
            co_await im->ready_signal.async_wait(asio::redirect_error(asio::use_awaitable, ec));
        }
        if (!im->handshake_done) {
            // The caller cancelled the connect.
            im->s.close(errc::cancelled, "the connect was cancelled");
            im->pump();
            im->wire->abort();
            im->fail(errc::cancelled, "the connect was cancelled");
        }
        if (im->closed) {
            const closed_event ev = *im->closed;
            im->wire->abort();
            im->fail(ev.reason, ev.detail);
        }
        // What protocol_era::automatic found holds for the server's restarts too.
        im->opts.session.era = im->s.era();
    }

    // A new process and a new session (stdio). Throws std::system_error when it cannot start.
    void renew() {
        wire->abort();
        wire = std::make_unique<detail::stdio_transport>(ex, *respawn, opts.on_stderr);
        ++generation;
        s = session(opts.session);
        s.set_default_limits(opts.limits);
        armed = asio::steady_timer::time_point::max();
        deadline.expires_at(asio::steady_timer::time_point::max());
    }

    static asio::awaitable<std::shared_ptr<client>> async_handshake(std::shared_ptr<impl> im) {
        bool probe_lost = false;
        try {
            co_await async_open(im);
        } catch (const error&) {
            probe_lost = im->s.probe_lost() && im->respawn;
            if (!probe_lost) {
                im->closing = true;
                throw;
            }
        }
        if (probe_lost) {
            // It exited on server/discover, as some legacy servers do on any request before
            // initialize: a new process for the handshake (not a restart).
            im->opts.session.era = protocol_era::dated;
            im->restarts = restart_policy(im->opts.restart);
            try {
                im->renew();
            } catch (const std::system_error& e) {
                im->closing = true;
                im->fail(errc::spawn_failed, e.what());
            }
            try {
                co_await async_open(im);
            } catch (const error&) {
                im->closing = true;
                throw;
            }
        }
        co_return std::shared_ptr<client>(new client(std::move(im)));
    }

    // Before a request: a stdio server that exited is started again if the policy allows. One
    // restart at a time, in a coroutine of its own: every request that needs it (the one that
    // began it too) waits for its end, so a cancelled request gives up its wait, not the
    // restart (a restart cut short would count as a server that exits at once). Throws
    // mcp::error.
    static asio::awaitable<void> async_revive(std::shared_ptr<impl> self) {
        if (!self->s.closed() || self->closing || !self->respawn) {
            co_return;
        }
        if (!self->restarting) {
            const std::string ended = self->closed ? self->closed->detail : "the server exited";
            if (auto why = self->restarts.decide()) {
                self->fail(errc::closed, ended + "; it is not started again: " + *why);
            }
            self->restarting = true;
            self->restart_failure.reset();
            self->restart_signal.expires_at(asio::steady_timer::time_point::max());
            asio::co_spawn(self->ex, async_restart(self), asio::detached);
        }
        boost::system::error_code ec;
        co_await self->restart_signal.async_wait(asio::redirect_error(asio::use_awaitable, ec));
        if (self->restarting) {
            // Our wait was cancelled, not ended by the restart.
            self->fail(errc::cancelled, "cancelled while the server was started again");
        }
        if (self->restart_failure) {
            self->fail(
                self->restart_failure->first,
                "the server exited; starting it again failed: " + self->restart_failure->second
            );
        }
        if (self->s.closed() && !self->closing) {
            const std::string ended = self->closed ? self->closed->detail : "the server exited";
            self->fail(errc::closed, "the server exited again after its restart: " + ended);
        }
    }

    static asio::awaitable<void> async_restart(std::shared_ptr<impl> self) {
        try {
            if (self->closing) {
                // Closed before the restart began (co_spawn starts it later).
                self->fail(errc::closed, "the client closed the connection");
            }
            self->renew();
            co_await async_open(self);
        } catch (const error& e) {
            self->restart_failure.emplace(static_cast<errc>(e.code().value()), e.detail());
        } catch (const std::system_error& e) {
            self->restarts.started(session_clock::now());
            self->restarts.ended(session_clock::now());
            self->restart_failure.emplace(errc::spawn_failed, e.what());
        }
        self->restarting = false;
        self->restart_signal.cancel();
        if (self->restart_failure) {
            co_return;
        }
        if (self->opts.on_restarted) {
            self->opts.on_restarted(self->restarts.restarts());
        }
        // Its tools may differ now: whoever follows the list lists them again.
        if (self->opts.on_list_changed) {
            list_changed_event ev{"tools"};
            self->opts.on_list_changed(ev);
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
    if (server.name.empty()) {
        throw error(errc::bad_config, "(unnamed)", "the server has no name");
    }
    if (server.command.empty()) {
        throw error(errc::bad_config, server.name, "no command to start");
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
    std::unique_ptr<transport> wire;
    try {
        wire = std::make_unique<detail::stdio_transport>(ex, req, options.on_stderr);
    } catch (const std::system_error& e) {
        throw error(errc::spawn_failed, server.name, e.what());
    }
    auto im = std::make_shared<impl>(ex, std::move(server.name), std::move(options));
    im->wire = std::move(wire);
    im->respawn = std::move(req);
    auto c = co_await impl::async_handshake(std::move(im));
    co_return c;
}

asio::awaitable<std::shared_ptr<client>>
client::async_connect(std::string name, std::unique_ptr<transport> wire, client_options options) {
    if (name.empty()) {
        throw error(errc::bad_config, "(unnamed)", "the server has no name");
    }
    if (!wire) {
        throw error(errc::bad_config, name, "no transport");
    }
    auto ex = co_await asio::this_coro::executor;
    auto im = std::make_shared<impl>(ex, std::move(name), std::move(options));
    im->wire = std::move(wire);
    auto c = co_await impl::async_handshake(std::move(im));
    co_return c;
}

client::client(std::shared_ptr<impl> state) noexcept : impl_(std::move(state)) {}

client::~client() {
    if (impl_ && !impl_->closing) {
        // Nobody closed it: end it now, without the grace periods (there is nobody to wait).
        impl_->closing = true;
        impl_->s.close(errc::closed, "the client was destroyed");
        impl_->pump();
        impl_->wire->abort();
    }
}

const std::string& client::name() const noexcept {
    return impl_->name;
}

const server_info& client::server() const noexcept {
    return impl_->s.server();
}

const std::optional<subscriptions>& client::subscribed() const noexcept {
    return impl_->granted;
}

bool client::connected() const noexcept {
    return !impl_->s.closed();
}

asio::awaitable<json> client::async_request(std::string method, json params, call_options options) {
    auto self = impl_;
    co_await impl::async_revive(self);
    if (self->s.era() != protocol_era::stateless) {
        auto r = co_await impl::async_one(self, method, std::move(params), options);
        co_return r;
    }
    // 2026: a refused version is tried once more, and input_required results are answered.
    bool version_retried = false;
    json round_params = params;
    for (int round = 0;; ++round) {
        json result;
        try {
            result = co_await impl::async_one(self, method, round_params, options);
        } catch (const error& e) {
            const auto& rpc = e.rpc();
            if (version_retried || !rpc || rpc->code != rpc_code::unsupported_protocol_version ||
                !impl::speaks_stateless(rpc->data)) {
                throw;
            }
            version_retried = true;
            continue;
        }
        bool malformed = false;
        std::string why;
        auto asked = read_input_required(result, malformed, &why);
        if (malformed) {
            self->fail(errc::protocol, method + ": " + escaped(why));
        }
        if (!asked) {
            co_return result;
        }
        if (round + 1 >= max_input_rounds) {
            self->fail(
                errc::protocol,
                method + ": the server asked for input " + std::to_string(max_input_rounds) +
                    " times; the client gave up"
            );
        }
        json responses = json::object();
        for (auto& req : asked->requests) {
            responses[req.key] = co_await impl::async_answer_input(self, method, req);
        }
        round_params = retry_params(params, std::move(responses), asked->request_state);
    }
}

asio::awaitable<void> client::async_close() {
    auto self = impl_;
    if (self->closing) {
        co_return;
    }
    self->closing = true;
    self->s.close(errc::closed, "the client closed the connection");
    self->pump();
    co_await self->wire->async_close(self->opts.shutdown_grace);
}

} // namespace wafer::tools::mcp
