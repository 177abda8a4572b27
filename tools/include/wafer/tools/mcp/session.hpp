// The client side of one MCP connection, sans-io: the initialize handshake, request ids and
// their deadlines, the server's requests and notifications. It decides; the transport moves
// bytes (client.hpp runs it over a stdio server).
#pragma once

#include <wafer/tools/mcp/error.hpp>
#include <wafer/tools/mcp/jsonrpc.hpp>
#include <wafer/tools/mcp/line_framer.hpp>

#include <nlohmann/json.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace wafer::tools::mcp {

using session_clock = std::chrono::steady_clock;

/// The protocol versions of the initialize handshake this client speaks, newest first.
inline constexpr std::string_view handshake_versions[] = {
    "2025-11-25", "2025-06-18", "2025-03-26", "2024-11-05"};

/// The stateless protocol version this client speaks (no handshake; `_meta` on every request).
inline constexpr std::string_view stateless_version = "2026-07-28";

/// Which generation of the protocol a session speaks.
enum class protocol_era {
    /// The initialize handshake (2025-11-25 and older dated versions).
    dated,
    /// 2026-07-28: every request carries its protocol version, capabilities and client info in
    /// `_meta`; `server/discover` replaces the handshake; results carry `resultType`.
    stateless,
    /// Either, as the server speaks (mcp.md §2.5): `server/discover` first. A DiscoverResult
    /// (a result with `supportedVersions`), or an UnsupportedProtocolVersion error listing
    /// 2026-07-28: stateless. A result without `supportedVersions` is no DiscoverResult. Any other
    /// error
    /// (legacy servers answer -32601, -32602, ...), an HTTP refusal without one (session::
    /// refused) or no answer within session_config::probe_timeout: the initialize handshake.
    /// A stdio server exiting on the probe ends the session with probe_lost() set (the client
    /// starts it again for initialize); an HTTP 401/403 or 5xx is no evidence and ends the
    /// connect. session::era() says which it became.
    automatic,
};

