// wafer::tools::schema: every supported keyword, the error paths the model reads, and the
// compile-time rejection of keywords the validator does not implement.
#include <wafer/tools/schema.hpp>

#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

#include <chrono>
#include <string>
#include <vector>

namespace {

using nlohmann::json;
using wafer::tools::schema;
using wafer::tools::schema_error;

schema compile(const char* text) {
    return schema::compile(json::parse(text));
}

bool valid(const schema& s, const char* instance) {
    return s.is_valid(json::parse(instance));
}

// All violations as "path: message" lines, for readable checks.
std::vector<std::string> errors(const schema& s, const char* instance) {
    std::vector<std::string> out;
    for (const auto& e : s.validate(json::parse(instance))) {
        out.push_back(e.to_string());
    }
    return out;
}

std::string compile_error(const char* text) {
    try {
        (void)compile(text);
    } catch (const schema_error& e) {
        return e.what();
    }
    return "";
}

} // namespace

TEST_SUITE("unit/schema") {

    TEST_CASE("type: single names, arrays, integer vs number") {
        const auto s = compile(R"({"type": "string"})");
        CHECK(valid(s, R"("x")"));
        CHECK_FALSE(valid(s, "1"));
        CHECK(errors(s, "1") == std::vector<std::string>{"(root): expected string, got integer"});
        CHECK(errors(s, "1.5") == std::vector<std::string>{"(root): expected string, got number"});

        const auto i = compile(R"({"type": "integer"})");
        CHECK(valid(i, "3"));
        CHECK(valid(i, "3.0")); // a number with zero fraction is an integer
        CHECK(valid(i, "-7"));
        CHECK_FALSE(valid(i, "3.5"));
        CHECK_FALSE(valid(i, R"("3")"));

        const auto n = compile(R"({"type": "number"})");
        CHECK(valid(n, "3"));
        CHECK(valid(n, "3.5"));
        CHECK_FALSE(valid(n, "true"));

        const auto multi = compile(R"({"type": ["string", "null"]})");
        CHECK(valid(multi, "null"));
        CHECK(valid(multi, R"("a")"));
        CHECK(
            errors(multi, "false") ==
            std::vector<std::string>{"(root): expected one of [null, string], got boolean"}
        );

        for (const char* t : {"null", "boolean", "object", "array"}) {
            CHECK_NOTHROW((void)schema::compile(json{{"type", t}}));
        }
        CHECK(compile_error(R"({"type": "float"})").find("unknown type") != std::string::npos);
    }

    TEST_CASE("properties, required and additionalProperties report paths") {
        const auto s = compile(R"({
        "type": "object",
        "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
        "required": ["name"],
        "additionalProperties": false
    })");
        CHECK(valid(s, R"({"name": "a"})"));
        CHECK(valid(s, R"({"name": "a", "age": 3})"));
        CHECK(
            errors(s, R"({})") ==
            std::vector<std::string>{R"((root): missing required property "name")"}
        );
        CHECK(
            errors(s, R"({"name": 1, "age": "x"})") ==
            std::vector<std::string>{
                "/age: expected integer, got string", "/name: expected string, got integer"}
        );
        CHECK(
            errors(s, R"({"name": "a", "extra": 1})") ==
            std::vector<std::string>{R"((root): unexpected property "extra" (allowed: age, name))"}
        );

        const auto typed_extra = compile(R"({"additionalProperties": {"type": "boolean"}})");
        CHECK(valid(typed_extra, R"({"x": true})"));
        CHECK(
            errors(typed_extra, R"({"x": 1})") ==
            std::vector<std::string>{"/x: expected boolean, got integer"}
        );
        // properties only constrain objects
        CHECK(valid(s, "[]") == false); // type: object
        CHECK(valid(typed_extra, R"("not an object")"));
    }

    TEST_CASE("patternProperties counts as declared for additionalProperties") {
        const auto s = compile(R"({
        "patternProperties": {"^x-": {"type": "string"}},
        "additionalProperties": false
    })");
        CHECK(valid(s, R"({"x-a": "1"})"));
        CHECK_FALSE(valid(s, R"({"x-a": 1})"));
        CHECK_FALSE(valid(s, R"({"y": "1"})"));
    }

    TEST_CASE("items, prefixItems, additionalItems, minItems, maxItems") {
        const auto s = compile(R"({
        "type": "array",
        "items": {"type": "object", "properties": {"name": {"type": "string"}}},
        "minItems": 1, "maxItems": 2
    })");
        CHECK(valid(s, R"([{"name": "a"}])"));
        CHECK(
            errors(s, R"([{"name": "a"}, {"name": 5}])") ==
            std::vector<std::string>{"/1/name: expected string, got integer"}
        );
        CHECK(
            errors(s, "[]") ==
            std::vector<std::string>{"(root): array must have at least 1 items, got 0"}
        );
        CHECK(
            errors(s, "[{}, {}, {}]") ==
            std::vector<std::string>{"(root): array must have at most 2 items, got 3"}
        );

        const auto nested = compile(
            R"({"properties": {"items": {"items": {"properties": {"name": {"type": "string"}}}}}})"
        );
        CHECK(
            errors(nested, R"({"items": [{"name": 1}]})") ==
            std::vector<std::string>{"/items/0/name: expected string, got integer"}
        );

        const auto tuple =
            compile(R"({"prefixItems": [{"type": "string"}, {"type": "integer"}], "items": false})"
            );
        CHECK(valid(tuple, R"(["a", 1])"));
        CHECK(valid(tuple, R"(["a"])"));
        CHECK_FALSE(valid(tuple, R"([1, "a"])"));
        CHECK_FALSE(valid(tuple, R"(["a", 1, 2])"));

        const auto draft7 =
            compile(R"({"items": [{"type": "string"}], "additionalItems": {"type": "integer"}})");
        CHECK(valid(draft7, R"(["a", 1, 2])"));
        CHECK_FALSE(valid(draft7, R"(["a", "b"])"));
    }

    TEST_CASE("enum and const use JSON equality") {
        const auto e = compile(R"({"enum": ["red", 1, null, {"a": [1]}]})");
        CHECK(valid(e, R"("red")"));
        CHECK(valid(e, "1.0"));
        CHECK(valid(e, R"({"a": [1.0]})"));
        CHECK_FALSE(valid(e, "true"));
        CHECK(
            errors(e, R"("blue")") ==
            std::vector<std::string>{R"((root): value must be one of ["red",1,null,{"a":[1]}])"}
        );

        const auto c = compile(R"({"const": false})");
        CHECK(valid(c, "false"));
        CHECK_FALSE(valid(c, "0"));
        CHECK(errors(c, "0") == std::vector<std::string>{"(root): value must be false"});
    }

    TEST_CASE("anyOf, oneOf, allOf, not") {
        const auto any =
            compile(R"({"anyOf": [{"type": "string"}, {"type": "integer", "minimum": 10}]})");
        CHECK(valid(any, R"("x")"));
        CHECK(valid(any, "12"));
        const auto any_errors = errors(any, "3");
        REQUIRE(any_errors.size() == 1);
        CHECK(any_errors[0].find("matches none of the anyOf options") != std::string::npos);
        // The model learns why each option failed.
        CHECK(any_errors[0].find("option 1: (root): must be >= 10, got 3") != std::string::npos);

        const auto one = compile(R"({"oneOf": [{"type": "integer"}, {"minimum": 2}]})");
        CHECK(valid(one, "1"));
        CHECK(valid(one, "2.5"));
        CHECK_FALSE(valid(one, "3")); // both match
        CHECK(
            errors(one, "3")[0].find("more than one oneOf option (options 0, 1)") !=
            std::string::npos
        );
        CHECK_FALSE(valid(one, "1.5")); // none match

        const auto all = compile(R"({"allOf": [{"type": "string"}, {"maxLength": 2}]})");
        CHECK(valid(all, R"("ab")"));
        CHECK_FALSE(valid(all, R"("abc")"));
        CHECK_FALSE(valid(all, "1"));

        const auto negated = compile(R"({"not": {"type": "null"}})");
        CHECK(valid(negated, "1"));
        CHECK_FALSE(valid(negated, "null"));
    }

    TEST_CASE("$ref and $defs, including recursion and pointer escapes") {
        const auto s = compile(R"({
        "$defs": {
            "node": {"type": "object", "properties": {
                "value": {"type": "integer"},
                "children": {"type": "array", "items": {"$ref": "#/$defs/node"}}
            }, "required": ["value"]},
            "a/b": {"type": "string"},
            "pct%": {"type": "boolean"}
        },
        "properties": {
            "tree": {"$ref": "#/$defs/node"},
            "slash": {"$ref": "#/$defs/a~1b"},
            "pct": {"$ref": "#/$defs/pct%25"}
        }
    })");
        CHECK(valid(s, R"({"tree": {"value": 1, "children": [{"value": 2, "children": []}]}})"));
        CHECK(
            errors(s, R"({"tree": {"value": 1, "children": [{"value": "x"}]}})") ==
            std::vector<std::string>{"/tree/children/0/value: expected integer, got string"}
        );
        CHECK(valid(s, R"({"slash": "x", "pct": true})"));
        CHECK_FALSE(valid(s, R"({"slash": 1})"));
        CHECK_FALSE(valid(s, R"({"pct": 1})"));

        const auto legacy = compile(
            R"({"definitions": {"n": {"type": "number"}}, "items": {"$ref": "#/definitions/n"}})"
        );
        CHECK(valid(legacy, "[1, 2.5]"));
        CHECK_FALSE(valid(legacy, R"(["x"])"));

        // Sibling keywords apply together with $ref (2020-12).
        const auto siblings =
            compile(R"({"$defs": {"s": {"type": "string"}}, "$ref": "#/$defs/s", "maxLength": 1})");
        CHECK(valid(siblings, R"("a")"));
        CHECK_FALSE(valid(siblings, R"("ab")"));

        // A ref to the root makes the schema recursive.
        const auto root =
            compile(R"({"properties": {"next": {"$ref": "#"}}, "additionalProperties": false})");
        CHECK(valid(root, R"({"next": {"next": {}}})"));
        CHECK_FALSE(valid(root, R"({"next": {"other": 1}})"));

        // A ref loop that never consumes input is caught at validation, not a stack overflow.
        const auto loop = compile(
            R"({"$defs": {"a": {"$ref": "#/$defs/b"}, "b": {"$ref": "#/$defs/a"}}, "$ref": "#/$defs/a"})"
        );
        const auto loop_errors = errors(loop, "1");
        REQUIRE_FALSE(loop_errors.empty());
        CHECK(loop_errors[0].find("recursion too deep") != std::string::npos);
    }

    TEST_CASE("numeric bounds, inclusive and exclusive") {
        const auto s = compile(
            R"({"minimum": 1, "maximum": 10, "exclusiveMinimum": 0, "exclusiveMaximum": 10.5})"
        );
        CHECK(valid(s, "1"));
        CHECK(valid(s, "10"));
        CHECK(valid(s, "5.5"));
        CHECK(errors(s, "0.5") == std::vector<std::string>{"(root): must be >= 1, got 0.5"});
        CHECK(
            errors(s, "11") ==
            std::vector<std::string>{
                "(root): must be <= 10, got 11", "(root): must be < 10.5, got 11"}
        );
        const auto ex = compile(R"({"exclusiveMinimum": 0, "exclusiveMaximum": 1})");
        CHECK_FALSE(valid(ex, "0"));
        CHECK_FALSE(valid(ex, "1"));
        CHECK(valid(ex, "0.5"));
        CHECK(valid(s, R"("not a number")")); // bounds only constrain numbers

        // Large integers compare exactly, not through double.
        const auto big = compile(R"({"maximum": 9007199254740993})");
        CHECK(valid(big, "9007199254740993"));
        CHECK_FALSE(valid(big, "9007199254740994"));
        const auto neg = compile(R"({"minimum": -5})");
        CHECK(valid(neg, "18446744073709551615"));
        CHECK_FALSE(valid(neg, "-6"));
    }

    TEST_CASE("minLength and maxLength count code points") {
        const auto s = compile(R"({"minLength": 2, "maxLength": 3})");
        CHECK(valid(s, R"("ab")"));
        CHECK(valid(s, "\"h\xC3\xA9\xF0\x9F\x98\x80\"")
        );                                             // h, e-acute, emoji: 3 code points, 7 bytes
        CHECK_FALSE(valid(s, "\"\xF0\x9F\x98\x80\"")); // one code point, 4 bytes
        CHECK(
            errors(s, R"("abcd")") ==
            std::vector<std::string>{"(root): string must be at most 3 characters long, got 4"}
        );
        CHECK(valid(s, "12345")); // only strings
    }

    TEST_CASE("pattern is an unanchored ECMAScript search") {
        const auto s = compile(R"({"pattern": "^[a-z]+(-[a-z]+)*$"})");
        CHECK(valid(s, R"("kebab-case")"));
        CHECK_FALSE(valid(s, R"("Kebab")"));
        CHECK(
            errors(s, R"("Kebab")") ==
            std::vector<std::string>{
                R"((root): string does not match pattern "^[a-z]+(-[a-z]+)*$")"}
        );
        const auto unanchored = compile(R"({"pattern": "\\d"})");
        CHECK(valid(unanchored, R"("abc1def")"));
        CHECK(
            compile_error(R"({"pattern": "(unclosed"})")
                .find("/pattern: not a valid ECMAScript regex") == 0
        );
    }

    TEST_CASE("boolean schemas") {
        CHECK(valid(compile("true"), R"({"anything": [1]})"));
        CHECK_FALSE(valid(compile("false"), "null"));
        CHECK(
            errors(compile(R"({"properties": {"x": false}})"), R"({"x": 1})") ==
            std::vector<std::string>{"/x: no value is allowed here"}
        );
        CHECK(valid(schema(), "42")); // default-constructed schema accepts everything
    }

    TEST_CASE("JSON pointer escaping in instance paths") {
        const auto s =
            compile(R"({"properties": {"a/b": {"properties": {"c~d": {"type": "string"}}}}})");
        CHECK(
            errors(s, R"({"a/b": {"c~d": 1}})") ==
            std::vector<std::string>{"/a~1b/c~0d: expected string, got integer"}
        );
    }

    TEST_CASE("annotation keywords are accepted") {
        CHECK_NOTHROW(compile(R"({
        "$schema": "https://json-schema.org/draft/2020-12/schema", "$id": "https://x/y",
        "$comment": "c", "title": "t", "description": "d", "default": 1, "examples": [1],
        "format": "uri", "deprecated": false, "readOnly": true, "writeOnly": false,
        "type": "object", "properties": {"p": {"description": "nested", "type": "string"}}
    })"));
    }

    TEST_CASE("unsupported keywords are rejected at compile time with their location") {
        CHECK(
            compile_error(R"({"uniqueItems": true})") == "(root): unsupported keyword 'uniqueItems'"
        );
        CHECK(
            compile_error(R"({"properties": {"x": {"multipleOf": 2}}})") ==
            "/properties/x: unsupported keyword 'multipleOf'"
        );
        CHECK(compile_error(R"({"items": {"if": {}}})") == "/items: unsupported keyword 'if'");
        CHECK(
            compile_error(R"({"$defs": {"unused": {"minProperties": 1}}})") ==
            "/$defs/unused: unsupported keyword 'minProperties'"
        );
        CHECK(
            compile_error(R"({"anyOf": [{"contains": {}}]})") ==
            "/anyOf/0: unsupported keyword 'contains'"
        );
        CHECK(
            compile_error(R"({"unevaluatedProperties": false})").find("unsupported keyword") !=
            std::string::npos
        );
        CHECK(compile_error(R"({"x-custom": 1})") == "(root): unsupported keyword 'x-custom'");
    }

    TEST_CASE("malformed schemas are rejected") {
        CHECK(compile_error("42").find("must be an object or a boolean") != std::string::npos);
        CHECK(
            compile_error(R"({"required": "name"})") ==
            "/required: required must be an array of strings"
        );
        CHECK(
            compile_error(R"({"minLength": -1})") ==
            "/minLength: minLength must be a non-negative integer"
        );
        CHECK(
            compile_error(R"({"anyOf": []})") ==
            "/anyOf: anyOf must be a non-empty array of schemas"
        );
        CHECK(
            compile_error(R"({"exclusiveMinimum": true})").find("draft-4 boolean form") !=
            std::string::npos
        );
        CHECK(
            compile_error(R"({"$ref": "#/$defs/missing"})") ==
            "/$ref: $ref \"#/$defs/missing\" does not resolve inside this schema"
        );
        CHECK(
            compile_error(R"({"$ref": "other.json#/a"})").find("remote refs unsupported") !=
            std::string::npos
        );
        CHECK(compile_error(R"({"$ref": "#anchor"})").find("anchor") != std::string::npos);
        CHECK(
            compile_error(R"({"properties": {"x": {"$id": "http://x/", "$ref": "#/a"}}})")
                .find("its own $id") != std::string::npos
        );
    }

    TEST_CASE("validate caps the number of reported errors") {
        const auto s = compile(R"({"items": {"type": "string"}})");
        CHECK(s.validate(json::parse("[1,2,3,4,5,6,7,8,9,10]"), 3).size() == 3);
        CHECK(s.validate(json::parse("[1,2,3,4,5,6,7,8,9,10]")).size() == 10);
    }

    TEST_CASE("a compiled schema keeps its source") {
        const auto doc = json::parse(R"({"type": "string"})");
        CHECK(schema::compile(doc).source() == doc);
    }

    TEST_CASE("integers must fit 64 bits: 1e30 is not an integer argument") {
        // Handlers convert integer arguments to C++ integers; a double outside int64/uint64
        // would make that conversion undefined behaviour.
        const auto i = compile(R"({"type": "integer"})");
        CHECK(valid(i, "1e3"));
        CHECK(valid(i, "-9.2e18"));
        CHECK(valid(i, "1.8e19")); // below 2^64
        CHECK(valid(i, "18446744073709551615"));
        CHECK(valid(i, "-9223372036854775808"));
        for (const char* big : {"1e30", "-1e30", "1.8446744073709552e19", "-9.3e18", "1e308"}) {
            INFO(big);
            CHECK_FALSE(valid(i, big));
        }
        CHECK(
            errors(i, "1e30") ==
            std::vector<std::string>{"(root): expected integer, got number (1e+30 is an integer "
                                     "too large for 64 bits)"}
        );
        const auto n = compile(R"({"type": "number"})");
        CHECK(valid(n, "1e30"));
    }

    TEST_CASE("huge length and item bounds saturate instead of failing or wrapping") {
        const auto max_huge = compile(R"({"maxLength": 1e30, "maxItems": 1e300})");
        CHECK(valid(max_huge, R"("abc")"));
        CHECK(valid(max_huge, "[1, 2, 3]"));
        const auto min_huge = compile(R"({"minLength": 1e30, "minItems": 18446744073709551616})");
        CHECK_FALSE(valid(min_huge, R"("abc")"));
        CHECK_FALSE(valid(min_huge, "[1]"));
        CHECK(
            compile_error(R"({"maxLength": 1.5})")
                .find("maxLength must be a non-negative integer") != std::string::npos
        );
        CHECK(
            compile_error(R"({"minItems": -1e30})")
                .find("minItems must be a non-negative integer") != std::string::npos
        );
    }

    TEST_CASE("numeric bounds compare integers and doubles exactly") {
        // 2^53 + 1 is not representable as a double; a comparison through double calls it equal.
        const auto s = compile(R"({"maximum": 9007199254740992.0})");
        CHECK(valid(s, "9007199254740992"));
        CHECK_FALSE(valid(s, "9007199254740993"));
        const auto ex = compile(R"({"exclusiveMinimum": 9007199254740992.0})");
        CHECK(valid(ex, "9007199254740993"));
        const auto lo = compile(R"({"minimum": -1e300, "maximum": 1e300})");
        CHECK(valid(lo, "18446744073709551615"));
        CHECK(valid(lo, "-9223372036854775808"));
        const auto u = compile(R"({"minimum": 18446744073709551615})");
        CHECK(valid(u, "1.8446744073709552e19")); // 2^64 as a double is above 2^64 - 1
        CHECK_FALSE(valid(u, "1.8e19"));
        const auto frac = compile(R"({"maximum": 2.5})");
        CHECK(valid(frac, "2"));
        CHECK_FALSE(valid(frac, "3"));
        const auto neg = compile(R"({"minimum": -2.5})");
        CHECK(valid(neg, "-2"));
        CHECK_FALSE(valid(neg, "-3"));
    }

    TEST_CASE("pattern runs in linear time and does not overflow the stack") {
        // std::regex recursed once per character (50 KB crashed) and backtracked exponentially.
        const auto s = compile(R"({"pattern": "^[a-z]*$"})");
        CHECK(s.is_valid(json(std::string(50000, 'a'))));
        CHECK(s.is_valid(json(std::string(4000000, 'a'))));
        CHECK_FALSE(s.is_valid(json(std::string(50000, 'a') + "1")));
        const auto redos = compile(R"({"pattern": "^(a+)+$"})");
        const auto t0 = std::chrono::steady_clock::now();
        CHECK_FALSE(redos.is_valid(json(std::string(40, 'a') + "b")));
        const auto props = compile(R"({"patternProperties": {"^(a|aa)+$": {"type": "integer"}}})");
        CHECK(props.is_valid(json::object({{std::string(40, 'a') + "b", "x"}})));
        CHECK(std::chrono::steady_clock::now() - t0 < std::chrono::seconds(5));
    }

    TEST_CASE("pattern: ECMA-262 features RE2 cannot run are rejected at compile time") {
        const std::string look = compile_error(R"({"pattern": "^(?=.*\\d)\\w+$"})");
        CHECK(look.find("/pattern: ") == 0);
        CHECK(look.find("lookahead") != std::string::npos);
        CHECK(compile_error(R"({"pattern": "(?<!x)y"})").find("lookbehind") != std::string::npos);
        const std::string back = compile_error(R"({"pattern": "(a)\\1"})");
        CHECK(back.find("backreference") != std::string::npos);
        const std::string pp = compile_error(R"json({"patternProperties": {"(?!x)": {}}})json");
        CHECK(pp.find("/patternProperties/(?!x): ") == 0);
        // What ECMA-262 and RE2 share keeps working, and \uXXXX escapes are understood.
        const auto u = compile(R"({"pattern": "^\\u00e9\\d{2,3}\\s?[\\w-]+$"})");
        const std::string e_acute = "\xC3\xA9";
        CHECK(u.is_valid(json(e_acute + "12 a-b")));
        CHECK_FALSE(valid(u, R"("e12 a")"));
        // `.` matches one character, not one byte.
        CHECK(compile(R"({"pattern": "^.$"})").is_valid(json(e_acute)));
    }

} // TEST_SUITE
