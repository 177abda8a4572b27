// HTTP error responses: status, headers and body as a server (or a proxy) might send them.
//
// Input: "STATUS\nname: value\n...\n\nBODY" (an HTTP response without the protocol noise).
// Properties: parsing never crashes; after redact() no field holds the API key; a body that is
// valid UTF-8 gives a message that is valid UTF-8 (it is shown and logged as JSON); a stored
// retry_after is positive.
#include <wafer/api/error_body.hpp>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "fuzz_check.hpp"

namespace {

constexpr std::string_view secret = "csk-fuzz0secret0key0123456789";

bool contains_secret(const wafer::diagnostics& d) {
    auto has = [](const std::string& s) {
        return s.find(secret) != std::string::npos;
    };
    if (has(d.type) || has(d.code) || has(d.param) || has(d.message) || has(d.request_id) ||
        has(d.detail)) {
        return true;
    }
    return std::any_of(d.rate_limit.begin(), d.rate_limit.end(), [&](const auto& kv) {
        return has(kv.second);
    });
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    std::string_view in(reinterpret_cast<const char*>(data), size);
    auto take_line = [&in]() {
        auto nl = in.find('\n');
        std::string_view line = in.substr(0, nl);
        in = nl == std::string_view::npos ? std::string_view{} : in.substr(nl + 1);
        return line;
    };
    const std::string_view status_line = take_line();
    int status = 0;
    std::from_chars(status_line.data(), status_line.data() + status_line.size(), status);

    wafer::api::header_list headers;
    while (!in.empty()) {
        std::string_view line = take_line();
        if (line.empty()) {
            break;
        }
        auto colon = line.find(':');
        std::string name(line.substr(0, colon));
        std::transform(name.begin(), name.end(), name.begin(), [](unsigned char c) {
            return static_cast<char>(std::tolower(c));
        });
        std::string_view value = colon == std::string_view::npos ? "" : line.substr(colon + 1);
        while (!value.empty() && value.front() == ' ') {
            value.remove_prefix(1);
        }
        headers.emplace_back(std::move(name), std::string(value));
    }
    const std::string body(in);

    // A fixed "now" keeps HTTP-date results reproducible.
    const auto now = std::chrono::system_clock::time_point{} + std::chrono::seconds(1'780'000'000);
    wafer::diagnostics diag;
    (void)wafer::api::read_error_response(status, headers, body, diag, now);
    if (diag.retry_after) {
        WAFER_FUZZ_CHECK(diag.retry_after->count() > 0);
    }
    if (wafer::fuzz::is_valid_utf8(body)) {
        WAFER_FUZZ_CHECK(wafer::fuzz::is_valid_utf8(diag.message));
    }
    wafer::api::redact(diag, secret);
    WAFER_FUZZ_CHECK(!contains_secret(diag));
    (void)diag.to_string();

    wafer::diagnostics body_only;
    (void)wafer::api::read_error_body(body, body_only);
    return 0;
}
