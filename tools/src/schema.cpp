// JSON Schema compiler and validator. Compilation turns the schema document into a graph of
// nodes (refs become pointers, so recursive schemas are cycles), validation walks that graph.
#include <wafer/tools/schema.hpp>

#include <nlohmann/json.hpp>

#include <array>
#include <cmath>
#include <cstdint>
#include <deque>
#include <functional>
#include <limits>
#include <map>
#include <optional>
#include <set>
#include <string_view>
#include <utility>

#include "detail/ecma_regex.hpp"
#include "detail/json_count.hpp"
#include "detail/utf8.hpp"

namespace wafer::tools {

using nlohmann::json;

namespace detail {

namespace {

// Bit per JSON Schema type name.
enum type_bit : std::uint8_t {
    t_null = 1,
    t_boolean = 2,
    t_object = 4,
    t_array = 8,
    t_number = 16,
    t_integer = 32,
    t_string = 64,
};

constexpr std::array<std::pair<std::string_view, std::uint8_t>, 7> type_names{{
    {"null", t_null},
    {"boolean", t_boolean},
    {"object", t_object},
    {"array", t_array},
    {"number", t_number},
    {"integer", t_integer},
    {"string", t_string},
}};

struct node {
    // Boolean schema (`true` / `false`); when set, nothing else below applies.
    std::optional<bool> boolean;

    std::uint8_t types = 0; // 0: any type
    std::map<std::string, const node*, std::less<>> properties;
    std::vector<std::pair<regex_ptr, const node*>> pattern_properties;
    std::vector<std::string> required;
    const node* additional_properties = nullptr;
    std::vector<const node*> prefix_items;
    const node* items = nullptr; // applies to elements after prefix_items
    std::optional<json> enum_values;
    std::optional<json> const_value;
    std::vector<const node*> any_of;
    std::vector<const node*> one_of;
    std::vector<const node*> all_of;
    const node* not_ = nullptr;
    const node* ref = nullptr;
    std::optional<json> minimum;
    std::optional<json> maximum;
    std::optional<json> exclusive_minimum;
    std::optional<json> exclusive_maximum;
    std::optional<std::size_t> min_length;
    std::optional<std::size_t> max_length;
    std::optional<std::size_t> min_items;
    std::optional<std::size_t> max_items;
    regex_ptr pattern; // null: no pattern
    std::string pattern_source;
};

} // namespace

struct compiled_schema {
    json source;
    std::deque<node> nodes; // deque: stable addresses while growing
    const node* root = nullptr;
};

namespace {

// Keywords that carry no validation meaning; accepted anywhere.
const std::set<std::string, std::less<>> annotation_keywords{
    "title",
    "description",
    "default",
    "examples",
    "$schema",
    "$id",
    "$comment",
    "format",
    "deprecated",
    "readOnly",
    "writeOnly",
    "contentMediaType",
    "contentEncoding",
};

std::string escape_token(std::string_view s) {
    std::string out;
    out.reserve(s.size());
    for (char c : s) {
        if (c == '~') {
            out += "~0";
        } else if (c == '/') {
            out += "~1";
        } else {
            out += c;
        }
    }
    return out;
}

std::string where(const std::string& loc) {
    return loc.empty() ? std::string("(root)") : loc;
}

[[noreturn]] void fail(const std::string& loc, const std::string& what) {
    throw schema_error(where(loc) + ": " + what);
}

int hex_value(char c) {
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }
    if (c >= 'A' && c <= 'F') {
        return c - 'A' + 10;
    }
    return -1;
}

// URI fragments are percent-encoded; JSON pointers inside them are not.
std::optional<std::string> percent_decode(std::string_view s) {
    std::string out;
    for (std::size_t i = 0; i < s.size(); ++i) {
        if (s[i] != '%') {
            out += s[i];
            continue;
        }
        if (i + 2 >= s.size()) {
            return std::nullopt;
        }
        const int hi = hex_value(s[i + 1]);
        const int lo = hex_value(s[i + 2]);
        if (hi < 0 || lo < 0) {
            return std::nullopt;
        }
        out += static_cast<char>(hi * 16 + lo);
        i += 2;
    }
    return out;
}

// 2^64 and -2^63 as doubles: integral doubles in [-2^63, 2^64) convert to a 64-bit integer.
constexpr double two_pow_64 = 18446744073709551616.0;
constexpr double minus_two_pow_63 = -9223372036854775808.0;

// A length or count bound. Integral doubles are accepted (1e3 is an integer); values beyond
// what std::size_t holds saturate, since no string or array can be that long anyway.
std::size_t non_negative_integer(const json& v, const std::string& loc, std::string_view kw) {
    if (auto n = whole_count(v, true)) {
        return *n;
    }
    fail(loc, std::string(kw) + " must be a non-negative integer");
}

class compiler {
public:
    explicit compiler(compiled_schema& out) : out_(out) {}

