#include <wafer/api/accumulator.hpp>
#include <wafer/api/chunk_decoder.hpp>
#include <wafer/error.hpp>

#include <doctest/doctest.h>

#include <fstream>
#include <limits>
#include <sstream>

using namespace wafer::api;

namespace {

const chunk_view& decode_ok(chunk_decoder& d, std::string_view text) {
    boost::system::error_code ec;
    const chunk_view& v = d.decode(text, ec);
    REQUIRE_MESSAGE(!ec, "decode failed for: " << text);
    return v;
}

} // namespace

TEST_SUITE("unit/chunk_decoder") {
    TEST_CASE("a content delta with the recorded field order") {
        chunk_decoder d;
        const auto& v = decode_ok(
            d,
            R"({"id":"chatcmpl-1","choices":[{"delta":{"content":"Hel\"lo\n"},"index":0}],)"
            R"("created":1761231236,"model":"qwen-3-coder-480b","system_fingerprint":"fp_1",)"
            R"("object":"chat.completion.chunk"})"
        );
        CHECK(v.id == "chatcmpl-1");
        CHECK(v.model == "qwen-3-coder-480b");
        CHECK(v.system_fingerprint == "fp_1");
        CHECK(v.created == 1761231236);
        CHECK(v.has_content);
        CHECK(v.content == "Hel\"lo\n");
        CHECK_FALSE(v.has_reasoning);
        CHECK(v.finish_reason == finish_reason::none);
        CHECK_FALSE(v.usage);
        CHECK_FALSE(v.error);
    }

    TEST_CASE("the final chunk carries finish_reason, usage and time_info") {
        chunk_decoder d;
        const auto& v = decode_ok(
            d,
            R"({"choices":[{"delta":{},"finish_reason":"tool_calls","index":0}],"usage":)"
            R"({"prompt_tokens":408,"completion_tokens":59,"total_tokens":467,)"
            R"("prompt_tokens_details":{"cached_tokens":128},"completion_tokens_details":)"
            R"({"reasoning_tokens":12,"accepted_prediction_tokens":3,"rejected_prediction_tokens":4}},)"
            R"("time_info":{"queue_time":0.000163361,"prompt_time":0.014,"completion_time":0.03,)"
            R"("total_time":0.0467,"created":1761231236.3815937}})"
        );
        CHECK(v.finish_reason == finish_reason::tool_calls);
        REQUIRE(v.usage);
        CHECK(v.usage->prompt_tokens == 408);
        CHECK(v.usage->completion_tokens == 59);
        CHECK(v.usage->total_tokens == 467);
        CHECK(v.usage->cached_tokens == 128);
        CHECK(v.usage->reasoning_tokens == 12);
        CHECK(v.usage->accepted_prediction_tokens == 3);
        CHECK(v.usage->rejected_prediction_tokens == 4);
        REQUIRE(v.time_info);
        CHECK(v.time_info->queue_time == doctest::Approx(0.000163361));
        CHECK(v.time_info->created == doctest::Approx(1761231236.3815937));
    }

    TEST_CASE("token counts of 1e300, negative or fractional are clamped to [0, 2^53]") {
        chunk_decoder d;
        const auto& v = decode_ok(
            d,
            R"({"choices":[{"delta":{},"finish_reason":"stop","index":0}],"usage":)"
            R"({"prompt_tokens":1e300,"completion_tokens":-7,"total_tokens":12.9,)"
            R"("prompt_tokens_details":{"cached_tokens":-1e300},"completion_tokens_details":)"
            R"({"reasoning_tokens":18446744073709551615,"accepted_prediction_tokens":-0.5,)"
            R"("rejected_prediction_tokens":1e19}},"created":1e300})"
        );
        REQUIRE(v.usage);
        CHECK(v.usage->prompt_tokens == max_token_count);
        CHECK(v.usage->completion_tokens == 0);
        CHECK(v.usage->total_tokens == 12);
        CHECK(v.usage->cached_tokens == 0);
        CHECK(v.usage->reasoning_tokens == max_token_count);
        CHECK(v.usage->accepted_prediction_tokens == 0);
        CHECK(v.usage->rejected_prediction_tokens == max_token_count);
        CHECK(v.created == std::numeric_limits<std::int64_t>::max());
    }

    TEST_CASE("a tool-call index or status code far out of int range is clamped") {
        chunk_decoder d;
        const auto& v = decode_ok(
            d,
            R"({"choices":[{"delta":{"tool_calls":[{"index":1e300,"id":"a","function":)"
            R"({"name":"f","arguments":""}}]},"index":0}]})"
        );
        REQUIRE(v.tool_call_count == 1);
        CHECK(v.tool_calls[0].index == std::numeric_limits<int>::max());
        const auto& e =
            decode_ok(d, R"({"error":{"message":"m","type":"t"},"status_code":-1e300})");
        REQUIRE(e.error);
        CHECK(e.error->status_code == std::numeric_limits<int>::min());
    }

    TEST_CASE("whole parallel tool calls in one chunk") {
        chunk_decoder d;
        const auto& v = decode_ok(
            d,
            R"({"choices":[{"delta":{"tool_calls":[{"function":{"name":"add","arguments":)"
            R"("{\"a\": 2, \"b\": 3}"},"type":"function","id":"ab8048658","index":0},)"
            R"({"function":{"name":"multiply","arguments":"{\"a\": 2}"},"type":"function",)"
            R"("id":"b249e0b3f","index":1}]},"index":0}]})"
        );
        REQUIRE(v.tool_call_count == 2);
        CHECK(v.tool_calls[0].index == 0);
        CHECK(v.tool_calls[0].id == "ab8048658");
        CHECK(v.tool_calls[0].name == "add");
        CHECK(v.tool_calls[0].arguments == R"({"a": 2, "b": 3})");
        CHECK(v.tool_calls[1].index == 1);
        CHECK(v.tool_calls[1].name == "multiply");
    }

    TEST_CASE("nulls are the same as absent fields") {
        chunk_decoder d;
        const auto& v = decode_ok(
            d,
            R"({"id":null,"choices":[{"delta":{"content":null,"reasoning":null,"role":null,)"
            R"("tool_calls":null},"finish_reason":null,"logprobs":null}],"usage":null,)"
            R"("time_info":null,"service_tier":null})"
        );
        CHECK_FALSE(v.has_content);
        CHECK_FALSE(v.has_reasoning);
        CHECK(v.tool_call_count == 0);
        CHECK(v.finish_reason == finish_reason::none);
        CHECK_FALSE(v.usage);
    }

    TEST_CASE("unknown fields and extra choices are ignored") {
        chunk_decoder d;
        const auto& v = decode_ok(
            d,
            R"({"future":{"deep":[1,2,{"x":null}]},"choices":[{"delta":{"reasoning":"hm",)"
            R"("new_field":[true]},"index":0},{"delta":{"content":"ignored"},"index":1}]})"
        );
        CHECK(v.has_reasoning);
        CHECK(v.reasoning == "hm");
        CHECK_FALSE(v.has_content);
    }

    TEST_CASE("a mid-stream error event, nested and flat") {
        chunk_decoder d;
        const auto& v = decode_ok(
            d,
            R"({"error":{"message":"Encountered a server error","type":"server_error",)"
            R"("param":"","code":"","id":""},"status_code":503})"
        );
        REQUIRE(v.error);
        CHECK(v.error->status_code == 503);
        CHECK(v.error->message == "Encountered a server error");
        CHECK(v.error->type == "server_error");
        const auto& w = decode_ok(d, R"({"error":{"message":"boom","code":429}})");
        REQUIRE(w.error);
        CHECK(w.error->status_code == 0);
        CHECK(w.error->code == "429");
    }

    TEST_CASE("malformed payloads are invalid_response") {
        chunk_decoder d;
        for (std::string_view bad :
             {"{\"choices\":[{\"delta\":{\"content\":\"x\"}}]",
              "not json",
              "[1,2]",
              "",
              "{\"choices\":[{\"delta\":{\"content\":5}}]}",
              "{\"a\":1} trailing"}) {
            boost::system::error_code ec;
            const auto& v = d.decode(bad, ec);
            INFO(bad);
            CHECK(ec == wafer::errc::invalid_response);
            CHECK_FALSE(v.has_content);
        }
        // The decoder recovers after an error.
        CHECK(decode_ok(d, R"({"choices":[{"delta":{"content":"ok"}}]})").content == "ok");
    }

    TEST_CASE("the recorded GLM-4.7 stream accumulates to reasoning, content and usage") {
        std::ifstream in(WAFER_FIXTURES_DIR
                         "/vercel-ai-glm-4.7/cererebras-structured-output-tools.1.chunks.txt");
        REQUIRE(in);
        chunk_decoder d;
        accumulator acc;
        std::string line;
        std::string reasoning;
        std::size_t chunks = 0;
        while (std::getline(in, line)) {
            if (line.empty()) {
                continue;
            }
            const auto& v = decode_ok(d, line);
            if (!acc.id().empty() && v.id != acc.id()) {
                break; // the file holds several streams; the first is enough here
            }
            reasoning.append(v.reasoning);
            acc.add(v);
            ++chunks;
        }
        CHECK(chunks > 10);
        REQUIRE(acc.message().reasoning);
        CHECK(*acc.message().reasoning == reasoning);
        CHECK(acc.finished());
        REQUIRE(acc.usage());
        CHECK(acc.usage()->prompt_tokens > 0);
        CHECK(acc.model() == "zai-glm-4.7");
        REQUIRE(acc.time_info());
        CHECK(acc.time_info()->total_time > 0);
    }
}

