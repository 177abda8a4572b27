// A JSON Schema validator for tool arguments, compiled once at registration.
#pragma once

#include <nlohmann/json.hpp>

#include <cstddef>
#include <memory>
#include <ostream>
#include <stdexcept>
#include <string>
#include <vector>

namespace wafer::tools {

namespace detail {
struct compiled_schema;
} // namespace detail

/// A schema that cannot be compiled: malformed, or using a keyword the validator does not
/// support. `what()` starts with the schema location, e.g. "/properties/x: unsupported keyword
/// 'patternProperties'".
class schema_error : public std::invalid_argument {
public:
    using std::invalid_argument::invalid_argument;
};

/// One violation found in an instance.
struct validation_error {
    /// JSON pointer into the instance ("" is the whole value), e.g. "/items/0/name".
    std::string path;
    /// What is wrong, e.g. "expected string, got number".
    std::string message;

    /// "<path>: <message>", with "(root)" for the empty path.
    std::string to_string() const;
};

std::ostream& operator<<(std::ostream& os, const validation_error& e);

/// A compiled JSON Schema.
///
/// The supported vocabulary (2020-12 semantics; also checked against the draft-7 suite):
/// boolean schemas, `type` (string or array), `properties`, `patternProperties`, `required`,
/// `additionalProperties`, `items` (schema, or the draft-7 array form), `prefixItems`,
/// `additionalItems`, `enum`, `const`, `anyOf`, `oneOf`, `allOf`, `not`, `$ref` (same-document JSON
/// pointers such as
/// "#", "#/$defs/x", "#/definitions/x"), `$defs`/`definitions`, `minimum`, `maximum`,
/// `exclusiveMinimum`, `exclusiveMaximum` (numeric form), `minLength`, `maxLength`, `minItems`,
/// `maxItems`, `pattern`. Annotation-only keywords are accepted and ignored: `title`,
/// `description`, `default`, `examples`, `$schema`, `$id`, `$comment`, `format` (annotation, as
/// in 2020-12), `deprecated`, `readOnly`, `writeOnly`, `contentMediaType`, `contentEncoding`.
/// Any other keyword makes compile() throw: nothing is silently ignored.
///
/// Semantics worth knowing:
/// - `$ref` applies together with its sibling keywords (2020-12), unlike draft 7.
/// - `$ref` to another document, to an `$anchor`, or from inside a nested `$id` resource is
///   rejected at compile time.
/// - `minLength`/`maxLength` count Unicode code points of the UTF-8 text.
/// - `pattern` and `patternProperties` are ECMA-262 regexes run by RE2 (matching time linear in
///   the input, no recursion): unanchored search over UTF-8 code points, `\uXXXX` understood.
///   Lookahead, lookbehind and backreferences, which RE2 cannot run without backtracking, make
///   compile() throw a schema_error that names the construct.
/// - `type: "integer"` accepts a number without a fractional part (1.0, 1e3) only if it fits
///   64 bits (int64_t or uint64_t), so handlers can convert it; 1e30 is a number, not an
///   integer. Length and item bounds beyond std::size_t (`maxLength: 1e30`) saturate.
/// - Numbers compare exactly, integers with doubles included (2^53 + 1 > 2^53 as a double).
///
/// Thread safety: a compiled schema is immutable; validate() may run concurrently.
class schema {
public:
    /// The schema `true`: accepts everything.
    schema();

    /// Compiles `doc`. Errors: throws schema_error (see above).
    static schema compile(const nlohmann::json& doc);

    /// Validates `instance`; returns the violations found (empty if valid), at most `max_errors`.
    std::vector<validation_error>
    validate(const nlohmann::json& instance, std::size_t max_errors = 16) const;

    /// Shorthand for validate(...).empty(), but stops at the first violation.
    bool is_valid(const nlohmann::json& instance) const;

    /// The JSON the schema was compiled from.
    const nlohmann::json& source() const noexcept;

private:
    explicit schema(std::shared_ptr<const detail::compiled_schema> impl);
    std::shared_ptr<const detail::compiled_schema> impl_;
};

} // namespace wafer::tools
