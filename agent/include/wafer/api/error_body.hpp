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

/// Replaces the API key in every string of the diagnostics with "***" (defence in depth: a
/// server or proxy could echo the key back), and touches nothing else:
/// - a key of 8 or more characters is replaced wherever it appears, whole or as a partial echo
///   (any run of 8 or more of its leading characters, as in "key csk-abcd1234... is invalid"),
///   and in its JSON-escaped form;
/// - a shorter key is replaced only where it stands as a word of its own (not inside a word of
///   letters, digits, '_' or '-'), so that the key "wrong" leaves "wrong_api_key" alone.
void redact(diagnostics& diag, std::string_view secret);

/// redact() for one string.
void redact_text(std::string& text, std::string_view secret);

/// True if a Content-Type value is text/event-stream (any case, parameters allowed).
bool is_event_stream(std::string_view content_type) noexcept;

/// At most `max_bytes` of `text` as printable ASCII: other bytes become \xNN, newlines \n, and a
/// cut is marked with "...". For quoting server bodies in messages without writing raw bytes to
/// a terminal.
std::string escaped_excerpt(std::string_view text, std::size_t max_bytes = 200);

/// A 2xx reply to a streaming request whose Content-Type is not text/event-stream: a JSON error
/// object becomes that error (its status_code, if >= 400, picks the errc; else
/// errc::provider_error); anything else is errc::invalid_response with diag.detail
/// "expected text/event-stream, got <type>: <escaped excerpt of the body>".
errc read_unexpected_stream_body(
    std::string_view content_type, std::string_view body, diagnostics& diag
);

} // namespace wafer::api
