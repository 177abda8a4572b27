// OAuth for the CLI's HTTP MCP servers: where tokens are kept, the loopback redirect, and the
// browser step of `wafer mcp login` (the other commands use kept tokens and refresh them, and
// never wait for a browser).
#pragma once

#include <wafer/mcp/oauth.hpp>

#include <boost/asio/awaitable.hpp>

#include <chrono>
#include <filesystem>
#include <optional>
#include <string>

namespace wafer::cli {

/// $XDG_STATE_HOME/wafer/mcp-oauth.json, else $HOME/.local/state/wafer/mcp-oauth.json (the
/// authorizer writes it with mode 0600); nullopt when neither variable is set.
std::optional<std::filesystem::path> mcp_token_store();

/// The loopback port the browser comes back to for `server` at `url`: the same on every run
/// (stored registrations name their redirect URI), between 49152 and 65535.
unsigned short oauth_callback_port(const std::string& server, const std::string& url);

/// How long `wafer mcp login` waits for the browser.
inline constexpr std::chrono::minutes browser_wait{5};

/// The OAuth settings of an HTTP server of the configuration. With `browse` (wafer mcp login)
/// the authorization step prints the authorization URL on standard error (escaped) and waits
/// up to browser_wait for the browser's redirect on 127.0.0.1; without it the step fails with
/// a message naming `wafer mcp login SERVER`, so that a run never waits for a person there.
wafer::mcp::oauth_config cli_oauth(const std::string& server, const std::string& url, bool browse);

/// The browser step alone: listens on 127.0.0.1:`port`, prints `authorization_url` for the
/// user, and returns the URL of the first GET of /callback (answered with a short page), or
/// throws std::runtime_error after `wait` or when the port is taken.
boost::asio::awaitable<std::string> async_browser_step(
    std::string server,
    std::string authorization_url,
    unsigned short port,
    std::chrono::milliseconds wait
);

} // namespace wafer::cli
