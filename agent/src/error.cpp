#include <wafer/error.hpp>

namespace wafer {
namespace {

// boost::system::error_category's destructor is non-virtual by design (categories are static).
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wnon-virtual-dtor"
class category_impl final : public boost::system::error_category {
public:
    const char* name() const noexcept override { return "wafer"; }

    std::string message(int ev) const override {
        switch (static_cast<errc>(ev)) {
        case errc::invalid_request:
            return "invalid request";
        case errc::bad_request:
            return "bad request (HTTP 400)";
        case errc::authentication_failed:
            return "authentication failed (HTTP 401)";
        case errc::permission_denied:
            return "permission denied (HTTP 403)";
        case errc::not_found:
            return "not found (HTTP 404)";
        case errc::request_timeout:
            return "request timeout (HTTP 408)";
        case errc::conflict:
            return "conflict (HTTP 409)";
        case errc::unprocessable_entity:
            return "unprocessable entity (HTTP 422)";
        case errc::rate_limited:
            return "rate limited (HTTP 429)";
        case errc::server_error:
            return "server error (HTTP 5xx)";
        case errc::http_status:
            return "unexpected HTTP status";
        case errc::resolve_failed:
            return "host name resolution failed";
        case errc::connection_failed:
            return "connection failed";
        case errc::tls_failed:
            return "TLS handshake or certificate verification failed";
        case errc::timeout:
            return "timed out";
        case errc::stream_truncated:
            return "stream ended before completion";
        case errc::invalid_response:
            return "invalid response from server";
        case errc::response_too_large:
            return "response exceeds the size limit";
        case errc::cancelled:
            return "operation cancelled";
        case errc::proxy_failed:
            return "proxy CONNECT failed";
        case errc::provider_error:
            return "the server reported an error";
        case errc::admission_timeout:
            return "the rate limit would not admit the request before its deadline";
        }
        return "unknown wafer error";
    }
};
#pragma GCC diagnostic pop

} // namespace

const boost::system::error_category& error_category() noexcept {
    static const category_impl instance;
    return instance;
}

errc errc_from_http_status(int status) noexcept {
    switch (status) {
    case 400:
        return errc::bad_request;
    case 401:
        return errc::authentication_failed;
    case 403:
        return errc::permission_denied;
    case 404:
        return errc::not_found;
    case 408:
        return errc::request_timeout;
    case 409:
        return errc::conflict;
    case 422:
        return errc::unprocessable_entity;
    case 429:
        return errc::rate_limited;
    default:
        return status >= 500 ? errc::server_error : errc::http_status;
    }
}

std::string diagnostics::to_string() const {
    std::string out;
    if (http_status != 0) {
        out += "HTTP " + std::to_string(http_status);
    }
    auto append = [&out](const std::string& part, const char* sep) {
        if (part.empty()) {
            return;
        }
        if (!out.empty()) {
            out += sep;
        }
        out += part;
    };
    append(type, " ");
    if (!code.empty() && code != type) {
        append("(" + code + ")", " ");
    }
    append(message, ": ");
    append(detail, out.empty() ? "" : "; ");
    if (retry_after) {
        out += " [retry after " + std::to_string(retry_after->count()) + " ms]";
    }
    if (!request_id.empty()) {
        out += " [request id " + request_id + "]";
    }
    return out;
}

error::error(boost::system::error_code ec, diagnostics diag)
    : boost::system::system_error(ec, diag.to_string()), diag_(std::move(diag)) {}

void throw_on_error(const boost::system::error_code& ec, const diagnostics& diag) {
    if (ec) {
        throw error(ec, diag);
    }
}

} // namespace wafer
