// An MCP client: it starts a stdio server (or takes another transport), runs the handshake,
// sends requests with deadlines and cancellation, and shuts the connection down as the spec says.
#pragma once

#include <wafer/tools/command_environment.hpp>
#include <wafer/tools/mcp/error.hpp>
#include <wafer/tools/mcp/restart_policy.hpp>
#include <wafer/tools/mcp/session.hpp>
#include <wafer/tools/mcp/transport.hpp>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>

#include <nlohmann/json.hpp>

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace wafer::tools::mcp {

/// A server started as a child process, speaking MCP on its stdin and stdout (the `command`,
/// `args`, `env` entry of an `mcpServers` configuration).
struct stdio_server {
    /// The name the configuration gives it: in errors, logs and tool names.
    std::string name;
    /// The program, found on PATH when it has no '/'.
    std::string command;
    std::vector<std::string> args;
    /// Variables set for the server, after `environment` (credentials the server needs go here:
    /// wafer's own keys never reach it otherwise).
    std::vector<std::pair<std::string, std::string>> env;
    /// Which of wafer's variables the server sees: the command allow-list by default (PATH,
    /// HOME, USER, locale, ...), never CEREBRAS_API_KEY or OPENAI_API_KEY.
    command_environment environment;
    /// Working directory; empty: wafer's.
    std::string cwd;
};

/// What the server reported of one request while it ran.
using progress_handler = std::function<void(const progress_event&)>;

/// Answers a request of the server the session leaves to the embedder (elicitation/create, when
/// session_config::elicitation declares it; sampling/createMessage, when session_config::
/// sampling does): the result object. Throwing answers the server
/// with an error. Runs on the client's executor, beside the client's other work.
using server_request_handler =
    std::function<boost::asio::awaitable<nlohmann::json>(const server_request_event&)>;

/// How a client behaves.
struct client_options {
    /// Identity, roots, elicitation and the handshake's limits.
    session_config session;
    /// Limits of each request unless it says otherwise.
    request_limits limits;
    /// Each shutdown step (stdin closed, then SIGTERM, then SIGKILL) waits this long.
    std::chrono::milliseconds shutdown_grace{2000};
    /// The server's logging (notifications/message). For the embedder's log, never the model.
    std::function<void(const log_event&)> on_log;
    /// Each line the server writes to stderr (its free-form log), without the newline.
    std::function<void(std::string_view)> on_stderr;
    /// notifications/*/list_changed.
    std::function<void(const list_changed_event&)> on_list_changed;
    /// 2026 servers tell of list changes only on a subscriptions/listen: after each start of
    /// the session (the first and every restart) the client opens one for the lists whose
    /// capabilities say listChanged (tools, prompts, resources), so that on_list_changed hears
    /// of them as it does from 2025 servers, unasked. A listen the transport loses (an HTTP
    /// stream that broke) is opened again, after a second, up to 5 times in a row without an
    /// acknowledgment; each reopened one is followed by an on_list_changed for every list it
    /// covers (changes may have been missed meanwhile). The server's graceful end is final.
    /// False: no listen is opened.
    bool listen = true;
    /// What the server sent that was unusable (a non-JSON line on stdout, ...); the connection
    /// goes on.
    std::function<void(std::string_view)> on_noise;
    /// The connection ended (the server exited, or broke the handshake) outside close().
    std::function<void(const error&)> on_closed;
    /// The server's requests for the embedder (elicitation, sampling). Unset: refused (method
    /// not found).
    server_request_handler on_server_request;
    /// stdio servers: a server that exited is started again (a new process, initialize, and
    /// on_list_changed for "tools" so that its tools are listed again) by the next request,
    /// within these limits (restart_policy.hpp). The requests that were in flight when it
    /// exited end with errc::closed and are never sent again: they may have had effects.
    restart_limits restart;
    /// After each restart, with the number of restarts so far.
    std::function<void(std::size_t restarts)> on_restarted;
};

/// Options of one request.
struct call_options {
    /// Unset: client_options::limits.
    std::optional<request_limits> limits;
    /// Progress the server reports for this request (asks the server for it when set).
    progress_handler on_progress;
};

/// A connection to one MCP server.
///
/// Every operation runs on the executor the client was connected on; the executor must not run
/// them concurrently (a single-threaded io_context or a strand). Several requests may be in
/// flight at once: answers are matched by id in whatever order they come.
///
/// Cancellation: terminal cancellation of an awaiting coroutine (its co_spawn slot) ends that
/// request at once with errc::cancelled, and the server is told (notifications/cancelled).
///
/// Errors: operations throw mcp::error (errc::rpc_error with the server's error, timeout,
/// cancelled, closed, protocol, spawn_failed, bad_config).
///
/// Object lifetimes: the client (a shared_ptr) must outlive the operations awaiting it; after
/// the last reference goes without async_close, the server's process group is killed.
class client {
public:
    /// Starts the server and runs the handshake (initialize, then notifications/initialized).
    /// Throws mcp::error: spawn_failed, closed (it exited first: its status and the end of its
    /// stderr in the detail), timeout, protocol or rpc_error (initialize refused).
    ///
    /// (No defaulted option arguments here: GCC 12 miscompiles an option struct built in a
    /// co_await expression. Pass options as a named object.)
    static boost::asio::awaitable<std::shared_ptr<client>>
    async_connect(stdio_server server, client_options options);
    static boost::asio::awaitable<std::shared_ptr<client>> async_connect(stdio_server server);
    /// The handshake over any transport (Streamable HTTP: wafer::mcp::async_connect_http). The
    /// client owns the transport from here on. Throws as above.
    static boost::asio::awaitable<std::shared_ptr<client>>
    async_connect(std::string name, std::unique_ptr<transport> wire, client_options options);

    ~client();
    client(const client&) = delete;
    client& operator=(const client&) = delete;

    /// The configuration's name for the server.
    const std::string& name() const noexcept;
    /// What the server said in its initialize result.
    const server_info& server() const noexcept;
    /// What the server acknowledged of the open subscriptions/listen (2026); nullopt while none
    /// is open (another era, client_options::listen off, or no list with listChanged).
    const std::optional<subscriptions>& subscribed() const noexcept;
    /// False once the connection ended (the server exited, or close). A stdio server that
    /// exited may be started again by the next request (client_options::restart).
    bool connected() const noexcept;

    /// One request: its result. Throws mcp::error (errc::closed when the server exited and may
    /// not be started again, or its restart failed: the detail says why).
    boost::asio::awaitable<nlohmann::json>
    async_request(std::string method, nlohmann::json params, call_options options);
    boost::asio::awaitable<nlohmann::json> async_request(std::string method, nlohmann::json params);

    /// The transport's shutdown (stdio: stdin closed, SIGTERM, SIGKILL, client_options::
    /// shutdown_grace apart; HTTP: the session deleted). Open requests end with errc::closed.
    /// Idempotent; never throws.
    boost::asio::awaitable<void> async_close();

    struct impl;

private:
    explicit client(std::shared_ptr<impl> state) noexcept;
    std::shared_ptr<impl> impl_;
};

} // namespace wafer::tools::mcp
