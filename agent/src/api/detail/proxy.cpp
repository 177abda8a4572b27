#include "api/detail/proxy.hpp"

#include <wafer/api/client_config.hpp>

#include <boost/asio/ip/address.hpp>

#include <array>
#include <charconv>

#include "detail/ascii.hpp"

namespace wafer::detail {

namespace {

std::string base64(std::string_view in) {
    static constexpr char tbl[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    std::string out;
    std::size_t i = 0;
    for (; i + 2 < in.size(); i += 3) {
        const auto v = (static_cast<unsigned>(static_cast<unsigned char>(in[i])) << 16) |
                       (static_cast<unsigned>(static_cast<unsigned char>(in[i + 1])) << 8) |
                       static_cast<unsigned>(static_cast<unsigned char>(in[i + 2]));
        out += tbl[(v >> 18) & 63];
        out += tbl[(v >> 12) & 63];
        out += tbl[(v >> 6) & 63];
        out += tbl[v & 63];
    }
    if (i < in.size()) {
        auto v = static_cast<unsigned>(static_cast<unsigned char>(in[i])) << 16;
        if (i + 1 < in.size()) {
            v |= static_cast<unsigned>(static_cast<unsigned char>(in[i + 1])) << 8;
        }
        out += tbl[(v >> 18) & 63];
        out += tbl[(v >> 12) & 63];
        out += i + 1 < in.size() ? tbl[(v >> 6) & 63] : '=';
        out += '=';
    }
    return out;
}

} // namespace

bool is_tls_proxy_url(std::string_view url) {
    const auto pos = url.find("://");
    return pos != std::string_view::npos && ascii_lower(url.substr(0, pos)) == "https";
}

std::optional<proxy_target> parse_proxy_url(std::string_view url) {
    if (auto pos = url.find("://"); pos != std::string_view::npos) {
        if (ascii_lower(url.substr(0, pos)) != "http") {
            return std::nullopt; // https:// proxies (TLS to the proxy) are not supported
        }
        url.remove_prefix(pos + 3);
    }
    if (auto slash = url.find('/'); slash != std::string_view::npos) {
        url = url.substr(0, slash);
    }
    proxy_target p;
    if (auto at = url.rfind('@'); at != std::string_view::npos) {
        p.authorization = "Basic " + base64(url.substr(0, at));
        url.remove_prefix(at + 1);
    }
    std::string_view host = url;
    std::string_view port;
    if (!url.empty() && url.front() == '[') {
        auto close = url.find(']');
        if (close == std::string_view::npos) {
            return std::nullopt;
        }
        host = url.substr(1, close - 1);
        if (close + 1 < url.size() && url[close + 1] == ':') {
            port = url.substr(close + 2);
        }
    } else if (auto colon = url.rfind(':'); colon != std::string_view::npos) {
        host = url.substr(0, colon);
        port = url.substr(colon + 1);
    }
    if (host.empty()) {
        return std::nullopt;
    }
    p.host = std::string(host);
    if (!port.empty()) {
        unsigned v = 0;
        auto [ptr, ec] = std::from_chars(port.data(), port.data() + port.size(), v);
        if (ec != std::errc{} || ptr != port.data() + port.size() || v == 0 || v > 65535) {
            return std::nullopt;
        }
        p.port = static_cast<unsigned short>(v);
    }
    return p;
}

std::string connect_request(const proxy_target& p, const std::string& host, unsigned short port) {
    const bool v6 = host.find(':') != std::string::npos;
    std::string authority = (v6 ? "[" + host + "]" : host) + ":" + std::to_string(port);
    std::string req = "CONNECT " + authority + " HTTP/1.1\r\nHost: " + authority + "\r\n";
    if (!p.authorization.empty()) {
        req += "Proxy-Authorization: " + p.authorization + "\r\n";
    }
    req += "\r\n";
    return req;
}

int parse_status_line(std::string_view head) noexcept {
    if (!head.starts_with("HTTP/1.")) {
        return 0;
    }
    auto sp = head.find(' ');
    if (sp == std::string_view::npos || sp + 4 > head.size()) {
        return 0;
    }
    int status = 0;
    auto [ptr, ec] = std::from_chars(head.data() + sp + 1, head.data() + sp + 4, status);
    if (ec != std::errc{} || ptr != head.data() + sp + 4) {
        return 0;
    }
    return status;
}

} // namespace wafer::detail

namespace wafer::api {

bool is_loopback_host(std::string_view host) noexcept {
    std::string h;
    try {
        h = detail::ascii_lower(host);
    } catch (...) {
        return false;
    }
    if (h == "localhost" || h.ends_with(".localhost")) {
        return true;
    }
    boost::system::error_code ec;
    auto addr = boost::asio::ip::make_address(h, ec);
    return !ec && addr.is_loopback();
}

bool bypasses_proxy(
    std::string_view host, unsigned short port, std::string_view no_proxy
) noexcept {
    std::string h;
    try {
        h = detail::ascii_lower(host);
    } catch (...) {
        return false;
    }
    while (!no_proxy.empty()) {
        auto comma = no_proxy.find(',');
        std::string_view entry = no_proxy.substr(0, comma);
        no_proxy =
            comma == std::string_view::npos ? std::string_view{} : no_proxy.substr(comma + 1);
        while (!entry.empty() && (entry.front() == ' ' || entry.front() == '\t')) {
            entry.remove_prefix(1);
        }
        while (!entry.empty() && (entry.back() == ' ' || entry.back() == '\t')) {
            entry.remove_suffix(1);
        }
        if (entry.empty()) {
            continue;
        }
        if (entry == "*") {
            return true;
        }
        // Optional ":port" (not for bare IPv6 literals).
        if (auto colon = entry.rfind(':');
            colon != std::string_view::npos && entry.find(':') == colon) {
            unsigned v = 0;
            auto ps = entry.substr(colon + 1);
            auto [ptr, pec] = std::from_chars(ps.data(), ps.data() + ps.size(), v);
            if (pec != std::errc{} || v != port) {
                continue;
            }
            entry = entry.substr(0, colon);
        }
        if (entry.front() == '.') {
            entry.remove_prefix(1);
        }
        std::string e;
        try {
            e = detail::ascii_lower(entry);
        } catch (...) {
            return false;
        }
        if (h == e ||
            (h.size() > e.size() && h.ends_with(e) && h[h.size() - e.size() - 1] == '.')) {
            return true;
        }
    }
    return false;
}

} // namespace wafer::api