/// How long a request may take.
struct request_limits {
    /// Without any sign of life for the request: its response, or progress for it (progress
    /// starts the wait again).
    std::chrono::milliseconds timeout{60'000};
    /// From the moment it was sent, whatever progress says: a server that reports progress
    /// forever still ends.
    std::chrono::milliseconds max_total{600'000};
};

/// A directory the client offers the server (`roots/list`).
struct root {
    /// A file:// URI.
    std::string uri;
    std::string name;
};

/// What the client says about itself in `initialize`.
struct session_config {
    protocol_era era = protocol_era::dated;
    std::string client_name = "wafer";
    std::string client_version = "0.1.0";
    /// Answered to the server's roots/list. The roots capability is declared only when there
    /// are some (servers change what they do when it is: server-filesystem replaces its
    /// allowed directories with the client's roots).
    std::vector<root> roots;
    /// Declare form elicitation: the server's elicitation/create requests then come out as
    /// server_request events for the embedder to answer (respond()); without it they are
    /// refused.
    bool elicitation = false;
    /// Declare sampling (2025; deprecated by 2026-07-28): the server's sampling/createMessage
    /// requests then come out as server_request events for the embedder to answer with its
    /// model (a CreateMessageResult: role, content, model, stopReason); without it they are
    /// refused. While one waits for its answer, requests wait as for an elicitation.
    bool sampling = false;
    /// protocol_era::automatic: how long the server/discover probe waits for an answer.
    std::chrono::milliseconds probe_timeout{3000};
    /// Limits of the initialize request.
    request_limits initialize_limits{
        std::chrono::milliseconds(30'000), std::chrono::milliseconds(30'000)};
    /// Longest line accepted from the server; longer ones are dropped and reported, and the
    /// request they answer (its id read from their first or last bytes) ends with
    /// errc::transport.
    std::size_t max_message = line_framer::default_max_line;
};

/// What the server said about itself in its initialize result.
struct server_info {
    std::string protocol_version;
    std::string name;
    std::string title;
    std::string version;
    /// The server's capabilities object, verbatim ({} when absent).
    nlohmann::json capabilities = nlohmann::json::object();
    /// Guidance for the model, verbatim (may be long Markdown).
    std::string instructions;
};

/// The end of one request of the client: its result, or why there is none.
struct response_event {
    std::int64_t id = 0;
    /// Empty: `result` holds the server's result. Else rpc_error (see `error`), timeout,
    /// cancelled or closed.
    std::optional<errc> failure;
    nlohmann::json result;
    rpc_error error;
    /// For a failure the client decided (timeout, cancel, close): what happened.
    std::string detail;
};

/// notifications/progress for a request of the client.
struct progress_event {
    std::int64_t id = 0;
    double progress = 0;
    std::optional<double> total;
    std::string message;
};

/// notifications/message: the server's logging. For the embedder's log, never for the model.
struct log_event {
    std::string level;
    std::string logger;
    nlohmann::json data;
};

/// notifications/{tools,prompts,resources}/list_changed.
struct list_changed_event {
    /// "tools", "prompts" or "resources".
    std::string list;
    /// 2026: the subscriptions/listen it came on (its `_meta` subscriptionId); 0: none named.
    std::int64_t subscription = 0;
};

/// What a 2026 `subscriptions/listen` asks the server to send (mcp.md §2.3), or what the server
/// acknowledged of it.
struct subscriptions {
    bool tools_list_changed = false;
    bool prompts_list_changed = false;
    bool resources_list_changed = false;
    /// resources/updated for these URIs.
    std::vector<std::string> resources;
    friend bool operator==(const subscriptions&, const subscriptions&) = default;
};

/// notifications/subscriptions/acknowledged: the listen `id` is open, and the server will send
/// `granted` (what it honours of what was asked: compare before relying on it).
struct subscriptions_acknowledged_event {
    std::int64_t id = 0;
    subscriptions granted;
};

/// A request of the server the session cannot answer itself (elicitation/create when
/// declared). Answer it with respond() or respond_error().
struct server_request_event {
    rpc_id id;
    std::string method;
    nlohmann::json params;
};

/// The handshake finished: server() is set, requests may be sent.
struct ready_event {};

/// The connection cannot go on (the initialize reply was unusable, or close() was called):
/// every request has had its response_event.
struct closed_event {
    errc reason = errc::closed;
    std::string detail;
};

/// Something the server sent that is not usable: a line that is not JSON-RPC, an oversized
/// message, a response to no request. The connection goes on; embedders log these.
struct noise_event {
    std::string what;
};

using session_event = std::variant<
    response_event,
    progress_event,
    log_event,
    list_changed_event,
    server_request_event,
    subscriptions_acknowledged_event,
    ready_event,
    closed_event,
    noise_event>;

/// Options of one request.
struct request_options {
    /// Unset: session defaults (session::set_default_limits).
    std::optional<request_limits> limits;
    /// Ask the server for progress (`_meta.progressToken`, the request's id).
    bool progress = false;
};

/// One MCP connection, client side: the 2025 generation (the initialize handshake) or the
/// stateless 2026 one (session_config::era: `server/discover` instead of the handshake, `_meta`
/// on every request, `resultType` checked: an `input_required` result is handed to the caller,
/// who answers it with a new request; see mrtr.hpp).
///
/// Feed it what the server wrote (receive, end_of_stream) and the time (on_time); send what
/// take_output() returns, in order; act on take_events(). Request ids are integers from 1, the
/// server's requests have their own id space; responses may come in any order.
///
/// Thread safety: distinct objects safe; shared objects unsafe.
class session {
public:
    explicit session(session_config config = {});

    /// Queues the initialize request. Call once, first.
    void start(session_clock::time_point now);

    /// Queues a request and returns its id. Its end is a response_event (result, rpc_error,
    /// timeout, cancelled or closed), exactly once. After close: a closed response_event at
    /// once.
    std::int64_t request(
        std::string_view method,
        nlohmann::json params,
        session_clock::time_point now,
        request_options options = {}
    );
    /// 2026 (the stateless era) only: opens a `subscriptions/listen` for `wanted` and returns
    /// its id. It has no timeout: it lasts until cancel(id) (notifications/cancelled on stdio;
    /// on HTTP the transport closes its stream and abandon()s it), the server ends it (its
    /// response_event: a result for a graceful end, or an error), or the connection closes. A
    /// subscriptions_acknowledged_event comes first; list_changed_events name it. In another
    /// era: a response_event with errc::protocol at once (those servers send list_changed
    /// unasked). After a restart of the server, listen again.
    std::int64_t listen(const subscriptions& wanted, session_clock::time_point now);
    /// Whether `id` is an open listen.
    bool listening(std::int64_t id) const noexcept;
    /// Queues a notification.
    void notify(std::string_view method, nlohmann::json params = nullptr);
    /// Gives up a request: tells the server (notifications/cancelled; never for initialize) and
    /// ends it with a cancelled response_event. A response that comes later is ignored. No
    /// effect on a request that already ended.
    void cancel(std::int64_t id, std::string_view reason);
    /// Answers a server_request_event. While one waits for its answer (an elicitation a
    /// person fills in), no request times out for want of an answer or progress: only
    /// request_limits::max_total holds. Once none waits, every open request's wait starts
    /// again from `now`.
    void respond(
        const rpc_id& id,
        nlohmann::json result,
        session_clock::time_point now = session_clock::now()
    );
    void respond_error(
        const rpc_id& id, rpc_error error, session_clock::time_point now = session_clock::now()
    );

    /// Bytes the server wrote to its stdout.
    void receive(std::string_view bytes, session_clock::time_point now);
    /// One whole message of a transport that frames messages itself (an HTTP body, an SSE
    /// event). Over session_config::max_message: dropped and reported.
    void receive_message(std::string_view message, session_clock::time_point now);
    /// Ends a request whose answer cannot come (its HTTP exchange failed) with `reason`; the
    /// server is not told. Initialize lost: the connection closes. No effect on a request that
    /// already ended.
    void abandon(std::int64_t id, errc reason, std::string_view why);
    /// The server refused request `id` without a JSON-RPC answer to it (HTTP 400, 404 or 405
    /// with another body, mcp.md §2.5). The server/discover probe of protocol_era::automatic:
    /// a server of the initialize handshake, which comes next. Any other request: as
    /// abandon(id, errc::transport, why).
    void refused(std::int64_t id, std::string_view why, session_clock::time_point now);
    /// The server's stdout ended: a last unterminated line is read, then every open request
    /// ends with `closed`, and a closed_event follows.
    void end_of_stream(std::string_view why, session_clock::time_point now);
    /// Ends every open request with `closed` (detail `why`) and refuses new ones.
    void close(errc reason, std::string_view why);
    /// Ends the requests whose time is up (timeout response_events; the server is told).
    void on_time(session_clock::time_point now);
    /// The earliest deadline of an open request, if any.
    std::optional<session_clock::time_point> next_deadline() const;

    /// The lines to write to the server's stdin, each ending in "\n", in order.
    std::string take_output();
    std::vector<session_event> take_events();

    void set_default_limits(request_limits limits) noexcept { limits_ = limits; }
    bool ready() const noexcept { return state_ == state::ready; }
    /// The era spoken: session_config::era, or for automatic what the probe found (automatic
    /// while it runs).
    protocol_era era() const noexcept { return config_.era; }
    /// protocol_era::automatic: the server's stdout ended while the probe waited (some legacy
    /// servers exit on any request before initialize).
    bool probe_lost() const noexcept { return probe_lost_; }
    bool closed() const noexcept { return state_ == state::closed; }
    /// Set once ready.
    const server_info& server() const noexcept { return server_; }
    /// Requests sent and not yet ended.
    std::size_t open_requests() const noexcept { return pending_.size(); }
    /// Whether request `id` was sent and has not ended.
    bool awaiting(std::int64_t id) const noexcept { return pending_.contains(id); }

private:
    enum class state { idle, initializing, ready, closed };
    struct pending {
        std::string method;
        session_clock::time_point sent;
        session_clock::time_point last_sign;
        request_limits limits;
        /// A subscriptions/listen: no deadline.
        bool open_ended = false;
    };

    void send(const std::string& line);
    void on_frame(const frame& f, session_clock::time_point now);
    void on_line(std::string_view line, session_clock::time_point now);
    void on_response(rpc_message& m, session_clock::time_point now);
    void on_server_request(rpc_message m);
    void answered(const rpc_id& id, session_clock::time_point now);
    void on_notification(const rpc_message& m, session_clock::time_point now);
    void on_initialized(const nlohmann::json& result);
    void on_discovered(const rpc_message& m, session_clock::time_point now);
    void send_discover();
    void send_initialize(session_clock::time_point now);
    void fall_back(session_clock::time_point now);
    nlohmann::json client_capabilities() const;
    void add_request_meta(nlohmann::json& params) const;
    void finish(std::int64_t id, response_event ev);
    void fail_all(errc reason, std::string_view why);
    session_clock::time_point deadline_of(const pending& p) const noexcept;

    session_config config_;
    request_limits limits_;
    state state_ = state::idle;
    line_framer framer_;
    std::int64_t next_id_ = 1;
    std::int64_t initialize_id_ = 0;
    bool discover_retried_ = false;
    bool probe_lost_ = false;
    std::map<std::int64_t, pending> pending_;
    /// Server requests handed to the embedder and not answered yet.
    std::vector<rpc_id> asking_;
    server_info server_;
    std::string output_;
    std::vector<session_event> events_;
};

} // namespace wafer::tools::mcp