    void run() {
        out_.root = compile(out_.source, "", false);
        // Refs may point at locations not compiled yet (e.g. "#/properties/a/items"); compiling
        // those can add refs in turn, so iterate until every ref has a target.
        while (!pending_.empty()) {
            auto [n, target, loc] = std::move(pending_.front());
            pending_.pop_front();
            n->ref = resolve(target, loc);
        }
    }

private:
    struct pending_ref {
        node* from;
        std::string target; // decoded JSON pointer
        std::string loc;    // where the $ref was written, for errors
    };

    const node* resolve(const std::string& pointer, const std::string& loc) {
        if (auto it = by_location_.find(pointer); it != by_location_.end()) {
            return it->second;
        }
        json::json_pointer ptr;
        try {
            ptr = json::json_pointer(pointer);
        } catch (const json::exception&) {
            fail(loc, "$ref \"#" + pointer + "\" is not a valid JSON pointer");
        }
        if (!out_.source.contains(ptr)) {
            fail(loc, "$ref \"#" + pointer + "\" does not resolve inside this schema");
        }
        return compile(out_.source.at(ptr), pointer, false);
    }

    const node* compile_sub(const json& s, const std::string& loc, bool nested) {
        return compile(s, loc, nested);
    }

    std::vector<const node*>
    compile_array(const json& v, const std::string& loc, std::string_view kw, bool nested) {
        if (!v.is_array() || v.empty()) {
            fail(loc, std::string(kw) + " must be a non-empty array of schemas");
        }
        std::vector<const node*> out;
        for (std::size_t i = 0; i < v.size(); ++i) {
            out.push_back(compile_sub(v[i], loc + "/" + std::to_string(i), nested));
        }
        return out;
    }

