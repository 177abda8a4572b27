// The decisions of MCP's Streamable HTTP transport, sans-io: the endpoint URL, the requests'
// bytes, what a response is, when a session is gone, how long to wait before resuming.
#pragma once

#include <wafer/api/error_body.hpp>
#include <wafer/tools/mcp/server_tools.hpp>

#include <nlohmann/json.hpp>

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace wafer::mcp::detail {

/// An MCP endpoint split for connecting.
struct endpoint_url {
    bool tls = false;
    std::string host; ///< name or IP literal, without brackets
    unsigned short port = 80;
    std::string target;      ///< path and query, as sent in the request line ("/mcp")
    std::string host_header; ///< "host[:port]" as the Host field carries it
    std::string origin;      ///< "http://host:port", for errors
};

/// Parses an http:// or https:// URL (no user-info, no fragment). nullopt with `why` otherwise.
std::optional<endpoint_url> parse_endpoint(std::string_view url, std::string& why);

/// A configured header that can be sent: a token name, a value without CR, LF or NUL, and not
/// one the transport sets itself (Host, Content-Length, Content-Type, Accept, Mcp-Session-Id,
/// MCP-Protocol-Version, Last-Event-ID, Transfer-Encoding, Connection). Empty when usable, else
/// why.
std::string check_header(std::string_view name, std::string_view value);

/// What the transport must know of a message the session sends.
struct outgoing {
    enum class kind { request, notification, response };
    kind type = kind::notification;
    std::int64_t id = 0; ///< requests
    std::string method;  ///< requests and notifications
    /// notifications/cancelled: the request it gives up.
    std::optional<std::int64_t> cancels;
    /// 2026: `_meta["io.modelcontextprotocol/protocolVersion"]` (empty for dated requests).
    std::string protocol_version;
    /// tools/call, prompts/get: params.name; resources/read: params.uri (for Mcp-Name).
    std::optional<nlohmann::json> name;
    /// tools/call: params.arguments (for Mcp-Param-*).
    nlohmann::json arguments;
};

/// Reads one line of the session's output (its own JSON: well formed).
outgoing read_outgoing(std::string_view message);

/// The fields every request carries besides the method's own.
struct request_fields {
    const endpoint_url* url = nullptr;
    const std::vector<std::pair<std::string, std::string>>* headers = nullptr;
    std::string_view session_id;
    std::string_view protocol_version;
    std::string_view last_event_id;
    /// More fields for this request (2026: Mcp-Method, Mcp-Name, Mcp-Param-*).
    const std::vector<std::pair<std::string, std::string>>* extra = nullptr;
    /// An OAuth access token: "Authorization: Bearer <token>".
    std::string_view bearer;
};

/// A header value as 2026 sends arguments: strings as they are unless they hold non-ASCII or
/// control characters, begin or end with white space, or look like the sentinel itself (then
/// `=?base64?...?=`); integers in decimal; booleans as true/false. nullopt: no header (null, or
/// a value of another type).
std::optional<std::string> header_value(const nlohmann::json& value);

/// The 2026 fields of a request: Mcp-Method, Mcp-Name (tools/call, prompts/get,
/// resources/read) and one Mcp-Param-{Name} per annotated argument present.
std::vector<std::pair<std::string, std::string>>
stateless_fields(const outgoing& out, const std::vector<tools::mcp::param_header>* params);

/// A POST of `body` (one JSON-RPC message).
void write_post(std::string& out, const request_fields& f, std::string_view body);
/// The GET of the server's stream (resuming after `last_event_id` when set).
void write_get(std::string& out, const request_fields& f);
/// The DELETE that ends the session.
void write_delete(std::string& out, const request_fields& f);

/// What a response's body is.
enum class body_type { json, event_stream, none, other };
body_type classify_body(int status, const api::header_list& headers, bool has_body);

/// A session id as the spec allows it (visible ASCII, 0x21-0x7E, not empty).
bool valid_session_id(std::string_view id) noexcept;

/// The server has forgotten the session: 404 to a request that carried a session id, or the
/// SDK servers' 400 whose body says there is no valid session.
bool session_gone(int status, std::string_view body, bool sent_session_id) noexcept;

/// The wait before resuming a broken stream: the server's `retry:` when it sent one, else
/// 1 s x 1.5^attempt up to 30 s (the TypeScript SDK's backoff).
std::chrono::milliseconds resume_delay(std::optional<unsigned long> retry_ms, int attempt) noexcept;

/// An HTTP failure for humans: "HTTP 500: <the start of the body, escaped>".
std::string describe_status(int status, std::string_view body);

} // namespace wafer::mcp::detail
