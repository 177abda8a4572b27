#include "elicit_form.hpp"

#include <wafer/tools/mcp/elicitation.hpp>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <system_error>

#include "visible.hpp"

namespace wafer::cli {

using nlohmann::json;

namespace {

constexpr std::size_t label_limit = 80;
constexpr std::size_t description_limit = 200;

std::string shown(const std::string& s, std::size_t limit) {
    return visible(shortened(s, limit));
}

std::string_view trimmed(std::string_view s) {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) {
        s.remove_prefix(1);
    }
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r')) {
        s.remove_suffix(1);
    }
    return s;
}

std::string lowered(std::string_view s) {
    std::string out(s);
    for (char& c : out) {
        if (c >= 'A' && c <= 'Z') {
            c = static_cast<char>(c - 'A' + 'a');
        }
    }
    return out;
}

bool is_digit(char c) {
    return c >= '0' && c <= '9';
}

bool digits(std::string_view s, std::size_t at, std::size_t n) {
    if (at + n > s.size()) {
        return false;
    }
    return std::all_of(
        s.begin() + static_cast<std::ptrdiff_t>(at),
        s.begin() + static_cast<std::ptrdiff_t>(at + n),
        is_digit
    );
}

int number_at(std::string_view s, std::size_t at, std::size_t n) {
    int v = 0;
    for (std::size_t i = at; i < at + n; ++i) {
        v = v * 10 + (s[i] - '0');
    }
    return v;
}