    const node* compile(const json& s, const std::string& loc, bool nested) {
        node& n = out_.nodes.emplace_back();
        by_location_.emplace(loc, &n);
        if (s.is_boolean()) {
            n.boolean = s.get<bool>();
            return &n;
        }
        if (!s.is_object()) {
            fail(loc, "a schema must be an object or a boolean, got " + std::string(s.type_name()));
        }
        // A nested $id starts a new resource whose refs resolve against its own base URI; we
        // only resolve refs against the document root, so refs inside it are rejected below.
        const bool in_resource = nested || (!loc.empty() && s.contains("$id"));

        for (const auto& [kw, v] : s.items()) {
            const std::string kloc = loc + "/" + escape_token(kw);
            if (annotation_keywords.count(kw) != 0) {
                continue;
            }
            if (kw == "type") {
                n.types = parse_types(v, kloc);
            } else if (kw == "properties") {
                if (!v.is_object()) {
                    fail(kloc, "properties must be an object");
                }
                for (const auto& [name, sub] : v.items()) {
                    n.properties.emplace(
                        name, compile_sub(sub, kloc + "/" + escape_token(name), in_resource)
                    );
                }
            } else if (kw == "patternProperties") {
                if (!v.is_object()) {
                    fail(kloc, "patternProperties must be an object");
                }
                for (const auto& [re, sub] : v.items()) {
                    const std::string sloc = kloc + "/" + escape_token(re);
                    n.pattern_properties.emplace_back(
                        compile_regex(re, sloc), compile_sub(sub, sloc, in_resource)
                    );
                }
            } else if (kw == "required") {
                if (!v.is_array()) {
                    fail(kloc, "required must be an array of strings");
                }
                for (const auto& r : v) {
                    if (!r.is_string()) {
                        fail(kloc, "required must be an array of strings");
                    }
                    n.required.push_back(r.get<std::string>());
                }
            } else if (kw == "additionalProperties") {
                n.additional_properties = compile_sub(v, kloc, in_resource);
            } else if (kw == "items") {
                if (v.is_array()) {
                    // Draft-7 tuple form: positional schemas; additionalItems covers the rest.
                    for (std::size_t i = 0; i < v.size(); ++i) {
                        n.prefix_items.push_back(
                            compile_sub(v[i], kloc + "/" + std::to_string(i), in_resource)
                        );
                    }
                    if (s.contains("prefixItems")) {
                        fail(kloc, "items as an array cannot be combined with prefixItems");
                    }
                    if (const auto it = s.find("additionalItems"); it != s.end()) {
                        n.items = compile_sub(*it, loc + "/additionalItems", in_resource);
                    }
                } else {
                    n.items = compile_sub(v, kloc, in_resource);
                }
            } else if (kw == "additionalItems") {
                // Only meaningful after an array-form `items` (handled there); alone it is a no-op.
                if (!(v.is_object() || v.is_boolean())) {
                    fail(kloc, "additionalItems must be a schema");
                }
                if (!s.contains("items")) {
                    compile_sub(v, kloc, in_resource); // still checked for unsupported keywords
                }
            } else if (kw == "prefixItems") {
                n.prefix_items = compile_array(v, kloc, kw, in_resource);
            } else if (kw == "enum") {
                if (!v.is_array()) {
                    fail(kloc, "enum must be an array");
                }
                n.enum_values = v;
            } else if (kw == "const") {
                n.const_value = v;
            } else if (kw == "anyOf") {
                n.any_of = compile_array(v, kloc, kw, in_resource);
            } else if (kw == "oneOf") {
                n.one_of = compile_array(v, kloc, kw, in_resource);
            } else if (kw == "allOf") {
                n.all_of = compile_array(v, kloc, kw, in_resource);
            } else if (kw == "not") {
                n.not_ = compile_sub(v, kloc, in_resource);
            } else if (kw == "$ref") {
                parse_ref(n, v, kloc, in_resource);
            } else if (kw == "$defs" || kw == "definitions") {
                if (!v.is_object()) {
                    fail(kloc, std::string(kw) + " must be an object");
                }
                // Compiled eagerly so unsupported keywords inside are reported even if unused.
                for (const auto& [name, sub] : v.items()) {
                    compile_sub(sub, kloc + "/" + escape_token(name), in_resource);
                }
            } else if (kw == "minimum" || kw == "maximum" || kw == "exclusiveMinimum" || kw == "exclusiveMaximum") {
                if (!v.is_number()) {
                    fail(
                        kloc, kw + " must be a number (the draft-4 boolean form is not supported)"
                    );
                }
                if (kw == "minimum") {
                    n.minimum = v;
                } else if (kw == "maximum") {
                    n.maximum = v;
                } else if (kw == "exclusiveMinimum") {
                    n.exclusive_minimum = v;
                } else {
                    n.exclusive_maximum = v;
                }
            } else if (kw == "minLength") {
                n.min_length = non_negative_integer(v, kloc, kw);
            } else if (kw == "maxLength") {
                n.max_length = non_negative_integer(v, kloc, kw);
            } else if (kw == "minItems") {
                n.min_items = non_negative_integer(v, kloc, kw);
            } else if (kw == "maxItems") {
                n.max_items = non_negative_integer(v, kloc, kw);
            } else if (kw == "pattern") {
                if (!v.is_string()) {
                    fail(kloc, "pattern must be a string");
                }
                n.pattern_source = v.get<std::string>();
                n.pattern = compile_regex(n.pattern_source, kloc);
            } else {
                fail(loc, "unsupported keyword '" + kw + "'");
            }
        }
        return &n;
    }

    static regex_ptr compile_regex(const std::string& re, const std::string& loc) {
        auto r = compile_ecma_regex(re);
        if (r.unsupported) {
            fail(loc, "regex " + json(re).dump() + " cannot be used: " + r.error);
        }
        if (!r.re) {
            fail(loc, "not a valid ECMAScript regex " + json(re).dump() + ": " + r.error);
        }
        return std::move(r.re);
    }

