// The offline stand-in model: a deterministic, GLM-like reply for any chat request, used by the
// CLI and `make demo` when no API key or base URL is given, and by `wafer-fake` without a script.
#pragma once

#include <wafer/api/chat_request.hpp>
#include <wafer/testing/fake_server.hpp>

namespace wafer::testing {

/// A deterministic reply to `req` (same request, same reply apart from ids and timestamps).
///
/// - Reasoning: a short GLM-like thought about the last message, unless reasoning is turned
///   off (`reasoning_effort: "none"` or `disable_reasoning: true`).
/// - Last message from the user (or system/developer): content saying plainly that this is
///   wafer's offline stand-in and echoing the last user message (truncated to 200 bytes).
///   If the request offers tools, one tool is called instead when `tool_choice` is "required"
///   (the first tool), names a function (that tool), or is auto/absent and the user's message
///   mentions a tool's name (the first such tool). Arguments fill the tool's schema minimally:
///   every property listed in `required` gets its enum's first value, or for strings "." when the
///   property name contains "path", "dir" or "file", "echo offline stand-in" for "command" /
///   "cmd", else the user's message; 0 for numbers, false for booleans, [] / {} for arrays and
///   objects (nested objects recursively).
/// - Last message is a tool result: content that reports the result (truncated to 200 bytes)
///   and the tool's name.
/// - `response_format` json_object / json_schema: content is a JSON value built from the schema
///   the same way (json_object: {"answer": "<offline reply>"}).
reply offline_reply(const api::chat_request& req);

} // namespace wafer::testing
