// History repair: every tool call answered once, right after it; orphans and duplicates dropped.
#include <wafer/api/chat_request.hpp>
#include <wafer/conversation.hpp>

#include <doctest/doctest.h>

#include <set>
#include <string>
#include <vector>

using namespace wafer;
using kind = history_repair::kind;

namespace {

api::message calls(std::vector<std::string> ids) {
    api::message m;
    m.role = api::role::assistant;
    for (auto& id : ids) {
        m.tool_calls.push_back({id, "f_" + id, "{}"});
    }
    return m;
}

api::message result(std::string id, std::string text = "ok") {
    return api::message::tool_result(std::move(id), std::move(text));
}

std::vector<std::string> shape(const std::vector<api::message>& msgs) {
    std::vector<std::string> out;
    for (const auto& m : msgs) {
        std::string s(api::to_string(m.role));
        if (m.role == api::role::tool) {
            s += ":" + m.tool_call_id.value_or("?") + "=" + m.content.value_or("");
        } else if (!m.tool_calls.empty()) {
            for (const auto& c : m.tool_calls) {
                s += ":" + c.id;
            }
        } else if (m.content) {
            s += ":" + *m.content;
        }
        out.push_back(s);
    }
    return out;
}

using shape_t = std::vector<std::string>;

// Repairs, then checks idempotence and that the API would accept the result.
std::vector<history_repair> repair_checked(std::vector<api::message>& msgs) {
    auto repairs = repair_history(msgs);
    auto again = msgs;
    CHECK(repair_history(again).empty());
    CHECK(again == msgs);
    api::chat_request req;
    req.model = "m";
    req.messages = msgs;
    CHECK(api::validate(req) == "");
    return repairs;
}

} // namespace