    std::uint8_t parse_types(const json& v, const std::string& loc) {
        auto one = [&](const json& t) -> std::uint8_t {
            if (t.is_string()) {
                for (const auto& [name, bit] : type_names) {
                    if (t.get_ref<const std::string&>() == name) {
                        return bit;
                    }
                }
            }
            fail(loc, "unknown type " + t.dump());
        };
        if (v.is_string()) {
            return one(v);
        }
        if (!v.is_array() || v.empty()) {
            fail(loc, "type must be a type name or a non-empty array of type names");
        }
        std::uint8_t bits = 0;
        for (const auto& t : v) {
            bits = static_cast<std::uint8_t>(bits | one(t));
        }
        return bits;
    }

    void parse_ref(node& n, const json& v, const std::string& loc, bool in_resource) {
        if (!v.is_string()) {
            fail(loc, "$ref must be a string");
        }
        const auto& ref = v.get_ref<const std::string&>();
        if (ref.empty() || ref.front() != '#') {
            fail(loc, "$ref \"" + ref + "\" points outside this schema (remote refs unsupported)");
        }
        if (in_resource) {
            fail(loc, "$ref inside a subschema with its own $id is not supported");
        }
        auto pointer = percent_decode(std::string_view(ref).substr(1));
        if (!pointer) {
            fail(loc, "$ref \"" + ref + "\" has a bad percent-encoding");
        }
        if (!pointer->empty() && pointer->front() != '/') {
            fail(loc, "$ref \"" + ref + "\" names an anchor; only JSON pointers are supported");
        }
        pending_.push_back({&n, std::move(*pointer), loc});
    }

    compiled_schema& out_;
    std::map<std::string, node*> by_location_;
    std::deque<pending_ref> pending_;
};

// ---------------------------------------------------------------------------------------------
// Validation

constexpr int max_depth = 256;

int sign_of(bool less, bool greater) {
    return less ? -1 : (greater ? 1 : 0);
}

// Compares an integer with a double exactly (a cast of either to the other's type would round
// or, out of range, be undefined behaviour).
int compare_integer_double(const json& a, double d) {
    if (std::isnan(d)) {
        return 0;
    }
    const double whole = std::trunc(d);
    const double frac = d - whole; // same sign as d, or 0
    if (a.is_number_unsigned() || a.get<std::int64_t>() >= 0) {
        const auto x = a.get<std::uint64_t>();
        if (d < 0) {
            return 1;
        }
        if (d >= two_pow_64) {
            return -1;
        }
        const auto t = static_cast<std::uint64_t>(whole);
        return x != t ? sign_of(x<t, x> t) : (frac > 0 ? -1 : 0);
    }
    const auto x = a.get<std::int64_t>(); // negative
    if (d >= 0) {
        return -1;
    }
    if (d < minus_two_pow_63) {
        return 1;
    }
    const auto t = static_cast<std::int64_t>(whole);
    return x != t ? sign_of(x<t, x> t) : (frac < 0 ? 1 : 0);
}

// Compares two JSON numbers exactly.
int compare_numbers(const json& a, const json& b) {
    if (a.is_number_integer() && b.is_number_integer()) {
        const bool a_neg = !a.is_number_unsigned() && a.get<std::int64_t>() < 0;
        const bool b_neg = !b.is_number_unsigned() && b.get<std::int64_t>() < 0;
        if (a_neg != b_neg) {
            return a_neg ? -1 : 1;
        }
        if (a_neg) {
            const auto x = a.get<std::int64_t>();
            const auto y = b.get<std::int64_t>();
            return sign_of(x<y, x> y);
        }
        const auto x = a.get<std::uint64_t>();
        const auto y = b.get<std::uint64_t>();
        return sign_of(x<y, x> y);
    }
    if (a.is_number_integer()) {
        return compare_integer_double(a, b.get<double>());
    }
    if (b.is_number_integer()) {
        return -compare_integer_double(b, a.get<double>());
    }
    const double x = a.get<double>();
    const double y = b.get<double>();
    return sign_of(x<y, x> y);
}

bool is_whole_double(double d) {
    return std::isfinite(d) && std::floor(d) == d;
}

// An integer is a number without a fractional part that a handler can hold in 64 bits
// (int64_t or uint64_t): 1e30 is not, so converting an "integer" argument is never undefined.
bool is_integral(const json& v) {
    if (v.is_number_integer()) {
        return true;
    }
    if (v.is_number_float()) {
        const double d = v.get<double>();
        return is_whole_double(d) && d >= minus_two_pow_63 && d < two_pow_64;
    }
    return false;
}

std::string types_to_string(std::uint8_t bits) {
    std::string out;
    std::size_t count = 0;
    for (const auto& [name, bit] : type_names) {
        if ((bits & bit) != 0) {
            out += (count++ == 0 ? "" : ", ");
            out += name;
        }
    }
    return count == 1 ? out : "one of [" + out + "]";
}

std::string value_type_name(const json& v) {
    if (v.is_number()) {
        return is_integral(v) ? "integer" : "number";
    }
    return v.type_name();
}

std::string short_dump(const json& v, std::size_t limit = 120) {
    std::string s = v.dump(-1, ' ', false, json::error_handler_t::replace);
    if (s.size() > limit) {
        utf8::truncate_at_boundary(s, limit);
        s += "...";
    }
    return s;
}

class validator {
public:
    validator(std::vector<validation_error>* sink, std::size_t max_errors)
        : sink_(sink), max_errors_(max_errors) {}

