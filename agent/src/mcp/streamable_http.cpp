#include "mcp/streamable_http.hpp"

#include <boost/url/parse.hpp>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <array>
#include <cctype>

#include "detail/ascii.hpp"

namespace wafer::mcp::detail {

using wafer::detail::ascii_lower;

namespace {

bool is_token_char(char c) noexcept {
    const auto u = static_cast<unsigned char>(c);
    if (std::isalnum(u) != 0) {
        return true;
    }
    static constexpr std::string_view extra = "!#$%&'*+-.^_`|~";
    return extra.find(c) != std::string_view::npos;
}

// Header fields the transport writes itself; a configuration must not set them.
constexpr std::array<std::string_view, 10> reserved_headers = {
    "host",
    "content-length",
    "content-type",
    "accept",
    "mcp-session-id",
    "mcp-protocol-version",
    "last-event-id",
    "transfer-encoding",
    "connection",
    "upgrade"};

void write_common(std::string& out, const request_fields& f) {
    out += "Host: ";
    out += f.url->host_header;
    out += "\r\nUser-Agent: wafer-mcp\r\n";
    if (!f.session_id.empty()) {
        out += "Mcp-Session-Id: ";
        out += f.session_id;
        out += "\r\n";
    }
    if (!f.protocol_version.empty()) {
        out += "MCP-Protocol-Version: ";
        out += f.protocol_version;
        out += "\r\n";
    }
    if (!f.bearer.empty()) {
        out += "Authorization: Bearer ";
        out += f.bearer;
        out += "\r\n";
    }
    for (const auto* list : {f.headers, f.extra}) {
        if (list == nullptr) {
            continue;
        }
        for (const auto& [name, value] : *list) {
            if (!f.bearer.empty() && ascii_lower(name) == "authorization") {
                continue; // the OAuth token replaces a configured one
            }
            out += name;
            out += ": ";
            out += value;
            out += "\r\n";
        }
    }
}

std::string base64(std::string_view in) {
    static constexpr char table[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    std::string out;
    std::size_t i = 0;
    for (; i + 2 < in.size(); i += 3) {
        const auto n = (static_cast<unsigned>(static_cast<unsigned char>(in[i])) << 16U) |
                       (static_cast<unsigned>(static_cast<unsigned char>(in[i + 1])) << 8U) |
                       static_cast<unsigned>(static_cast<unsigned char>(in[i + 2]));
        out += table[(n >> 18U) & 63U];
        out += table[(n >> 12U) & 63U];
        out += table[(n >> 6U) & 63U];
        out += table[n & 63U];
    }
    if (i < in.size()) {
        unsigned n = static_cast<unsigned>(static_cast<unsigned char>(in[i])) << 16U;
        if (i + 1 < in.size()) {
            n |= static_cast<unsigned>(static_cast<unsigned char>(in[i + 1])) << 8U;
        }
        out += table[(n >> 18U) & 63U];
        out += table[(n >> 12U) & 63U];
        out += i + 1 < in.size() ? table[(n >> 6U) & 63U] : '=';
        out += '=';
    }
    return out;
}

void request_line(std::string& out, std::string_view method, const request_fields& f) {
    out.clear();
    out += method;
    out += ' ';
    out += f.url->target;
    out += " HTTP/1.1\r\n";
}

} // namespace

std::optional<endpoint_url> parse_endpoint(std::string_view url, std::string& why) {
    const auto parsed = boost::urls::parse_absolute_uri(url);
    if (!parsed) {
        why = "not an absolute URL";
        return std::nullopt;
    }
    const auto& u = *parsed;
    endpoint_url ep;
    const std::string scheme = ascii_lower(u.scheme());
    if (scheme == "https") {
        ep.tls = true;
        ep.port = 443;
    } else if (scheme == "http") {
        ep.port = 80;
    } else {
        why = "the scheme must be http or https";
        return std::nullopt;
    }
    if (u.has_userinfo()) {
        why = "user and password in the URL are not supported (use headers)";
        return std::nullopt;
    }
    ep.host = u.host_address();
    if (ep.host.empty()) {
        why = "the URL has no host";
        return std::nullopt;
    }
    if (u.has_port()) {
        const auto n = u.port_number();
        if (n == 0) {
            why = "the port is not usable";
            return std::nullopt;
        }
        ep.port = n;
    }
    ep.target = std::string(u.encoded_path());
    if (ep.target.empty()) {
        ep.target = "/";
    }
    if (u.has_query()) {
        ep.target += '?';
        ep.target += u.encoded_query();
    }
    const bool ipv6 = u.host_type() == boost::urls::host_type::ipv6;
    ep.host_header = ipv6 ? "[" + ep.host + "]" : ep.host;
    const unsigned short default_port = ep.tls ? 443 : 80;
    if (ep.port != default_port) {
        ep.host_header += ":" + std::to_string(ep.port);
    }
    ep.origin =
        scheme + "://" + (ipv6 ? "[" + ep.host + "]" : ep.host) + ":" + std::to_string(ep.port);
    return ep;
}

std::string check_header(std::string_view name, std::string_view value) {
    if (name.empty() || !std::all_of(name.begin(), name.end(), is_token_char)) {
        return "the header name is not an HTTP token";
    }
    const std::string l = ascii_lower(name);
    if (std::find(reserved_headers.begin(), reserved_headers.end(), l) != reserved_headers.end()) {
        return "the transport sets " + std::string(name) + " itself";
    }
    if (value.find_first_of(std::string_view("\r\n\0", 3)) != std::string_view::npos) {
        return "the value of " + std::string(name) + " holds a line break or NUL";
    }
    return {};
}

outgoing read_outgoing(std::string_view message) {
    outgoing out;
    auto j = nlohmann::json::parse(message, nullptr, false);
    if (!j.is_object()) {
        return out;
    }
    const auto method = j.find("method");
    const auto id = j.find("id");
    if (method != j.end() && method->is_string()) {
        out.method = method->get<std::string>();
        if (id != j.end() && id->is_number_integer()) {
            out.type = outgoing::kind::request;
            out.id = id->get<std::int64_t>();
            auto params = j.find("params");
            if (params == j.end() || !params->is_object()) {
                return out;
            }
            if (const auto meta = params->find("_meta");
                meta != params->end() && meta->is_object()) {
                const auto v = meta->find("io.modelcontextprotocol/protocolVersion");
                if (v != meta->end() && v->is_string()) {
                    out.protocol_version = v->get<std::string>();
                }
            }
            const char* name_key = out.method == "tools/call" || out.method == "prompts/get"
                                       ? "name"
                                   : out.method == "resources/read" ? "uri"
                                                                    : nullptr;
            if (name_key != nullptr) {
                if (const auto n = params->find(name_key); n != params->end()) {
                    out.name = *n;
                }
            }
            if (out.method == "tools/call") {
                if (const auto a = params->find("arguments"); a != params->end()) {
                    out.arguments = std::move(*a);
                }
            }
            return out;
        }
        out.type = outgoing::kind::notification;
        if (out.method == "notifications/cancelled") {
            const auto params = j.find("params");
            if (params != j.end() && params->is_object()) {
                const auto rid = params->find("requestId");
                if (rid != params->end() && rid->is_number_integer()) {
                    out.cancels = rid->get<std::int64_t>();
                }
            }
        }
        return out;
    }
    out.type = outgoing::kind::response;
    return out;
}

std::optional<std::string> header_value(const nlohmann::json& value) {
    if (value.is_boolean()) {
        return value.get<bool>() ? "true" : "false";
    }
    if (value.is_number_integer()) {
        return value.dump();
    }
    if (!value.is_string()) {
        return std::nullopt;
    }
    const auto& text = value.get_ref<const std::string&>();
    const auto plain = [](unsigned char c) {
        return c >= 0x20 && c < 0x7f;
    };
    const bool needs_base64 =
        !std::all_of(
            text.begin(), text.end(), [&](char c) { return plain(static_cast<unsigned char>(c)); }
        ) ||
        (!text.empty() && (text.front() == ' ' || text.back() == ' ')) ||
        (text.starts_with("=?base64?") && text.ends_with("?="));
    if (!needs_base64) {
        return text;
    }
    return "=?base64?" + base64(text) + "?=";
}

std::vector<std::pair<std::string, std::string>>
stateless_fields(const outgoing& out, const std::vector<tools::mcp::param_header>* params) {
    std::vector<std::pair<std::string, std::string>> fields;
    fields.emplace_back("Mcp-Method", out.method);
    if (out.name) {
        if (auto v = header_value(*out.name)) {
            fields.emplace_back("Mcp-Name", std::move(*v));
        }
    }
    if (params == nullptr || !out.arguments.is_object()) {
        return fields;
    }
    for (const auto& p : *params) {
        const nlohmann::json* at = &out.arguments;
        for (const auto& step : p.path) {
            if (!at->is_object()) {
                at = nullptr;
                break;
            }
            const auto next = at->find(step);
            at = next == at->end() ? nullptr : &*next;
            if (at == nullptr) {
                break;
            }
        }
        if (at == nullptr) {
            continue;
        }
        if (auto v = header_value(*at)) {
            fields.emplace_back("Mcp-Param-" + p.name, std::move(*v));
        }
    }
    return fields;
}

void write_post(std::string& out, const request_fields& f, std::string_view body) {
    request_line(out, "POST", f);
    write_common(out, f);
    out += "Content-Type: application/json\r\nAccept: application/json, text/event-stream\r\n"
           "Content-Length: ";
    out += std::to_string(body.size());
    out += "\r\n\r\n";
    out += body;
}

void write_get(std::string& out, const request_fields& f) {
    request_line(out, "GET", f);
    write_common(out, f);
    out += "Accept: text/event-stream\r\n";
    if (!f.last_event_id.empty()) {
        out += "Last-Event-ID: ";
        out += f.last_event_id;
        out += "\r\n";
    }
    out += "\r\n";
}

void write_delete(std::string& out, const request_fields& f) {
    request_line(out, "DELETE", f);
    write_common(out, f);
    out += "Content-Length: 0\r\n\r\n";
}

body_type classify_body(int status, const api::header_list& headers, bool has_body) {
    if (status == 204 || status == 304 || !has_body) {
        return body_type::none;
    }
    const auto type = api::find_header(headers, "content-type");
    if (!type) {
        return body_type::other;
    }
    if (api::is_event_stream(*type)) {
        return body_type::event_stream;
    }
    std::string t = ascii_lower(type->substr(0, type->find(';')));
    while (!t.empty() && t.back() == ' ') {
        t.pop_back();
    }
    if (t == "application/json" || (t.size() > 5 && t.ends_with("+json"))) {
        return body_type::json;
    }
    return body_type::other;
}

bool valid_session_id(std::string_view id) noexcept {
    return !id.empty() && id.size() <= 1024 && std::all_of(id.begin(), id.end(), [](char c) {
        const auto u = static_cast<unsigned char>(c);
        return u >= 0x21 && u <= 0x7e;
    });
}

bool session_gone(int status, std::string_view body, bool sent_session_id) noexcept {
    if (!sent_session_id) {
        return false;
    }
    if (status == 404) {
        return true;
    }
    if (status != 400) {
        return false;
    }
    const std::string b = ascii_lower(body.substr(0, 4096));
    return b.find("session") != std::string::npos &&
           (b.find("no valid") != std::string::npos || b.find("not found") != std::string::npos ||
            b.find("invalid") != std::string::npos || b.find("unknown") != std::string::npos);
}

std::chrono::milliseconds
resume_delay(std::optional<unsigned long> retry_ms, int attempt) noexcept {
    constexpr long max_ms = 30'000;
    if (retry_ms) {
        return std::chrono::milliseconds(
            static_cast<long>(std::min<unsigned long>(*retry_ms, max_ms))
        );
    }
    double d = 1000;
    for (int i = 0; i < attempt && d < max_ms; ++i) {
        d *= 1.5;
    }
    return std::chrono::milliseconds(std::min(static_cast<long>(d), max_ms));
}

std::string describe_status(int status, std::string_view body) {
    std::string s = "HTTP " + std::to_string(status);
    if (!body.empty()) {
        s += ": " + api::escaped_excerpt(body, 200);
    }
    return s;
}

} // namespace wafer::mcp::detail
