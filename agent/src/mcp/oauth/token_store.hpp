// Tokens and registrations kept between runs: one JSON file, mode 0600, replaced atomically.
// Tokens are keyed by resource (the MCP server), registrations by authorization server issuer.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "mcp/oauth/registration.hpp"

namespace wafer::mcp::oauth {

struct stored_tokens {
    std::string issuer; ///< the authorization server that issued them
    std::string access_token;
    std::string refresh_token;
    std::string scope;
    std::string resource;       ///< the RFC 8707 value they were issued for
    std::string token_endpoint; ///< where to refresh them
    std::string auth_method;    ///< how the client authenticated there
};

class token_store {
public:
    /// Empty path: nothing is kept.
    explicit token_store(std::string path) : path_(std::move(path)) {}

    std::optional<stored_tokens> tokens(std::string_view resource) const;
    std::optional<client_credentials> client(std::string_view issuer) const;

    /// Empty if saved, else why not (without any of the values).
    std::string save_tokens(std::string_view resource, const stored_tokens& t) const;
    std::string save_client(std::string_view issuer, const client_credentials& c) const;

private:
    std::string path_;
};

} // namespace wafer::mcp::oauth
