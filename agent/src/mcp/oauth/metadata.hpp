// Discovery, sans-io: which URLs hold the protected resource metadata (RFC 9728) and the
// authorization server metadata (RFC 8414, OpenID Connect Discovery), what the documents say,
// and the 2025-03-26 fallbacks for servers without them.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "mcp/oauth/challenge.hpp"

namespace wafer::mcp::oauth {

struct resource_metadata {
    std::string resource; ///< empty if the document has none
    std::vector<std::string> authorization_servers;
    std::vector<std::string> scopes_supported;
};

/// Where to look, in order: the challenge's resource_metadata, then
/// /.well-known/oauth-protected-resource/<MCP path>, then /.well-known/oauth-protected-resource.
std::vector<std::string>
resource_metadata_urls(std::string_view server_url, const std::optional<bearer_challenge>& c);

/// A document with at least one authorization server; nullopt with `why` otherwise.
std::optional<resource_metadata> parse_resource_metadata(std::string_view body, std::string& why);

/// The document is about this server: same scheme, host and port, and the server's path at or
/// under the resource's path.
bool resource_matches(std::string_view resource, std::string_view server_url);

/// The server's canonical URI (RFC 8707 resource): lower-case scheme and host, no default port,
/// no fragment, no trailing slash on a bare origin.
std::string canonical_resource(std::string_view server_url);

/// "scheme://host[:port]" of a URL (empty if it is not absolute).
std::string origin_of(std::string_view url);

struct server_metadata {
    std::string issuer;
    std::string authorization_endpoint;
    std::string token_endpoint;
    std::string registration_endpoint;
    std::vector<std::string> scopes_supported;
    std::vector<std::string> code_challenge_methods_supported;
    /// Absent: RFC 8414's default, client_secret_basic.
    std::optional<std::vector<std::string>> token_endpoint_auth_methods_supported;
    bool client_id_metadata_document_supported = false;
    bool authorization_response_iss_parameter_supported = false;
};

/// For issuer https://as/tenant1: /.well-known/oauth-authorization-server/tenant1,
/// /.well-known/openid-configuration/tenant1, /tenant1/.well-known/openid-configuration; for a
/// path-less issuer /.well-known/oauth-authorization-server, /.well-known/openid-configuration.
std::vector<std::string> server_metadata_urls(std::string_view issuer);

/// A document with authorization and token endpoints. With `check_issuer` (2026) its `issuer`
/// must be `expected_issuer` exactly. nullopt with `why` otherwise.
std::optional<server_metadata> parse_server_metadata(
    std::string_view body, std::string_view expected_issuer, bool check_issuer, std::string& why
);

/// 2025-03-26 servers without any metadata: /authorize, /token and /register at the MCP origin.
server_metadata default_endpoints(std::string_view origin);

/// PKCE with S256 is possible: the metadata lists it (absent: refuse, as the spec says).
bool supports_s256(const server_metadata& m);

} // namespace wafer::mcp::oauth
