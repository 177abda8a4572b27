// The CLI's elicitation form (examples/cli/elicit_form.hpp), sans-io: fields from a server's
// requestedSchema, one typed answer parsed and checked, the result sent back. The CLI's sources
// are not a library: the unit under test is compiled in here (visible.cpp is, by
// test_cli_visible.cpp).
#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

#include <string>

#include "../../examples/cli/elicit_form.cpp"

namespace {

using nlohmann::json;
using namespace wafer::cli;
using kind = field_answer::kind;

form parsed(const char* schema) {
    return form_from_schema(json::parse(schema));
}

form_field one(const char* property, bool required = false) {
    json s = json::parse(R"({"type":"object","properties":{}})");
    s["properties"]["f"] = json::parse(property);
    if (required) {
        s["required"] = json::array({"f"});
    }
    form f = form_from_schema(s);
    REQUIRE_MESSAGE(f.error.empty(), f.error);
    REQUIRE(f.fields.size() == 1);
    return f.fields[0];
}

json value_of(const form_field& f, std::string_view line) {
    const field_answer a = parse_field_answer(f, line);
    REQUIRE_MESSAGE(a.type == kind::value, a.problem);
    return a.value;
}

std::string problem_of(const form_field& f, std::string_view line) {
    const field_answer a = parse_field_answer(f, line);
    CHECK(a.type == kind::invalid);
    return a.problem;
}

} // namespace