TEST_SUITE("unit/accumulator") {
    TEST_CASE("argument fragments are merged by index, in index order") {
        chunk_decoder d;
        accumulator acc;
        for (std::string_view c :
             {R"({"choices":[{"delta":{"role":"assistant","content":""}}]})",
              R"({"choices":[{"delta":{"tool_calls":[{"index":1,"id":"call_b","type":"function",)"
              R"("function":{"name":"second","arguments":""}}]}}]})",
              R"({"choices":[{"delta":{"tool_calls":[{"index":0,"id":"call_a","type":"function",)"
              R"("function":{"name":"first","arguments":"{\"x\""}}]}}]})",
              R"({"choices":[{"delta":{"tool_calls":[{"index":0,"function":{"arguments":":1}"}}]}}]})",
              R"({"choices":[{"delta":{"tool_calls":[{"index":1,"function":{"arguments":"{}"}}]}}]})",
              R"({"choices":[{"delta":{},"finish_reason":"tool_calls"}]})"}) {
            acc.add(decode_ok(d, c));
        }
        const auto& m = acc.message();
        REQUIRE(m.tool_calls.size() == 2);
        CHECK(m.tool_calls[0] == tool_call{"call_a", "first", R"({"x":1})"});
        CHECK(m.tool_calls[1] == tool_call{"call_b", "second", "{}"});
        CHECK(m.content == std::optional<std::string>(""));
        CHECK(acc.finish_reason() == finish_reason::tool_calls);
        auto r = acc.to_response();
        REQUIRE(r.choices.size() == 1);
        CHECK(r.choices[0].finish_reason == finish_reason::tool_calls);
        CHECK(r.choices[0].message.role == role::assistant);
    }

    TEST_CASE("reasoning then content pieces concatenate; reset forgets") {
        chunk_decoder d;
        accumulator acc;
        acc.add(decode_ok(d, R"({"id":"x","choices":[{"delta":{"reasoning":"think "}}]})"));
        acc.add(decode_ok(d, R"({"id":"y","choices":[{"delta":{"reasoning":"hard"}}]})"));
        acc.add(decode_ok(d, R"({"choices":[{"delta":{"content":"4"}}]})"));
        acc.add(decode_ok(d, R"({"choices":[{"delta":{"content":"2"},"finish_reason":"stop"}]})"));
        CHECK(acc.message().reasoning == std::optional<std::string>("think hard"));
        CHECK(acc.message().text() == "42");
        CHECK(acc.id() == "x");
        CHECK_FALSE(acc.message().tool_calls.size());
        acc.reset();
        CHECK_FALSE(acc.finished());
        CHECK_FALSE(acc.message().reasoning);
        CHECK(acc.id().empty());
    }
}
