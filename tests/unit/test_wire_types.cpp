#include <wafer/api/chat_request.hpp>
#include <wafer/api/chat_response.hpp>
#include <wafer/tools/detail/json_write.hpp>

#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

#include <limits>
#include <string>
#include <string_view>

using namespace wafer::api;
using nlohmann::json;

TEST_SUITE("unit/wire_types") {
    TEST_CASE("serialize writes the same JSON as to_json, escapes and all") {
        // setup: every string kind the direct writer must escape or pass through
        chat_request r;
        r.model = "zai-glm-4.7";
        const char controls[] = "nul \0 unit \x1f del \x7f ";
        const std::string tricky =
            std::string("quote \" backslash \\ nl \n cr \r tab \t bs \b ff \f ") +
            std::string(controls, sizeof controls - 1) + "é 中 😀 </script>";
        message assistant{.role = role::assistant, .content = tricky, .reasoning = tricky};
        assistant.tool_calls = {{"c1", "add", R"({"a":"\"x\""})"}};
        r.messages = {message::system(tricky), assistant, message::tool_result("c1", tricky)};
        r.tools = {
            {"add",
             "Adds",
             json::parse(
                 R"({"type":"object","properties":{"a":{"type":"number","minimum":-1.5,"maximum":10}}})"
             ),
             true}};
        r.temperature = 0.7;
        r.seed = -3;
        r.stop = {"a", "b"};
        r.stream_options = stream_options{};
        // run
        const std::string body = serialize(r);
        // check
        CHECK(json::parse(body) == json(r));
        CHECK(json::parse(body)["messages"][0]["content"].get<std::string>() == tricky);
    }

    TEST_CASE("serialize merges extra_body over the typed fields") {
        chat_request r;
        r.model = "m";
        r.messages = {message::user("hi")};
        r.temperature = 0.5;
        r.extra_body = {{"temperature", 0.1}, {"x_custom", true}};
        const json j = json::parse(serialize(r));
        CHECK(j["temperature"] == 0.1);
        CHECK(j["x_custom"] == true);
        CHECK(j.size() == 4);
    }

    TEST_CASE("serialize rejects invalid UTF-8 as before") {
        chat_request r;
        r.model = "m";
        r.messages = {message::user(std::string("bad \xC3\x28 byte"))};
        CHECK_THROWS_AS(serialize(r), json::type_error);
        r.messages = {message::user(std::string("surrogate \xED\xA0\x80"))};
        CHECK_THROWS_AS(serialize(r), json::type_error);
        r.messages = {message::user(std::string("truncated \xE4\xB8"))};
        CHECK_THROWS_AS(serialize(r), json::type_error);
    }

    TEST_CASE("a minimal request sends only model and messages") {
        chat_request r;
        r.model = "zai-glm-4.7";
        r.messages = {message::user("hi")};
        CHECK(
            json::parse(serialize(r)) ==
            json::parse(R"({"model":"zai-glm-4.7","messages":[{"role":"user","content":"hi"}]})")
        );
    }

    TEST_CASE("every parameter is written with its wire name and shape") {
        chat_request r;
        r.model = "gpt-oss-120b";
        message assistant{.role = role::assistant, .reasoning = "thought"};
        assistant.tool_calls = {{"abc123def", "add", R"({"a":1})"}};
        r.messages = {
            message::system("sys"),
            {.role = role::developer, .content = "dev"},
            {.role = role::user,
             .parts =
                 {{.type = content_part::kind::text, .text = "look"},
                  {.type = content_part::kind::image_url, .url = "data:x", .detail = "low"}},
             .name = "ann"},
            assistant,
            message::tool_result("abc123def", "2"),
        };
        r.max_completion_tokens = 100;
        r.min_completion_tokens = 1;
        r.temperature = 1.0;
        r.top_p = 0.95;
        r.frequency_penalty = 0.5;
        r.presence_penalty = -0.5;
        r.logprobs = true;
        r.top_logprobs = 3;
        r.stop = {"END"};
        r.seed = 42;
        r.stream = true;
        r.stream_options = stream_options{true};
        r.user = "u1";
        r.tools = {{"add", "Add", json{{"type", "object"}}, true}};
        r.tool_choice = tool_choice::function("add");
        r.parallel_tool_calls = false;
        r.response_format = response_format::json_schema_of("out", json{{"type", "object"}});
        r.reasoning_effort = reasoning_effort::none;
        r.reasoning_format = reasoning_format::text_parsed;
        r.clear_thinking = false;
        r.disable_reasoning = false;
        r.prediction = prediction{"predicted"};
        r.service_tier = service_tier::flex;
        r.prompt_cache_key = "key";
        r.extra_body = {{"model_parameters", {{"x", 1}}}};
        CHECK(validate(r).empty());

        json expected = json::parse(R"({
          "model":"gpt-oss-120b",
          "messages":[
            {"role":"system","content":"sys"},
            {"role":"developer","content":"dev"},
            {"role":"user","name":"ann","content":[{"type":"text","text":"look"},
              {"type":"image_url","image_url":{"url":"data:x","detail":"low"}}]},
            {"role":"assistant","reasoning":"thought","tool_calls":[{"id":"abc123def","type":"function",
              "function":{"name":"add","arguments":"{\"a\":1}"}}]},
            {"role":"tool","tool_call_id":"abc123def","content":"2"}],
          "max_completion_tokens":100,"min_completion_tokens":1,"temperature":1.0,"top_p":0.95,
          "frequency_penalty":0.5,"presence_penalty":-0.5,"logprobs":true,"top_logprobs":3,
          "stop":"END","seed":42,"stream":true,"stream_options":{"include_usage":true},"user":"u1",
          "tools":[{"type":"function","function":{"name":"add","description":"Add",
            "parameters":{"type":"object"},"strict":true}}],
          "tool_choice":{"type":"function","function":{"name":"add"}},
          "parallel_tool_calls":false,
          "response_format":{"type":"json_schema","json_schema":{"name":"out",
            "schema":{"type":"object"},"strict":true}},
          "reasoning_effort":"none","reasoning_format":"text_parsed","clear_thinking":false,
          "disable_reasoning":false,"prediction":{"type":"content","content":"predicted"},
          "service_tier":"flex","prompt_cache_key":"key","model_parameters":{"x":1}})");
        json actual = json::parse(serialize(r));
        CHECK(actual == expected);

        // The request reads back to the same value (extra_body is write-only).
        chat_request back = actual.get<chat_request>();
        r.extra_body = json::object();
        CHECK(back == r);
    }

    TEST_CASE("tool schemas: copies share one value, rendered once as the request sends it") {
        const json schema = json::parse(
            R"({"type":"object","properties":{"q":{"type":"string","description":"say \"hi\""}},
                "required":["q"]})"
        );
        function_tool t{"find", "Find", schema, true};
        function_tool copy = t;
        REQUIRE(copy.parameters);
        CHECK(&*copy.parameters == &*t.parameters); // shared, not copied
        CHECK(copy == t);
        CHECK(json::parse(t.parameters.wire_text()) == schema);
        CHECK(t.parameters.wire_text() == schema.dump());
        chat_request r;
        r.model = "m";
        r.messages = {message::user("x")};
        r.tools = {t};
        CHECK(json::parse(serialize(r))["tools"][0]["function"]["parameters"] == schema);
        // Equal values compare equal even when not shared.
        CHECK(function_tool{"find", "Find", schema, true} == t);
        CHECK(!(function_tool{"find", "Find", json::object(), true} == t));
        CHECK(!function_tool{}.parameters);
        CHECK(function_tool{}.parameters.value_or(json::object()) == json::object());
    }

    TEST_CASE("a tool schema with a string that is not UTF-8 cannot be sent") {
        chat_request r;
        r.model = "m";
        r.messages = {message::user("x")};
        r.tools = {function_tool{"bad", std::nullopt, json{{"description", "\xff"}}, std::nullopt}};
        CHECK(r.tools[0].parameters.wire_text().empty());
        CHECK_THROWS_AS(serialize(r), json::type_error);
    }

    TEST_CASE("several stop sequences are an array; more than four are rejected") {
        chat_request r;
        r.model = "m";
        r.messages = {message::user("x")};
        r.stop = {"a", "b"};
        CHECK(json(r)["stop"] == json::array({"a", "b"}));
        r.stop = {"a", "b", "c", "d", "e"};
        CHECK(validate(r).find("stop") == 0);
    }

    TEST_CASE("validation names the offending parameter") {
        chat_request r;
        CHECK(validate(r).starts_with("model"));
        r.model = "m";
        CHECK(validate(r).starts_with("messages"));
        r.messages = {message::user("x")};
        CHECK(validate(r).empty());
        r.temperature = 2.5;
        CHECK(validate(r).starts_with("temperature"));
        r.temperature.reset();
        r.top_logprobs = 2;
        CHECK(validate(r).starts_with("top_logprobs"));
        r.top_logprobs.reset();
        r.tool_choice = tool_choice::required();
        CHECK(validate(r).starts_with("tool_choice"));
        r.tool_choice.reset();
        r.tools = {{"a"}, {"a"}};
        CHECK(validate(r).find("duplicate") != std::string::npos);
        r.tools.clear();
        message a{.role = role::assistant};
        a.tool_calls = {{"id1", "f", "{}"}, {"id1", "g", "{}"}};
        r.messages.push_back(a);
        CHECK(validate(r).find("duplicate tool call id") != std::string::npos);
    }

    TEST_CASE("tool_choice strings round-trip") {
        for (auto c : {tool_choice::none(), tool_choice::automatic(), tool_choice::required()}) {
            CHECK(json(c).get<tool_choice>() == c);
        }
        CHECK(json(tool_choice::automatic()) == "auto");
    }

    TEST_CASE("a recorded GLM response parses, with reasoning, tool calls, usage and time_info") {
        auto j =
            json::parse(R"({"id":"chatcmpl-x","choices":[{"finish_reason":"tool_calls","index":0,
          "message":{"reasoning":"The user wants","tool_calls":[{"id":"85e4fd267","type":"function",
          "function":{"name":"f","arguments":"{}"}}],"role":"assistant"}}],"created":1779146781,
          "model":"zai-glm-4.7","system_fingerprint":"fp_a","object":"chat.completion",
          "service_tier":null,"usage":{"prompt_tokens":322,"completion_tokens":65,"total_tokens":387,
          "prompt_tokens_details":{"cached_tokens":256},"completion_tokens_details":
          {"accepted_prediction_tokens":0,"rejected_prediction_tokens":0,"reasoning_tokens":58},
          "image_tokens":null},"time_info":{"queue_time":0.0029,"prompt_time":0.0105,
          "completion_time":0.118,"total_time":0.133,"created":1779146781.786984}})");
        auto r = j.get<chat_response>();
        CHECK(r.id == "chatcmpl-x");
        CHECK(r.created == 1779146781);
        CHECK_FALSE(r.service_tier);
        const auto& m = r.first_message();
        CHECK(m.reasoning == std::optional<std::string>("The user wants"));
        CHECK_FALSE(m.content);
        REQUIRE(m.tool_calls.size() == 1);
        CHECK(m.tool_calls[0].id == "85e4fd267");
        CHECK(r.choices[0].finish_reason == finish_reason::tool_calls);
        REQUIRE(r.usage);
        CHECK(r.usage->cached_tokens == 256);
        CHECK(r.usage->reasoning_tokens == 58);
        REQUIRE(r.time_info);
        CHECK(r.time_info->created == doctest::Approx(1779146781.786984));
        // And back to JSON without nulls.
        json out = r;
        CHECK_FALSE(out["choices"][0]["message"].contains("content"));
        CHECK_FALSE(out.contains("service_tier"));
    }

    TEST_CASE("explicit nulls and missing fields are tolerated") {
        auto r = json::parse(R"({"choices":[{"message":{"content":null,"reasoning":null,
          "tool_calls":null},"finish_reason":null,"logprobs":null}],"usage":null})")
                     .get<chat_response>();
        CHECK_FALSE(r.first_message().content);
        CHECK(r.choices[0].finish_reason == finish_reason::none);
        CHECK_FALSE(r.usage);
        CHECK(json::object().get<chat_response>().choices.empty());
    }

    TEST_CASE("reasoning given as text parts is joined") {
        auto m = json::parse(R"({"role":"assistant","reasoning":[{"type":"text","text":"a"},
          {"type":"text","text":"b"}],"content":"c"})")
                     .get<message>();
        CHECK(m.reasoning == std::optional<std::string>("ab"));
        CHECK(m.text() == "c");
    }

    TEST_CASE("token counts out of range are clamped, never cast blindly") {
        auto u = json::parse(R"({"prompt_tokens":1e300,"completion_tokens":-5,"total_tokens":2.7,
          "prompt_tokens_details":{"cached_tokens":18446744073709551615},
          "completion_tokens_details":{"reasoning_tokens":-1e300,"accepted_prediction_tokens":"x",
          "rejected_prediction_tokens":-9223372036854775807}})")
                     .get<usage>();
        CHECK(u.prompt_tokens == max_token_count);
        CHECK(u.completion_tokens == 0);
        CHECK(u.total_tokens == 2);
        CHECK(u.cached_tokens == max_token_count);
        CHECK(u.reasoning_tokens == 0);
        CHECK(u.accepted_prediction_tokens == 0);
        CHECK(u.rejected_prediction_tokens == 0);
        // Sums saturate: a budget check over many such turns cannot overflow.
        usage total;
        for (int i = 0; i < 2000; ++i) {
            total += u;
        }
        CHECK(total.prompt_tokens == max_token_count);
        usage hand_made{std::numeric_limits<std::int64_t>::max(), -1, 0, 0, 0, 0, 0};
        hand_made += hand_made;
        CHECK(hand_made.prompt_tokens == max_token_count);
        CHECK(hand_made.completion_tokens == 0);
    }

    TEST_CASE("other integers in a reply must be whole and in range") {
        CHECK(
            json::parse(R"({"created":1779146781.0})").get<chat_response>().created == 1779146781
        );
        CHECK_THROWS_AS(json::parse(R"({"created":1e300})").get<chat_response>(), json::exception);
        CHECK_THROWS_AS(json::parse(R"({"created":1.5})").get<chat_response>(), json::exception);
        CHECK_THROWS_AS(
            json::parse(R"({"choices":[{"index":1e10,"message":{"content":"x"}}]})")
                .get<chat_response>(),
            json::exception
        );
        CHECK_THROWS_AS(
            json::parse(R"({"choices":[{"index":-1e300}]})").get<chat_response>(), json::exception
        );
    }

    TEST_CASE("content that is a number or an object is an error; text parts are accepted") {
        for (const char* bad : {R"(5)", R"({"text":"hi"})", R"(true)", R"([5])"}) {
            CAPTURE(bad);
            auto j =
                json::parse(std::string(R"({"choices":[{"message":{"content":)") + bad + "}}]}");
            CHECK_THROWS_AS(j.get<chat_response>(), json::type_error);
        }
        auto r = json::parse(R"({"choices":[{"message":{"role":"assistant","content":[
          {"type":"text","text":"Hel"},{"type":"text","text":"lo"}]}}]})")
                     .get<chat_response>();
        CHECK(r.first_message().text() == "Hello");
        auto refusal = json::parse(R"({"choices":[{"message":{"role":"assistant","content":[
          {"type":"refusal","refusal":"I can't help with that."}]}}]})")
                           .get<chat_response>();
        CHECK(refusal.first_message().text() == "I can't help with that.");
    }

    TEST_CASE("usage and time_info add up") {
        usage a{1, 2, 3, 4, 5, 6, 7};
        a += usage{1, 1, 1, 1, 1, 1, 1};
        CHECK(a == usage{2, 3, 4, 5, 6, 7, 8});
        time_info t{0.1, 0.2, 0.3, 0.6, 10};
        t += time_info{0.1, 0.1, 0.1, 0.3, 20};
        CHECK(t.total_time == doctest::Approx(0.9));
        CHECK(t.created == 20);
    }

    TEST_CASE("the JSON string writer escapes what nlohmann escapes, wherever it falls in a word") {
        // The writer skips 8 plain bytes at a time: each special byte or sequence is put at
        // every offset of strings of every length around a word, and the output must be
        // nlohmann's dump of the same text; invalid UTF-8 must be refused wherever it is.
        const std::string_view specials[] = {
            "\"",
            "\\",
            "\n",
            "\r",
            "\t",
            "\b",
            "\f",
            std::string_view("\0", 1),
            "\x01",
            "\x1f",
            "\x7f",
            " ",
            "~",
            "\xc3\xa9",
            "\xe2\x82\xac",
            "\xf0\x9f\x98\x80"};
        const std::string_view invalid[] = {
            "\xff", "\xc3", "\xe2\x82", "\xed\xa0\x80", "\xc0\xaf", "\xf4\x90\x80\x80"};
        for (std::size_t len = 0; len <= 20; ++len) {
            for (std::size_t at = 0; at <= len; ++at) {
                for (std::string_view sp : specials) {
                    std::string text(len, 'a');
                    text.insert(at, sp);
                    std::string out = "x";
                    REQUIRE(wafer::detail::put_string(out, text));
                    CAPTURE(text);
                    CHECK(out == "x" + nlohmann::json(text).dump());
                }
                for (std::string_view bad : invalid) {
                    std::string text(len, 'a');
                    text.insert(at, bad);
                    std::string out;
                    CAPTURE(text);
                    CHECK_FALSE(wafer::detail::put_string(out, text));
                }
            }
        }
    }
}