// YYYY-MM-DD at the start of `s`, a real day.
bool is_date(std::string_view s) {
    if (s.size() < 10 || !digits(s, 0, 4) || s[4] != '-' || !digits(s, 5, 2) || s[7] != '-' ||
        !digits(s, 8, 2)) {
        return false;
    }
    const int y = number_at(s, 0, 4);
    const int m = number_at(s, 5, 2);
    const int d = number_at(s, 8, 2);
    static constexpr int days[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (m < 1 || m > 12 || d < 1) {
        return false;
    }
    const bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    return d <= days[m - 1] + (m == 2 && leap ? 1 : 0);
}

// RFC 3339 date-time: 2026-12-04T20:15:00Z, with fractions and offsets.
bool is_date_time(std::string_view s) {
    if (!is_date(s) || s.size() < 20 || (s[10] != 'T' && s[10] != 't') || !digits(s, 11, 2) ||
        s[13] != ':' || !digits(s, 14, 2) || s[16] != ':' || !digits(s, 17, 2)) {
        return false;
    }
    if (number_at(s, 11, 2) > 23 || number_at(s, 14, 2) > 59 || number_at(s, 17, 2) > 60) {
        return false;
    }
    std::size_t i = 19;
    if (i < s.size() && s[i] == '.') {
        const std::size_t start = ++i;
        while (i < s.size() && is_digit(s[i])) {
            ++i;
        }
        if (i == start) {
            return false;
        }
    }
    const std::string_view zone = s.substr(i);
    if (zone == "Z" || zone == "z") {
        return true;
    }
    return zone.size() == 6 && (zone[0] == '+' || zone[0] == '-') && digits(zone, 1, 2) &&
           zone[3] == ':' && digits(zone, 4, 2) && number_at(zone, 1, 2) <= 23 &&
           number_at(zone, 4, 2) <= 59;
}

bool is_email(std::string_view s) {
    const auto at = s.find('@');
    if (at == std::string_view::npos || at == 0 || at + 1 >= s.size() ||
        s.find('@', at + 1) != std::string_view::npos) {
        return false;
    }
    return std::none_of(s.begin(), s.end(), [](char c) { return c == ' ' || c == '\t'; });
}

bool is_uri(std::string_view s) {
    const auto colon = s.find(':');
    if (colon == std::string_view::npos || colon == 0 || colon + 1 >= s.size()) {
        return false;
    }
    const auto alpha = [](char c) {
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
    };
    if (!alpha(s[0])) {
        return false;
    }
    for (std::size_t i = 1; i < colon; ++i) {
        const char c = s[i];
        if (!alpha(c) && !is_digit(c) && c != '+' && c != '-' && c != '.') {
            return false;
        }
    }
    return std::none_of(s.begin(), s.end(), [](char c) { return c == ' ' || c == '\t'; });
}

// Why `s` does not have `format`; empty if it does.
std::string format_problem(const std::string& format, std::string_view s) {
    if (format == "email" && !is_email(s)) {
        return "not an email address (name@example.com)";
    }
    if (format == "uri" && !is_uri(s)) {
        return "not a URI (https://example.com/...)";
    }
    if (format == "date" && (s.size() != 10 || !is_date(s))) {
        return "not a date (YYYY-MM-DD)";
    }
    if (format == "date-time" && !is_date_time(s)) {
        return "not a date and time (YYYY-MM-DDTHH:MM:SSZ)";
    }
    return {};
}

// The kind of a property, or why a terminal form cannot ask it.
struct kind_of {
    std::optional<field_kind> kind;
    std::string why;
};

// The string choices of `prop` (enum, or oneOf of {const, title}); false if it has neither or
// they are not all strings.
bool read_choices(const json& prop, form_field& f, std::string& why) {
    if (const auto e = prop.find("enum"); e != prop.end()) {
        if (!e->is_array() || e->empty() ||
            !std::all_of(e->begin(), e->end(), [](const json& v) { return v.is_string(); })) {
            why = "its enum is not a list of strings";
            return false;
        }
        const auto names = prop.find("enumNames"); // the legacy titles
        const bool titled = names != prop.end() && names->is_array() && names->size() == e->size();
        for (std::size_t i = 0; i < e->size(); ++i) {
            f.choices.push_back((*e)[i].get<std::string>());
            const json& t = titled ? (*names)[i] : (*e)[i];
            f.choice_labels.push_back(
                shown(t.is_string() ? t.get<std::string>() : f.choices.back(), label_limit)
            );
        }
        return true;
    }
    const auto one = prop.find("oneOf");
    if (one == prop.end()) {
        return false;
    }
    if (!one->is_array() || one->empty()) {
        why = "its oneOf is not a list of choices";
        return false;
    }
    for (const auto& option : *one) {
        const auto c = option.is_object() ? option.find("const") : option.end();
        if (c == option.end() || !c->is_string()) {
            why = "its oneOf is not a list of string constants";
            return false;
        }
        f.choices.push_back(c->get<std::string>());
        const auto t = option.find("title");
        f.choice_labels.push_back(shown(
            t != option.end() && t->is_string() ? t->get<std::string>() : f.choices.back(),
            label_limit
        ));
    }
    return true;
}

// The constraints of `prop` that the answer is checked against, as a schema wafer compiles.
json constraints(const json& prop, const form_field& f) {
    json c = json::object();
    switch (f.kind) {
    case field_kind::string:
    case field_kind::choice:
        c["type"] = "string";
        break;
    case field_kind::number:
        c["type"] = "number";
        break;
    case field_kind::integer:
        c["type"] = "integer";
        break;
    case field_kind::boolean:
        c["type"] = "boolean";
        break;
    }
    if (f.kind == field_kind::choice) {
        c["enum"] = f.choices;
    }
    const auto copy = [&](const char* key, bool numeric) {
        const auto it = prop.find(key);
        if (it != prop.end() && (numeric ? it->is_number() : it->is_string())) {
            c[key] = *it;
        }
    };
    if (f.kind == field_kind::string) {
        copy("minLength", true);
        copy("maxLength", true);
        copy("pattern", false);
    }
    if (f.kind == field_kind::number || f.kind == field_kind::integer) {
        for (const char* key : {"minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"}) {
            copy(key, true);
        }
    }
    return c;
}

// Reads one property into `f`; false (with `why`) if a terminal form cannot ask it.
bool read_field(const json& prop, form_field& f, std::string& why) {
    if (!prop.is_object()) {
        why = "its schema is not an object";
        return false;
    }
    const auto t = prop.find("type");
    const std::string type = t != prop.end() && t->is_string() ? t->get<std::string>() : "";
    if (type == "string" || (type.empty() && (prop.contains("enum") || prop.contains("oneOf")))) {
        f.kind = field_kind::string;
        if (read_choices(prop, f, why)) {
            f.kind = field_kind::choice;
        } else if (!why.empty()) {
            return false;
        } else if (type.empty()) {
            why = "it has no type";
            return false;
        }
    } else if (type == "number") {
        f.kind = field_kind::number;
    } else if (type == "integer") {
        f.kind = field_kind::integer;
    } else if (type == "boolean") {
        f.kind = field_kind::boolean;
    } else {
        why =
            type.empty() ? "it has no type" : "its type " + type + " cannot be asked on a terminal";
        return false;
    }
    if (const auto title = prop.find("title"); title != prop.end() && title->is_string() &&
                                               !title->get_ref<const std::string&>().empty()) {
        f.label = shown(title->get<std::string>(), label_limit);
    } else {
        f.label = shown(f.name, label_limit);
    }
    if (const auto d = prop.find("description"); d != prop.end() && d->is_string()) {
        f.description = shown(d->get<std::string>(), description_limit);
    }
    if (f.kind == field_kind::string) {
        if (const auto fm = prop.find("format"); fm != prop.end() && fm->is_string()) {
            const auto& name = fm->get_ref<const std::string&>();
            if (name == "email" || name == "uri" || name == "date" || name == "date-time") {
                f.format = name;
            }
        }
    }
    try {
        f.check = tools::schema::compile(constraints(prop, f));
    } catch (const tools::schema_error& e) {
        why = std::string("its constraints cannot be checked (") + e.what() + ")";
        return false;
    }
    return true;
}

// Whether `v` is acceptable for `f` (its constraints and format).
std::string value_problem(const form_field& f, const json& v) {
    if (f.kind == field_kind::string && v.is_string() && !f.format.empty()) {
        if (std::string p = format_problem(f.format, v.get_ref<const std::string&>()); !p.empty()) {
            return p;
        }
    }
    const auto errors = f.check.validate(v, 1);
    if (!errors.empty()) {
        return visible(shortened(errors.front().message, 200));
    }
    return {};
}

std::string shown_value(const form_field& f, const json& v) {
    if (f.kind == field_kind::boolean && v.is_boolean()) {
        return v.get<bool>() ? "yes" : "no";
    }
    if (v.is_string()) {
        return visible(shortened(v.get<std::string>(), label_limit));
    }
    return visible(v.dump(-1, ' ', false, json::error_handler_t::replace));
}

} // namespace

