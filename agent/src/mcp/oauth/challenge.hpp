// The Bearer challenge of a 401 or 403 (RFC 6750 section 3, RFC 9728 section 5.1), sans-io.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace wafer::mcp::oauth {

struct bearer_challenge {
    std::string resource_metadata; ///< the protected resource metadata URL, if given
    std::string scope;             ///< space-separated, if given
    std::string error;             ///< "invalid_token", "insufficient_scope", ...
};

/// The Bearer challenge among the schemes of a WWW-Authenticate value; nullopt if there is none.
std::optional<bearer_challenge> parse_bearer_challenge(std::string_view www_authenticate);

/// What a 401 or 403 asks of the client.
enum class auth_demand {
    none,       ///< not an authorization matter (a 403 for a bad Origin, say)
    authorize,  ///< 401: a token is missing, expired or invalid
    more_scope, ///< 403 insufficient_scope: authorize again with more scope (step-up)
};
auth_demand classify_auth_failure(int status, const std::optional<bearer_challenge>& c);

} // namespace wafer::mcp::oauth