    bool check(const node& n, const json& v, int depth) {
        if (depth > max_depth) {
            report(
                "schema recursion too deep (more than " + std::to_string(max_depth) + " levels)"
            );
            return false;
        }
        if (n.boolean) {
            if (!*n.boolean) {
                report("no value is allowed here");
            }
            return *n.boolean;
        }
        bool ok = true;
        // Each failing keyword either returns early (boolean mode) or records and continues.
        auto failed = [&](std::string msg) {
            ok = false;
            report(std::move(msg));
            return collecting();
        };

        if (n.types != 0 && !type_matches(n.types, v)) {
            std::string got = value_type_name(v);
            if ((n.types & t_integer) != 0 && v.is_number_float() &&
                is_whole_double(v.get<double>())) {
                got += " (" + v.dump() + " is an integer too large for 64 bits)";
            }
            if (!failed("expected " + types_to_string(n.types) + ", got " + got)) {
                return false;
            }
        }
        if (n.enum_values) {
            bool found = false;
            for (const auto& e : *n.enum_values) {
                if (e == v) {
                    found = true;
                    break;
                }
            }
            if (!found && !failed("value must be one of " + short_dump(*n.enum_values))) {
                return false;
            }
        }
        if (n.const_value && !(*n.const_value == v) &&
            !failed("value must be " + short_dump(*n.const_value))) {
            return false;
        }
        if (v.is_number()) {
            if (n.minimum && compare_numbers(v, *n.minimum) < 0 &&
                !failed("must be >= " + n.minimum->dump() + ", got " + v.dump())) {
                return false;
            }
            if (n.maximum && compare_numbers(v, *n.maximum) > 0 &&
                !failed("must be <= " + n.maximum->dump() + ", got " + v.dump())) {
                return false;
            }
            if (n.exclusive_minimum && compare_numbers(v, *n.exclusive_minimum) <= 0 &&
                !failed("must be > " + n.exclusive_minimum->dump() + ", got " + v.dump())) {
                return false;
            }
            if (n.exclusive_maximum && compare_numbers(v, *n.exclusive_maximum) >= 0 &&
                !failed("must be < " + n.exclusive_maximum->dump() + ", got " + v.dump())) {
                return false;
            }
        }
        if (v.is_string()) {
            const auto& s = v.get_ref<const std::string&>();
            if (n.min_length || n.max_length) {
                const std::size_t len = utf8::count_code_points(s);
                if (n.min_length && len < *n.min_length &&
                    !failed(
                        "string must be at least " + std::to_string(*n.min_length) +
                        " characters long, got " + std::to_string(len)
                    )) {
                    return false;
                }
                if (n.max_length && len > *n.max_length &&
                    !failed(
                        "string must be at most " + std::to_string(*n.max_length) +
                        " characters long, got " + std::to_string(len)
                    )) {
                    return false;
                }
            }
            if (n.pattern && !regex_search(*n.pattern, s) &&
                !failed("string does not match pattern " + json(n.pattern_source).dump())) {
                return false;
            }
        }
        if (v.is_object() && !check_object(n, v, depth, ok)) {
            return false;
        }
        if (v.is_array() && !check_array(n, v, depth, ok)) {
            return false;
        }
        if (!check_combinators(n, v, depth, ok)) {
            return false;
        }
        if (n.ref != nullptr && !check(*n.ref, v, depth + 1)) {
            ok = false;
            if (!collecting()) {
                return false;
            }
        }
        return ok;
    }

private:
    bool collecting() const { return sink_ != nullptr && sink_->size() < max_errors_; }

