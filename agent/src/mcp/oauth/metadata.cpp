#include "mcp/oauth/metadata.hpp"

#include <wafer/tools/mcp/jsonrpc.hpp>

#include <boost/url/parse.hpp>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cctype>

#include "detail/ascii.hpp"

namespace wafer::mcp::oauth {

using wafer::detail::ascii_lower;

namespace {

struct url_parts {
    std::string scheme;
    std::string host; // lower-case, brackets kept for IPv6
    std::string port; // empty: the scheme's default
    std::string path; // encoded
};

std::optional<url_parts> split(std::string_view url) {
    const auto r = boost::urls::parse_uri(url);
    if (!r || !r->has_authority()) {
        return std::nullopt;
    }
    url_parts p;
    p.scheme = ascii_lower(r->scheme());
    p.host = ascii_lower(r->encoded_host());
    if (r->has_port()) {
        p.port = std::string(r->port());
        if ((p.scheme == "https" && p.port == "443") || (p.scheme == "http" && p.port == "80")) {
            p.port.clear();
        }
    }
    p.path = std::string(r->encoded_path());
    return p;
}

std::string origin(const url_parts& p) {
    return p.scheme + "://" + p.host + (p.port.empty() ? "" : ":" + p.port);
}

std::vector<std::string> strings(const nlohmann::json& j, const char* key) {
    std::vector<std::string> out;
    const auto it = j.find(key);
    if (it != j.end() && it->is_array()) {
        for (const auto& v : *it) {
            if (v.is_string()) {
                out.push_back(v.get<std::string>());
            }
        }
    }
    return out;
}

std::string string_of(const nlohmann::json& j, const char* key) {
    const auto it = j.find(key);
    return it != j.end() && it->is_string() ? it->get<std::string>() : std::string();
}

bool flag(const nlohmann::json& j, const char* key) {
    const auto it = j.find(key);
    return it != j.end() && it->is_boolean() && it->get<bool>();
}

std::string without_trailing_slash(std::string path) {
    while (!path.empty() && path.back() == '/') {
        path.pop_back();
    }
    return path;
}

} // namespace

std::vector<std::string>
resource_metadata_urls(std::string_view server_url, const std::optional<bearer_challenge>& c) {
    std::vector<std::string> out;
    if (c && !c->resource_metadata.empty()) {
        out.push_back(c->resource_metadata);
    }
    if (const auto p = split(server_url)) {
        const std::string base = origin(*p) + "/.well-known/oauth-protected-resource";
        const std::string path = without_trailing_slash(p->path);
        if (!path.empty()) {
            out.push_back(base + path);
        }
        out.push_back(base);
    }
    return out;
}

std::optional<resource_metadata> parse_resource_metadata(std::string_view body, std::string& why) {
    const auto j = wafer::tools::mcp::nesting_within(body, wafer::tools::mcp::max_nesting)
                       ? nlohmann::json::parse(body, nullptr, false)
                       : nlohmann::json(nlohmann::json::value_t::discarded);
    if (!j.is_object()) {
        why = "the protected resource metadata is not a JSON object";
        return std::nullopt;
    }
    resource_metadata m;
    m.resource = string_of(j, "resource");
    m.authorization_servers = strings(j, "authorization_servers");
    m.scopes_supported = strings(j, "scopes_supported");
    if (m.authorization_servers.empty()) {
        why = "the protected resource metadata names no authorization server";
        return std::nullopt;
    }
    return m;
}

bool resource_matches(std::string_view resource, std::string_view server_url) {
    const auto r = split(resource);
    const auto s = split(server_url);
    if (!r || !s || r->scheme != s->scheme || r->host != s->host || r->port != s->port) {
        return false;
    }
    const std::string rp = without_trailing_slash(r->path);
    const std::string sp = without_trailing_slash(s->path);
    return sp.size() >= rp.size() && sp.compare(0, rp.size(), rp) == 0 &&
           (sp.size() == rp.size() || sp[rp.size()] == '/');
}

std::string canonical_resource(std::string_view server_url) {
    const auto r = boost::urls::parse_uri(server_url);
    const auto p = split(server_url);
    if (!r || !p) {
        return std::string(server_url.substr(0, server_url.find('#')));
    }
    std::string out = origin(*p) + (p->path == "/" ? std::string() : p->path);
    if (r->has_query()) {
        out += '?';
        out += r->encoded_query();
    }
    return out;
}

std::string origin_of(std::string_view url) {
    const auto p = split(url);
    return p ? origin(*p) : std::string();
}

std::vector<std::string> server_metadata_urls(std::string_view issuer) {
    std::vector<std::string> out;
    const auto p = split(issuer);
    if (!p) {
        return out;
    }
    const std::string o = origin(*p);
    const std::string path = without_trailing_slash(p->path);
    if (path.empty()) {
        out.push_back(o + "/.well-known/oauth-authorization-server");
        out.push_back(o + "/.well-known/openid-configuration");
    } else {
        out.push_back(o + "/.well-known/oauth-authorization-server" + path);
        out.push_back(o + "/.well-known/openid-configuration" + path);
        out.push_back(o + path + "/.well-known/openid-configuration");
    }
    return out;
}

std::optional<server_metadata> parse_server_metadata(
    std::string_view body, std::string_view expected_issuer, bool check_issuer, std::string& why
) {
    const auto j = wafer::tools::mcp::nesting_within(body, wafer::tools::mcp::max_nesting)
                       ? nlohmann::json::parse(body, nullptr, false)
                       : nlohmann::json(nlohmann::json::value_t::discarded);
    if (!j.is_object()) {
        why = "the authorization server metadata is not a JSON object";
        return std::nullopt;
    }
    server_metadata m;
    m.issuer = string_of(j, "issuer");
    if (check_issuer && m.issuer != expected_issuer) {
        why = "the authorization server metadata is for another issuer";
        return std::nullopt;
    }
    m.authorization_endpoint = string_of(j, "authorization_endpoint");
    m.token_endpoint = string_of(j, "token_endpoint");
    m.registration_endpoint = string_of(j, "registration_endpoint");
    if (m.authorization_endpoint.empty() || m.token_endpoint.empty()) {
        why = "the authorization server metadata lacks its authorization or token endpoint";
        return std::nullopt;
    }
    m.scopes_supported = strings(j, "scopes_supported");
    m.code_challenge_methods_supported = strings(j, "code_challenge_methods_supported");
    if (j.contains("token_endpoint_auth_methods_supported")) {
        m.token_endpoint_auth_methods_supported =
            strings(j, "token_endpoint_auth_methods_supported");
    }
    m.client_id_metadata_document_supported = flag(j, "client_id_metadata_document_supported");
    m.authorization_response_iss_parameter_supported =
        flag(j, "authorization_response_iss_parameter_supported");
    return m;
}

server_metadata default_endpoints(std::string_view origin_url) {
    server_metadata m;
    m.issuer = std::string(origin_url);
    m.authorization_endpoint = m.issuer + "/authorize";
    m.token_endpoint = m.issuer + "/token";
    m.registration_endpoint = m.issuer + "/register";
    // The 2025-03-26 revision made PKCE mandatory for every server.
    m.code_challenge_methods_supported = {"S256"};
    return m;
}

bool supports_s256(const server_metadata& m) {
    const auto& v = m.code_challenge_methods_supported;
    return std::find(v.begin(), v.end(), "S256") != v.end();
}

} // namespace wafer::mcp::oauth
