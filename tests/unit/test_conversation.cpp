// Conversation state: turns, replay of reasoning by model family, request params, JSON state.
#include <wafer/api/chat_request.hpp>
#include <wafer/conversation.hpp>
#include <wafer/model_family.hpp>
#include <wafer/replay_policy.hpp>

#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

#include <string>
#include <vector>

using namespace wafer;
using nlohmann::json;

namespace {

api::message assistant_calls(std::vector<api::tool_call> calls, std::string reasoning) {
    api::message m = api::message::assistant("");
    m.content.reset();
    m.tool_calls = std::move(calls);
    m.reasoning = std::move(reasoning);
    return m;
}

api::message assistant_text(std::string text, std::string reasoning) {
    api::message m = api::message::assistant(std::move(text));
    m.reasoning = std::move(reasoning);
    return m;
}

// user 1 -> assistant (r1, text) -> user 2 -> assistant (r2, call c1) -> tool c1
conversation two_turns() {
    conversation c;
    c.add_system("You are terse.");
    c.add_user("first question");
    c.append(assistant_text("first answer", "r1"));
    c.add_user("second question");
    c.append(assistant_calls({{"c1", "read_file", R"({"path":"a"})"}}, "r2"));
    c.add_tool_result("c1", "file a");
    return c;
}

bool json_contains_key(const json& j, const std::string& key) {
    if (j.is_object()) {
        for (const auto& [k, v] : j.items()) {
            if (k == key || json_contains_key(v, key)) {
                return true;
            }
        }
    } else if (j.is_array()) {
        for (const auto& v : j) {
            if (json_contains_key(v, key)) {
                return true;
            }
        }
    }
    return false;
}

} // namespace

