// The sans-io decisions of OAuth for HTTP MCP servers (agent/src/mcp/oauth/): challenges,
// discovery URLs and documents, PKCE, registration, scopes, the authorization code grant, the
// iss check, token refresh, and the token store's file.
#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

#include <filesystem>
#include <fstream>
#include <sys/stat.h>
#include <unistd.h>

#include "mcp/oauth/challenge.hpp"
#include "mcp/oauth/encoding.hpp"
#include "mcp/oauth/metadata.hpp"
#include "mcp/oauth/pkce.hpp"
#include "mcp/oauth/registration.hpp"
#include "mcp/oauth/scope.hpp"
#include "mcp/oauth/token.hpp"
#include "mcp/oauth/token_store.hpp"
#include "mcp/streamable_http.hpp"

namespace oauth = wafer::mcp::oauth;
using nlohmann::json;

namespace {

bool has(std::string_view s, std::string_view part) {
    return s.find(part) != std::string_view::npos;
}

// Metadata without token_endpoint_auth_methods_supported.
oauth::server_metadata as_metadata() {
    oauth::server_metadata m;
    m.issuer = "https://as.example.com";
    m.authorization_endpoint = "https://as.example.com/authorize";
    m.token_endpoint = "https://as.example.com/token";
    return m;
}

oauth::server_metadata as_metadata(std::vector<std::string> methods) {
    auto m = as_metadata();
    m.token_endpoint_auth_methods_supported = std::move(methods);
    return m;
}

} // namespace

