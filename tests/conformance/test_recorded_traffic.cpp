// Conformance with real Cerebras traffic (../shared/fixtures/recorded): what the wire layer parses
// and builds must match what the live API sent and what other clients sent.
#include <wafer/api/accumulator.hpp>
#include <wafer/api/chat_request.hpp>
#include <wafer/api/chunk_decoder.hpp>
#include <wafer/api/sse_parser.hpp>

#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

#include <map>

#include "cassette.hpp"

using namespace wafer::api;
using nlohmann::json;

namespace {

const std::string fantasy_dir = std::string(WAFER_FIXTURES_DIR) + "/fantasy-qwen-3-coder-480b/";
const std::string vercel_dir = std::string(WAFER_FIXTURES_DIR) + "/vercel-ai-glm-4.7/";

// What a recorded stream means, computed with nlohmann from the raw data lines, independently of
// wafer's SSE parser, decoder and accumulator.
struct expected_stream {
    std::string content;
    std::string reasoning;
    bool has_content = false;
    bool has_reasoning = false;
    std::map<int, tool_call> calls;
    std::string finish;
    json usage;
    json time_info;
};

expected_stream fold_data_lines(const std::vector<std::string>& payloads) {
    expected_stream e;
    for (const auto& p : payloads) {
        json c = json::parse(p);
        if (c.contains("usage") && !c["usage"].is_null()) {
            e.usage = c["usage"];
        }
        if (c.contains("time_info") && !c["time_info"].is_null()) {
            e.time_info = c["time_info"];
        }
        const json& choice = c["choices"][0];
        if (choice.contains("finish_reason") && choice["finish_reason"].is_string()) {
            e.finish = choice["finish_reason"];
        }
        const json& delta = choice["delta"];
        if (delta.contains("content") && delta["content"].is_string()) {
            e.has_content = true;
            e.content += delta["content"].get<std::string>();
        }
        if (delta.contains("reasoning") && delta["reasoning"].is_string()) {
            e.has_reasoning = true;
            e.reasoning += delta["reasoning"].get<std::string>();
        }
        if (delta.contains("tool_calls")) {
            for (const auto& tc : delta["tool_calls"]) {
                auto& call = e.calls[tc.value("index", 0)];
                if (tc.contains("id")) {
                    call.id = tc["id"];
                }
                call.name += tc["function"].value("name", "");
                call.arguments += tc["function"].value("arguments", "");
            }
        }
    }
    return e;
}

std::vector<std::string> data_lines(const std::string& sse_body) {
    std::vector<std::string> out;
    std::istringstream in(sse_body);
    for (std::string line; std::getline(in, line);) {
        if (line.starts_with("data: ") && line != "data: [DONE]") {
            out.push_back(line.substr(6));
        }
    }
    return out;
}

void check_usage(const std::optional<usage>& u, const json& expected) {
    REQUIRE(u);
    CHECK(u->prompt_tokens == expected["prompt_tokens"]);
    CHECK(u->completion_tokens == expected["completion_tokens"]);
    CHECK(u->total_tokens == expected["total_tokens"]);
    CHECK(u->cached_tokens == expected["prompt_tokens_details"].value("cached_tokens", 0));
    if (expected.contains("completion_tokens_details")) {
        CHECK(
            u->reasoning_tokens ==
            expected["completion_tokens_details"].value("reasoning_tokens", 0)
        );
    }
}

void check_time_info(const std::optional<time_info>& t, const json& expected) {
    REQUIRE(t);
    CHECK(t->queue_time == expected["queue_time"].get<double>());
    CHECK(t->prompt_time == expected["prompt_time"].get<double>());
    CHECK(t->completion_time == expected["completion_time"].get<double>());
    CHECK(t->total_time == expected["total_time"].get<double>());
    CHECK(t->created == expected["created"].get<double>());
}

// Runs the SSE body through wafer's parser, decoder and accumulator, fed in pieces cut at `cut`.
accumulator replay(const std::string& body, std::size_t cut) {
    sse_parser sse;
    chunk_decoder decoder;
    accumulator acc;
    auto drain = [&] {
        while (auto ev = sse.next()) {
            if (ev->data == "[DONE]") {
                continue;
            }
            boost::system::error_code ec;
            const auto& chunk = decoder.decode(ev->data, ec);
            REQUIRE_FALSE(ec);
            acc.add(chunk);
        }
    };
    sse.feed(std::string_view(body).substr(0, cut));
    drain();
    sse.feed(std::string_view(body).substr(cut));
    drain();
    CHECK_FALSE(sse.has_partial_event());
    return acc;
}

void check_stream(const accumulator& acc, const expected_stream& e) {
    const message& m = acc.message();
    CHECK(m.role == role::assistant);
    CHECK(m.content.has_value() == e.has_content);
    CHECK(m.content.value_or("") == e.content);
    CHECK(m.reasoning.has_value() == e.has_reasoning);
    CHECK(m.reasoning.value_or("") == e.reasoning);
    REQUIRE(m.tool_calls.size() == e.calls.size());
    std::size_t i = 0;
    for (const auto& [index, call] : e.calls) {
        CHECK(m.tool_calls[i++] == call);
    }
    CHECK(to_string(acc.finish_reason()) == e.finish);
    check_usage(acc.usage(), e.usage);
    check_time_info(acc.time_info(), e.time_info);
}

// Removes what differs between clients but not in meaning: the deprecated max_tokens alias.
json normalise_request(json j) {
    if (j.contains("max_tokens")) {
        j["max_completion_tokens"] = j["max_tokens"];
        j.erase("max_tokens");
    }
    return j;
}

} // namespace

