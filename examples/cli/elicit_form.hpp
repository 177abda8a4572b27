// The form of an MCP elicitation (elicitation/create, form mode) as the CLI asks it on a terminal,
// sans-io: the fields read from the server's `requestedSchema`, the question shown for each, one
// typed answer parsed and checked against its property, and the content sent back. Everything
// shown comes from the server and is escaped (visible.hpp). The terminal I/O is elicit.cpp.
#pragma once

#include <wafer/tools/schema.hpp>

#include <nlohmann/json.hpp>

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace wafer::cli {

/// At most this many fields in a form; a schema with more is refused (nobody answers 10,000
/// questions, and a server must not keep the terminal forever).
inline constexpr std::size_t max_form_fields = 64;

enum class field_kind { string, number, integer, boolean, choice };

/// One property of the requested schema.
struct form_field {
    /// The property's name as the server sent it: the key of its value in the content.
    std::string name;
    /// Shown: its title (else its name), escaped and shortened.
    std::string label;
    /// Shown: its description, escaped and shortened (empty without one).
    std::string description;
    field_kind kind = field_kind::string;
    bool required = false;
    /// field_kind::choice: the values (strings) and what is shown for each (escaped).
    std::vector<std::string> choices;
    std::vector<std::string> choice_labels;
    /// field_kind::string: "email", "uri", "date" or "date-time" (checked), else empty.
    std::string format;
    /// The value an empty answer takes (SEP-1034 default, elicitation_defaults()).
    std::optional<nlohmann::json> default_value;
    /// The property's constraints (type, enum, lengths, pattern, bounds), compiled.
    tools::schema check;
};

/// The fields of a requested schema, or why it cannot be asked.
struct form {
    std::vector<form_field> fields;
    /// Properties left out: optional ones of a kind a terminal form cannot ask (arrays,
    /// objects), each "name: why" (escaped).
    std::vector<std::string> skipped;
    /// Non-empty: the form cannot be asked (not an object, too many fields, a required field
    /// that cannot be asked); escaped, for one line.
    std::string error;
};

/// Reads the fields of `requested_schema` (untrusted: anything may come), in the order of their
/// names (the JSON object as parsed keeps no order).
form form_from_schema(const nlohmann::json& requested_schema);

/// The question shown for `f`: its label, what it takes, "required", its default; e.g.
/// `age (integer, required) [42]: `.
std::string field_question(const form_field& f);

/// What one typed line means for a field.
struct field_answer {
    enum class kind {
        /// `value` is the field's value.
        value,
        /// Left empty: no value (an optional field without a default).
        omitted,
        /// Not acceptable: `problem` says why (shown, then the field is asked again).
        invalid,
    } type = kind::invalid;
    nlohmann::json value;
    std::string problem;
};

/// Parses `line` (without its newline) as the answer for `f`: empty takes the default (or
/// omits an optional field; a required one is asked again); strings as typed (valid UTF-8, no
/// control characters), numbers and integers in decimal, booleans as y/yes/true/1 or
/// n/no/false/0, a choice by its value or its number in the list; then the property's own
/// constraints.
field_answer parse_field_answer(const form_field& f, std::string_view line);

/// What the user does with the filled form.
enum class form_action { accept, decline, cancel };

/// "a"/"accept", "d"/"decline", "c"/"cancel" (any case, surrounding blanks ignored); nullopt
/// for anything else (asked again).
std::optional<form_action> parse_form_action(std::string_view line);

/// The elicitation result for `action`: accept carries `content` (the answered fields).
nlohmann::json form_result(form_action action, const nlohmann::json& content);

/// One line showing the content before it is sent, escaped: `name="Ada", age=36`.
std::string content_summary(const form& f, const nlohmann::json& content);

} // namespace wafer::cli
