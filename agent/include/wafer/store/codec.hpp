// The journal codec: JSON for what a durable run journals (model replies, tool results, critic
// reviews, the error that ended a run). Every to_json/from_json lives in its type's namespace,
// so nlohmann::json finds it (j.get<model_reply>(), json(result)).
//
// from_json is strict: a missing member or one of the wrong type throws nlohmann::json's
// exceptions (type_error, out_of_range, other_error); resuming maps them to
// wafer::store::errc::corrupt. Strings are kept verbatim (reasoning, arguments, bodies).
#pragma once

#include <wafer/critic.hpp>
#include <wafer/error.hpp>
#include <wafer/model.hpp>
#include <wafer/run_result.hpp>
#include <wafer/tools/tool_result.hpp>
#include <wafer/verdict.hpp>

#include <nlohmann/json_fwd.hpp>

#include <optional>
#include <string_view>

namespace wafer::tools {

/// Parses the text to_string(result_status) gives; nullopt for anything else.
std::optional<result_status> parse_result_status(std::string_view s) noexcept;

/// {"tool_call_id", "name", "content", "is_error", "status": "ok"|"timeout"|..., "truncated"}
void to_json(nlohmann::json& j, const tool_result& r);
void from_json(const nlohmann::json& j, tool_result& r);

} // namespace wafer::tools

namespace wafer {

/// {"message": <api::message>, "finish_reason": "stop"|"tool_calls"|...|"", "usage"?: <usage>,
///  "time_info"?: <time_info>, "model_id", "response_id"} ("usage" and "time_info" are absent
/// when unset).
void to_json(nlohmann::json& j, const model_reply& r);
void from_json(const nlohmann::json& j, model_reply& r);

/// {"decision", "reasons", "suggested_fix": string|null, "corrected_arguments": string|null}
/// (the shape of verdict_schema()); from_json takes the decision in lower case only.
void to_json(nlohmann::json& j, const verdict& v);
void from_json(const nlohmann::json& j, verdict& v);

/// {"critic", "gate": "before_tools"|..., "turn", "call_id": string|null, "verdict",
///  "error": string|null, "latency_us", "usage"}
void to_json(nlohmann::json& j, const critic_review& r);
void from_json(const nlohmann::json& j, critic_review& r);

/// Every field of diagnostics; "retry_after_ms" is null when unset, "rate_limit" a list of
/// [name, value] pairs.
void to_json(nlohmann::json& j, const diagnostics& d);
void from_json(const nlohmann::json& j, diagnostics& d);

/// {"code": {"category", "value", "message"}, "diagnostics"}. A code of category "wafer" (or
/// "wafer.store") comes back as the same error_code; any other category comes back as
/// errc::invalid_response, with "<category> error <value>: <message>" put in front of
/// diagnostics::detail.
void to_json(nlohmann::json& j, const run_error& e);
void from_json(const nlohmann::json& j, run_error& e);

} // namespace wafer
