// MCP over Streamable HTTP (the 2025 revisions): an HTTP MCP server as a transport for
// tools::mcp::client, over wafer's own HTTP/1.1, TLS and proxy stack.
#pragma once

#include <wafer/mcp/oauth.hpp>
#include <wafer/tools/mcp/client.hpp>
#include <wafer/tools/mcp/transport.hpp>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>

#include <chrono>
#include <cstddef>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace wafer::mcp {

/// An HTTP MCP server (the `url`, `headers` entry of an `mcpServers` configuration).
struct http_server {
    /// The configuration's name for it: in errors, logs and tool names.
    std::string name;
    /// The MCP endpoint: http:// or https://, with its path and query
    /// ("http://127.0.0.1:3001/mcp").
    std::string url;
    /// Sent on every request (a bearer token: "Authorization", "Bearer ..."). Values never
    /// appear in errors or logs.
    std::vector<std::pair<std::string, std::string>> headers;
    /// An HTTP proxy reached with CONNECT ("http://[user:pass@]host[:port]"); empty: direct.
    std::string proxy;
    /// Extra PEM file of CA certificates, trusted beside the system store.
    std::string ca_file;
    /// Certificate and host name verification. Turning it off is explicit and insecure.
    bool verify_tls = true;
    /// Resolve, connect, proxy CONNECT and TLS handshake of each connection.
    std::chrono::milliseconds connect_timeout{10'000};
    /// Largest message (JSON body or SSE event) accepted; larger ones end their exchange.
    std::size_t max_message = 8U << 20U;
    /// OAuth 2.1 (MCP authorization): on a 401, or a 403 insufficient_scope, the transport
    /// authorizes, sends the request again with the access token and sends that token on every
    /// later request. Without it a 401 or 403 fails the request (errc::unauthorized).
    std::optional<oauth_config> oauth;
};

/// The transport alone (for tools::mcp::client::async_connect). Throws tools::mcp::error
/// (bad_config) for a URL or header it cannot use.
std::unique_ptr<tools::mcp::transport>
make_http_transport(const boost::asio::any_io_executor& ex, http_server server);

/// Connects: the transport and the initialize handshake. Throws tools::mcp::error (bad_config,
/// transport, unauthorized, timeout, protocol, rpc_error, cancelled). The era is chosen by
/// session_config::era. protocol_era::automatic probes with a 2026 `server/discover` POST (with
/// its headers): a DiscoverResult, or -32022 listing 2026-07-28, is a 2026 server; another
/// JSON-RPC error, or a 400/404/405 without one (server-everything answers 400 with an error
/// for id null), is a 2025 server, and `initialize` follows. A 401/403 is authorization (OAuth
/// runs, under the 2026 rules, and the probe is sent again), a 5xx or no connection ends the
/// connect: neither tells the era.
///
/// What the transport does (2025-11-25 Streamable HTTP): every message a POST accepting JSON
/// and SSE; `Mcp-Session-Id` kept from the initialize answer and sent on every later request
/// with `MCP-Protocol-Version`; a session the server forgot (404, or the SDK servers' 400 "No
/// valid session ID") initialized again and the request sent once more; the GET stream for the
/// server's own messages (405: none); SSE streams that break before their answer resumed with
/// GET and `Last-Event-ID` after the server's `retry:` delay; a cancelled request's stream
/// closed after `notifications/cancelled` is posted; DELETE of the session on close.
///
/// (No defaulted option arguments: see tools::mcp::client::async_connect.)
boost::asio::awaitable<std::shared_ptr<tools::mcp::client>>
async_connect_http(http_server server, tools::mcp::client_options options);

} // namespace wafer::mcp
