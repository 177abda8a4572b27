// OAuth 2.1 for HTTP MCP servers (MCP authorization, 2025-03-26 to 2025-11-25): what the
// embedder configures, and the one step it performs itself, the user's visit to the
// authorization server (a browser).
#pragma once

#include <boost/asio/awaitable.hpp>

#include <functional>
#include <string>
#include <vector>

namespace wafer::mcp {

/// The browser part of an authorization: given the authorization URL, returns the URL the
/// authorization server redirected to (the redirect URI with `code`, `state` and maybe `iss` in
/// its query). A CLI opens a browser and listens on the redirect URI's loopback port; a test
/// against an authorization server that approves at once GETs the URL and reads `Location`.
/// An empty string or an exception gives up.
using oauth_authorize_step = std::function<boost::asio::awaitable<std::string>(std::string url)>;

/// How to authorize to an HTTP MCP server that answers 401. Its tokens and secrets never appear
/// in errors, logs or noise events.
struct oauth_config {
    /// Pre-registered credentials (used for every authorization server; the secret may be empty
    /// for a public client). Empty: the client metadata document or dynamic registration.
    std::string client_id;
    std::string client_secret;
    /// A client ID metadata document (an https URL serving this client's metadata, whose
    /// `client_id` is the URL itself): the client id at authorization servers that advertise
    /// `client_id_metadata_document_supported`.
    std::string client_metadata_url;
    /// The name dynamic registration gives.
    std::string client_name = "wafer";
    /// Where the authorization server sends the browser back ("http://127.0.0.1:PORT/callback").
    std::string redirect_uri;
    /// Requested when neither the server's challenge nor its metadata name scopes.
    std::vector<std::string> scopes;
    /// A JSON file keeping tokens and registrations between runs (written with mode 0600);
    /// empty: kept in memory only.
    std::string token_store;
    /// Required.
    oauth_authorize_step authorize;
};

} // namespace wafer::mcp
