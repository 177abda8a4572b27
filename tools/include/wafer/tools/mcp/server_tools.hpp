// An MCP server's tools: listing them (every page), calling one, and turning each into a
// registry tool the agent offers the model.
#pragma once

#include <wafer/tools/mcp/client.hpp>
#include <wafer/tools/tool.hpp>

#include <boost/asio/awaitable.hpp>

#include <nlohmann/json.hpp>

#include <chrono>
#include <cstddef>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace wafer::tools::mcp {

/// An argument a 2026 HTTP client also sends as a header (`"x-mcp-header": "Region"` on a
/// property: `Mcp-Param-Region`).
struct param_header {
    /// The header's name after "Mcp-Param-".
    std::string name;
    /// The property's path from the root of `arguments` (through `properties` only).
    std::vector<std::string> path;

    friend bool operator==(const param_header&, const param_header&) = default;
};

/// The `x-mcp-header` annotations of an inputSchema, or nullopt with `why` when one breaks the
/// rules (empty or not an HTTP token, a duplicate ignoring case, on a property that is not a
/// string, integer or boolean, or not reachable from the root through `properties`): such a tool
/// must not be offered.
std::optional<std::vector<param_header>>
read_param_headers(const nlohmann::json& input_schema, std::string* why = nullptr);

/// One tool as tools/list described it. Schemas and annotations are kept verbatim.
struct tool_info {
    std::string name;
    /// `title`, else `annotations.title`, else empty.
    std::string title;
    std::string description;
    nlohmann::json input_schema = nlohmann::json::object();
    std::optional<nlohmann::json> output_schema;
    nlohmann::json annotations = nlohmann::json::object();
    /// The annotations as the spec defaults them (hints from the server: untrusted).
    bool read_only_hint = false;
    bool destructive_hint = true;
    bool idempotent_hint = false;
    bool open_world_hint = true;
    /// The inputSchema's `x-mcp-header` annotations.
    std::vector<param_header> param_headers;
};

/// Bounds of async_list_tools against a server that pages forever.
struct list_limits {
    std::size_t max_pages = 100;
    std::size_t max_tools = 10'000;
};

/// How long a listing may be offered before it is listed again: a 2026 server's caching hints
/// (`ttlMs`, `cacheScope` on each page; mcp.md §4.5).
struct list_freshness {
    /// The shortest `ttlMs` of the pages (absent or negative: 0, stale at once: listed again
    /// when next needed). nullopt: a 2025 server, whose lists hold until it says they changed.
    std::optional<std::chrono::milliseconds> ttl;
    /// "private" when a page said so or said nothing (the list may depend on the caller's
    /// authorization), "public" when every page said "public". A client keeps its lists to
    /// itself, so both are honoured; the scope matters to embedders that would share them.
    std::string cache_scope = "private";
};

/// The caching hints of one page (a tools/list result) folded into `into`: its `ttlMs`
/// lowers the TTL, its `cacheScope` narrows the scope. For a 2026 server's results.
void add_page_freshness(list_freshness& into, const nlohmann::json& page, bool first_page);

/// Reads one tool of a tools/list page; nullopt (with the reason in `why`) for an entry without
/// a string name, with an inputSchema that is not an object, or with an invalid `x-mcp-header`.
std::optional<tool_info> read_tool_info(const nlohmann::json& entry, std::string* why = nullptr);

/// Every tool of the server: tools/list page after page until there is no nextCursor (an empty
/// string is a cursor), a cursor repeats, or a limit is reached. A name seen twice keeps its
/// first entry. Entries that cannot be read, names seen twice and tools over the limit are
/// skipped and reported to `skipped` ("name: reason"). Throws mcp::error.
/// `freshness`, when given, receives the listing's caching hints (2026; nullopt ttl for 2025).
boost::asio::awaitable<std::vector<tool_info>> async_list_tools(
    client& c,
    list_limits limits,
    std::vector<std::string>* skipped = nullptr,
    list_freshness* freshness = nullptr
);
boost::asio::awaitable<std::vector<tool_info>> async_list_tools(client& c);

/// A tools/call result as the model reads it.
struct call_result {
    /// The content blocks as text, one after the other: text verbatim, other blocks described
    /// (an image by its type and size, a resource link by its name and URI, an embedded
    /// resource by its URI and text), unknown blocks as their JSON. When no block is text,
    /// structuredContent follows as JSON.
    std::string text;
    /// isError: the tool failed (the text says how).
    bool is_error = false;
    /// structuredContent, verbatim (null when absent).
    nlohmann::json structured;
};

/// Maps a tools/call result (sans-io). A result that is not an object is an error result that
/// says so.
call_result read_call_result(const nlohmann::json& result);

/// Calls one tool. A tool failure (isError) is a result; a JSON-RPC error, a timeout, a cancel
/// or a closed connection throw mcp::error.
/// (No defaulted option arguments: see client::async_connect.)
boost::asio::awaitable<call_result>
async_call_tool(client& c, std::string name, nlohmann::json arguments, call_options options);
boost::asio::awaitable<call_result>
async_call_tool(client& c, std::string name, nlohmann::json arguments);

/// How a server's tools become registry tools.
struct registry_tool_options {
    /// Prefix of the registry names; unset: the server's name and "__" ("everything__echo").
    std::optional<std::string> prefix;
    /// Per-call limits; unset: the client's.
    std::optional<request_limits> limits;
    /// Calls of tools that may be destructive (destructiveHint, or no readOnlyHint) wait for
    /// approval (tool_options::needs_approval).
    bool approve_destructive = false;
};

/// The registry name of an MCP tool: prefix + name, characters outside [A-Za-z0-9_-] replaced
/// by '_'. Empty when longer than the 64 characters Chat Completions accepts.
std::string registry_name(std::string_view prefix, std::string_view tool_name);

/// Registry tools for `tools` (async handlers calling the server through `c`). readOnlyHint
/// makes a tool read_only. The schema is the server's inputSchema, verbatim. Tools whose name
/// cannot be mapped are left out and reported to `skipped`. Each call asks the server for
/// progress (which keeps a long call alive past request_limits::timeout, never past max_total)
/// and passes it on to call_context::report_progress. A call that fails (a JSON-RPC error, a
/// timeout, the server gone) is a failed result naming the server and the tool; a cancel stays
/// a cancel. To keep a registry in step with the server's list_changed, see server_tool_set.hpp.
std::vector<tool> make_registry_tools(
    const std::shared_ptr<client>& c,
    const std::vector<tool_info>& tools,
    const registry_tool_options& options = {},
    std::vector<std::string>* skipped = nullptr
);

} // namespace wafer::tools::mcp
