// Plain data exchanged between the agent and the tool layer: a call the model asked for, and the
// result that goes back into the conversation. No wire types here: wafer::tools does not depend
// on wafer::agent, the agent converts these to api::message / api::tool_call.
#pragma once

#include <cstddef>
#include <ostream>
#include <string>
#include <string_view>

namespace wafer::tools {

/// One tool call emitted by the model: `tool_calls[i]` of an assistant message.
struct tool_call_request {
    /// The provider's call id; echoed back as tool_result::tool_call_id.
    std::string id;
    /// The function name the model asked for.
    std::string name;
    /// The arguments as the model wrote them: JSON text, possibly malformed.
    std::string arguments;
    /// A person approved this call (tool_options::needs_approval); the handler sees it as
    /// call_context::approved.
    bool approved = false;
};

/// Why a tool result looks the way it does. Everything except `ok` has `is_error == true`.
enum class result_status {
    /// The handler ran and returned normally.
    ok,
    /// The handler ran and reported a failure itself (tool_output::is_error).
    tool_error,
    /// The arguments were not JSON, violated the schema, or did not convert to the typed argument.
    invalid_arguments,
    /// No tool with this name is registered.
    unknown_tool,
    /// The handler threw an exception.
    handler_exception,
    /// The call's own deadline or the batch deadline expired first.
    timeout,
    /// The dispatch was cancelled by its caller before the call finished.
    cancelled,
    /// A reviewer (an agent's critic) stopped the call before it started.
    refused,
    /// A durable run was resumed after its process stopped while this call ran: whether it took
    /// effect is unknown, and it was not run again (see wafer::resume_options::reconcile).
    in_doubt,
};

/// A short stable name for a status ("ok", "timeout", ...), for logs and events.
std::string_view to_string(result_status s) noexcept;
std::ostream& operator<<(std::ostream& os, result_status s);

/// What a handler returns: the text the model will read and whether it describes a failure.
struct tool_output {
    std::string content;
    bool is_error = false;
};

/// The result of one call, ready to become a `role: "tool"` message.
struct tool_result {
    /// Equal to tool_call_request::id.
    std::string tool_call_id;
    /// Equal to tool_call_request::name (even when no such tool exists).
    std::string name;
    /// The text for the model. Failures carry an explanation the model can act on.
    std::string content;
    bool is_error = false;
    result_status status = result_status::ok;
    /// True if `content` was cut at the output cap (the marker is part of `content`).
    bool truncated = false;
};

/// Cuts `text` to at most `cap` bytes of content at a UTF-8 code point boundary and appends
/// "\n[output truncated: N of M bytes shown]". Returns false (text unchanged) if it already fits.
/// `cap == 0` means no cap.
bool truncate_output(std::string& text, std::size_t cap);

} // namespace wafer::tools
