#include "endpoint.hpp"

#include <wafer/testing/offline_session.hpp>

#include <chrono>
#include <cstdlib>
#include <iostream>

#include "failure.hpp"
#include "secret_env.hpp"

namespace wafer::cli {

namespace {

std::string env_or_empty(const char* name) {
    const char* v = std::getenv(name);
    return v ? std::string(v) : std::string();
}

/// The host of "host[:port][/path]" (brackets of an IPv6 literal removed).
std::string_view host_of(std::string_view authority_and_path) {
    std::string_view a = authority_and_path.substr(0, authority_and_path.find('/'));
    if (!a.empty() && a.front() == '[') {
        return a.substr(1, a.find(']') == std::string_view::npos ? a.size() - 1 : a.find(']') - 1);
    }
    return a.substr(0, a.find(':'));
}

/// An https:// proxy in HTTPS_PROXY, for an endpoint it would apply to, is refused up front:
/// wafer talks to proxies over plain http (CONNECT), then TLS to the endpoint through it.
void check_proxy(const api::client_config& cfg, const api::endpoint& where) {
    if (!cfg.proxy || !where.tls || api::is_loopback_host(where.host) ||
        api::bypasses_proxy(where.host, where.port, cfg.no_proxy)) {
        return;
    }
    std::string scheme = cfg.proxy->url.substr(0, cfg.proxy->url.find("://"));
    for (auto& c : scheme) {
        c = static_cast<char>(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c);
    }
    if (scheme == "https") {
        throw cli_error(
            "HTTPS_PROXY is an https:// URL: wafer reaches a proxy over plain http and tunnels "
            "TLS to the endpoint through it (CONNECT); give the proxy as http://host:port",
            exit_usage
        );
    }
}

} // namespace

endpoint_request endpoint_request::from_env(std::string base_url_flag, std::string ca_file) {
    endpoint_request req{
        std::move(base_url_flag),
        take_secret_env("CEREBRAS_API_KEY"),
        env_or_empty("CEREBRAS_BASE_URL"),
        std::move(ca_file)};
    // wafer never uses it, but commands it runs must not find it in wafer's environment either.
    take_secret_env("OPENAI_API_KEY");
    return req;
}

std::string normalise_base_url(std::string_view url) {
    while (!url.empty() && (url.front() == ' ' || url.front() == '\t')) {
        url.remove_prefix(1);
    }
    while (!url.empty() && (url.back() == ' ' || url.back() == '\t' || url.back() == '/')) {
        url.remove_suffix(1);
    }
    if (url.empty() || url.find("://") != std::string_view::npos) {
        return std::string(url);
    }
    // A bare host: the real service speaks https; a server on this machine usually plain http.
    const bool local = api::is_loopback_host(host_of(url));
    return (local ? "http://" : "https://") + std::string(url);
}

endpoint open_endpoint(boost::asio::any_io_executor ex, const endpoint_request& req) {
    endpoint e;
    // from_env() also picks up HTTPS_PROXY / NO_PROXY.
    e.config = api::client_config::from_env();
    e.config.api_key = req.env_api_key;
    // SSL_CERT_FILE is read by the TLS layer itself, in addition to the system store.
    e.config.ca_file = req.ca_file;
    const std::string& given = !req.base_url_flag.empty() ? req.base_url_flag : req.env_base_url;

    if (given.empty() && req.env_api_key.empty()) {
        // The offline stand-in: pauses between streamed words so the session reads like a model.
        testing::delivery how;
        how.chunk_delay = std::chrono::milliseconds(3);
        e.offline = std::make_unique<testing::fake_server>(ex);
        e.offline->set_responder(testing::offline_session(how));
        e.config.base_url = e.offline->base_url();
        e.display_url = e.config.base_url;
        std::cerr << "wafer: no CEREBRAS_API_KEY and no --base-url: using the offline stand-in "
                     "model at "
                  << e.config.base_url << " (scripted replies, no real model)\n";
        return e;
    }

    if (!given.empty()) {
        e.config.base_url = normalise_base_url(given);
    }
    boost::system::error_code ec;
    const api::endpoint where = api::parse_base_url(e.config.base_url, ec);
    const char* source = !req.base_url_flag.empty() ? "--base-url" : "CEREBRAS_BASE_URL";
    if (ec) {
        throw cli_error(
            std::string("invalid ") + source + " \"" + std::string(given) +
                "\": expected http(s)://host[:port][/path][?query]; requests go to "
                "<path>/chat/completions, under /v1 when no path is given",
            exit_usage
        );
    }
    check_proxy(e.config, where);
    if (e.config.api_key.empty() && !api::is_loopback_host(where.host)) {
        throw cli_error(
            "no API key for " + e.config.base_url +
                ": set CEREBRAS_API_KEY (without a key and without --base-url, wafer uses its "
                "offline stand-in)",
            exit_usage
        );
    }
    e.display_url = e.config.base_url;
    return e;
}

} // namespace wafer::cli
