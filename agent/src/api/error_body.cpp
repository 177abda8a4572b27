#include <wafer/api/error_body.hpp>
#include <wafer/api/retry_policy.hpp>

#include <nlohmann/json.hpp>

namespace wafer::api {
namespace {

constexpr std::size_t max_raw_message = 512;

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
        diag.message = std::string(body.substr(0, max_raw_message));
        return 0;
    }
    int status = 0;
    if (auto sc = j.find("status_code"); sc != j.end() && sc->is_number_integer()) {
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

void redact(diagnostics& diag, std::string_view secret) {
    if (secret.empty()) {
        return;
    }
    auto scrub = [secret](std::string& s) {
        for (auto pos = s.find(secret); pos != std::string::npos; pos = s.find(secret, pos)) {
            s.replace(pos, secret.size(), "***");
            pos += 3;
        }
    };
    scrub(diag.type);
    scrub(diag.code);
    scrub(diag.param);
    scrub(diag.message);
    scrub(diag.request_id);
    scrub(diag.detail);
    for (auto& [name, value] : diag.rate_limit) {
        scrub(value);
    }
}

} // namespace wafer::api
