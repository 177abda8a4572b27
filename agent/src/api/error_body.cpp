#include <wafer/api/error_body.hpp>
#include <wafer/api/retry_policy.hpp>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstdint>
#include <utility>

namespace wafer::api {
namespace {

constexpr std::size_t max_raw_message = 512;

// A raw body shown as the message is cut where a code point starts, so that a valid UTF-8 body
// stays valid when it is logged or sent on as JSON.
std::string_view raw_message(std::string_view body) noexcept {
    if (body.size() <= max_raw_message) {
        return body;
    }
    std::size_t cut = max_raw_message;
    for (int back = 0;
         back < 3 && cut > 0 && (static_cast<unsigned char>(body[cut]) & 0xC0U) == 0x80U;
         ++back) {
        --cut;
    }
    return body.substr(0, cut);
}

// Error fields are usually strings, but some servers send numbers or null.
std::string field_text(const nlohmann::json& obj, const char* key) {
    if (!obj.is_object()) {
        return {};
    }
    auto it = obj.find(key);
    if (it == obj.end() || it->is_null()) {
        return {};
    }
    if (it->is_string()) {
        return it->get<std::string>();
    }
    return it->dump();
}

void read_fields(const nlohmann::json& obj, diagnostics& diag) {
    diag.message = field_text(obj, "message");
    diag.type = field_text(obj, "type");
    diag.code = field_text(obj, "code");
    diag.param = field_text(obj, "param");
}

// FastAPI validation errors: [{"loc":["body","x"],"msg":"…","type":"…"}, …].
void read_detail_list(const nlohmann::json& list, diagnostics& diag) {
    std::string msg;
    for (const auto& item : list) {
        if (!msg.empty()) {
            msg += "; ";
        }
        if (!item.is_object()) {
            msg += item.is_string() ? item.get<std::string>() : item.dump();
            continue;
        }
        if (auto loc = item.find("loc"); loc != item.end() && loc->is_array()) {
            std::string path;
            for (const auto& part : *loc) {
                if (!path.empty()) {
                    path += '.';
                }
                path += part.is_string() ? part.get<std::string>() : part.dump();
            }
            if (!path.empty()) {
                msg += path + ": ";
            }
        }
        msg += field_text(item, "msg");
        if (diag.type.empty()) {
            diag.type = field_text(item, "type");
        }
    }
    diag.message = std::move(msg);
}

} // namespace

std::optional<std::string_view>
find_header(const header_list& h, std::string_view lower_name) noexcept {
    for (const auto& [name, value] : h) {
        if (name == lower_name) {
            return std::string_view(value);
        }
    }
    return std::nullopt;
}

void read_error_headers(
    const header_list& h, diagnostics& diag, std::chrono::system_clock::time_point now
) {
    if (auto id = find_header(h, "x-request-id")) {
        diag.request_id = std::string(*id);
    } else if (auto cid = find_header(h, "cerebras-request-id")) {
        diag.request_id = std::string(*cid);
    }
    auto delay =
        server_retry_delay(find_header(h, "retry-after-ms"), find_header(h, "retry-after"), now);
    if (delay && delay->count() > 0) {
        diag.retry_after = *delay;
    }
    diag.rate_limit.clear();
    for (const auto& [name, value] : h) {
        if (name.starts_with("x-ratelimit-")) {
            diag.rate_limit.emplace_back(name, value);
        }
    }
}

int read_error_body(std::string_view body, diagnostics& diag) {
    auto j = nlohmann::json::parse(body, nullptr, /*allow_exceptions=*/false);
    if (j.is_discarded() || !j.is_object()) {
        diag.message = std::string(raw_message(body));
        return 0;
    }
    int status = 0;
    if (auto sc = j.find("status_code");
        sc != j.end() && sc->is_number_integer() && std::in_range<int>(sc->get<std::int64_t>())) {
        status = sc->get<int>();
    }
    if (auto err = j.find("error"); err != j.end() && !err->is_null()) {
        if (err->is_object()) {
            read_fields(*err, diag);
        } else if (err->is_string()) {
            diag.message = err->get<std::string>();
        } else {
            diag.message = err->dump();
        }
    } else if (auto detail = j.find("detail"); detail != j.end() && !detail->is_null()) {
        if (detail->is_string()) {
            diag.message = detail->get<std::string>();
        } else if (detail->is_array()) {
            read_detail_list(*detail, diag);
        } else {
            diag.message = detail->dump();
        }
    } else {
        read_fields(j, diag);
    }
    return status;
}

errc read_error_response(
    int http_status,
    const header_list& h,
    std::string_view body,
    diagnostics& diag,
    std::chrono::system_clock::time_point now
) {
    diag.http_status = http_status;
    read_error_headers(h, diag, now);
    const int body_status = read_error_body(body, diag);
    return errc_from_http_status(body_status >= 400 ? body_status : http_status);
}

namespace {

// Below this length a key is matched only as a whole word, and a partial echo is not a match.
constexpr std::size_t min_key_match = 8;

bool word_char(char c) noexcept {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '-';
}

// Length of the run of `text` at `i` that redaction covers for `form` (0: none).
std::size_t key_run_at(std::string_view text, std::size_t i, std::string_view form) noexcept {
    if (form.size() >= min_key_match) {
        std::size_t k = 0;
        while (k < form.size() && i + k < text.size() && text[i + k] == form[k]) {
            ++k;
        }
        return k >= min_key_match ? k : 0;
    }
    if (text.substr(i, form.size()) != form) {
        return 0;
    }
    const bool starts_word = i == 0 || !word_char(text[i - 1]);
    const std::size_t end = i + form.size();
    const bool ends_word = end == text.size() || !word_char(text[end]);
    return starts_word && ends_word ? form.size() : 0;
}

} // namespace

void redact_text(std::string& text, std::string_view secret) {
    if (secret.empty() || text.empty()) {
        return;
    }
    std::string escaped = nlohmann::json(std::string(secret))
                              .dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
    escaped = escaped.substr(1, escaped.size() - 2);
    std::string out;
    bool changed = false;
    for (std::size_t i = 0; i < text.size();) {
        std::size_t run = key_run_at(text, i, secret);
        if (run == 0 && escaped != secret) {
            run = key_run_at(text, i, escaped);
        }
        if (run == 0) {
            out += text[i++];
            continue;
        }
        out += "***";
        i += run;
        changed = true;
    }
    if (changed) {
        text = std::move(out);
    }
}

void redact(diagnostics& diag, std::string_view secret) {
    if (secret.empty()) {
        return;
    }
    redact_text(diag.type, secret);
    redact_text(diag.code, secret);
    redact_text(diag.param, secret);
    redact_text(diag.message, secret);
    redact_text(diag.request_id, secret);
    redact_text(diag.detail, secret);
    for (auto& [name, value] : diag.rate_limit) {
        redact_text(value, secret);
    }
}

bool is_event_stream(std::string_view content_type) noexcept {
    constexpr std::string_view want = "text/event-stream";
    while (!content_type.empty() && (content_type.front() == ' ' || content_type.front() == '\t')) {
        content_type.remove_prefix(1);
    }
    if (content_type.size() < want.size()) {
        return false;
    }
    for (std::size_t i = 0; i < want.size(); ++i) {
        char c = content_type[i];
        if (c >= 'A' && c <= 'Z') {
            c = static_cast<char>(c + 32);
        }
        if (c != want[i]) {
            return false;
        }
    }
    if (content_type.size() == want.size()) {
        return true;
    }
    const char next = content_type[want.size()];
    return next == ';' || next == ' ' || next == '\t';
}

std::string escaped_excerpt(std::string_view text, std::size_t max_bytes) {
    static constexpr char hex[] = "0123456789abcdef";
    std::string out;
    const std::size_t n = std::min(text.size(), max_bytes);
    for (std::size_t i = 0; i < n; ++i) {
        const auto c = static_cast<unsigned char>(text[i]);
        if (c == '\n') {
            out += "\\n";
        } else if (c == '\\') {
            out += "\\\\";
        } else if (c >= 0x20 && c < 0x7f) {
            out += static_cast<char>(c);
        } else {
            out += "\\x";
            out += hex[c >> 4];
            out += hex[c & 0xf];
        }
    }
    if (text.size() > n) {
        out += "...";
    }
    return out;
}

errc read_unexpected_stream_body(
    std::string_view content_type, std::string_view body, diagnostics& diag
) {
    auto j = nlohmann::json::parse(body, nullptr, /*allow_exceptions=*/false);
    const bool error_object = !j.is_discarded() && j.is_object() &&
                              ((j.contains("error") && !j["error"].is_null()) ||
                               (j.contains("detail") && !j["detail"].is_null()));
    if (error_object) {
        const int status = read_error_body(body, diag);
        diag.detail = "sent instead of an event stream";
        if (status >= 400) {
            diag.http_status = status;
            return errc_from_http_status(status);
        }
        diag.http_status = 0; // the wire said 200, which is not what happened
        return errc::provider_error;
    }
    diag.detail = "expected text/event-stream, got " + escaped_excerpt(content_type, 100);
    diag.detail +=
        body.empty() ? std::string(" with an empty body") : ": " + escaped_excerpt(body, 200);
    return errc::invalid_response;
}

} // namespace wafer::api
