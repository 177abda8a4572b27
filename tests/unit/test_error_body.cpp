// Error responses -> errc + diagnostics, for every body shape (cerebras-api.md §6).
#include <wafer/api/error_body.hpp>

#include <doctest/doctest.h>

#include <chrono>

using namespace std::chrono_literals;
using wafer::errc;
using wafer::api::header_list;
using wafer::api::read_error_response;

TEST_SUITE("unit/error_body") {
    TEST_CASE("flat body (401 wrong_api_key)") {
        wafer::diagnostics d;
        const auto e = read_error_response(
            401,
            {},
            R"({"message":"Wrong API Key","type":"invalid_request_error","param":"api_key","code":"wrong_api_key"})",
            d
        );
        CHECK(e == errc::authentication_failed);
        CHECK(d.http_status == 401);
        CHECK(d.message == "Wrong API Key");
        CHECK(d.type == "invalid_request_error");
        CHECK(d.param == "api_key");
        CHECK(d.code == "wrong_api_key");
        CHECK(d.to_string().find("Wrong API Key") != std::string::npos);
    }

    TEST_CASE("nested body: the status_code inside picks the errc") {
        wafer::diagnostics d;
        const auto e = read_error_response(
            400,
            {},
            R"({"status_code":503,"error":{"message":"Encountered a server error, please try again.","type":"server_error","param":"","code":"","id":""}})",
            d
        );
        CHECK(e == errc::server_error);
        CHECK(d.http_status == 400); // the status on the wire, as the Python SDK reports it
        CHECK(d.type == "server_error");
        CHECK(d.message == "Encountered a server error, please try again.");
        CHECK(d.code.empty());
    }

    TEST_CASE("nested body without status_code, and error as a string") {
        wafer::diagnostics d;
        CHECK(
            read_error_response(
                429,
                {},
                R"({"error":{"message":"slow down","type":"too_many_requests_error","code":"queue_exceeded","param":"queue"}})",
                d
            ) == errc::rate_limited
        );
        CHECK(d.code == "queue_exceeded");
        CHECK(d.param == "queue");
        wafer::diagnostics d2;
        CHECK(read_error_response(500, {}, R"({"error":"boom"})", d2) == errc::server_error);
        CHECK(d2.message == "boom");
    }

    TEST_CASE("FastAPI detail string and list") {
        wafer::diagnostics d;
        CHECK(
            read_error_response(403, {}, R"({"detail":"Not authenticated"})", d) ==
            errc::permission_denied
        );
        CHECK(d.message == "Not authenticated");
        wafer::diagnostics d2;
        CHECK(
            read_error_response(
                422,
                {},
                R"({"detail":[{"loc":["body","messages",0],"msg":"field required","type":"value_error.missing"},{"loc":["body","model"],"msg":"str type expected","type":"type_error.str"}]})",
                d2
            ) == errc::unprocessable_entity
        );
        CHECK(d2.message == "body.messages.0: field required; body.model: str type expected");
        CHECK(d2.type == "value_error.missing");
    }

    TEST_CASE("non-JSON and empty bodies") {
        wafer::diagnostics d;
        CHECK(read_error_response(502, {}, "<html>Bad Gateway</html>", d) == errc::server_error);
        CHECK(d.message == "<html>Bad Gateway</html>");
        wafer::diagnostics d2;
        CHECK(read_error_response(404, {}, "", d2) == errc::not_found);
        CHECK(d2.message.empty());
        wafer::diagnostics d3;
        CHECK(read_error_response(413, {}, std::string(2000, 'x'), d3) == errc::http_status);
        CHECK(d3.message.size() == 512);
        // A raw body cut at 512 bytes keeps whole code points: "é" at bytes 511-512 is dropped
        // whole, never split into a lone lead byte.
        wafer::diagnostics d4;
        read_error_response(502, {}, std::string(511, 'x') + "\xC3\xA9" + std::string(10, 'y'), d4);
        CHECK(d4.message == std::string(511, 'x'));
    }

    TEST_CASE("non-string fields are rendered, null fields are empty") {
        wafer::diagnostics d;
        read_error_response(400, {}, R"({"message":"bad","type":null,"code":42,"param":null})", d);
        CHECK(d.code == "42");
        CHECK(d.type.empty());
        CHECK(d.param.empty());
    }

    TEST_CASE("headers: request id, retry-after, rate limits") {
        const auto now = std::chrono::system_clock::time_point(std::chrono::seconds(1767225600));
        header_list h{
            {"content-type", "application/json"},
            {"cerebras-request-id", "req-cb"},
            {"x-ratelimit-limit-requests-day", "14400"},
            {"x-ratelimit-reset-tokens-minute", "33.5"},
            {"retry-after", "Thu, 01 Jan 2026 00:00:03 GMT"},
        };
        wafer::diagnostics d;
        CHECK(read_error_response(429, h, "{}", d, now) == errc::rate_limited);
        CHECK(d.request_id == "req-cb");
        REQUIRE(d.retry_after);
        CHECK(*d.retry_after == 3000ms);
        REQUIRE(d.rate_limit.size() == 2);
        CHECK(d.rate_limit[0].first == "x-ratelimit-limit-requests-day");
        CHECK(d.rate_limit[1].second == "33.5");

        h.emplace_back("x-request-id", "req-x");
        h.emplace_back("retry-after-ms", "250");
        wafer::diagnostics d2;
        read_error_response(429, h, "{}", d2, now);
        CHECK(d2.request_id == "req-x");
        CHECK(*d2.retry_after == 250ms);
    }

    TEST_CASE("redact removes a secret from every string") {
        wafer::diagnostics d;
        read_error_response(
            401,
            {},
            R"j({"message":"key sk-SECRET-123 is wrong (sk-SECRET-123)","type":"t","param":"sk-SECRET-123","code":"c"})j",
            d
        );
        d.detail = "Bearer sk-SECRET-123";
        wafer::api::redact(d, "sk-SECRET-123");
        CHECK(d.message == "key *** is wrong (***)");
        CHECK(d.param == "***");
        CHECK(d.detail == "Bearer ***");
        CHECK(d.to_string().find("sk-SECRET") == std::string::npos);
    }

    TEST_CASE("redact: a short key leaves words that merely contain it alone") {
        wafer::diagnostics d;
        read_error_response(
            401,
            {},
            R"({"message":"Wrong API Key","type":"invalid_request_error","param":"api_key","code":"wrong_api_key"})",
            d
        );
        const std::string before = d.to_string();
        for (const char* key : {"wrong", "api", "key", "Key", "_", "a", "401"}) {
            CAPTURE(key);
            wafer::diagnostics r = d;
            wafer::api::redact(r, key);
            CHECK(r.code == "wrong_api_key");
            CHECK(r.param == "api_key");
            CHECK(r.type == "invalid_request_error");
        }
        // As a word of its own, a short key is still removed.
        std::string t = "your key wrong is not valid; wrong_api_key";
        wafer::api::redact_text(t, "wrong");
        CHECK(t == "your key *** is not valid; wrong_api_key");
        CHECK(d.to_string() == before);
    }

    TEST_CASE("redact: partial echoes and JSON-escaped forms of a long key") {
        const std::string key = "csk-abcd1234efgh5678";
        std::string partial = "Incorrect API key provided: csk-abcd1234****5678.";
        wafer::api::redact_text(partial, key);
        CHECK(partial == "Incorrect API key provided: *******5678.");
        CHECK(partial.find("abcd1234") == std::string::npos);
        std::string in_json = R"({"error":"bad key \"csk-abcd1234efgh5678\""})";
        wafer::api::redact_text(in_json, key);
        CHECK(in_json == R"({"error":"bad key \"***\""})");
        // Seven leading characters are not enough to be a partial echo.
        std::string short_prefix = "prefix csk-abc is public";
        wafer::api::redact_text(short_prefix, key);
        CHECK(short_prefix == "prefix csk-abc is public");
        // A key with characters JSON escapes is found escaped too.
        const std::string odd = "k\"ey/with\\quote";
        std::string escaped = R"(echo: k\"ey/with\\quote)";
        wafer::api::redact_text(escaped, odd);
        CHECK(escaped == "echo: ***");
        std::string plain = "echo: " + odd;
        wafer::api::redact_text(plain, odd);
        CHECK(plain == "echo: ***");
    }

    TEST_CASE("a 2xx that is not an event stream says what it was") {
        using wafer::api::read_unexpected_stream_body;
        CHECK(wafer::api::is_event_stream("text/event-stream"));
        CHECK(wafer::api::is_event_stream("Text/Event-Stream; charset=utf-8"));
        CHECK_FALSE(wafer::api::is_event_stream("text/event-streamx"));
        CHECK_FALSE(wafer::api::is_event_stream("application/json"));

        wafer::diagnostics html;
        CHECK(
            read_unexpected_stream_body("text/html", "<html>\x1b[2J\n<b>Login</b></html>", html) ==
            errc::invalid_response
        );
        CHECK(
            html.detail ==
            R"(expected text/event-stream, got text/html: <html>\x1b[2J\n<b>Login</b></html>)"
        );
        wafer::diagnostics empty;
        read_unexpected_stream_body("application/json", "", empty);
        CHECK(
            empty.detail == "expected text/event-stream, got application/json with an empty body"
        );
        wafer::diagnostics big;
        read_unexpected_stream_body("text/plain", std::string(5000, 'x'), big);
        CHECK(big.detail.size() < 400);
        CHECK(big.detail.ends_with("..."));

        wafer::diagnostics err;
        CHECK(
            read_unexpected_stream_body(
                "application/json",
                R"({"error":{"message":"quota exceeded","type":"rate_limit","code":"quota"}})",
                err
            ) == errc::provider_error
        );
        CHECK(err.message == "quota exceeded");
        CHECK(err.code == "quota");
        CHECK(err.http_status == 0);
        wafer::diagnostics with_status;
        CHECK(
            read_unexpected_stream_body(
                "application/json",
                R"({"status_code":429,"error":{"message":"slow down","type":"too_many_requests_error"}})",
                with_status
            ) == errc::rate_limited
        );
        CHECK(with_status.http_status == 429);
        // JSON that is not an error object is just the wrong content.
        wafer::diagnostics other;
        CHECK(
            read_unexpected_stream_body("application/json", R"({"choices":[]})", other) ==
            errc::invalid_response
        );
        CHECK(other.detail.find("got application/json") != std::string::npos);
    }

    TEST_CASE("find_header") {
        header_list h{{"a", "1"}, {"b", "2"}, {"a", "3"}};
        CHECK(wafer::api::find_header(h, "a") == "1");
        CHECK(!wafer::api::find_header(h, "c"));
    }
}
