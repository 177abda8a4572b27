// The authorization code grant with PKCE and resource indicators, and token refresh, sans-io:
// the authorization URL, the redirect it comes back with, token endpoint requests and answers.
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <string_view>

#include "mcp/oauth/encoding.hpp"
#include "mcp/oauth/metadata.hpp"
#include "mcp/oauth/registration.hpp"

namespace wafer::mcp::oauth {

struct authorization_params {
    std::string client_id;
    std::string redirect_uri;
    std::string scope; ///< empty: no scope parameter
    std::string resource;
    std::string state;
    std::string code_challenge;
};

/// The authorization endpoint with response_type=code, client_id, redirect_uri, the S256
/// challenge, state, scope and resource (RFC 8707: always) in its query.
std::string authorization_url(const server_metadata& m, const authorization_params& p);

/// What the redirect back carries.
struct callback {
    std::string code;
    std::string state;
    std::optional<std::string> iss;
    std::string error; ///< the server's error code, if it refused
};
std::optional<callback> parse_callback(std::string_view redirect_url);

/// Empty if the code may be used, else why not: the state must match; the iss parameter
/// (RFC 9207) must equal the issuer exactly when present, and be present when the server
/// advertises it. Nothing of the server's error text is echoed.
std::string check_callback(
    const callback& c, std::string_view state, std::string_view issuer, bool iss_required
);

/// A token endpoint request: its form body, and the Authorization value for
/// client_secret_basic (else empty).
struct token_request {
    std::string body;
    std::string authorization;
};
token_request code_request(
    std::string_view code,
    std::string_view redirect_uri,
    std::string_view verifier,
    std::string_view resource,
    const client_credentials& client
);
token_request refresh_request(
    std::string_view refresh_token, std::string_view resource, const client_credentials& client
);

struct token_set {
    std::string access_token;
    std::string refresh_token;
    std::string scope;
    std::optional<std::chrono::seconds> expires_in;
};

/// A 200 answer with a Bearer access token; nullopt with `why` otherwise (the server's error
/// code, never a token).
std::optional<token_set> parse_token_response(int status, std::string_view body, std::string& why);

} // namespace wafer::mcp::oauth