TEST_SUITE("unit/mcp_elicit_form") {

    TEST_CASE("each property type becomes a field, in name order, required marked") {
        const form f = parsed(R"({"type":"object","properties":{
            "name":{"type":"string","title":"Your name","description":"As on your passport"},
            "age":{"type":"integer","minimum":0},
            "score":{"type":"number"},
            "ok":{"type":"boolean"},
            "color":{"type":"string","enum":["red","green"]}},
            "required":["name","age"]})");
        REQUIRE(f.error.empty());
        REQUIRE(f.fields.size() == 5);
        CHECK(f.fields[0].name == "age");
        CHECK(f.fields[0].kind == field_kind::integer);
        CHECK(f.fields[0].required);
        CHECK(f.fields[1].kind == field_kind::choice);
        CHECK(f.fields[2].name == "name");
        CHECK(f.fields[2].kind == field_kind::string);
        CHECK(f.fields[2].label == "Your name");
        CHECK(f.fields[2].description == "As on your passport");
        CHECK(f.fields[2].required);
        CHECK(f.fields[3].kind == field_kind::boolean);
        CHECK_FALSE(f.fields[3].required);
        CHECK(f.fields[4].kind == field_kind::number);
        CHECK(field_question(f.fields[0]) == "  age (integer, required): ");
        CHECK(field_question(f.fields[1]) == "  color (one of 1 red, 2 green): ");
        CHECK(
            field_question(f.fields[2]) == "  As on your passport\n  Your name (text, required): "
        );
        CHECK(field_question(f.fields[3]) == "  ok (yes/no): ");
    }

    TEST_CASE("a schema without properties is a form without fields") {
        CHECK(parsed(R"({"type":"object"})").fields.empty());
        CHECK(parsed(R"({"type":"object"})").error.empty());
        CHECK(parsed(R"({})").error.empty());
    }

    TEST_CASE("strings: as typed, lengths, pattern, formats, no control characters") {
        const auto s = one(R"({"type":"string","minLength":2,"maxLength":4})");
        CHECK(value_of(s, "ab") == "ab");
        CHECK(value_of(s, " ab ") == " ab ");
        CHECK(value_of(s, "h\xc3\xa9\xc3\xa9h") == "h\xc3\xa9\xc3\xa9h"); // 4 code points
        CHECK_FALSE(problem_of(s, "a").empty());
        CHECK_FALSE(problem_of(s, "abcde").empty());
        CHECK(value_of(s, "ab\r") == "ab");
        CHECK(problem_of(s, "a\x1b[2J") == "control characters or invalid UTF-8 are not accepted");
        CHECK(problem_of(s, "ab\xff") == "control characters or invalid UTF-8 are not accepted");

        const auto p = one(R"({"type":"string","pattern":"^[a-z]+$"})");
        CHECK(value_of(p, "abc") == "abc");
        CHECK_FALSE(problem_of(p, "ABC").empty());

        const auto email = one(R"({"type":"string","format":"email"})");
        CHECK(value_of(email, "ada@example.com") == "ada@example.com");
        for (const char* bad : {"ada", "@example.com", "ada@", "a@b@c", "ada @example.com"}) {
            CAPTURE(bad);
            CHECK(problem_of(email, bad) == "not an email address (name@example.com)");
        }
        const auto uri = one(R"({"type":"string","format":"uri"})");
        CHECK(value_of(uri, "https://example.com/x") == "https://example.com/x");
        CHECK_FALSE(problem_of(uri, "example.com").empty());
        CHECK_FALSE(problem_of(uri, "1http://x").empty());
        const auto date = one(R"({"type":"string","format":"date"})");
        CHECK(value_of(date, "2024-02-29") == "2024-02-29");
        for (const char* bad : {"2023-02-29", "2024-13-01", "2024-1-01", "2024-01-01x", "today"}) {
            CAPTURE(bad);
            CHECK(problem_of(date, bad) == "not a date (YYYY-MM-DD)");
        }
        const auto dt = one(R"({"type":"string","format":"date-time"})");
        CHECK(value_of(dt, "2026-12-04T20:15:00Z") == "2026-12-04T20:15:00Z");
        CHECK(value_of(dt, "2026-12-04T20:15:00.5+01:00") == "2026-12-04T20:15:00.5+01:00");
        CHECK_FALSE(problem_of(dt, "2026-12-04 20:15:00Z").empty());
        CHECK_FALSE(problem_of(dt, "2026-12-04T25:15:00Z").empty());
        CHECK_FALSE(problem_of(dt, "2026-12-04T20:15:00").empty());
        // An unknown format is not checked.
        CHECK(value_of(one(R"({"type":"string","format":"hostname"})"), "x y") == "x y");
    }

    TEST_CASE("integers and numbers: decimal, bounds, nothing else") {
        const auto i = one(R"({"type":"integer","minimum":0,"maximum":150})");
        CHECK(value_of(i, "36") == 36);
        CHECK(value_of(i, " +36 ") == 36);
        CHECK(value_of(i, "0") == 0);
        CHECK(value_of(i, "36").is_number_integer());
        for (const char* bad : {"abc", "3.5", "1e2", "0x10", "++3", "3 4", "-"}) {
            CAPTURE(bad);
            CHECK(problem_of(i, bad) == "not an integer");
        }
        CHECK_FALSE(problem_of(i, "151").empty());
        CHECK_FALSE(problem_of(i, "-1").empty());
        CHECK(problem_of(i, "99999999999999999999999") == "too large for an integer");

        const auto n = one(R"({"type":"number","exclusiveMinimum":0})");
        CHECK(value_of(n, "2.5") == 2.5);
        CHECK(value_of(n, "1e3") == 1000.0);
        CHECK(value_of(n, "+7") == 7.0);
        for (const char* bad : {"inf", "nan", "1e999", "1,5", "two", "0x1p3"}) {
            CAPTURE(bad);
            CHECK(problem_of(n, bad) == "not a number");
        }
        CHECK_FALSE(problem_of(n, "0").empty());
        CHECK_FALSE(problem_of(n, "-3").empty());
    }

    TEST_CASE("booleans: yes/no words in any case") {
        const auto b = one(R"({"type":"boolean"})");
        for (const char* yes : {"y", "YES", "true", "1", " Yes "}) {
            CHECK(value_of(b, yes) == true);
        }
        for (const char* no : {"n", "No", "FALSE", "0"}) {
            CHECK(value_of(b, no) == false);
        }
        CHECK(problem_of(b, "maybe") == "answer yes or no");
    }

    TEST_CASE("enums: by value or number; enumNames and oneOf titles shown") {
        const auto e = one(R"({"type":"string","enum":["red","green","blue"],
                               "enumNames":["Red","Green","Blue"]})");
        CHECK(e.kind == field_kind::choice);
        CHECK(field_question(e) == "  f (one of 1 Red, 2 Green, 3 Blue): ");
        CHECK(value_of(e, "green") == "green");
        CHECK(value_of(e, "3") == "blue");
        CHECK(value_of(e, " 1 ") == "red");
        CHECK(problem_of(e, "0") == "choose 1 to 3 (or type the value)");
        CHECK(problem_of(e, "4") == "choose 1 to 3 (or type the value)");
        CHECK(problem_of(e, "purple") == "choose 1 to 3 (or type the value)");

        const auto o = one(R"({"type":"string","oneOf":[{"const":"s","title":"Small"},
                                                          {"const":"l","title":"Large"}]})");
        CHECK(o.kind == field_kind::choice);
        CHECK(o.choice_labels == std::vector<std::string>{"Small", "Large"});
        CHECK(value_of(o, "2") == "l");
        CHECK(value_of(o, "s") == "s");
    }

    TEST_CASE("required and optional: an empty answer takes the default, omits or asks again") {
        const auto req = one(R"({"type":"string"})", true);
        CHECK(problem_of(req, "") == "required: type a value");
        const auto opt = one(R"({"type":"integer"})");
        CHECK(parse_field_answer(opt, "").type == kind::omitted);
        CHECK(parse_field_answer(opt, "   ").type == kind::omitted);
    }

    TEST_CASE("defaults (SEP-1034): pre-filled, shown, Enter takes them; unusable ones dropped") {
        const form f = parsed(R"({"type":"object","properties":{
            "name":{"type":"string","default":"Ada"},
            "age":{"type":"integer","default":36,"minimum":0},
            "score":{"type":"number","default":9.5},
            "color":{"type":"string","enum":["red","green"],"default":"green"},
            "ok":{"type":"boolean","default":true},
            "bad_enum":{"type":"string","enum":["a"],"default":"z"},
            "bad_type":{"type":"integer","default":"seven"},
            "out_of_bounds":{"type":"integer","minimum":10,"default":3},
            "bad_email":{"type":"string","format":"email","default":"nope"}},
            "required":["name","age"]})");
        REQUIRE(f.error.empty());
        json content = json::object();
        for (const auto& field : f.fields) {
            const auto a = parse_field_answer(field, "");
            if (a.type == kind::value) {
                content[field.name] = a.value;
            } else {
                CHECK(a.type == kind::omitted);
            }
        }
        CHECK(
            content ==
            json::parse(R"({"name":"Ada","age":36,"score":9.5,"color":"green","ok":true})")
        );
        for (const auto& field : f.fields) {
            if (field.name == "age") {
                CHECK(field_question(field) == "  age (integer, required) [36]: ");
            } else if (field.name == "ok") {
                CHECK(field_question(field) == "  ok (yes/no) [yes]: ");
            } else if (field.name == "color") {
                CHECK(field_question(field) == "  color (one of 1 red, 2 green) [green]: ");
            }
        }
        CHECK(
            content_summary(f, content) ==
            "age=36, color=\"green\", name=\"Ada\", ok=yes, score=9.5"
        );
        // A value typed replaces the default.
        CHECK(value_of(f.fields[0], "40") == 40);
    }

    TEST_CASE("the action and the result") {
        CHECK(parse_form_action("a") == form_action::accept);
        CHECK(parse_form_action(" Accept ") == form_action::accept);
        CHECK(parse_form_action("d") == form_action::decline);
        CHECK(parse_form_action("DECLINE") == form_action::decline);
        CHECK(parse_form_action("c") == form_action::cancel);
        CHECK(parse_form_action("cancel\r") == form_action::cancel);
        CHECK_FALSE(parse_form_action(""));
        CHECK_FALSE(parse_form_action("yes"));
        const json content{{"name", "Ada"}};
        CHECK(
            form_result(form_action::accept, content) ==
            json::parse(R"({"action":"accept","content":{"name":"Ada"}})")
        );
        CHECK(
            form_result(form_action::accept, nullptr) ==
            json::parse(R"({"action":"accept","content":{}})")
        );
        CHECK(form_result(form_action::decline, content) == json::parse(R"({"action":"decline"})"));
        CHECK(form_result(form_action::cancel, content) == json::parse(R"({"action":"cancel"})"));
    }

    TEST_CASE("hostile schemas: not an object, too many fields, unaskable required fields") {
        for (const char* bad :
             {R"("a string")",
              "null",
              "[1,2]",
              "42",
              R"({"type":"array"})",
              R"({"type":"object","properties":[1]})"}) {
            CAPTURE(bad);
            CHECK_FALSE(parsed(bad).error.empty());
            CHECK(parsed(bad).fields.empty());
        }
        json many = json::parse(R"({"type":"object","properties":{}})");
        for (int i = 0; i < 10'000; ++i) {
            many["properties"]["p" + std::to_string(i)] = json{{"type", "string"}};
        }
        const form f = form_from_schema(many);
        CHECK(f.error == "the form has 10000 fields (at most 64 are asked)");
        CHECK(f.fields.empty());

        // Nested and unknown types: a required one makes the form unaskable; optional ones are
        // left out and said so.
        const form nested = parsed(R"J({"type":"object","properties":{
            "tags":{"type":"array","items":{"type":"string"}},
            "obj":{"type":"object"},
            "what":{"type":"frobnicate"},
            "notschema":7,
            "numenum":{"type":"string","enum":[1,2]},
            "lookahead":{"type":"string","pattern":"^(?=a)"},
            "ok":{"type":"string"}}})J");
        CHECK(nested.error.empty());
        REQUIRE(nested.fields.size() == 1);
        CHECK(nested.fields[0].name == "ok");
        CHECK(nested.skipped.size() == 6);
        CHECK(
            parsed(R"({"type":"object","properties":{"tags":{"type":"array"}},
                         "required":["tags"]})")
                .error == "required field tags: its type array cannot be asked on a terminal"
        );
    }

    TEST_CASE("hostile text: escape sequences in names, titles, descriptions and choices are "
              "shown escaped, the content keeps the server's name") {
        const form f = parsed(R"({"type":"object","properties":{
            "n\u001b[2J":{"type":"string","title":"T\u001b]0;pwned\u0007itle\u202e",
                          "description":"line\nnext \u001b[31mred"},
            "e":{"type":"string","enum":["a\u001b[1m"],"default":"a\u001b[1m"}}})");
        REQUIRE(f.error.empty());
        REQUIRE(f.fields.size() == 2);
        const auto& c = f.fields[0];
        CHECK(c.choice_labels == std::vector<std::string>{"a\\x1b[1m"});
        CHECK(field_question(c) == "  e (one of 1 a\\x1b[1m) [a\\x1b[1m]: ");
        const auto& s = f.fields[1];
        CHECK(s.name == "n\x1b[2J");
        CHECK(s.label == "T\\x1b]0;pwned\\x07itle\\u{202e}");
        CHECK(s.description == "line\\nnext \\x1b[31mred");
        const std::string q = field_question(s);
        CHECK(q.find('\x1b') == std::string::npos);
        json content = json::object();
        content[s.name] = "x";
        content[c.name] = value_of(c, "1");
        CHECK(content.dump() == R"({"e":"a\u001b[1m","n\u001b[2J":"x"})");
        CHECK(content_summary(f, content) == "e=\"a\\x1b[1m\", n\\x1b[2J=\"x\"");
        // A title a thousand bytes long is shortened.
        const auto longer = one(
            R"({"type":"string","title":"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"})"
        );
        CHECK(longer.label.size() < 90);
    }
}
