// Multi round-trip requests (2026-07-28), sans-io: a result that asks the client for input
// (`resultType: "input_required"`), and the retry that answers it.
#pragma once

#include <nlohmann/json.hpp>

#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace wafer::tools::mcp {

/// One input the server asks for: an `elicitation/create`, `roots/list` or
/// `sampling/createMessage` request in all but name.
struct input_request {
    /// The server's key for it; the answer goes under the same key in `inputResponses`.
    std::string key;
    std::string method;
    nlohmann::json params;
};

/// An `input_required` result.
struct input_required {
    std::vector<input_request> requests;
    /// `requestState`, to be sent back unchanged; unset when the server sent none.
    std::optional<std::string> request_state;
};

/// nullopt for a complete result. For an input_required one: its requests and state, or
/// nullopt with `why` set when it is malformed (no inputRequests object and no requestState,
/// an entry without a method). `malformed` tells the two nullopts apart.
std::optional<input_required>
read_input_required(const nlohmann::json& result, bool& malformed, std::string* why = nullptr);

/// The params of the retry: `original` (never the earlier round's additions) with
/// `inputResponses` and, when the server sent one, `requestState`. `_meta` is left for the
/// session to write again.
nlohmann::json retry_params(
    nlohmann::json original,
    nlohmann::json input_responses,
    const std::optional<std::string>& request_state
);

/// The most rounds one request may take before the client gives up.
inline constexpr int max_input_rounds = 8;

} // namespace wafer::tools::mcp