TEST_SUITE("unit/conversation/repair") {

    TEST_CASE("a well-formed history is left alone") {
        std::vector<api::message> msgs{
            api::message::user("q"),
            calls({"a", "b"}),
            result("a"),
            result("b"),
            api::message::assistant("done"),
        };
        const auto before = msgs;
        CHECK(repair_checked(msgs).empty());
        CHECK(msgs == before);
    }

    TEST_CASE("a dangling call gets a synthetic 'not run' result") {
        std::vector<api::message> msgs{api::message::user("q"), calls({"a", "b"}), result("a")};
        auto repairs = repair_checked(msgs);
        CHECK(
            shape(msgs) ==
            shape_t{"user:q", "assistant:a:b", "tool:a=ok", "tool:b=not run: cancelled"}
        );
        REQUIRE(repairs.size() == 1);
        CHECK(repairs[0] == history_repair{kind::missing_result, "b", 1});
        CHECK(repairs[0].to_string() == "missing_result b at #1");
    }

    TEST_CASE("a missing result in the middle is inserted in call order") {
        std::vector<api::message> msgs{
            api::message::user("q"),
            calls({"a", "b", "c"}),
            result("a"),
            result("c"),
            api::message::user("next")};
        auto repairs = repair_checked(msgs);
        CHECK(
            shape(msgs) ==
            shape_t{
                "user:q",
                "assistant:a:b:c",
                "tool:a=ok",
                "tool:b=not run: cancelled",
                "tool:c=ok",
                "user:next"}
        );
        REQUIRE(repairs.size() == 1);
        CHECK(repairs[0].what == kind::missing_result);
        CHECK(repairs[0].call_id == "b");
    }

    TEST_CASE("orphan tool messages are dropped") {
        std::vector<api::message> msgs{
            result("early"), // before any call
            api::message::user("q"),
            result("zz"), // answers nothing
            calls({"a"}),
            result("a"),
            api::message::tool_result("", "no id at all"),
        };
        msgs.back().tool_call_id.reset();
        auto repairs = repair_checked(msgs);
        CHECK(shape(msgs) == shape_t{"user:q", "assistant:a", "tool:a=ok"});
        REQUIRE(repairs.size() == 3);
        CHECK(repairs[0] == history_repair{kind::orphan_result, "early", 0});
        CHECK(repairs[1] == history_repair{kind::orphan_result, "zz", 2});
        CHECK(repairs[2] == history_repair{kind::orphan_result, "", 5});
    }

    TEST_CASE("a result that precedes its call is an orphan, and the call gets a synthetic result"
    ) {
        std::vector<api::message> msgs{api::message::user("q"), result("a"), calls({"a"})};
        auto repairs = repair_checked(msgs);
        CHECK(shape(msgs) == shape_t{"user:q", "assistant:a", "tool:a=not run: cancelled"});
        REQUIRE(repairs.size() == 2);
        CHECK(repairs[0].what == kind::missing_result);
        CHECK(repairs[1] == history_repair{kind::orphan_result, "a", 1});
    }

    TEST_CASE("duplicate results are dropped; the first one wins") {
        std::vector<api::message> msgs{
            api::message::user("q"), calls({"a"}), result("a", "first"), result("a", "second")};
        auto repairs = repair_checked(msgs);
        CHECK(shape(msgs) == shape_t{"user:q", "assistant:a", "tool:a=first"});
        REQUIRE(repairs.size() == 1);
        CHECK(repairs[0] == history_repair{kind::duplicate_result, "a", 3});
    }

    TEST_CASE("interleaved results are moved right after their call, in call order") {
        std::vector<api::message> msgs{
            api::message::user("q"),
            calls({"a", "b"}),
            api::message::user("interrupt"),
            result("b", "B"),
            result("a", "A"),
        };
        auto repairs = repair_checked(msgs);
        CHECK(
            shape(msgs) ==
            shape_t{"user:q", "assistant:a:b", "tool:a=A", "tool:b=B", "user:interrupt"}
        );
        REQUIRE(repairs.size() == 2);
        CHECK(repairs[0] == history_repair{kind::moved_result, "a", 4});
        CHECK(repairs[1] == history_repair{kind::moved_result, "b", 3});
    }

    TEST_CASE("results out of call order are reordered") {
        std::vector<api::message> msgs{
            api::message::user("q"), calls({"a", "b"}), result("b", "B"), result("a", "A")};
        auto repairs = repair_checked(msgs);
        CHECK(shape(msgs) == shape_t{"user:q", "assistant:a:b", "tool:a=A", "tool:b=B"});
        REQUIRE(repairs.size() == 1);
        CHECK(repairs[0] == history_repair{kind::moved_result, "b", 2});
    }

    TEST_CASE("a reused call id gets a fresh id, and so does its result: nothing is dropped") {
        std::vector<api::message> msgs{
            api::message::user("q"),
            calls({"a"}),
            result("a", "1"),
            calls({"a", "b"}),
            result("a", "2"),
            result("b"),
        };
        auto repairs = repair_checked(msgs);
        CHECK(
            shape(msgs) ==
            shape_t{
                "user:q",
                "assistant:a",
                "tool:a=1",
                "assistant:wafer_call_3_0:b",
                "tool:wafer_call_3_0=2",
                "tool:b=ok"}
        );
        REQUIRE(repairs.size() == 1);
        CHECK(repairs[0] == history_repair{kind::renamed_call, "wafer_call_3_0", 3, "a"});
        CHECK(repairs[0].to_string() == R"(renamed_call wafer_call_3_0 at #3 (was "a"))");
    }

    TEST_CASE("a server that sends call_0 every turn: every call and result survives") {
        std::vector<api::message> msgs{api::message::user("q")};
        for (int t = 0; t < 4; ++t) {
            msgs.push_back(calls({"call_0", "call_1"}));
            msgs.push_back(result("call_0", "r" + std::to_string(t) + "a"));
            msgs.push_back(result("call_1", "r" + std::to_string(t) + "b"));
        }
        msgs.push_back(api::message::assistant("done"));
        auto repairs = repair_checked(msgs);
        CHECK(repairs.size() == 6); // two per turn after the first
        REQUIRE(msgs.size() == 14);
        std::set<std::string> ids;
        std::size_t results = 0;
        for (std::size_t i = 0; i < msgs.size(); ++i) {
            for (const auto& c : msgs[i].tool_calls) {
                CHECK(ids.insert(c.id).second);
            }
            if (msgs[i].role == api::role::tool) {
                ++results;
            }
        }
        CHECK(ids.size() == 8);
        CHECK(results == 8);
        // Each result still follows its own call, with its own text.
        for (int t = 0; t < 4; ++t) {
            const std::size_t a = 1 + static_cast<std::size_t>(t) * 3;
            CHECK(msgs[a + 1].tool_call_id == msgs[a].tool_calls[0].id);
            CHECK(msgs[a + 1].text() == "r" + std::to_string(t) + "a");
            CHECK(msgs[a + 2].tool_call_id == msgs[a].tool_calls[1].id);
            CHECK(msgs[a + 2].text() == "r" + std::to_string(t) + "b");
        }
        CHECK(msgs[1].tool_calls[0].id == "call_0"); // the first use keeps its id
        CHECK(msgs[4].tool_calls[0].id == "wafer_call_4_0");
    }

    TEST_CASE("calls without ids get ids; results without ids are matched in order") {
        auto unnamed = [](std::size_t n) {
            api::message m;
            m.role = api::role::assistant;
            for (std::size_t k = 0; k < n; ++k) {
                m.tool_calls.push_back({"", "f", "{}"});
            }
            return m;
        };
        api::message no_id_result = api::message::tool_result("", "second turn");
        no_id_result.tool_call_id.reset(); // some servers' histories have none at all
        std::vector<api::message> msgs{
            api::message::user("q"),
            unnamed(2),
            result("", "x"),
            result("", "y"),
            api::message::user("more"),
            unnamed(1),
            no_id_result,
        };
        auto repairs = repair_checked(msgs);
        CHECK(
            shape(msgs) ==
            shape_t{
                "user:q",
                "assistant:wafer_call_1_0:wafer_call_1_1",
                "tool:wafer_call_1_0=x",
                "tool:wafer_call_1_1=y",
                "user:more",
                "assistant:wafer_call_5_0",
                "tool:wafer_call_5_0=second turn"}
        );
        CHECK(repairs.size() == 3);
        for (const auto& r : repairs) {
            CHECK(r.what == kind::renamed_call);
            CHECK(r.previous_id.empty());
        }
    }

    TEST_CASE("a synthesised id never collides with an id the server sent") {
        std::vector<api::message> msgs{
            api::message::user("q"),
            calls({"a"}),
            result("a", "1"),
            calls({"a", "wafer_call_3_0"}),
            result("a", "2"),
            result("wafer_call_3_0", "3"),
        };
        repair_checked(msgs);
        CHECK(
            shape(msgs) ==
            shape_t{
                "user:q",
                "assistant:a",
                "tool:a=1",
                "assistant:wafer_call_3_0_:wafer_call_3_0",
                "tool:wafer_call_3_0_=2",
                "tool:wafer_call_3_0=3"}
        );
    }

    TEST_CASE("every repair at once is deterministic") {
        auto make = [] {
            return std::vector<api::message>{
                result("x"),
                api::message::user("q"),
                calls({"a", "b", "c"}),
                result("c"),
                api::message::user("u"),
                result("a"),
                result("a", "again"),
                calls({"d"}),
            };
        };
        auto m1 = make();
        auto m2 = make();
        auto r1 = repair_checked(m1);
        auto r2 = repair_history(m2);
        CHECK(m1 == m2);
        CHECK(r1 == r2);
        CHECK(
            shape(m1) ==
            shape_t{
                "user:q",
                "assistant:a:b:c",
                "tool:a=ok",
                "tool:b=not run: cancelled",
                "tool:c=ok",
                "user:u",
                "assistant:d",
                "tool:d=not run: cancelled"}
        );
    }

    TEST_CASE("conversation::repair keeps metadata parallel and marks synthetic results") {
        conversation c;
        c.add_user("q");
        c.append(calls({"a", "b"}));
        c.add_user("interrupt");
        c.add_tool_result("a", "failed", true);
        auto repairs = c.repair();
        REQUIRE(repairs.size() == 2); // a moved, b missing
        REQUIRE(c.size() == 5);
        CHECK(c.meta().size() == 5);
        CHECK(c.messages()[2].tool_call_id == "a");
        CHECK(c.meta()[2].is_error); // metadata moved with its message
        CHECK(c.meta()[2].turn == 2);
        CHECK_FALSE(c.meta()[2].synthetic);
        CHECK(c.messages()[3].tool_call_id == "b");
        CHECK(c.meta()[3].synthetic);
        CHECK(c.meta()[3].is_error);
        CHECK(c.meta()[3].turn == 1); // the turn of the call it answers
        CHECK(c.messages()[4].role == api::role::user);
        CHECK(c.repair().empty());
    }

} // TEST_SUITE
