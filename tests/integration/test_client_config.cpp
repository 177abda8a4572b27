// Base-URL handling, proxy bypass rules and from_env (sans-io; suite unit/client_config).
#include <wafer/api/client_config.hpp>
#include <wafer/error.hpp>

#include <doctest/doctest.h>

#include <cstdlib>

using wafer::api::parse_base_url;

TEST_SUITE("unit/client_config") {
    TEST_CASE("default and OpenAI-style base URLs give the same endpoint") {
        boost::system::error_code ec;
        auto a = parse_base_url("https://api.cerebras.ai", ec);
        CHECK(!ec);
        CHECK(a.tls);
        CHECK(a.host == "api.cerebras.ai");
        CHECK(a.port == 443);
        CHECK(a.path_prefix == "/v1"); // no path: the routes under /v1
        auto b = parse_base_url("https://api.cerebras.ai/v1/", ec);
        CHECK(!ec);
        CHECK(b.path_prefix == "/v1"); // "/v1" is not doubled
        CHECK(b.host == a.host);
    }

    TEST_CASE("one rule: the routes hang under the given path, /v1 only when none is given") {
        boost::system::error_code ec;
        // A server that serves /api/chat/completions: no /v1 grows onto an explicit path.
        CHECK(parse_base_url("http://127.0.0.1:3000/api", ec).path_prefix == "/api");
        CHECK(!ec);
        CHECK(parse_base_url("https://gw.example/openai/v1", ec).path_prefix == "/openai/v1");
        CHECK(parse_base_url("https://gw.example/a/b/c/", ec).path_prefix == "/a/b/c");
        CHECK(parse_base_url("https://gw.example/", ec).path_prefix == "/v1");
        // A query string is kept (an API version, a deployment) and goes with every request.
        auto q = parse_base_url("https://gw.example/openai/v1?api-version=2024-10-21", ec);
        CHECK(!ec);
        CHECK(q.path_prefix == "/openai/v1");
        CHECK(q.query == "api-version=2024-10-21");
        auto bare = parse_base_url("http://localhost:8080?key=a/b", ec);
        CHECK(!ec);
        CHECK(bare.host == "localhost");
        CHECK(bare.port == 8080);
        CHECK(bare.path_prefix == "/v1");
        CHECK(bare.query == "key=a/b");
        CHECK(parse_base_url("https://h/v1", ec).query.empty());
    }

    TEST_CASE("ports, prefixes, plain http and IPv6") {
        boost::system::error_code ec;
        auto a = parse_base_url("http://127.0.0.1:8080", ec);
        CHECK(!ec);
        CHECK(!a.tls);
        CHECK(a.port == 8080);
        auto b = parse_base_url("http://gateway.lan/openai/v1", ec);
        CHECK(!ec);
        CHECK(b.port == 80);
        CHECK(b.path_prefix == "/openai/v1");
        auto c = parse_base_url("https://[::1]:8443/x/", ec);
        CHECK(!ec);
        CHECK(c.host == "::1");
        CHECK(c.port == 8443);
        CHECK(c.path_prefix == "/x");
        auto d = parse_base_url("HTTPS://Example.COM", ec);
        CHECK(!ec);
        CHECK(d.tls);
    }

    TEST_CASE("malformed base URLs are invalid_request") {
        for (const char* bad :
             {"api.cerebras.ai",
              "ftp://x",
              "https://",
              "https://u:p@host",
              "https://h:0",
              "https://h:70000",
              "https://h:12ab",
              "https://h/v1#frag",
              "https://h/a b",
              "https://[::1"}) {
            boost::system::error_code ec;
            parse_base_url(bad, ec);
            CHECK_MESSAGE(ec == wafer::errc::invalid_request, bad);
        }
    }

    TEST_CASE("loopback detection and NO_PROXY matching") {
        using wafer::api::bypasses_proxy;
        using wafer::api::is_loopback_host;
        CHECK(is_loopback_host("localhost"));
        CHECK(is_loopback_host("127.0.0.1"));
        CHECK(is_loopback_host("127.5.6.7"));
        CHECK(is_loopback_host("::1"));
        CHECK(!is_loopback_host("api.cerebras.ai"));
        CHECK(!is_loopback_host("10.0.0.1"));
        CHECK(bypasses_proxy("api.cerebras.ai", 443, "*"));
        CHECK(bypasses_proxy("api.cerebras.ai", 443, "example.com, cerebras.ai"));
        CHECK(bypasses_proxy("api.cerebras.ai", 443, ".cerebras.ai"));
        CHECK(bypasses_proxy("API.Cerebras.AI", 443, "api.cerebras.ai:443"));
        CHECK(!bypasses_proxy("api.cerebras.ai", 443, "api.cerebras.ai:8443"));
        CHECK(!bypasses_proxy("notcerebras.ai", 443, "cerebras.ai"));
        CHECK(!bypasses_proxy("api.cerebras.ai", 443, ""));
    }

    TEST_CASE("from_env reads key, base URL and proxy") {
        ::setenv("CEREBRAS_API_KEY", "sk-env", 1);
        ::setenv("CEREBRAS_BASE_URL", "http://127.0.0.1:9/v1", 1);
        ::setenv("HTTPS_PROXY", "http://proxy:3128", 1);
        ::setenv("NO_PROXY", "internal", 1);
        auto cfg = wafer::api::client_config::from_env();
        CHECK(cfg.api_key == "sk-env");
        CHECK(cfg.base_url == "http://127.0.0.1:9/v1");
        REQUIRE(cfg.proxy);
        CHECK(cfg.proxy->url == "http://proxy:3128");
        CHECK(cfg.proxy->from_environment);
        CHECK(cfg.no_proxy == "internal");
        ::unsetenv("CEREBRAS_API_KEY");
        ::unsetenv("CEREBRAS_BASE_URL");
        ::unsetenv("HTTPS_PROXY");
        ::unsetenv("NO_PROXY");
        auto def = wafer::api::client_config::from_env();
        CHECK(def.base_url == "https://api.cerebras.ai");
        CHECK(def.api_key.empty());
        CHECK(!def.proxy);
        CHECK(def.timeouts.connect == std::chrono::seconds(5));
        CHECK(def.timeouts.read == std::chrono::seconds(60));
        CHECK(def.retry.max_retries == 2);
        CHECK(def.verify_tls);
    }
}
