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

    TEST_CASE("find_header") {
        header_list h{{"a", "1"}, {"b", "2"}, {"a", "3"}};
        CHECK(wafer::api::find_header(h, "a") == "1");
        CHECK(!wafer::api::find_header(h, "c"));
    }
}
