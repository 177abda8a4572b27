// A critic's verdict: the decision, its reasons, and the JSON Schema critics answer with.
#pragma once

#include <wafer/event.hpp>

#include <nlohmann/json_fwd.hpp>

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace wafer {

using events::critic_decision;

/// What a critic decided about one step, as it answered (see verdict_schema()).
struct verdict {
    critic_decision decision = critic_decision::approve;
    std::vector<std::string> reasons;
    /// What to change, in the critic's words.
    std::optional<std::string> suggested_fix;
    /// For a proposed tool call: the arguments the critic would accept (JSON text).
    std::optional<std::string> corrected_arguments;

    friend bool operator==(const verdict&, const verdict&) = default;
};

/// The JSON Schema of a verdict, fit for `response_format: json_schema` with `strict: true`
/// (every property required, additionalProperties false, nullable fields as anyOf with null):
/// {"decision": "approve"|"revise"|"deny", "reasons": [string], "suggested_fix": string|null,
///  "corrected_arguments": string|null}.
const nlohmann::json& verdict_schema();

/// Reads a verdict from a critic's reply. Lenient where it costs nothing (missing reasons or
/// nullable fields, decision in any letter case), strict on what matters: the decision must be
/// approve, revise or deny.
///
/// Errors: returns nullopt and sets `why` (if given) when `j` is not such an object.
std::optional<verdict> parse_verdict(const nlohmann::json& j, std::string* why = nullptr);
/// As above, from the reply text (JSON, optionally inside a ```json fence).
std::optional<verdict> parse_verdict_text(std::string_view text, std::string* why = nullptr);

nlohmann::json to_json_value(const verdict& v);

} // namespace wafer
