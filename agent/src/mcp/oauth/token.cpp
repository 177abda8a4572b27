#include "mcp/oauth/token.hpp"

#include <wafer/tools/mcp/jsonrpc.hpp>

#include <boost/url/parse.hpp>

#include <nlohmann/json.hpp>

#include <cctype>

namespace wafer::mcp::oauth {

namespace {

// The client's part of a token request (RFC 6749 section 2.3.1: id and secret form-encoded
// before Base64 in the Basic value).
token_request with_client(form_fields f, const client_credentials& client) {
    token_request r;
    if (client.auth_method == "client_secret_basic") {
        r.authorization =
            "Basic " +
            base64(percent_encode(client.client_id) + ":" + percent_encode(client.client_secret));
    } else {
        f.emplace_back("client_id", client.client_id);
        if (client.auth_method == "client_secret_post") {
            f.emplace_back("client_secret", client.client_secret);
        }
    }
    r.body = form_encode(f);
    return r;
}

bool is_error_code(std::string_view s) {
    if (s.empty() || s.size() > 64) {
        return false;
    }
    for (const char c : s) {
        if (std::isalnum(static_cast<unsigned char>(c)) == 0 && c != '_' && c != '-') {
            return false;
        }
    }
    return true;
}

} // namespace

std::string authorization_url(const server_metadata& m, const authorization_params& p) {
    form_fields f = {
        {"response_type", "code"},
        {"client_id", p.client_id},
        {"redirect_uri", p.redirect_uri},
        {"code_challenge", p.code_challenge},
        {"code_challenge_method", "S256"},
        {"state", p.state},
    };
    if (!p.scope.empty()) {
        f.emplace_back("scope", p.scope);
    }
    f.emplace_back("resource", p.resource);
    return append_query(m.authorization_endpoint, f);
}

std::optional<callback> parse_callback(std::string_view redirect_url) {
    const auto r = boost::urls::parse_uri_reference(redirect_url);
    if (!r) {
        return std::nullopt;
    }
    callback c;
    for (const auto& param : r->params()) {
        if (param.key == "code") {
            c.code = param.value;
        } else if (param.key == "state") {
            c.state = param.value;
        } else if (param.key == "iss") {
            c.iss = param.value;
        } else if (param.key == "error") {
            c.error = param.value;
        }
    }
    return c;
}

std::string check_callback(
    const callback& c, std::string_view state, std::string_view issuer, bool iss_required
) {
    // RFC 9207 first: an answer from the wrong issuer is not acted on, its error included.
    if (c.iss ? *c.iss != issuer : iss_required) {
        return c.iss ? "the authorization response came from another issuer"
                     : "the authorization response lacks the iss parameter its server promises";
    }
    if (c.state != state) {
        return "the authorization response's state does not match the request";
    }
    if (!c.error.empty()) {
        return "the authorization server refused: " +
               (is_error_code(c.error) ? c.error : std::string("(an unreadable error)"));
    }
    if (c.code.empty()) {
        return "the authorization response has no code";
    }
    return {};
}

token_request code_request(
    std::string_view code,
    std::string_view redirect_uri,
    std::string_view verifier,
    std::string_view resource,
    const client_credentials& client
) {
    form_fields f = {
        {"grant_type", "authorization_code"},
        {"code", std::string(code)},
        {"redirect_uri", std::string(redirect_uri)},
        {"code_verifier", std::string(verifier)},
        {"resource", std::string(resource)},
    };
    return with_client(std::move(f), client);
}

token_request refresh_request(
    std::string_view refresh_token, std::string_view resource, const client_credentials& client
) {
    form_fields f = {
        {"grant_type", "refresh_token"},
        {"refresh_token", std::string(refresh_token)},
        {"resource", std::string(resource)},
    };
    return with_client(std::move(f), client);
}

std::optional<token_set> parse_token_response(int status, std::string_view body, std::string& why) {
    const auto j = wafer::tools::mcp::nesting_within(body, wafer::tools::mcp::max_nesting)
                       ? nlohmann::json::parse(body, nullptr, false)
                       : nlohmann::json(nlohmann::json::value_t::discarded);
    if (status != 200) {
        why = "the token endpoint answered HTTP " + std::to_string(status);
        if (j.is_object()) {
            if (const auto e = j.find("error");
                e != j.end() && e->is_string() && is_error_code(e->get<std::string>())) {
                why += " (" + e->get<std::string>() + ")";
            }
        }
        return std::nullopt;
    }
    const auto at = j.is_object() ? j.find("access_token") : j.end();
    if (!j.is_object() || at == j.end() || !at->is_string() || at->get<std::string>().empty()) {
        why = "the token endpoint's answer has no access_token";
        return std::nullopt;
    }
    if (const auto type = j.find("token_type"); type != j.end() && type->is_string()) {
        std::string t = type->get<std::string>();
        for (char& ch : t) {
            ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
        }
        if (t != "bearer") {
            why = "the token endpoint issued a token of another type than Bearer";
            return std::nullopt;
        }
    }
    token_set t;
    t.access_token = at->get<std::string>();
    if (const auto rt = j.find("refresh_token"); rt != j.end() && rt->is_string()) {
        t.refresh_token = rt->get<std::string>();
    }
    if (const auto s = j.find("scope"); s != j.end() && s->is_string()) {
        t.scope = s->get<std::string>();
    }
    if (const auto e = j.find("expires_in");
        e != j.end() && e->is_number() && e->get<double>() > 0) {
        t.expires_in = std::chrono::seconds(static_cast<long long>(e->get<double>()));
    }
    return t;
}

} // namespace wafer::mcp::oauth