TEST_SUITE("unit/mcp_oauth") {
    TEST_CASE("PKCE S256: the RFC 7636 example, fresh verifiers of 43 characters") {
        CHECK(
            oauth::s256_challenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk") ==
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
        const auto a = oauth::make_pkce();
        const auto b = oauth::make_pkce();
        CHECK(a.verifier.size() == 43);
        CHECK(a.verifier != b.verifier);
        CHECK(a.challenge == oauth::s256_challenge(a.verifier));
        CHECK(oauth::base64("user:pa ss") == "dXNlcjpwYSBzcw==");
        CHECK(oauth::base64url("\xfb\xff") == "-_8");
    }

    TEST_CASE("form encoding: unreserved characters only are left as they are") {
        CHECK(
            oauth::form_encode({{"scope", "a b"}, {"r", "https://x/y?z=1"}}) ==
            "scope=a%20b&r=https%3A%2F%2Fx%2Fy%3Fz%3D1"
        );
        CHECK(
            oauth::append_query("https://as/authorize", {{"a", "1"}}) == "https://as/authorize?a=1"
        );
        CHECK(
            oauth::append_query("https://as/authorize?tenant=t", {{"a", "1"}}) ==
            "https://as/authorize?tenant=t&a=1"
        );
    }

    TEST_CASE("the Bearer challenge: its parameters, among other schemes") {
        auto c = oauth::parse_bearer_challenge(
            R"(Bearer resource_metadata="https://mcp.example.com/.well-known/oauth-protected-resource", scope="files:read files:write")"
        );
        REQUIRE(c);
        CHECK(
            c->resource_metadata == "https://mcp.example.com/.well-known/oauth-protected-resource"
        );
        CHECK(c->scope == "files:read files:write");
        CHECK(c->error.empty());
        c = oauth::parse_bearer_challenge(
            R"(Basic realm="x", bearer error="insufficient_scope", scope="mcp:write", error_description="a \"quoted\" word")"
        );
        REQUIRE(c);
        CHECK(c->error == "insufficient_scope");
        CHECK(c->scope == "mcp:write");
        CHECK_FALSE(oauth::parse_bearer_challenge(R"(Basic realm="x")"));
        CHECK(oauth::classify_auth_failure(401, std::nullopt) == oauth::auth_demand::authorize);
        CHECK(oauth::classify_auth_failure(403, c) == oauth::auth_demand::more_scope);
        CHECK(oauth::classify_auth_failure(403, std::nullopt) == oauth::auth_demand::none);
        CHECK(
            oauth::classify_auth_failure(403, oauth::bearer_challenge{}) == oauth::auth_demand::none
        );
    }

    TEST_CASE("protected resource metadata: the challenge's URL, then path-based, then root") {
        oauth::bearer_challenge c;
        c.resource_metadata = "https://mcp.example.com/custom/prm.json";
        const auto with = oauth::resource_metadata_urls("https://mcp.example.com/v1/mcp?x=1", c);
        REQUIRE(with.size() == 3);
        CHECK(with[0] == "https://mcp.example.com/custom/prm.json");
        CHECK(with[1] == "https://mcp.example.com/.well-known/oauth-protected-resource/v1/mcp");
        CHECK(with[2] == "https://mcp.example.com/.well-known/oauth-protected-resource");
        const auto root = oauth::resource_metadata_urls("http://localhost:3000/", std::nullopt);
        REQUIRE(root.size() == 1);
        CHECK(root[0] == "http://localhost:3000/.well-known/oauth-protected-resource");

        std::string why;
        const auto m = oauth::parse_resource_metadata(
            R"({"resource":"https://mcp.example.com/mcp","authorization_servers":["https://as.example.com/tenant1"],"scopes_supported":["a","b"]})",
            why
        );
        REQUIRE(m);
        CHECK(m->authorization_servers.front() == "https://as.example.com/tenant1");
        CHECK(m->scopes_supported.size() == 2);
        CHECK_FALSE(oauth::parse_resource_metadata(R"({"resource":"x"})", why));
        CHECK(has(why, "no authorization server"));
    }

    TEST_CASE("the resource must be this server: origin, and the MCP path at or under its path") {
        CHECK(oauth::resource_matches("https://mcp.example.com/mcp", "https://mcp.example.com/mcp")
        );
        CHECK(oauth::resource_matches("https://mcp.example.com", "https://MCP.example.com:443/mcp")
        );
        CHECK(
            oauth::resource_matches("https://mcp.example.com/v1/", "https://mcp.example.com/v1/mcp")
        );
        CHECK_FALSE(
            oauth::resource_matches("https://evil.example.com/mcp", "https://mcp.example.com/mcp")
        );
        CHECK_FALSE(oauth::resource_matches(
            "https://mcp.example.com:8443/mcp", "https://mcp.example.com/mcp"
        ));
        CHECK_FALSE(
            oauth::resource_matches("http://mcp.example.com/mcp", "https://mcp.example.com/mcp")
        );
        CHECK_FALSE(
            oauth::resource_matches("https://mcp.example.com/mcp", "https://mcp.example.com/mcpx")
        );
        CHECK(
            oauth::canonical_resource("HTTPS://Mcp.Example.COM:443/mcp#top") ==
            "https://mcp.example.com/mcp"
        );
        CHECK(oauth::canonical_resource("http://localhost:3000/") == "http://localhost:3000");
        CHECK(oauth::origin_of("http://localhost:3000/mcp") == "http://localhost:3000");
    }

    TEST_CASE("authorization server metadata: three URLs for an issuer with a path, two without") {
        const auto t = oauth::server_metadata_urls("https://as.example.com/tenant1/");
        REQUIRE(t.size() == 3);
        CHECK(t[0] == "https://as.example.com/.well-known/oauth-authorization-server/tenant1");
        CHECK(t[1] == "https://as.example.com/.well-known/openid-configuration/tenant1");
        CHECK(t[2] == "https://as.example.com/tenant1/.well-known/openid-configuration");
        const auto r = oauth::server_metadata_urls("https://as.example.com");
        REQUIRE(r.size() == 2);
        CHECK(r[0] == "https://as.example.com/.well-known/oauth-authorization-server");
        CHECK(r[1] == "https://as.example.com/.well-known/openid-configuration");
    }

    TEST_CASE("authorization server metadata: endpoints, PKCE, CIMD, iss; the issuer in 2026") {
        const std::string doc =
            R"({"issuer":"https://as.example.com","authorization_endpoint":"https://as.example.com/a",
                "token_endpoint":"https://as.example.com/t","registration_endpoint":"https://as.example.com/r",
                "code_challenge_methods_supported":["S256"],"client_id_metadata_document_supported":true,
                "authorization_response_iss_parameter_supported":true,"token_endpoint_auth_methods_supported":["none"]})";
        std::string why;
        auto m = oauth::parse_server_metadata(doc, "https://as.example.com", true, why);
        REQUIRE(m);
        CHECK(oauth::supports_s256(*m));
        CHECK(m->client_id_metadata_document_supported);
        CHECK(m->authorization_response_iss_parameter_supported);
        REQUIRE(m->token_endpoint_auth_methods_supported);
        CHECK(m->token_endpoint_auth_methods_supported->front() == "none");
        CHECK_FALSE(oauth::parse_server_metadata(doc, "https://as.example.com/", true, why));
        CHECK(has(why, "another issuer"));
        CHECK(oauth::parse_server_metadata(doc, "https://as.example.com/", false, why));
        m = oauth::parse_server_metadata(
            R"({"issuer":"x","authorization_endpoint":"a","token_endpoint":"t"})", "x", true, why
        );
        REQUIRE(m);
        CHECK_FALSE(oauth::supports_s256(*m)); // absent: refuse
        CHECK_FALSE(m->token_endpoint_auth_methods_supported);
        CHECK_FALSE(oauth::parse_server_metadata(R"({"issuer":"x"})", "x", false, why));
        const auto d = oauth::default_endpoints("http://localhost:3000");
        CHECK(d.authorization_endpoint == "http://localhost:3000/authorize");
        CHECK(d.token_endpoint == "http://localhost:3000/token");
        CHECK(d.registration_endpoint == "http://localhost:3000/register");
        CHECK(oauth::supports_s256(d));
    }

    TEST_CASE("scope: the challenge's, else the metadata's, else configured, else none; union") {
        oauth::bearer_challenge c;
        c.scope = "mcp:basic";
        oauth::resource_metadata prm;
        prm.scopes_supported = {"mcp:basic", "mcp:read", "mcp:write"};
        CHECK(oauth::initial_scope(c, &prm, {}) == "mcp:basic");
        CHECK(oauth::initial_scope(std::nullopt, &prm, {}) == "mcp:basic mcp:read mcp:write");
        CHECK(oauth::initial_scope(std::nullopt, nullptr, {"x", "y"}) == "x y");
        CHECK(oauth::initial_scope(std::nullopt, nullptr, {}).empty());
        CHECK(oauth::union_scope("mcp:basic", "mcp:write mcp:basic") == "mcp:basic mcp:write");
        CHECK(oauth::max_authorizations == 3);
    }

    TEST_CASE("registration: pre-registered, then the metadata document, then dynamic") {
        auto m = as_metadata();
        CHECK(
            oauth::choose_registration(true, "https://c/m.json", m) ==
            oauth::registration_kind::pre_registered
        );
        CHECK(
            oauth::choose_registration(false, "https://c/m.json", m) ==
            oauth::registration_kind::impossible
        );
        m.registration_endpoint = "https://as.example.com/register";
        CHECK(
            oauth::choose_registration(false, "https://c/m.json", m) ==
            oauth::registration_kind::dynamic
        );
        m.client_id_metadata_document_supported = true;
        CHECK(
            oauth::choose_registration(false, "https://c/m.json", m) ==
            oauth::registration_kind::metadata_document
        );
        CHECK(oauth::choose_registration(false, "", m) == oauth::registration_kind::dynamic);

        const auto body =
            json::parse(oauth::registration_request("wafer", "http://127.0.0.1:9/cb", m));
        CHECK(body["client_name"] == "wafer");
        CHECK(body["redirect_uris"] == json::array({"http://127.0.0.1:9/cb"}));
        CHECK(body["application_type"] == "native");
        CHECK(body["token_endpoint_auth_method"] == "client_secret_basic"); // the default list
        CHECK(body["grant_types"] == json::array({"authorization_code", "refresh_token"}));
        const auto web = json::parse(oauth::registration_request(
            "wafer", "https://app.example.com/cb", as_metadata({"none"})
        ));
        CHECK(web["application_type"] == "web");
        CHECK(web["token_endpoint_auth_method"] == "none");

        std::string why;
        auto c = oauth::parse_registration_response(
            R"({"client_id":"id1","client_secret":"s","token_endpoint_auth_method":"client_secret_post"})",
            m,
            why
        );
        REQUIRE(c);
        CHECK(c->auth_method == "client_secret_post");
        c = oauth::parse_registration_response(
            R"({"client_id":"id1","client_secret":"s"})", as_metadata({"none"}), why
        );
        REQUIRE(c);
        CHECK(c->auth_method == "none"); // a secret the server does not take
        CHECK_FALSE(oauth::parse_registration_response(R"({"client_secret":"s"})", m, why));
    }

    TEST_CASE("token endpoint authentication: basic before post before none") {
        CHECK(oauth::choose_auth_method(as_metadata(), true) == "client_secret_basic");
        CHECK(
            oauth::choose_auth_method(as_metadata({"client_secret_post", "none"}), true) ==
            "client_secret_post"
        );
        CHECK(oauth::choose_auth_method(as_metadata({"client_secret_basic"}), false) == "none");
        CHECK(
            oauth::choose_auth_method(as_metadata({"none"}), true, "client_secret_basic") ==
            "client_secret_basic"
        );

        oauth::client_credentials basic{"id:1", "s&2", "client_secret_basic"};
        auto r = oauth::code_request(
            "c0de", "http://localhost:3000/callback", "v", "https://mcp.example.com/mcp", basic
        );
        CHECK(r.authorization == "Basic " + oauth::base64("id%3A1:s%262"));
        CHECK(
            r.body == "grant_type=authorization_code&code=c0de&redirect_uri=http%3A%2F%2Flocalhost%"
                      "3A3000%2Fcallback"
                      "&code_verifier=v&resource=https%3A%2F%2Fmcp.example.com%2Fmcp"
        );
        oauth::client_credentials post{"id", "sec", "client_secret_post"};
        r = oauth::code_request("c", "r", "v", "res", post);
        CHECK(r.authorization.empty());
        CHECK(has(r.body, "&client_id=id&client_secret=sec"));
        oauth::client_credentials none{"https://c/m.json", "", "none"};
        r = oauth::refresh_request("rt", "res", none);
        CHECK(
            r.body == "grant_type=refresh_token&refresh_token=rt&resource=res&client_id=https%3A%"
                      "2F%2Fc%2Fm.json"
        );
        CHECK_FALSE(has(r.body, "client_secret"));
    }

    TEST_CASE("the authorization URL: code, S256 challenge, state, resource; scope only if any") {
        const auto m = as_metadata();
        oauth::authorization_params p;
        p.client_id = "cid";
        p.redirect_uri = "http://localhost:3000/callback";
        p.resource = "https://mcp.example.com/mcp";
        p.state = "st";
        p.code_challenge = "ch";
        std::string url = oauth::authorization_url(m, p);
        CHECK(url.starts_with("https://as.example.com/authorize?response_type=code&client_id=cid&")
        );
        CHECK(has(url, "&code_challenge=ch&code_challenge_method=S256&state=st"));
        CHECK(has(url, "&resource=https%3A%2F%2Fmcp.example.com%2Fmcp"));
        CHECK_FALSE(has(url, "scope="));
        p.scope = "mcp:basic mcp:write";
        url = oauth::authorization_url(m, p);
        CHECK(has(url, "&scope=mcp%3Abasic%20mcp%3Awrite&"));
    }

    TEST_CASE("the redirect back: state, then the iss table of RFC 9207") {
        const auto cb = oauth::parse_callback(
            "http://localhost:3000/"
            "callback?code=test-auth-code&state=s1&iss=https%3A%2F%2Fas.example.com"
        );
        REQUIRE(cb);
        CHECK(cb->code == "test-auth-code");
        REQUIRE(cb->iss);
        CHECK(*cb->iss == "https://as.example.com");
        const std::string issuer = "https://as.example.com";
        CHECK(oauth::check_callback(*cb, "s1", issuer, true).empty());
        CHECK(oauth::check_callback(*cb, "s1", issuer, false).empty());
        CHECK(has(oauth::check_callback(*cb, "s2", issuer, true), "state"));
        CHECK(has(oauth::check_callback(*cb, "s1", issuer + "/", false), "another issuer"));
        auto no_iss = *cb;
        no_iss.iss.reset();
        CHECK(has(oauth::check_callback(no_iss, "s1", issuer, true), "lacks the iss"));
        CHECK(oauth::check_callback(no_iss, "s1", issuer, false).empty());
        // An error from the wrong issuer is not shown; an error code from the right one is.
        auto refused =
            oauth::parse_callback("http://l/cb?error=access_denied&state=s1&iss=https%3A%2F%2Fevil"
            );
        REQUIRE(refused);
        CHECK_FALSE(has(oauth::check_callback(*refused, "s1", issuer, true), "access_denied"));
        refused->iss = issuer;
        CHECK(has(oauth::check_callback(*refused, "s1", issuer, true), "access_denied"));
    }

    TEST_CASE("the token answer: a Bearer access token; errors by code, never a token") {
        std::string why;
        auto t = oauth::parse_token_response(
            200,
            R"({"access_token":"at","token_type":"bearer","expires_in":3600,"refresh_token":"rt","scope":"a b"})",
            why
        );
        REQUIRE(t);
        CHECK(t->access_token == "at");
        CHECK(t->refresh_token == "rt");
        CHECK(t->scope == "a b");
        CHECK(t->expires_in == std::chrono::seconds(3600));
        CHECK_FALSE(
            oauth::parse_token_response(200, R"({"access_token":"at","token_type":"DPoP"})", why)
        );
        CHECK_FALSE(oauth::parse_token_response(200, R"({"token_type":"Bearer"})", why));
        CHECK_FALSE(oauth::parse_token_response(
            400, R"({"error":"invalid_grant","access_token":"secret-looking"})", why
        ));
        CHECK(why == "the token endpoint answered HTTP 400 (invalid_grant)");
    }

    TEST_CASE("the token store: kept by resource and issuer, in a file only its owner reads") {
        const auto dir =
            std::filesystem::temp_directory_path() / ("wafer-oauth-" + std::to_string(::getpid()));
        std::filesystem::create_directories(dir);
        const auto path = (dir / "tokens.json").string();
        const oauth::token_store store(path);
        oauth::stored_tokens t;
        t.issuer = "https://as.example.com";
        t.access_token = "at";
        t.refresh_token = "rt";
        t.resource = "https://mcp.example.com/mcp";
        t.token_endpoint = "https://as.example.com/token";
        CHECK(store.save_tokens("https://mcp.example.com/mcp", t).empty());
        CHECK(store.save_client("https://as.example.com", {"cid", "sec", "client_secret_basic"})
                  .empty());
        struct stat st {};
        REQUIRE(::stat(path.c_str(), &st) == 0);
        CHECK((st.st_mode & 0777) == 0600);
        const oauth::token_store again(path);
        const auto got = again.tokens("https://mcp.example.com/mcp");
        REQUIRE(got);
        CHECK(got->access_token == "at");
        CHECK(got->refresh_token == "rt");
        CHECK(got->token_endpoint == "https://as.example.com/token");
        const auto client = again.client("https://as.example.com");
        REQUIRE(client);
        CHECK(client->client_secret == "sec");
        CHECK_FALSE(again.tokens("https://other.example.com/mcp"));
        CHECK_FALSE(oauth::token_store("").tokens("https://mcp.example.com/mcp"));
        std::filesystem::remove_all(dir);
    }

    TEST_CASE("requests carry the access token, in place of a configured Authorization") {
        std::string why;
        const auto url = wafer::mcp::detail::parse_endpoint("http://127.0.0.1:3001/mcp", why);
        REQUIRE(url);
        const std::vector<std::pair<std::string, std::string>> headers = {
            {"authorization", "Bearer configured"}, {"X-Other", "1"}};
        wafer::mcp::detail::request_fields f;
        f.url = &*url;
        f.headers = &headers;
        std::string out;
        wafer::mcp::detail::write_post(out, f, "{}");
        CHECK(has(out, "authorization: Bearer configured\r\n"));
        f.bearer = "tok";
        wafer::mcp::detail::write_post(out, f, "{}");
        CHECK(has(out, "Authorization: Bearer tok\r\n"));
        CHECK_FALSE(has(out, "configured"));
        CHECK(has(out, "X-Other: 1\r\n"));
    }
}
