// JSON-RPC 2.0 as MCP uses it, sans-io: reading one message a server sent, writing the client's.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <variant>

namespace wafer::tools::mcp {

/// A request id: an integer or a string, never null. The client's and the server's requests
/// have separate id spaces (a server may number its own from 0 as well).
using rpc_id = std::variant<std::int64_t, std::string>;

/// The `error` member of an error response.
struct rpc_error {
    std::int64_t code = 0;
    std::string message;
    std::optional<nlohmann::json> data;

    friend bool operator==(const rpc_error&, const rpc_error&) = default;
};

/// One message, classified by its shape: method and id: a request; method and no id: a
/// notification; else a response, with `result` or with `error`.
struct rpc_message {
    enum class kind { request, notification, result, error };
    kind type = kind::notification;
    /// Requests and responses. An error response may have none (null): the peer could not read
    /// the request it answers.
    std::optional<rpc_id> id;
    /// Requests and notifications.
    std::string method;
    /// Requests and notifications: the params (null when absent).
    nlohmann::json params;
    /// Result responses.
    nlohmann::json result;
    /// Error responses.
    rpc_error error;

    friend bool operator==(const rpc_message&, const rpc_message&) = default;
};

/// Reads one message (a stdio line, an HTTP body, an SSE event's data). Returns nullopt, with
/// the reason in `why`, for anything that is not one JSON-RPC 2.0 message: text that is not
/// JSON (or not UTF-8), a value that is not an object, "jsonrpc" other than "2.0", a batch
/// (arrays are not MCP since 2025-06-18), a method that is not a string, an id that is null,
/// fractional or not an integer or string, a response with both or neither of result and
/// error, an error without an integer code and a string message. Never throws.
std::optional<rpc_message> read_message(std::string_view text, std::string* why = nullptr);

/// The deepest nesting of arrays and objects read_message accepts. Copying or printing JSON
/// recurses once per level: a server's deeply nested line must not reach that.
inline constexpr std::size_t max_nesting = 512; // read_message says "512" in its refusal

/// Whether the arrays and objects of JSON text nest at most `limit` levels (a scan that skips
/// strings; it does not check that the text is JSON).
bool nesting_within(std::string_view text, std::size_t limit) noexcept;

/// Whose answer an oversized line was, from its first and last bytes (line_framer keeps them):
/// the integer id of a response (a top-level "result" or "error" member in `head`, no
/// "method"), found as a top-level "id" member in `head`, or as `"id":N}` ending `tail`.
/// Nullopt when the bytes do not show both. A scan, not a parse: the line is never read whole.
std::optional<std::int64_t>
oversized_response_id(std::string_view head, std::string_view tail) noexcept;

/// The message as compact JSON text: one line (newlines in strings are escaped), without a
/// line end. Invalid UTF-8 in strings is replaced (U+FFFD), never sent.
std::string write_message(const rpc_message& m);

/// Shorthands for write_message.
std::string write_request(const rpc_id& id, std::string_view method, nlohmann::json params);
std::string write_notification(std::string_view method, nlohmann::json params);
std::string write_result(const rpc_id& id, nlohmann::json result);
std::string write_error(const rpc_id& id, rpc_error error);

/// The error codes of JSON-RPC and MCP a client sees (mcp.md §1).
namespace rpc_code {
inline constexpr std::int64_t parse_error = -32700;
inline constexpr std::int64_t invalid_request = -32600;
inline constexpr std::int64_t method_not_found = -32601;
inline constexpr std::int64_t invalid_params = -32602;
inline constexpr std::int64_t internal_error = -32603;
/// 2026-07-28 (HTTP 400): a header disagrees with the body; a capability the request needs was
/// not declared; the protocol version is not supported (`data.supported` lists those that are).
inline constexpr std::int64_t header_mismatch = -32020;
inline constexpr std::int64_t missing_client_capability = -32021;
inline constexpr std::int64_t unsupported_protocol_version = -32022;
} // namespace rpc_code

} // namespace wafer::tools::mcp