    void report(std::string msg) {
        if (sink_ != nullptr && sink_->size() < max_errors_) {
            sink_->push_back({path_, std::move(msg)});
        }
    }

    static bool type_matches(std::uint8_t types, const json& v) {
        switch (v.type()) {
        case json::value_t::null:
            return (types & t_null) != 0;
        case json::value_t::boolean:
            return (types & t_boolean) != 0;
        case json::value_t::object:
            return (types & t_object) != 0;
        case json::value_t::array:
            return (types & t_array) != 0;
        case json::value_t::string:
            return (types & t_string) != 0;
        case json::value_t::number_integer:
        case json::value_t::number_unsigned:
        case json::value_t::number_float:
            return (types & t_number) != 0 || ((types & t_integer) != 0 && is_integral(v));
        default:
            return false;
        }
    }

    // Runs `sub` on `v` with path extended by `token`. Returns false if invalid.
    bool check_child(const node& sub, const json& v, const std::string& token, int depth) {
        const std::size_t len = path_.size();
        path_ += '/';
        path_ += escape_token(token);
        const bool r = check(sub, v, depth + 1);
        path_.resize(len);
        return r;
    }

    bool check_object(const node& n, const json& v, int depth, bool& ok) {
        for (const auto& r : n.required) {
            if (!v.contains(r)) {
                ok = false;
                report("missing required property " + json(r).dump());
                if (!collecting()) {
                    return false;
                }
            }
        }
        for (const auto& [key, value] : v.items()) {
            bool matched = false;
            if (auto it = n.properties.find(key); it != n.properties.end()) {
                matched = true;
                if (!check_child(*it->second, value, key, depth)) {
                    ok = false;
                    if (!collecting()) {
                        return false;
                    }
                }
            }
            for (const auto& [re, sub] : n.pattern_properties) {
                if (!regex_search(*re, key)) {
                    continue;
                }
                matched = true;
                if (!check_child(*sub, value, key, depth)) {
                    ok = false;
                    if (!collecting()) {
                        return false;
                    }
                }
            }
            if (matched) {
                continue;
            }
            if (n.additional_properties != nullptr) {
                const node& ap = *n.additional_properties;
                if (ap.boolean && !*ap.boolean) {
                    // Friendlier than "no value is allowed here" on the property itself.
                    ok = false;
                    std::string allowed;
                    for (const auto& [name, unused] : n.properties) {
                        allowed += (allowed.empty() ? "" : ", ") + name;
                    }
                    report(
                        "unexpected property " + json(key).dump() +
                        (allowed.empty() ? std::string(" (no properties are allowed)")
                                         : " (allowed: " + allowed + ")")
                    );
                    if (!collecting()) {
                        return false;
                    }
                } else if (!check_child(ap, value, key, depth)) {
                    ok = false;
                    if (!collecting()) {
                        return false;
                    }
                }
            }
        }
        return true;
    }

    bool check_array(const node& n, const json& v, int depth, bool& ok) {
        if (n.min_items && v.size() < *n.min_items) {
            ok = false;
            report(
                "array must have at least " + std::to_string(*n.min_items) + " items, got " +
                std::to_string(v.size())
            );
            if (!collecting()) {
                return false;
            }
        }
        if (n.max_items && v.size() > *n.max_items) {
            ok = false;
            report(
                "array must have at most " + std::to_string(*n.max_items) + " items, got " +
                std::to_string(v.size())
            );
            if (!collecting()) {
                return false;
            }
        }
        for (std::size_t i = 0; i < v.size(); ++i) {
            const node* sub = i < n.prefix_items.size() ? n.prefix_items[i] : n.items;
            if (sub != nullptr && !check_child(*sub, v[i], std::to_string(i), depth)) {
                ok = false;
                if (!collecting()) {
                    return false;
                }
            }
        }
        return true;
    }