form form_from_schema(const json& requested_schema) {
    form out;
    if (!requested_schema.is_object()) {
        out.error = "the requested schema is not an object";
        return out;
    }
    if (const auto t = requested_schema.find("type");
        t != requested_schema.end() && *t != json("object")) {
        out.error = "the requested schema is not of type object";
        return out;
    }
    const auto props = requested_schema.find("properties");
    if (props == requested_schema.end()) {
        return out; // a form without fields: accept or decline
    }
    if (!props->is_object()) {
        out.error = "its properties are not an object";
        return out;
    }
    if (props->size() > max_form_fields) {
        out.error = "the form has " + std::to_string(props->size()) + " fields (at most " +
                    std::to_string(max_form_fields) + " are asked)";
        return out;
    }
    std::vector<std::string> required;
    if (const auto r = requested_schema.find("required");
        r != requested_schema.end() && r->is_array()) {
        for (const auto& name : *r) {
            if (name.is_string()) {
                required.push_back(name.get<std::string>());
            }
        }
    }
    const json defaults = tools::mcp::elicitation_defaults(requested_schema);
    for (const auto& [name, prop] : props->items()) {
        form_field f;
        f.name = name;
        f.required = std::find(required.begin(), required.end(), name) != required.end();
        std::string why;
        if (!read_field(prop, f, why)) {
            const std::string line = visible(shortened(name, label_limit)) + ": " + visible(why);
            if (f.required) {
                out.error = "required field " + line;
                out.fields.clear();
                return out;
            }
            out.skipped.push_back(line);
            continue;
        }
        if (const auto d = defaults.find(name);
            d != defaults.end() && f.check.is_valid(*d) &&
            (!d->is_string() || f.format.empty() ||
             format_problem(f.format, d->get<std::string>()).empty())) {
            f.default_value = *d;
        }
        out.fields.push_back(std::move(f));
    }
    return out;
}

std::string field_question(const form_field& f) {
    std::string out;
    if (!f.description.empty()) {
        out += "  " + f.description + "\n";
    }
    out += "  " + f.label + " (";
    switch (f.kind) {
    case field_kind::string:
        out += f.format.empty() ? "text" : f.format;
        break;
    case field_kind::number:
        out += "number";
        break;
    case field_kind::integer:
        out += "integer";
        break;
    case field_kind::boolean:
        out += "yes/no";
        break;
    case field_kind::choice:
        out += "one of";
        for (std::size_t i = 0; i < f.choices.size(); ++i) {
            out += (i ? ", " : " ") + std::to_string(i + 1) + " " + f.choice_labels[i];
        }
        break;
    }
    if (f.required) {
        out += ", required";
    }
    out += ")";
    if (f.default_value) {
        out += " [" + shown_value(f, *f.default_value) + "]";
    }
    return out + ": ";
}

