#include "mcp/oauth/pkce.hpp"

#include <openssl/sha.h>

#include "mcp/oauth/encoding.hpp"

namespace wafer::mcp::oauth {

std::string s256_challenge(std::string_view verifier) {
    unsigned char digest[SHA256_DIGEST_LENGTH];
    SHA256(reinterpret_cast<const unsigned char*>(verifier.data()), verifier.size(), digest);
    return base64url(std::string_view(reinterpret_cast<const char*>(digest), sizeof digest));
}

pkce_pair make_pkce() {
    pkce_pair p;
    p.verifier = random_token(32);
    p.challenge = s256_challenge(p.verifier);
    return p;
}

} // namespace wafer::mcp::oauth
