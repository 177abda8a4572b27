#include "failure.hpp"

#include <wafer/store/error.hpp>

#include <cstdio>
#include <string_view>

#include "visible.hpp"

namespace wafer::cli {

namespace {

bool contains(std::string_view s, std::string_view part) {
    return s.find(part) != std::string_view::npos;
}

/// "HTTP 401 (wrong_api_key)" or "HTTP 401".
std::string status_part(const wafer::diagnostics& d) {
    if (d.http_status == 0) {
        return {};
    }
    std::string s = "HTTP " + std::to_string(d.http_status);
    const std::string& what = !d.code.empty() ? d.code : d.type;
    if (!what.empty()) {
        s += " " + what;
    }
    return s;
}

/// ": <provider message>" when there is one (without a final period: more may follow).
std::string message_part(const wafer::diagnostics& d) {
    if (!d.message.empty()) {
        std::string m = d.message;
        while (!m.empty() && (m.back() == '.' || m.back() == ' ')) {
            m.pop_back();
        }
        return ": " + m;
    }
    if (!d.detail.empty()) {
        return ": " + d.detail;
    }
    return {};
}

std::string retry_after_part(const wafer::diagnostics& d) {
    if (!d.retry_after) {
        return "; try again later";
    }
    const auto ms = d.retry_after->count();
    if (ms < 1000) {
        return "; retry after " + std::to_string(ms) + " ms";
    }
    return "; retry after " + std::to_string((ms + 999) / 1000) + " s";
}

/// "the server reported an error inside the stream: overloaded_error (queue_full): Try later".
std::string in_stream_error(const wafer::diagnostics& d) {
    std::string s = "the server reported an error inside the stream";
    std::string what = d.type;
    if (!d.code.empty() && d.code != d.type) {
        what += (what.empty() ? "(" : " (") + d.code + ")";
    }
    if (!what.empty()) {
        s += ": " + what;
    }
    s += message_part(d);
    if (!d.request_id.empty()) {
        s += " [request id " + d.request_id + "]";
    }
    return s;
}

} // namespace

std::string failure_line(
    const boost::system::error_code& ec, const wafer::diagnostics& d, const std::string& base_url
) {
    if (ec.category() == wafer::store::error_category()) {
        // The run store's errors name the file and the run in their detail.
        return d.detail.empty() ? ec.message() : d.detail;
    }
    if (ec.category() != wafer::error_category()) {
        return ec.message() + (d.detail.empty() ? "" : " (" + d.detail + ")");
    }
    switch (static_cast<errc>(ec.value())) {
    case errc::authentication_failed:
    case errc::permission_denied:
        return "authentication failed (" + status_part(d) + ")" + message_part(d) +
               "; check CEREBRAS_API_KEY";
    case errc::rate_limited:
        return "rate limited (" + status_part(d) + ")" + message_part(d) + retry_after_part(d);
    case errc::connection_failed:
        return "cannot connect to " + base_url + (d.detail.empty() ? "" : ": " + d.detail);
    case errc::resolve_failed:
        return "cannot resolve the host of " + base_url + (d.detail.empty() ? "" : ": " + d.detail);
    case errc::tls_failed:
        if (contains(d.detail, "is not valid for")) {
            return "TLS verification failed for " + base_url +
                   ": the server's certificate does not name this host (" + d.detail + ")";
        }
        if (contains(d.detail, "certificate") || contains(d.detail, "verify")) {
            return "TLS verification failed for " + base_url +
                   ": the server's certificate is not trusted (" + d.detail + ")";
        }
        return "TLS handshake with " + base_url + " failed" +
               (d.detail.empty() ? "" : ": " + d.detail);
    case errc::timeout:
        return "timed out talking to " + base_url + (d.detail.empty() ? "" : ": " + d.detail);
    case errc::proxy_failed:
        return "the HTTP proxy failed" + (d.detail.empty() ? "" : ": " + d.detail);
    case errc::not_found:
        return "not found (" + status_part(d) + ")" + message_part(d) +
               " (is the model name right? `wafer models` lists them)";
    case errc::cancelled:
        return "interrupted";
    case errc::provider_error:
        return in_stream_error(d);
    case errc::server_error:
        if (d.http_status == 0) {
            // An error event inside a 200 stream that carried no status code: not an HTTP 5xx.
            return in_stream_error(d);
        }
        break;
    default:
        break;
    }
    const std::string what = d.to_string();
    return ec.message() + (what.empty() ? "" : " (" + what + ")");
}

void print_failure(const std::string& line) {
    // Failure lines quote servers and tools: escaped, so they cannot rewrite the terminal.
    const std::string one = visible(line);
    std::fprintf(stderr, "wafer: %s\n", one.c_str());
    std::fflush(stderr);
}

} // namespace wafer::cli