TEST_SUITE("conformance/recorded") {
    TEST_CASE("recorded streams accumulate to what they say, at every byte split") {
        for (const char* name : {"simple_streaming", "tool_streaming", "multi_tool_streaming"}) {
            auto cassette = wafer::test::read_cassette(fantasy_dir + name + ".yaml");
            REQUIRE(!cassette.empty());
            for (const auto& rec : cassette) {
                INFO(name);
                CHECK(rec.status == 200);
                CHECK(rec.response_content_type.starts_with("text/event-stream"));
                auto expected = fold_data_lines(data_lines(rec.response_body));
                accumulator whole = replay(rec.response_body, rec.response_body.size());
                check_stream(whole, expected);
                for (std::size_t cut = 0; cut <= rec.response_body.size(); ++cut) {
                    auto acc = replay(rec.response_body, cut);
                    REQUIRE(acc.message() == whole.message());
                    REQUIRE(acc.usage() == whole.usage());
                    REQUIRE(acc.time_info() == whole.time_info());
                    REQUIRE(acc.finish_reason() == whole.finish_reason());
                }
            }
        }
    }

    TEST_CASE("the recorded GLM-4.7 streams (reasoning, then a tool call)") {
        // The file holds several consecutive streams, one chunk per line; split them by id.
        std::string lines =
            wafer::test::read_file(vercel_dir + "cererebras-structured-output-tools.1.chunks.txt");
        std::vector<std::pair<std::string, std::vector<std::string>>> streams;
        std::istringstream in(lines);
        for (std::string line; std::getline(in, line);) {
            if (line.empty()) {
                continue;
            }
            std::string id = json::parse(line)["id"];
            if (streams.empty() || streams.back().first != id) {
                streams.push_back({id, {}});
            }
            streams.back().second.push_back(line);
        }
        CHECK(streams.size() >= 2);
        for (const auto& [id, payloads] : streams) {
            INFO(id);
            std::string body;
            for (const auto& p : payloads) {
                body += "data: " + p + "\n\n";
            }
            auto expected = fold_data_lines(payloads);
            for (std::size_t cut :
                 {std::size_t{0}, body.size() / 3, body.size() / 2, body.size()}) {
                check_stream(replay(body, cut), expected);
            }
        }
        CHECK(fold_data_lines(streams.front().second).has_reasoning);
    }

    TEST_CASE("recorded non-streaming responses parse to what they say") {
        std::vector<std::string> bodies;
        for (const char* name : {"simple", "tool", "multi_tool"}) {
            for (const auto& rec : wafer::test::read_cassette(fantasy_dir + name + ".yaml")) {
                bodies.push_back(rec.response_body);
            }
        }
        bodies.push_back(
            wafer::test::read_file(vercel_dir + "cerebras-structured-output-tools.1.json")
        );
        bodies.push_back(
            wafer::test::read_file(vercel_dir + "cerebras-structured-output-tools.2.json")
        );
        CHECK(bodies.size() == 7);
        for (const auto& body : bodies) {
            json raw = json::parse(body);
            auto r = raw.get<chat_response>();
            const json& msg = raw["choices"][0]["message"];
            CHECK(r.id == raw["id"]);
            CHECK(r.model == raw["model"]);
            CHECK(r.created == raw["created"]);
            CHECK(to_string(r.choices[0].finish_reason) == raw["choices"][0]["finish_reason"]);
            CHECK(
                r.first_message().content == (msg.contains("content") && msg["content"].is_string()
                                                  ? std::optional<std::string>(msg["content"])
                                                  : std::nullopt)
            );
            CHECK(
                r.first_message().reasoning ==
                (msg.contains("reasoning") && msg["reasoning"].is_string()
                     ? std::optional<std::string>(msg["reasoning"])
                     : std::nullopt)
            );
            std::size_t calls = msg.contains("tool_calls") ? msg["tool_calls"].size() : 0;
            REQUIRE(r.first_message().tool_calls.size() == calls);
            for (std::size_t i = 0; i < calls; ++i) {
                CHECK(r.first_message().tool_calls[i].id == msg["tool_calls"][i]["id"]);
                CHECK(
                    r.first_message().tool_calls[i].arguments ==
                    msg["tool_calls"][i]["function"]["arguments"]
                );
            }
            check_usage(r.usage, raw["usage"]);
            check_time_info(r.time_info, raw["time_info"]);
        }
    }

    TEST_CASE("request bodies wafer builds equal the recorded ones") {
        for (const char* name :
             {"simple",
              "simple_streaming",
              "tool",
              "tool_streaming",
              "multi_tool",
              "multi_tool_streaming"}) {
            INFO(name);
            auto cassette = wafer::test::read_cassette(fantasy_dir + name + ".yaml");
            json first = json::parse(cassette[0].request_body);
            bool streaming = first.value("stream", false);

            // The first request, rebuilt from wafer's own types.
            chat_request req;
            req.model = first["model"];
            for (const auto& m : first["messages"]) {
                req.messages.push_back(
                    m["role"] == "system" ? message::system(m["content"])
                                          : message::user(m["content"])
                );
            }
            req.max_completion_tokens = first["max_tokens"].get<std::int64_t>();
            if (first.contains("tools")) {
                req.tool_choice = tool_choice::automatic();
                for (const auto& t : first["tools"]) {
                    req.tools.push_back(
                        {t["function"]["name"],
                         t["function"]["description"],
                         t["function"]["parameters"],
                         t["function"]["strict"].get<bool>()}
                    );
                }
            }
            if (streaming) {
                req.stream = true;
                req.stream_options = stream_options{true};
            }
            CHECK(json::parse(serialize(req)) == normalise_request(first));
            if (cassette.size() < 2) {
                continue;
            }

            // The second request: the first reply as wafer accumulated it, then the tool results
            // the recording sent (taken from the recorded request by call id).
            message assistant =
                streaming
                    ? replay(cassette[0].response_body, 0).message()
                    : json::parse(cassette[0].response_body).get<chat_response>().first_message();
            json second = json::parse(cassette[1].request_body);
            req.messages.push_back(assistant);
            for (const auto& call : assistant.tool_calls) {
                for (const auto& m : second["messages"]) {
                    if (m["role"] == "tool" && m["tool_call_id"] == call.id) {
                        req.messages.push_back(message::tool_result(call.id, m["content"]));
                    }
                }
            }
            CHECK(json::parse(serialize(req)) == normalise_request(second));
        }
    }
}
