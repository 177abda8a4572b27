// PKCE with S256 (RFC 7636), sans-io apart from the random verifier.
#pragma once

#include <string>
#include <string_view>

namespace wafer::mcp::oauth {

struct pkce_pair {
    std::string verifier;  ///< 43 characters of Base64url (32 random bytes)
    std::string challenge; ///< BASE64URL(SHA256(verifier))
};

/// A fresh verifier and its challenge.
pkce_pair make_pkce();

/// The S256 challenge of `verifier`.
std::string s256_challenge(std::string_view verifier);

} // namespace wafer::mcp::oauth
