// wafer's error model: one error-code enum for transport and protocol failures, plus a
// diagnostics object that carries what a human needs to understand the failure.
#pragma once

#include <boost/system/error_code.hpp>
#include <boost/system/system_error.hpp>

#include <chrono>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace wafer {

/// Transport and protocol failures. Model and tool failures are data in the conversation and
/// never show up here.
enum class errc {
    /// The request was rejected before it was sent (bad parameter, bad configuration).
    invalid_request = 1,
    /// HTTP 400: the server rejected the request.
    bad_request,
    /// HTTP 401: missing or wrong API key.
    authentication_failed,
    /// HTTP 403.
    permission_denied,
    /// HTTP 404: unknown model or path.
    not_found,
    /// HTTP 408: the server timed out waiting for the request.
    request_timeout,
    /// HTTP 409.
    conflict,
    /// HTTP 422: validation failed (older servers; newer ones answer 400).
    unprocessable_entity,
    /// HTTP 429: rate limited or the queue is full. See diagnostics::retry_after.
    rate_limited,
    /// HTTP 5xx.
    server_error,
    /// Any other non-success HTTP status (e.g. 402, 413).
    http_status,
    /// Name resolution failed.
    resolve_failed,
    /// TCP connect failed or the connection broke before a response arrived.
    connection_failed,
    /// TLS handshake or certificate/hostname verification failed.
    tls_failed,
    /// A deadline expired (connect, idle read, or an operation deadline).
    timeout,
    /// The stream ended before the protocol said it was complete.
    stream_truncated,
    /// The server sent bytes that do not parse as the protocol says (bad HTTP, SSE or JSON).
    invalid_response,
    /// A response or stream exceeded the configured size cap.
    response_too_large,
    /// The operation was cancelled by its caller.
    cancelled,
    /// An HTTP proxy refused or failed the CONNECT tunnel.
    proxy_failed,
    /// The server reported an error without an HTTP error status: an error event inside a
    /// stream, or a JSON error object in a 2xx reply. diagnostics has the provider's type, code
    /// and message.
    provider_error,
    /// Admission control (client_config::admission) could not send the request before its
    /// deadline: the rate-limit budget would not allow it in time. diagnostics::detail says how
    /// long it waited and which budget was short; no request was sent.
    admission_timeout,
};

/// The error category of wafer::errc ("wafer").
const boost::system::error_category& error_category() noexcept;

inline boost::system::error_code make_error_code(errc e) noexcept {
    return {static_cast<int>(e), error_category()};
}

/// Maps an HTTP status (>= 400) to its errc, as the official SDKs map statuses to classes.
errc errc_from_http_status(int status) noexcept;

/// Everything known about a failure beyond its code. Never contains the API key.
struct diagnostics {
    /// HTTP status of the response, 0 if none arrived (or the status_code of a mid-stream error).
    int http_status = 0;
    /// Provider error fields, from any of the three body shapes (flat, nested, FastAPI detail).
    std::string type;
    std::string code;
    std::string param;
    std::string message;
    /// Request id from the response headers, if the server sent one.
    std::string request_id;
    /// Server-advised delay before retrying (retry-after-ms or retry-after).
    std::optional<std::chrono::milliseconds> retry_after;
    /// The x-ratelimit-* headers of the response, verbatim (lower-case names).
    std::vector<std::pair<std::string, std::string>> rate_limit;
    /// Time the request waited in the client's admission queue (all attempts; 0 when admission
    /// is off or it was admitted at once).
    std::chrono::microseconds queue_wait{0};
    /// Attempts made, including retries (0 if the request was never sent).
    int attempts = 0;
    /// Transport-level detail for humans (e.g. "connect: Connection refused").
    std::string detail;
    /// Set when a retry cannot help and none was made: the server's certificate was rejected,
    /// or the proxy refused the tunnel (403, 407, ...).
    bool refused = false;

    /// One line for humans: "HTTP 429 too_many_requests_error: Requests per minute ...".
    std::string to_string() const;
    void clear() { *this = diagnostics{}; }
};

/// The exception thrown by wafer's throwing operations: the code plus its diagnostics.
class error : public boost::system::system_error {
public:
    error(boost::system::error_code ec, diagnostics diag);
    const diagnostics& diag() const noexcept { return diag_; }

private:
    diagnostics diag_;
};

/// Throws wafer::error if ec is set.
void throw_on_error(const boost::system::error_code& ec, const diagnostics& diag);

} // namespace wafer

namespace boost::system {
template <>
struct is_error_code_enum<wafer::errc> : std::true_type {};
} // namespace boost::system
