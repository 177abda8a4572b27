// History repair: every tool call answered once, right after it; orphans and duplicates dropped.
#include <wafer/api/chat_request.hpp>
#include <wafer/conversation.hpp>

#include <doctest/doctest.h>

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

    TEST_CASE("a reused call id is dropped from the later call") {
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
            shape(msgs) == shape_t{"user:q", "assistant:a", "tool:a=1", "assistant:b", "tool:b=ok"}
        );
        REQUIRE(repairs.size() == 2);
        CHECK(repairs[0] == history_repair{kind::duplicate_call, "a", 3});
        CHECK(repairs[1] == history_repair{kind::duplicate_result, "a", 4});
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
