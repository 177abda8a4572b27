#include "mcp/oauth/authorizer.hpp"

#include <boost/asio/redirect_error.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <exception>

#include "mcp/oauth/pkce.hpp"
#include "mcp/oauth/scope.hpp"
#include "mcp/oauth/token.hpp"

namespace wafer::mcp::oauth {

namespace asio = boost::asio;
using boost::system::error_code;

authorizer::authorizer(
    const asio::any_io_executor& ex, oauth_config config, std::string server_url, fetch_settings net
)
    : ex_(ex), config_(std::move(config)), server_url_(std::move(server_url)),
      resource_key_(canonical_resource(server_url_)), net_(std::move(net)),
      store_(config_.token_store), done_(ex, asio::steady_timer::time_point::max()) {
    if (auto t = store_.tokens(resource_key_)) {
        access_token_ = t->access_token;
        refresh_token_ = t->refresh_token;
        requested_scope_ = t->scope;
        issuer_ = t->issuer;
        resource_ = t->resource.empty() ? resource_key_ : t->resource;
        token_endpoint_ = t->token_endpoint;
        if (!config_.client_id.empty()) {
            client_.client_id = config_.client_id;
            client_.client_secret = config_.client_secret;
            client_.auth_method = t->auth_method;
        } else if (auto c = store_.client(t->issuer)) {
            client_ = *c;
        }
    }
}

asio::awaitable<bool> authorizer::async_on_refusal(
    int status,
    std::optional<std::string> www_authenticate,
    std::string sent_token,
    int& attempts,
    bool strict,
    std::string& why
) {
    const auto challenge = www_authenticate ? parse_bearer_challenge(*www_authenticate)
                                            : std::optional<bearer_challenge>();
    const auto demand = classify_auth_failure(status, challenge);
    if (demand == auth_demand::none) {
        why = "the server answered HTTP " + std::to_string(status) + " (forbidden)";
        co_return false;
    }
    while (busy_) {
        error_code ec;
        co_await done_.async_wait(asio::redirect_error(asio::use_awaitable, ec));
    }
    if (!access_token_.empty() && access_token_ != sent_token) {
        co_return true; // another request authorized meanwhile
    }
    if (attempts >= max_authorizations) {
        why = "the server still refuses after " + std::to_string(attempts) + " authorizations" +
              (demand == auth_demand::more_scope ? " (insufficient scope)" : "");
        co_return false;
    }
    busy_ = true;
    bool ok = false;
    try {
        if (demand == auth_demand::authorize && !refresh_token_.empty() &&
            sent_token == access_token_) {
            std::string refresh_why;
            ok = co_await refresh(refresh_why);
            if (!ok) {
                noise("refreshing the access token failed: " + refresh_why);
            }
        }
        if (!ok) {
            ++attempts;
            ok = co_await authorize(challenge, demand == auth_demand::more_scope, strict, why);
        }
    } catch (const std::exception& e) {
        why = std::string("authorization failed: ") + e.what();
        ok = false;
    }
    busy_ = false;
    done_.cancel();
    co_return ok;
}

asio::awaitable<bool>
authorizer::fetch(const fetch_request& r, fetch_response& out, std::string& why) {
    const error_code ec = co_await async_fetch(ex_, net_, tls_, r, out, why);
    co_return !ec;
}

asio::awaitable<bool> authorizer::discover(
    const std::optional<bearer_challenge>& c, bool strict, server_metadata& m, std::string& why
) {
    prm_.reset();
    for (const auto& url : resource_metadata_urls(server_url_, c)) {
        fetch_request r;
        r.url = url;
        fetch_response a;
        std::string fwhy;
        if (!co_await fetch(r, a, fwhy) || a.status != 200) {
            continue;
        }
        std::string pwhy;
        if (auto doc = parse_resource_metadata(a.body, pwhy)) {
            if (!doc->resource.empty() && !resource_matches(doc->resource, server_url_)) {
                why = "the protected resource metadata is for another resource";
                co_return false;
            }
            prm_ = std::move(*doc);
            break;
        }
    }
    // Without resource metadata (2025-03-26 servers) the MCP origin is the authorization server.
    const std::string issuer = prm_ ? prm_->authorization_servers.front() : origin_of(server_url_);
    std::string last_why;
    for (const auto& url : server_metadata_urls(issuer)) {
        fetch_request r;
        r.url = url;
        fetch_response a;
        if (!co_await fetch(r, a, last_why) || a.status != 200) {
            continue;
        }
        if (auto doc = parse_server_metadata(a.body, issuer, strict, last_why)) {
            m = std::move(*doc);
            if (m.issuer.empty()) {
                m.issuer = issuer;
            }
            co_return true;
        }
    }
    if (!prm_) {
        m = default_endpoints(issuer);
        co_return true;
    }
    why = "no usable authorization server metadata for " + origin_of(issuer) +
          (last_why.empty() ? "" : " (" + last_why + ")");
    co_return false;
}

asio::awaitable<bool>
authorizer::register_client(const server_metadata& m, client_credentials& out, std::string& why) {
    if (!config_.client_id.empty()) {
        out.client_id = config_.client_id;
        out.client_secret = config_.client_secret;
        out.auth_method = choose_auth_method(m, !out.client_secret.empty());
        co_return true;
    }
    if (const auto it = clients_.find(m.issuer); it != clients_.end()) {
        out = it->second;
        co_return true;
    }
    if (auto kept = store_.client(m.issuer)) {
        out = *kept;
        clients_[m.issuer] = out;
        co_return true;
    }
    switch (choose_registration(false, config_.client_metadata_url, m)) {
    case registration_kind::metadata_document:
        out.client_id = config_.client_metadata_url;
        out.client_secret.clear();
        out.auth_method = "none";
        co_return true;
    case registration_kind::dynamic: {
        fetch_request r;
        r.method = "POST";
        r.url = m.registration_endpoint;
        r.content_type = "application/json";
        r.body = registration_request(config_.client_name, config_.redirect_uri, m);
        fetch_response a;
        std::string fwhy;
        if (!co_await fetch(r, a, fwhy)) {
            why = "client registration: " + fwhy;
            co_return false;
        }
        if (a.status != 200 && a.status != 201) {
            why = "client registration: the server answered HTTP " + std::to_string(a.status);
            co_return false;
        }
        auto c = parse_registration_response(a.body, m, why);
        if (!c) {
            co_return false;
        }
        out = std::move(*c);
        clients_[m.issuer] = out;
        if (auto bad = store_.save_client(m.issuer, out); !bad.empty()) {
            noise(bad);
        }
        co_return true;
    }
    case registration_kind::pre_registered:
    case registration_kind::impossible:
        break;
    }
    why = "the authorization server " + origin_of(m.issuer) +
          " offers no registration, and no client_id is configured for it";
    co_return false;
}

asio::awaitable<bool> authorizer::authorize(
    const std::optional<bearer_challenge>& c, bool step_up, bool strict, std::string& why
) {
    if (!config_.authorize) {
        why = "the server requires authorization and no authorization step is configured";
        co_return false;
    }
    server_metadata m;
    if (!co_await discover(c, strict, m, why)) {
        co_return false;
    }
    if (!supports_s256(m)) {
        why = "the authorization server does not offer PKCE with S256";
        co_return false;
    }
    client_credentials client;
    if (!co_await register_client(m, client, why)) {
        co_return false;
    }
    const std::string scope = step_up && c
                                  ? union_scope(requested_scope_, c->scope)
                                  : initial_scope(c, prm_ ? &*prm_ : nullptr, config_.scopes);
    const std::string resource =
        prm_ && !prm_->resource.empty() ? prm_->resource : canonical_resource(server_url_);
    const pkce_pair pkce = make_pkce();
    authorization_params p;
    p.client_id = client.client_id;
    p.redirect_uri = config_.redirect_uri;
    p.scope = scope;
    p.resource = resource;
    p.state = random_token(16);
    p.code_challenge = pkce.challenge;
    noise("authorizing at " + origin_of(m.issuer) + (scope.empty() ? "" : " for scope " + scope));
    std::string redirect;
    try {
        redirect = co_await config_.authorize(authorization_url(m, p));
    } catch (const std::exception& e) {
        why = std::string("the authorization step failed: ") + e.what();
        co_return false;
    }
    if (redirect.empty()) {
        why = "the authorization step gave up";
        co_return false;
    }
    const auto cb = parse_callback(redirect);
    if (!cb) {
        why = "the authorization step returned an unusable redirect URL";
        co_return false;
    }
    if (auto bad = check_callback(
            *cb, p.state, m.issuer, m.authorization_response_iss_parameter_supported
        );
        !bad.empty()) {
        why = std::move(bad);
        co_return false;
    }
    const token_request tr =
        code_request(cb->code, config_.redirect_uri, pkce.verifier, resource, client);
    fetch_request r;
    r.method = "POST";
    r.url = m.token_endpoint;
    r.content_type = "application/x-www-form-urlencoded";
    r.body = tr.body;
    if (!tr.authorization.empty()) {
        r.headers.emplace_back("Authorization", tr.authorization);
    }
    fetch_response a;
    std::string fwhy;
    if (!co_await fetch(r, a, fwhy)) {
        why = "the token request: " + fwhy;
        co_return false;
    }
    auto tokens = parse_token_response(a.status, a.body, why);
    if (!tokens) {
        co_return false;
    }
    issuer_ = m.issuer;
    client_ = client;
    resource_ = resource;
    token_endpoint_ = m.token_endpoint;
    requested_scope_ = scope;
    access_token_ = std::move(tokens->access_token);
    refresh_token_ = std::move(tokens->refresh_token);
    keep_tokens();
    noise("authorized at " + origin_of(m.issuer));
    co_return true;
}

asio::awaitable<bool> authorizer::refresh(std::string& why) {
    if (token_endpoint_.empty()) {
        why = "the token endpoint is not known yet";
        co_return false;
    }
    const token_request tr = refresh_request(refresh_token_, resource_, client_);
    fetch_request r;
    r.method = "POST";
    r.url = token_endpoint_;
    r.content_type = "application/x-www-form-urlencoded";
    r.body = tr.body;
    if (!tr.authorization.empty()) {
        r.headers.emplace_back("Authorization", tr.authorization);
    }
    fetch_response a;
    if (!co_await fetch(r, a, why)) {
        co_return false;
    }
    auto tokens = parse_token_response(a.status, a.body, why);
    if (!tokens) {
        refresh_token_.clear(); // refused: a full authorization follows
        co_return false;
    }
    access_token_ = std::move(tokens->access_token);
    if (!tokens->refresh_token.empty()) {
        refresh_token_ = std::move(tokens->refresh_token); // rotated
    }
    keep_tokens();
    co_return true;
}

void authorizer::keep_tokens() {
    stored_tokens t;
    t.issuer = issuer_;
    t.access_token = access_token_;
    t.refresh_token = refresh_token_;
    t.scope = requested_scope_;
    t.resource = resource_;
    t.token_endpoint = token_endpoint_;
    t.auth_method = client_.auth_method;
    if (auto bad = store_.save_tokens(resource_key_, t); !bad.empty()) {
        noise(bad);
    }
}

} // namespace wafer::mcp::oauth
