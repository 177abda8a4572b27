// HTTP proxy support: parsing the proxy URL and the CONNECT request.
#pragma once

#include <boost/system/error_code.hpp>

#include <optional>
#include <string>
#include <string_view>

namespace wafer::detail {

struct proxy_target {
    std::string host;
    unsigned short port = 3128;
    /// "Basic <base64(user:pass)>" if the URL carried credentials, else empty.
    std::string authorization;
};

/// Parses "http://[user:pass@]host[:port][/]" (a bare "host:port" is accepted too).
std::optional<proxy_target> parse_proxy_url(std::string_view url);

/// True for "https://…": a proxy reached over TLS, which parse_proxy_url refuses.
bool is_tls_proxy_url(std::string_view url);

/// The CONNECT request for host:port through `p`.
std::string connect_request(const proxy_target& p, const std::string& host, unsigned short port);

/// Parses the status code of "HTTP/1.x NNN reason" (0 if malformed).
int parse_status_line(std::string_view head) noexcept;

} // namespace wafer::detail
