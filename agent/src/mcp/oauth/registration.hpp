// Who the client is to an authorization server, sans-io: pre-registered credentials, a client
// ID metadata document, or dynamic client registration (RFC 7591); and how it authenticates at
// the token endpoint.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "mcp/oauth/metadata.hpp"

namespace wafer::mcp::oauth {

struct client_credentials {
    std::string client_id;
    std::string client_secret;
    /// client_secret_basic, client_secret_post or none.
    std::string auth_method;
};

enum class registration_kind { pre_registered, metadata_document, dynamic, impossible };

/// Pre-registered credentials first; then the metadata document where the server supports it;
/// then dynamic registration where it has an endpoint.
registration_kind choose_registration(
    bool pre_registered, std::string_view client_metadata_url, const server_metadata& m
);

/// The token endpoint method: the registration's own, else the first of basic, post, none
/// that the server supports (absent list: basic) and the credentials allow.
std::string
choose_auth_method(const server_metadata& m, bool has_secret, std::string_view registered = {});

/// The registration request (JSON): a native application for a loopback redirect URI.
std::string registration_request(
    std::string_view client_name, std::string_view redirect_uri, const server_metadata& m
);

/// The registration response: nullopt with `why` unless it holds a client_id.
std::optional<client_credentials>
parse_registration_response(std::string_view body, const server_metadata& m, std::string& why);

} // namespace wafer::mcp::oauth