field_answer parse_field_answer(const form_field& f, std::string_view line) {
    field_answer a;
    if (!line.empty() && line.back() == '\r') {
        line.remove_suffix(1);
    }
    const std::string_view word = trimmed(line);
    const bool empty = f.kind == field_kind::string ? line.empty() : word.empty();
    if (empty) {
        if (f.default_value) {
            a.type = field_answer::kind::value;
            a.value = *f.default_value;
        } else if (f.required) {
            a.problem = "required: type a value";
        } else {
            a.type = field_answer::kind::omitted;
        }
        return a;
    }
    json v;
    switch (f.kind) {
    case field_kind::string:
        if (visible(line) != line) {
            a.problem = "control characters or invalid UTF-8 are not accepted";
            return a;
        }
        v = std::string(line);
        break;
    case field_kind::integer: {
        std::string_view digits_part = word;
        if (!digits_part.empty() && digits_part.front() == '+') {
            digits_part.remove_prefix(1);
        }
        std::int64_t n = 0;
        const auto [end, ec] =
            std::from_chars(digits_part.data(), digits_part.data() + digits_part.size(), n);
        if (ec == std::errc::result_out_of_range) {
            a.problem = "too large for an integer";
            return a;
        }
        if (ec != std::errc() || end != digits_part.data() + digits_part.size() ||
            digits_part.empty() || digits_part.front() == '+') {
            a.problem = "not an integer";
            return a;
        }
        v = n;
        break;
    }
    case field_kind::number: {
        std::string_view text = word;
        if (!text.empty() && text.front() == '+') {
            text.remove_prefix(1);
        }
        const bool plain = !text.empty() && std::all_of(text.begin(), text.end(), [](char c) {
            return is_digit(c) || c == '-' || c == '.' || c == 'e' || c == 'E' || c == '+';
        });
        double d = 0;
        const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), d);
        if (!plain || ec != std::errc() || end != text.data() + text.size() || !std::isfinite(d)) {
            a.problem = "not a number";
            return a;
        }
        v = d;
        break;
    }
    case field_kind::boolean: {
        const std::string w = lowered(word);
        if (w == "y" || w == "yes" || w == "true" || w == "1") {
            v = true;
        } else if (w == "n" || w == "no" || w == "false" || w == "0") {
            v = false;
        } else {
            a.problem = "answer yes or no";
            return a;
        }
        break;
    }
    case field_kind::choice: {
        const auto it = std::find(f.choices.begin(), f.choices.end(), word);
        if (it != f.choices.end()) {
            v = *it;
            break;
        }
        std::size_t n = 0;
        const auto [end, ec] = std::from_chars(word.data(), word.data() + word.size(), n);
        if (ec == std::errc() && end == word.data() + word.size() && n >= 1 &&
            n <= f.choices.size()) {
            v = f.choices[n - 1];
            break;
        }
        a.problem = "choose 1 to " + std::to_string(f.choices.size()) + " (or type the value)";
        return a;
    }
    }
    if (std::string p = value_problem(f, v); !p.empty()) {
        a.problem = std::move(p);
        return a;
    }
    a.type = field_answer::kind::value;
    a.value = std::move(v);
    return a;
}

std::optional<form_action> parse_form_action(std::string_view line) {
    const std::string w = lowered(trimmed(line));
    if (w == "a" || w == "accept") {
        return form_action::accept;
    }
    if (w == "d" || w == "decline") {
        return form_action::decline;
    }
    if (w == "c" || w == "cancel") {
        return form_action::cancel;
    }
    return std::nullopt;
}

json form_result(form_action action, const json& content) {
    switch (action) {
    case form_action::accept:
        return tools::mcp::elicitation_answer(
            "accept", content.is_object() ? content : json::object()
        );
    case form_action::decline:
        return tools::mcp::elicitation_answer("decline");
    case form_action::cancel:
        break;
    }
    return tools::mcp::elicitation_answer("cancel");
}

std::string content_summary(const form& f, const json& content) {
    std::string out;
    for (const auto& field : f.fields) {
        const auto it = content.find(field.name);
        if (it == content.end()) {
            continue;
        }
        out += (out.empty() ? "" : ", ") + visible(shortened(field.name, label_limit)) + "=";
        out += it->is_string() ? "\"" + shown_value(field, *it) + "\"" : shown_value(field, *it);
    }
    return out.empty() ? "(nothing)" : out;
}

} // namespace wafer::cli
