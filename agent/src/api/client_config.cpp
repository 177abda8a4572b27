#include <wafer/api/client_config.hpp>
#include <wafer/error.hpp>

#include <charconv>
#include <cstdlib>

#include "detail/ascii.hpp"

namespace wafer::api {

using wafer::detail::ascii_lower;
namespace {

std::string env(const char* name) {
    const char* v = std::getenv(name);
    return v ? std::string(v) : std::string();
}

} // namespace

endpoint parse_base_url(std::string_view url, boost::system::error_code& ec) {
    ec = {};
    endpoint ep;
    auto bad = [&ec] {
        ec = make_error_code(errc::invalid_request);
        return endpoint{};
    };
    while (!url.empty() && (url.back() == ' ' || url.back() == '\n' || url.back() == '\r')) {
        url.remove_suffix(1);
    }
    const auto scheme_end = url.find("://");
    if (scheme_end == std::string_view::npos) {
        return bad();
    }
    const auto scheme = ascii_lower(url.substr(0, scheme_end));
    if (scheme == "https") {
        ep.tls = true;
        ep.port = 443;
    } else if (scheme == "http") {
        ep.tls = false;
        ep.port = 80;
    } else {
        return bad();
    }
    url.remove_prefix(scheme_end + 3);
    if (url.find('#') != std::string_view::npos) {
        return bad();
    }
    if (const auto q = url.find('?'); q != std::string_view::npos) {
        ep.query = std::string(url.substr(q + 1)); // kept: an API version, a deployment
        url = url.substr(0, q);
    }
    const auto path_start = url.find('/');
    std::string_view authority = url.substr(0, path_start);
    std::string_view path =
        path_start == std::string_view::npos ? std::string_view{} : url.substr(path_start);
    if (authority.empty() || authority.find('@') != std::string_view::npos ||
        ep.query.find_first_of(" \r\n") != std::string::npos) {
        return bad();
    }
    std::string_view port;
    if (authority.front() == '[') {
        const auto close = authority.find(']');
        if (close == std::string_view::npos) {
            return bad();
        }
        ep.host = std::string(authority.substr(1, close - 1));
        if (close + 1 < authority.size()) {
            if (authority[close + 1] != ':') {
                return bad();
            }
            port = authority.substr(close + 2);
        }
    } else {
        const auto colon = authority.find(':');
        ep.host = std::string(authority.substr(0, colon));
        if (colon != std::string_view::npos) {
            port = authority.substr(colon + 1);
        }
    }
    if (ep.host.empty()) {
        return bad();
    }
    if (authority.front() != '[' && !port.data()) {
        // no port given
    } else if (!port.empty()) {
        unsigned v = 0;
        auto [p, pec] = std::from_chars(port.data(), port.data() + port.size(), v);
        if (pec != std::errc{} || p != port.data() + port.size() || v == 0 || v > 65535) {
            return bad();
        }
        ep.port = static_cast<unsigned short>(v);
    }
    while (!path.empty() && path.back() == '/') {
        path.remove_suffix(1);
    }
    if (path.find_first_of(" \r\n") != std::string_view::npos) {
        return bad();
    }
    // The one rule: the routes hang under the given path, or under /v1 when there is none.
    ep.path_prefix = path.empty() ? std::string("/v1") : std::string(path);
    return ep;
}

client_config client_config::from_env() {
    client_config cfg;
    cfg.api_key = env("CEREBRAS_API_KEY");
    if (auto base = env("CEREBRAS_BASE_URL"); !base.empty()) {
        cfg.base_url = std::move(base);
    }
    std::string proxy = env("HTTPS_PROXY");
    if (proxy.empty()) {
        proxy = env("https_proxy");
    }
    if (!proxy.empty()) {
        cfg.proxy = proxy_config{std::move(proxy), true};
    }
    cfg.no_proxy = env("NO_PROXY");
    if (cfg.no_proxy.empty()) {
        cfg.no_proxy = env("no_proxy");
    }
    return cfg;
}

} // namespace wafer::api
