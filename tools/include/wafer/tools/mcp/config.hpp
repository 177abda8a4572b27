// The `mcpServers` configuration that Claude Code, Cursor and others share (`.mcp.json`):
// read and checked, sans-io.
#pragma once

#include <wafer/tools/mcp/client.hpp>

#include <nlohmann/json.hpp>

#include <chrono>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace wafer::tools::mcp {

/// A server reached over Streamable HTTP (`url`, `headers`).
struct http_server {
    std::string name;
    std::string url;
    std::vector<std::pair<std::string, std::string>> headers;
};

/// One entry of `mcpServers`.
struct server_entry {
    std::string name;
    /// Set for stdio servers (`command`).
    std::optional<stdio_server> stdio;
    /// Set for HTTP servers (`url`).
    std::optional<http_server> http;
    /// `"disabled": true`: listed, not started.
    bool disabled = false;
    /// `"startup_timeout": SECONDS` (a number, more than 0 and at most max_startup_timeout):
    /// how long this server may take to start, overriding the embedder's default.
    std::optional<std::chrono::milliseconds> startup_timeout;
};

/// The largest `startup_timeout` accepted.
inline constexpr std::chrono::seconds max_startup_timeout{3600};

/// Looks up a variable for `${NAME}` in the configuration (nullopt: not set).
using variable_lookup = std::function<std::optional<std::string>(std::string_view name)>;

/// Reads `{"mcpServers": {"NAME": {...}, ...}}` (a bare `{"NAME": {...}}` map is refused: it
/// is ambiguous). An entry has `command` (string), `args` (strings), `env` (string values) and
/// `cwd`, or `url` and `headers` (string values); `type` may say "stdio", "http" or
/// "streamable-http" and must agree; either kind may have `disabled` and `startup_timeout`.
/// `${NAME}` and `${NAME:-default}` in command, args, env, cwd, url and header values are replaced
/// through `lookup` (a variable that is not set and has no default is an error). Server names are
/// 1-64 characters of [A-Za-z0-9_-].
///
/// Errors: throws mcp::error (errc::bad_config) naming `source` (the file) and the entry.
std::vector<server_entry> read_server_config(
    const nlohmann::json& doc, std::string_view source, const variable_lookup& lookup
);

/// The same from the file's text (a parse error names the line and column).
std::vector<server_entry>
parse_server_config(std::string_view text, std::string_view source, const variable_lookup& lookup);

/// A lookup in the process's environment.
variable_lookup environment_lookup();

} // namespace wafer::tools::mcp
