// The encodings OAuth requests use, sans-io: form bodies and query strings, Base64 (HTTP
// Basic) and Base64url (PKCE), random tokens.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace wafer::mcp::oauth {

using form_fields = std::vector<std::pair<std::string, std::string>>;

/// Percent-encodes everything but RFC 3986's unreserved characters (ALPHA DIGIT - . _ ~).
std::string percent_encode(std::string_view s);

/// "a=1&b=x%20y": an application/x-www-form-urlencoded body or a query string.
std::string form_encode(const form_fields& fields);

/// `url` with `fields` appended to its query (its own query and fragment kept apart).
std::string append_query(std::string_view url, const form_fields& fields);

std::string base64(std::string_view bytes);
/// Base64url without padding (RFC 7636 appendix A).
std::string base64url(std::string_view bytes);

/// `n` bytes from OpenSSL's CSPRNG, Base64url-encoded. Throws std::runtime_error if the
/// generator fails.
std::string random_token(std::size_t n);

} // namespace wafer::mcp::oauth
