// wafer::tools registration, definitions, typed handler helpers and the output cap (no I/O).
#include <wafer/tools/registry.hpp>
#include <wafer/tools/tool.hpp>
#include <wafer/tools/tool_result.hpp>

#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

#include <stdexcept>
#include <string>
#include <vector>

namespace {

using nlohmann::json;
namespace tools = wafer::tools;

struct add_args {
    int a = 0;
    int b = 0;
};

void from_json(const json& j, add_args& x) {
    j.at("a").get_to(x.a);
    j.at("b").get_to(x.b);
}

const json add_schema = json::parse(R"({
    "type": "object",
    "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}},
    "required": ["a", "b"],
    "additionalProperties": false
})");

tools::tool_output call_inline(const tools::tool& t, const json& args) {
    const auto& h = std::get<tools::inline_handler>(t.fn);
    return h.fn(args, tools::call_context{"id", t.name, {}, {}});
}

} // namespace

TEST_SUITE("unit/tools") {

    TEST_CASE("make_tool: typed arguments, text / JSON / tool_output results") {
        // setup
        auto text_tool =
            tools::make_tool<add_args>("add", "Adds two integers", add_schema, [](add_args x) {
                return std::to_string(x.a + x.b);
            });
        auto json_tool = tools::make_tool<add_args>(
            "add_json",
            "Adds two integers",
            add_schema,
            [](add_args x, const tools::call_context& ctx) {
                return json{{"sum", x.a + x.b}, {"call", ctx.call_id}};
            }
        );
        auto err_tool = tools::make_tool<json>(
            "fails",
            "Always reports an error",
            json{{"type", "object"}},
            [](const json&) {
                return tools::tool_output{"no such file", true};
            }
        );
        auto string_json =
            tools::make_tool<json>("echo", "Echo", json{{"type", "object"}}, [](const json& j) {
                return j.at("text"); // a JSON string is passed as its text, not re-quoted
            });

        // run / check
        CHECK(call_inline(text_tool, json{{"a", 2}, {"b", 3}}).content == "5");
        CHECK(
            json::parse(call_inline(json_tool, json{{"a", 2}, {"b", 3}}).content) ==
            json{{"sum", 5}, {"call", "id"}}
        );
        const auto e = call_inline(err_tool, json::object());
        CHECK(e.is_error);
        CHECK(e.content == "no such file");
        CHECK(call_inline(string_json, json{{"text", "hi \"there\""}}).content == "hi \"there\"");
        CHECK(text_tool.definition().name == "add");
        CHECK(text_tool.definition().parameters == add_schema);
    }

    TEST_CASE("make_tool: a from_json failure becomes argument_error") {
        auto t =
            tools::make_tool<add_args>("add", "Adds", json{{"type", "object"}}, [](add_args x) {
                return std::to_string(x.a + x.b);
            });
        CHECK_THROWS_AS(call_inline(t, json{{"a", 1}}), tools::argument_error);
    }

    TEST_CASE("registry: registration order, lookup, definitions") {
        tools::registry reg;
        CHECK(reg.empty());
        reg.add(tools::make_tool<add_args>("add", "Adds", add_schema, [](add_args x) {
            return std::to_string(x.a + x.b);
        }));
        auto strict =
            tools::make_tool<json>("zeta", "Z", json{{"type", "object"}}, [](const json&) {
                return "z";
            });
        strict.strict = true;
        strict.options.read_only = true;
        reg.add(std::move(strict));
        reg.add(tools::make_blocking_tool<json>(
            "alpha", "A", json{{"type", "object"}}, [](const json&) { return "a"; }
        ));

        CHECK(reg.size() == 3);
        CHECK(reg.names() == std::vector<std::string>{"add", "zeta", "alpha"});
        const auto defs = reg.definitions();
        REQUIRE(defs.size() == 3);
        CHECK(defs[0].name == "add");
        CHECK(defs[0].description == "Adds");
        CHECK(defs[0].parameters == add_schema);
        CHECK_FALSE(defs[0].strict);
        CHECK(defs[1].strict);
        REQUIRE(reg.find("zeta") != nullptr);
        CHECK(reg.find("zeta")->options.read_only);
        CHECK(reg.find("nope") == nullptr);
        REQUIRE(reg.find_schema("add") != nullptr);
        CHECK_FALSE(reg.find_schema("add")->is_valid(json{{"a", 1}}));
    }

    TEST_CASE("registry: rejects bad schemas, names, duplicates and empty handlers") {
        tools::registry reg;
        auto ok = [](const json&) {
            return std::string("x");
        };
        CHECK_THROWS_WITH_AS(
            reg.add(tools::make_tool<json>(
                "t", "d", json::parse(R"({"properties": {"x": {"uniqueItems": true}}})"), ok
            )),
            "tool \"t\": parameters schema: /properties/x: unsupported keyword 'uniqueItems'",
            tools::schema_error
        );
        CHECK_THROWS_AS(
            reg.add(tools::make_tool<json>("", "d", json::object(), ok)), std::invalid_argument
        );
        CHECK_THROWS_AS(
            reg.add(tools::make_tool<json>("has space", "d", json::object(), ok)),
            std::invalid_argument
        );
        CHECK_THROWS_AS(
            reg.add(tools::make_tool<json>(std::string(65, 'a'), "d", json::object(), ok)),
            std::invalid_argument
        );
        reg.add(tools::make_tool<json>("t", "d", json::object(), ok));
        CHECK_THROWS_WITH_AS(
            reg.add(tools::make_tool<json>("t", "d", json::object(), ok)),
            "tool \"t\" is already registered",
            std::invalid_argument
        );
        tools::tool empty{"empty", "d", json::object(), false, {}, tools::inline_handler{}};
        CHECK_THROWS_AS(reg.add(std::move(empty)), std::invalid_argument);
        CHECK(reg.size() == 1); // failed registrations leave nothing behind
    }

    TEST_CASE("replace swaps a set of tools in place, all or nothing; snapshots keep theirs") {
        auto ok = [](const json&) {
            return "ok";
        };
        const auto make = [&](const std::string& name) {
            return tools::make_tool<json>(name, "d", json{{"type", "object"}}, ok);
        };
        tools::registry reg;
        for (const char* name : {"a", "s__x", "s__y", "b"}) {
            reg.add(make(name));
        }
        const auto before = reg.snapshot();
        const auto rev0 = reg.revision();
        CHECK(before->revision() == rev0);

        std::vector<tools::tool> next;
        next.push_back(make("s__y"));
        next.push_back(make("s__z"));
        reg.replace({"s__x", "s__y"}, std::move(next));
        using names = std::vector<std::string>;
        CHECK(reg.names() == names{"a", "s__y", "s__z", "b"});
        CHECK(reg.find("s__x") == nullptr);
        CHECK(reg.find_schema("s__z") != nullptr);
        CHECK(reg.revision() != rev0);
        // The snapshot still has the old set, tools included.
        CHECK(before->names() == names{"a", "s__x", "s__y", "b"});
        REQUIRE(before->find("s__x") != nullptr);
        CHECK(call_inline(*before->find("s__x"), json::object()).content == "ok");

        // A name a remaining tool has is refused, and nothing changes.
        const auto rev1 = reg.revision();
        std::vector<tools::tool> taken;
        taken.push_back(make("s__w"));
        taken.push_back(make("a"));
        CHECK_THROWS_WITH_AS(
            reg.replace({"s__y", "s__z"}, std::move(taken)),
            "tool \"a\" is already registered (by another owner)",
            std::invalid_argument
        );
        std::vector<tools::tool> twice;
        twice.push_back(make("s__w"));
        twice.push_back(make("s__w"));
        CHECK_THROWS_WITH_AS(
            reg.replace({"s__y", "s__z"}, std::move(twice)),
            "tool \"s__w\" is added twice",
            std::invalid_argument
        );
        std::vector<tools::tool> bad;
        bad.push_back(make("s__w"));
        bad.push_back(tools::make_tool<json>("s__v", "d", json{{"type", 5}}, ok));
        CHECK_THROWS_AS(reg.replace({"s__y", "s__z"}, std::move(bad)), tools::schema_error);
        CHECK(reg.names() == names{"a", "s__y", "s__z", "b"});
        CHECK(reg.revision() == rev1);

        // Removing only; added tools of a set that had none go last.
        reg.replace({"s__y", "s__z"}, {});
        CHECK(reg.names() == names{"a", "b"});
        std::vector<tools::tool> fresh;
        fresh.push_back(make("t__1"));
        reg.replace({"t__gone"}, std::move(fresh));
        CHECK(reg.names() == names{"a", "b", "t__1"});
        CHECK(reg.definitions().back().name == "t__1");
    }

    TEST_CASE("truncate_output cuts at a UTF-8 boundary and says so") {
        std::string ascii(1000, 'x');
        CHECK(tools::truncate_output(ascii, 100));
        CHECK(ascii == std::string(100, 'x') + "\n[output truncated: 100 of 1000 bytes shown]");

        std::string fits = "short";
        CHECK_FALSE(tools::truncate_output(fits, 5));
        CHECK(fits == "short");
        CHECK_FALSE(tools::truncate_output(fits, 0)); // 0: no cap

        // "aé€😀" = 1 + 2 + 3 + 4 bytes; a cap inside any multi-byte character backs off to its
        // start.
        const std::string mixed = "a\xC3\xA9\xE2\x82\xAC\xF0\x9F\x98\x80";
        for (std::size_t cap = 1; cap < mixed.size(); ++cap) {
            std::string s = mixed;
            REQUIRE(tools::truncate_output(s, cap));
            const std::string kept = s.substr(0, s.find('\n'));
            INFO("cap " << cap);
            CHECK(kept.size() <= cap);
            CHECK((kept.size() == 1 || kept.size() == 3 || kept.size() == 6));
            CHECK(mixed.compare(0, kept.size(), kept) == 0);
            CHECK(s.find("of 10 bytes shown]") != std::string::npos);
        }
    }

    TEST_CASE("result_status names") {
        CHECK(tools::to_string(tools::result_status::ok) == "ok");
        CHECK(tools::to_string(tools::result_status::invalid_arguments) == "invalid_arguments");
        CHECK(tools::to_string(tools::result_status::timeout) == "timeout");
        CHECK(tools::to_string(tools::result_status::cancelled) == "cancelled");
    }

} // TEST_SUITE