TEST_SUITE("unit/conversation") {

    TEST_CASE("model family is detected from the model id") {
        CHECK(detect_model_family("zai-glm-4.7") == model_family::glm);
        CHECK(detect_model_family("glm-4.6") == model_family::glm);
        CHECK(detect_model_family("ZAI-GLM-4.7") == model_family::glm);
        CHECK(detect_model_family("cerebras/zai-glm-4.7") == model_family::glm);
        CHECK(detect_model_family("gpt-oss-120b") == model_family::gpt_oss);
        CHECK(detect_model_family("qwen-3-32b") == model_family::qwen);
        CHECK(detect_model_family("qwen-3-235b-a22b-thinking-2507") == model_family::qwen);
        CHECK(detect_model_family("qwen-3-235b-a22b-instruct-2507") == model_family::none);
        CHECK(detect_model_family("llama3.1-8b") == model_family::none);
        CHECK(detect_model_family("llama-3.3-70b") == model_family::none);
        CHECK(detect_model_family("gpt-4o") == model_family::unknown);
        CHECK(detect_model_family("") == model_family::unknown);

        for (auto f :
             {model_family::unknown,
              model_family::none,
              model_family::glm,
              model_family::gpt_oss,
              model_family::qwen}) {
            CHECK(model_family_from_string(to_string(f)) == f);
        }
        CHECK_FALSE(model_family_from_string("glm5").has_value());
        for (auto m : {replay_mode::preserve_all, replay_mode::current_turn, replay_mode::drop}) {
            CHECK(replay_mode_from_string(to_string(m)) == m);
        }
        CHECK_FALSE(replay_mode_from_string("keep").has_value());
    }

    TEST_CASE("turns count user messages") {
        conversation c = two_turns();
        CHECK(c.turn() == 2);
        REQUIRE(c.size() == 6);
        CHECK(c.meta()[0].turn == 0); // system
        CHECK(c.meta()[1].turn == 1);
        CHECK(c.meta()[2].turn == 1);
        CHECK(c.meta()[3].turn == 2);
        CHECK(c.meta()[5].turn == 2);
        c.add_tool_result("c9", "boom", true);
        CHECK(c.meta().back().is_error);
        CHECK_FALSE(c.meta().back().synthetic);
        c.clear();
        CHECK(c.empty());
        CHECK(c.turn() == 0);
    }

    TEST_CASE("GLM preserve_all: every assistant keeps reasoning and clear_thinking is false") {
        conversation c = two_turns();
        const auto opts = replay_options::for_model("zai-glm-4.7");
        CHECK(opts.family == model_family::glm);
        CHECK(opts.mode == replay_mode::preserve_all);

        auto msgs = build_request_messages(c, opts);
        REQUIRE(msgs.size() == 6);
        CHECK(msgs[2].reasoning == "r1");
        CHECK(msgs[2].content == "first answer");
        CHECK(msgs[4].reasoning == "r2");
        CHECK_FALSE(msgs[4].content.has_value()); // tool calls only: no content key

        api::chat_request req;
        req.model = "zai-glm-4.7";
        req.messages = msgs;
        apply_replay_params(req, opts);
        CHECK(req.clear_thinking == false);

        const json body = req;
        CHECK(body.at("clear_thinking") == false);
        CHECK(body.at("messages").at(2).at("reasoning") == "r1");
        CHECK(body.at("messages").at(4).at("reasoning") == "r2");
        CHECK_FALSE(body.at("messages").at(4).contains("content"));
        CHECK_FALSE(json_contains_key(body, "reasoning_content"));
        CHECK(api::validate(req).empty());
    }

    TEST_CASE("apply_replay_params leaves a caller's own clear_thinking alone") {
        api::chat_request req;
        req.clear_thinking = true;
        apply_replay_params(req, replay_options::for_model("zai-glm-4.7"));
        CHECK(req.clear_thinking == true);
    }

    TEST_CASE("current_turn keeps reasoning only after the last user message") {
        conversation c = two_turns();
        auto opts = replay_options::for_model("zai-glm-4.7", replay_mode::current_turn);
        auto msgs = build_request_messages(c, opts);
        REQUIRE(msgs.size() == 6);
        CHECK_FALSE(msgs[2].reasoning.has_value());
        CHECK(msgs[4].reasoning == "r2");
        CHECK(required_params(opts).clear_thinking == true);

        // A new user message makes r2 history too.
        c.add_user("third");
        msgs = build_request_messages(c, opts);
        CHECK_FALSE(msgs[4].reasoning.has_value());
    }

    TEST_CASE("drop sends no reasoning and no clear_thinking") {
        conversation c = two_turns();
        auto opts = replay_options::for_model("zai-glm-4.7", replay_mode::drop);
        auto msgs = build_request_messages(c, opts);
        for (const auto& m : msgs) {
            CHECK_FALSE(m.reasoning.has_value());
        }
        CHECK_FALSE(required_params(opts).clear_thinking.has_value());
        api::chat_request req;
        apply_replay_params(req, opts);
        CHECK_FALSE(req.clear_thinking.has_value());
        // The stored conversation still has it verbatim.
        CHECK(c.messages()[2].reasoning == "r1");
    }

    TEST_CASE("gpt-oss replays in the reasoning field without clear_thinking") {
        conversation c = two_turns();
        auto opts = replay_options::for_model("gpt-oss-120b");
        auto msgs = build_request_messages(c, opts);
        CHECK(msgs[2].reasoning == "r1");
        CHECK(msgs[4].reasoning == "r2");
        CHECK_FALSE(required_params(opts).clear_thinking.has_value());
    }

    TEST_CASE("qwen raw format: reasoning goes back as <think> in content, never as a field") {
        conversation c = two_turns();
        auto opts = replay_options::for_model("qwen-3-32b");
        CHECK(opts.effective_carrier() == reasoning_carrier::think_tags);
        auto msgs = build_request_messages(c, opts);
        REQUIRE(msgs.size() == 6);
        CHECK(msgs[2].content == "<think>r1</think>first answer");
        CHECK(msgs[4].content == "<think>r2</think>");
        CHECK(msgs[4].tool_calls.size() == 1);
        for (const auto& m : msgs) {
            CHECK_FALSE(m.reasoning.has_value());
        }
        const json body = json(msgs);
        CHECK_FALSE(json_contains_key(body, "reasoning"));
        CHECK_FALSE(json_contains_key(body, "reasoning_content"));
        CHECK_FALSE(required_params(opts).clear_thinking.has_value());

        SUBCASE("current_turn tags only the current turn") {
            opts.mode = replay_mode::current_turn;
            msgs = build_request_messages(c, opts);
            CHECK(msgs[2].content == "first answer");
            CHECK(msgs[4].content == "<think>r2</think>");
        }
        SUBCASE("array content gets the tags in its first text part") {
            conversation p;
            p.add_user("q");
            api::message a = api::message::assistant("");
            a.content.reset();
            a.parts = {{.type = api::content_part::kind::text, .text = "answer"}};
            a.reasoning = "why";
            p.append(a);
            msgs = build_request_messages(p, opts);
            REQUIRE(msgs[1].parts.size() == 1);
            CHECK(msgs[1].parts[0].text == "<think>why</think>answer");
        }
    }

    TEST_CASE("non-reasoning and unknown families drop reasoning unless a carrier is forced") {
        conversation c = two_turns();
        for (const char* id : {"llama3.1-8b", "some-other-model"}) {
            auto msgs = build_request_messages(c, replay_options::for_model(id));
            CHECK_FALSE(msgs[2].reasoning.has_value());
            CHECK(msgs[2].content == "first answer");
        }
        auto opts = replay_options::for_model("some-other-model");
        opts.carrier = reasoning_carrier::field;
        auto msgs = build_request_messages(c, opts);
        CHECK(msgs[2].reasoning == "r1");
    }

    TEST_CASE("only keys a role may carry are sent") {
        conversation c;
        api::message u = api::message::user("hi");
        u.reasoning = "user has no reasoning";
        u.tool_call_id = "x";
        c.append(u);
        api::message a = api::message::assistant("");
        a.content.reset(); // no content, no calls: must still carry content
        a.reasoning = "";  // empty reasoning is not replayed
        c.append(a);
        api::message a2 = assistant_calls({{"k", "f", "{}"}}, "");
        a2.content = ""; // empty content with calls: no content key
        c.append(a2);
        api::message t;
        t.role = api::role::tool;
        t.tool_call_id = "k";
        t.reasoning = "tool has no reasoning";
        t.tool_calls = {{"zz", "g", "{}"}};
        c.append(t);

        auto msgs = build_request_messages(c, replay_options::for_model("zai-glm-4.7"));
        REQUIRE(msgs.size() == 4);
        CHECK_FALSE(msgs[0].reasoning.has_value());
        CHECK_FALSE(msgs[0].tool_call_id.has_value());
        CHECK(msgs[1].content == "");
        CHECK_FALSE(msgs[1].reasoning.has_value());
        CHECK_FALSE(msgs[2].content.has_value());
        CHECK(msgs[3].role == api::role::tool);
        CHECK(msgs[3].content == ""); // required on tool messages
        CHECK_FALSE(msgs[3].reasoning.has_value());
        CHECK(msgs[3].tool_calls.empty());
        CHECK(msgs[3].tool_call_id == "k");

        const json body = json(msgs);
        CHECK(body.at(1).at("content") == "");
        CHECK_FALSE(body.at(2).contains("content"));
        CHECK_FALSE(body.at(0).contains("tool_call_id"));
    }

    TEST_CASE("building is pure and deterministic") {
        conversation c = two_turns();
        c.append(assistant_calls({{"c2", "f", "{}"}}, "r3")); // dangling: repaired in the copy only
        const conversation before = c;
        const auto opts = replay_options::for_model("zai-glm-4.7");
        std::vector<history_repair> repairs;
        auto a = build_request_messages(c, opts, &repairs);
        auto b = build_request_messages(c, opts);
        CHECK(a == b);
        CHECK(c == before);
        REQUIRE(repairs.size() == 1);
        CHECK(repairs[0].what == history_repair::kind::missing_result);
        CHECK(a.back().tool_call_id == "c2");
        CHECK(a.back().content == std::string(not_run_result));
    }

    TEST_CASE("the whole state round-trips through JSON exactly") {
        conversation c = two_turns();
        c.metadata()["agent"] = "coder";
        c.metadata()["model"] = "zai-glm-4.7";
        api::message multi = api::message::user("");
        multi.parts = {
            {.type = api::content_part::kind::text, .text = "look"},
            {.type = api::content_part::kind::image_url,
             .url = "data:image/png;base64,AAAA",
             .detail = "low"},
        };
        multi.content = "kept with parts";
        multi.name = "alice";
        c.append(multi);
        api::message a = assistant_calls(
            {{"c7", "shell", R"({"cmd":"ls \"x\""})"}, {"c8", "read", "{}"}},
            "multi\nline \"reasoning\" \u00e9"
        );
        c.append(a);
        c.add_tool_result("c7", "", true);
        c.append(api::message::assistant("")); // empty string content stays a string
        auto repairs = c.repair();             // adds a synthetic result for c8
        REQUIRE(repairs.size() == 1);
        CHECK(c.meta()[c.size() - 2].synthetic); // synthetic c8 result sits before the last message

        const std::string text = json(c).dump();
        conversation back = json::parse(text).get<conversation>();
        CHECK(back == c);
        CHECK(back.turn() == c.turn());
        CHECK(back.messages()[6].content == "kept with parts");
        CHECK(back.messages()[7].reasoning == "multi\nline \"reasoning\" \u00e9");
        CHECK(json(back).dump() == text);

        // An empty conversation, and a version we do not know.
        CHECK(json(conversation{}).get<conversation>() == conversation{});
        json bad = json(c);
        bad["version"] = 99;
        CHECK_THROWS_AS(bad.get<conversation>(), std::invalid_argument);
    }

} // TEST_SUITE
