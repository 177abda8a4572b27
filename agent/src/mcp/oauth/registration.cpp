#include "mcp/oauth/registration.hpp"

#include <wafer/tools/mcp/jsonrpc.hpp>

#include <nlohmann/json.hpp>

#include <algorithm>

namespace wafer::mcp::oauth {

namespace {

bool supported(const server_metadata& m, std::string_view method) {
    if (!m.token_endpoint_auth_methods_supported) {
        return method == "client_secret_basic"; // RFC 8414's default
    }
    const auto& v = *m.token_endpoint_auth_methods_supported;
    return std::find(v.begin(), v.end(), method) != v.end();
}

bool loopback_redirect(std::string_view uri) {
    return uri.starts_with("http://127.0.0.1") || uri.starts_with("http://localhost") ||
           uri.starts_with("http://[::1]");
}

} // namespace

registration_kind choose_registration(
    bool pre_registered, std::string_view client_metadata_url, const server_metadata& m
) {
    if (pre_registered) {
        return registration_kind::pre_registered;
    }
    if (!client_metadata_url.empty() && m.client_id_metadata_document_supported) {
        return registration_kind::metadata_document;
    }
    if (!m.registration_endpoint.empty()) {
        return registration_kind::dynamic;
    }
    return registration_kind::impossible;
}

std::string
choose_auth_method(const server_metadata& m, bool has_secret, std::string_view registered) {
    if (!registered.empty()) {
        return std::string(registered);
    }
    if (has_secret) {
        for (const std::string_view method : {"client_secret_basic", "client_secret_post"}) {
            if (supported(m, method)) {
                return std::string(method);
            }
        }
    }
    return "none";
}

std::string registration_request(
    std::string_view client_name, std::string_view redirect_uri, const server_metadata& m
) {
    // A public client where the server takes one (nothing secret to keep), else a secret.
    std::string method = "none";
    if (!supported(m, "none")) {
        method = supported(m, "client_secret_post") && !supported(m, "client_secret_basic")
                     ? "client_secret_post"
                     : "client_secret_basic";
    }
    nlohmann::json j = nlohmann::json::object();
    j["client_name"] = client_name;
    j["redirect_uris"] = nlohmann::json::array({redirect_uri});
    j["grant_types"] = nlohmann::json::array({"authorization_code", "refresh_token"});
    j["response_types"] = nlohmann::json::array({"code"});
    j["token_endpoint_auth_method"] = method;
    j["application_type"] = loopback_redirect(redirect_uri) ? "native" : "web";
    return j.dump();
}

std::optional<client_credentials>
parse_registration_response(std::string_view body, const server_metadata& m, std::string& why) {
    const auto j = wafer::tools::mcp::nesting_within(body, wafer::tools::mcp::max_nesting)
                       ? nlohmann::json::parse(body, nullptr, false)
                       : nlohmann::json(nlohmann::json::value_t::discarded);
    const auto id = j.is_object() ? j.find("client_id") : j.end();
    if (!j.is_object() || id == j.end() || !id->is_string() || id->get<std::string>().empty()) {
        why = "the registration response has no client_id";
        return std::nullopt;
    }
    client_credentials c;
    c.client_id = id->get<std::string>();
    if (const auto s = j.find("client_secret"); s != j.end() && s->is_string()) {
        c.client_secret = s->get<std::string>();
    }
    std::string registered;
    if (const auto a = j.find("token_endpoint_auth_method"); a != j.end() && a->is_string()) {
        registered = a->get<std::string>();
    }
    c.auth_method = choose_auth_method(m, !c.client_secret.empty(), registered);
    return c;
}

} // namespace wafer::mcp::oauth
