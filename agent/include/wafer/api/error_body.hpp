// Turning an HTTP error response (status, headers, body) into wafer::errc + wafer::diagnostics
// (reference: cerebras-api.md §6). Sans-io.
#pragma once

#include <wafer/error.hpp>

#include <chrono>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace wafer::api {

/// Response header fields with lower-case names, in arrival order.
using header_list = std::vector<std::pair<std::string, std::string>>;

/// The value of the first field named `lower_name`, or nullopt.
std::optional<std::string_view>
find_header(const header_list& h, std::string_view lower_name) noexcept;

/// Reads what the headers say about a failure into `diag`: request_id (`x-request-id`, else
/// `cerebras-request-id`), retry_after (`retry-after-ms`, else `retry-after` as seconds or an
/// HTTP-date relative to `now`; only a positive delay is stored) and every `x-ratelimit-*` field.
void read_error_headers(
    const header_list& h,
    diagnostics& diag,
    std::chrono::system_clock::time_point now = std::chrono::system_clock::now()
);

/// Parses an error body of any of the three shapes into diag.type/code/param/message:
/// flat `{"message","type","param","code"}`, nested `{"status_code":N,"error":{…}}` (also
/// `{"error":{…}}` and `{"error":"text"}`), FastAPI `{"detail":"…"}` or
/// `{"detail":[{loc,msg,type}]}`. A body that is not JSON becomes the message (cut to 512 bytes).
/// Returns the integer `status_code` of a nested body, or 0 if there is none.
int read_error_body(std::string_view body, diagnostics& diag);

/// The whole error response: fills diag (http_status is the status on the wire) and returns the
/// code. As in the Python SDK, a `status_code` inside the body picks the errc when present.
errc read_error_response(
    int http_status,
    const header_list& h,
    std::string_view body,
    diagnostics& diag,
    std::chrono::system_clock::time_point now = std::chrono::system_clock::now()
);

/// Replaces every occurrence of `secret` in the diagnostics' strings with "***" (defence in depth:
/// a server or proxy could echo the API key back).
void redact(diagnostics& diag, std::string_view secret);

} // namespace wafer::api
