// Configuration of api::client: endpoint, credentials, timeouts, retries, TLS, proxy.
#pragma once

#include <wafer/api/admission.hpp>
#include <wafer/api/retry_policy.hpp>

#include <boost/asio/awaitable.hpp>
#include <boost/system/error_code.hpp>

#include <chrono>
#include <cstddef>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace wafer::api {

/// Per-phase deadlines (the Python SDK's httpx.Timeout(60, connect=5)).
struct timeouts_config {
    /// Name resolution + TCP connect + TLS handshake (+ proxy CONNECT), per connection.
    std::chrono::milliseconds connect{5'000};
    /// Longest silence between two reads of a response (headers, body, or stream bytes); also
    /// bounds each write of the request.
    std::chrono::milliseconds read{60'000};
};

/// Where requests go, split out of client_config::base_url.
struct endpoint {
    bool tls = true;  ///< https
    std::string host; ///< host name or IP literal (no brackets)
    unsigned short port = 443;
    /// The path the API's routes hang under ("/v1" unless the base URL gives one), without a
    /// trailing slash: requests go to <path_prefix>/chat/completions and <path_prefix>/models.
    std::string path_prefix = "/v1";
    /// The base URL's query string without the "?" (empty: none), sent with every request.
    std::string query;
};

/// Parses a base URL, `http(s)://host[:port][/path][?query]`, by one rule: requests go to
/// <path>/chat/completions (and <path>/models), where the path is "/v1" when the URL gives none.
/// So https://api.cerebras.ai and https://api.cerebras.ai/v1 are the same endpoint, and a server
/// that serves /api/chat/completions is https://host/api (no "/v1" is added to a given path). A
/// query string is kept and sent with every request. Sets ec to errc::invalid_request for
/// anything else (other schemes, user-info, a fragment, a bad port).
endpoint parse_base_url(std::string_view url, boost::system::error_code& ec);

/// An HTTP proxy for the CONNECT tunnel: "http://[user:pass@]host[:port]".
struct proxy_config {
    std::string url;
    /// Set by from_env(): such a proxy is never used for loopback hosts.
    bool from_environment = false;
};

/// True for localhost, *.localhost, 127.0.0.0/8 and ::1.
bool is_loopback_host(std::string_view host) noexcept;

/// True if `host`/`port` matches the comma-separated NO_PROXY-style list (`*`, exact names,
/// `.suffix` and `suffix` domain matches, optional `:port`; case-insensitive).
bool bypasses_proxy(std::string_view host, unsigned short port, std::string_view no_proxy) noexcept;

/// Everything api::client needs. Aggregate with defaults; use designated initializers.
struct client_config {
    /// Sent as "Authorization: Bearer <api_key>"; never logged or put into errors.
    std::string api_key;
    /// Default Cerebras endpoint (its routes under /v1). "https://api.cerebras.ai/v1" is the same
    /// (see parse_base_url).
    /// Plain http is allowed for any host (OpenAI-compatible servers on a LAN); nothing is printed.
    std::string base_url = "https://api.cerebras.ai";
    timeouts_config timeouts{};
    retry_config retry{};
    /// Extra PEM file of CA certificates, trusted in addition to the system store (and to
    /// SSL_CERT_FILE / SSL_CERT_DIR, which add to the system store rather than replace it).
    std::string ca_file;
    /// Certificate and host name verification. Turning it off is explicit and insecure.
    bool verify_tls = true;
    /// Cap on one non-streaming body and on the total bytes of one stream
    /// (errc::response_too_large when exceeded).
    std::size_t max_response_bytes = 64u * 1024u * 1024u;
    /// HTTP proxy reached with a CONNECT tunnel. from_env() fills it from HTTPS_PROXY/https_proxy;
    /// such an environment proxy applies to https endpoints only and never to loopback hosts. A
    /// proxy set here explicitly applies to every endpoint (loopback included) unless no_proxy
    /// matches. nullopt: direct connections.
    std::optional<proxy_config> proxy;
    /// Comma-separated hosts that bypass the proxy (NO_PROXY syntax).
    std::string no_proxy;
    /// Extra request headers (e.g. X-Cerebras-Version-Patch: 2). Must not include Authorization.
    std::vector<std::pair<std::string, std::string>> headers;
    /// Send "x-stainless-retry-count: <n>" on every attempt, as the SDKs do.
    bool send_retry_count = true;
    /// Idle keep-alive connections kept per (scheme, host, port), and how long they stay idle.
    std::size_t max_idle_connections = 16;
    std::chrono::milliseconds idle_connection_timeout{60'000};
    /// Largest read buffer per connection, and so the largest response head (minimum 4 KiB).
    /// A connection's buffer starts at 1 KiB and doubles while reads keep filling it, so a fast
    /// stream reads up to this much per system call while a slow one stays small; connections
    /// parked in the pool keep at most 8 KiB.
    std::size_t read_buffer_bytes = 64u * 1024u;
    /// Admission control: queue chat requests so they stay inside the server's rate limits
    /// (admission.hpp). Off by default for unknown servers, on for *.cerebras.ai.
    admission_config admission{};

    /// Test hooks. sleep(d) waits between retries (default: a steady_timer, cancellable);
    /// random() draws U[0,1) for backoff jitter (default: a per-client PRNG); now() is the wall
    /// clock for HTTP-date retry-after (default: system_clock::now).
    std::function<boost::asio::awaitable<void>(std::chrono::milliseconds)> sleep;
    std::function<double()> random;
    std::function<std::chrono::system_clock::time_point()> now;

    /// Reads CEREBRAS_API_KEY, CEREBRAS_BASE_URL (default kept when unset or empty),
    /// HTTPS_PROXY / https_proxy and NO_PROXY / no_proxy.
    static client_config from_env();
};

} // namespace wafer::api