    // Validates `v` against `sub` in a private sink so alternatives do not pollute the report.
    bool try_alternative(
        const node& sub, const json& v, int depth, std::vector<validation_error>* errs
    ) {
        validator inner(errs, errs != nullptr ? 3 : 0);
        inner.path_ = path_;
        return inner.check(sub, v, depth + 1);
    }

    static std::string summarise(const std::vector<std::vector<validation_error>>& per_alt) {
        std::string out;
        for (std::size_t i = 0; i < per_alt.size(); ++i) {
            out += (i == 0 ? " (" : "; ");
            out += "option " + std::to_string(i) + ": ";
            for (std::size_t j = 0; j < per_alt[i].size(); ++j) {
                out += (j == 0 ? "" : ", ") + per_alt[i][j].to_string();
            }
        }
        return per_alt.empty() ? out : out + ")";
    }

    bool check_combinators(const node& n, const json& v, int depth, bool& ok) {
        for (const node* sub : n.all_of) {
            if (!check(*sub, v, depth + 1)) {
                ok = false;
                if (!collecting()) {
                    return false;
                }
            }
        }
        if (!n.any_of.empty()) {
            bool any = false;
            std::vector<std::vector<validation_error>> per_alt;
            for (const node* sub : n.any_of) {
                auto* errs = sink_ != nullptr ? &per_alt.emplace_back() : nullptr;
                if (try_alternative(*sub, v, depth, errs)) {
                    any = true;
                    break;
                }
            }
            if (!any) {
                ok = false;
                report("value matches none of the anyOf options" + summarise(per_alt));
                if (!collecting()) {
                    return false;
                }
            }
        }
        if (!n.one_of.empty()) {
            std::size_t matches = 0;
            std::vector<std::size_t> matched;
            std::vector<std::vector<validation_error>> per_alt;
            for (std::size_t i = 0; i < n.one_of.size(); ++i) {
                auto* errs = sink_ != nullptr ? &per_alt.emplace_back() : nullptr;
                if (try_alternative(*n.one_of[i], v, depth, errs)) {
                    ++matches;
                    matched.push_back(i);
                }
            }
            if (matches != 1) {
                ok = false;
                if (matches == 0) {
                    report("value matches none of the oneOf options" + summarise(per_alt));
                } else {
                    std::string which;
                    for (auto i : matched) {
                        which += (which.empty() ? "" : ", ") + std::to_string(i);
                    }
                    report("value matches more than one oneOf option (options " + which + ")");
                }
                if (!collecting()) {
                    return false;
                }
            }
        }
        if (n.not_ != nullptr && try_alternative(*n.not_, v, depth, nullptr)) {
            ok = false;
            report("value must not match the schema under \"not\"");
            if (!collecting()) {
                return false;
            }
        }
        return true;
    }

    std::vector<validation_error>* sink_;
    std::size_t max_errors_;
    std::string path_;
};

} // namespace
} // namespace detail

std::string validation_error::to_string() const {
    return (path.empty() ? std::string("(root)") : path) + ": " + message;
}

std::ostream& operator<<(std::ostream& os, const validation_error& e) {
    return os << e.to_string();
}

schema::schema() : schema(schema::compile(json(true))) {}

schema::schema(std::shared_ptr<const detail::compiled_schema> impl) : impl_(std::move(impl)) {}

schema schema::compile(const json& doc) {
    auto impl = std::make_shared<detail::compiled_schema>();
    impl->source = doc;
    detail::compiler(*impl).run();
    return schema(std::move(impl));
}

std::vector<validation_error> schema::validate(const json& instance, std::size_t max_errors) const {
    std::vector<validation_error> errors;
    if (max_errors == 0) {
        max_errors = 1;
    }
    detail::validator(&errors, max_errors).check(*impl_->root, instance, 0);
    return errors;
}

bool schema::is_valid(const json& instance) const {
    return detail::validator(nullptr, 0).check(*impl_->root, instance, 0);
}

const json& schema::source() const noexcept {
    return impl_->source;
}

} // namespace wafer::tools
