// MCP servers in the wafer CLI: the configuration (--mcp-config files and the workspace's
// .mcp.json), starting the servers, their tools beside the built-in ones, and the `wafer mcp`
// commands.
#pragma once

#include <wafer/tools/mcp/client.hpp>
#include <wafer/tools/mcp/server_tool_set.hpp>
#include <wafer/tools/registry.hpp>
#include <wafer/tools/tool.hpp>

#include <boost/asio/awaitable.hpp>

#include <chrono>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace wafer::cli {

class terminal_elicitor;

/// --mcp-startup-timeout's default.
inline constexpr std::chrono::milliseconds default_startup_timeout{10'000};

/// What decides which servers start.
struct mcp_sources {
    /// --mcp-config FILE (repeatable): always used.
    std::vector<std::string> configs;
    /// The workspace: its .mcp.json starts servers only when `trust_workspace` (--yes) or when
    /// the user says so on a terminal (a cloned repository must not start programs by itself).
    std::filesystem::path workspace;
    bool trust_workspace = false;
    /// How long each server may take to start (initialize and its tools/list together): one
    /// that misses it is reported and left out, and the run goes on without it.
    std::chrono::milliseconds startup_timeout = default_startup_timeout;
    /// Declare form elicitation and ask the servers' elicitation/create on the terminal
    /// (elicit.hpp). False (no terminal, --yes): not declared, so no server can wait for it.
    bool elicit = false;
};

/// One server that started.
struct mcp_server {
    std::shared_ptr<tools::mcp::client> client;
    /// Its tools in the run's registry once attach_mcp_tools ran, kept as the server lists them
    /// (notifications/tools/list_changed: the next turn offers the new list).
    std::shared_ptr<tools::mcp::server_tool_set> tools;
    /// Its first tools/list, and how long it is fresh (2026 ttlMs).
    std::vector<tools::mcp::tool_info> listing;
    tools::mcp::list_freshness freshness;
};

/// The servers that started.
struct mcp_servers {
    std::vector<mcp_server> servers;
    /// Asks their forms on the terminal (mcp_sources::elicit), else null.
    std::shared_ptr<terminal_elicitor> elicitor;
};

/// Starts the configured servers (all at once) and lists their tools, each within
/// `sources.startup_timeout`. A server that fails or misses it is one line on standard error
/// and the others go on (one that missed it is killed); a configuration file that cannot be read
/// is a cli_error (exit_usage). Server logging and stderr go to standard error (escaped), only
/// with `verbose`. `gate` is applied to each tool that may be destructive (no readOnlyHint,
/// destructiveHint true), now and in every later listing: the CLI's approval mode.
boost::asio::awaitable<mcp_servers>
async_start_mcp(mcp_sources sources, bool verbose, std::function<void(tools::tool&)> gate);

/// Registers every server's tools in `reg` (after the built-in tools) and follows their
/// list_changed from then on. What cannot be registered (a name another tool has, a schema
/// wafer cannot compile) is one line on standard error, and so is each later change.
void attach_mcp_tools(mcp_servers& servers, const std::shared_ptr<tools::registry>& reg);

/// Shuts every server down (stdin closed, SIGTERM, SIGKILL).
boost::asio::awaitable<void> async_stop_mcp(mcp_servers& servers);

/// `wafer mcp list` and `wafer mcp call SERVER TOOL [JSON]`.
struct mcp_flags {
    std::vector<std::string> configs;
    std::string workspace = ".";
    bool yes = false;
    bool json = false;
    bool verbose = false;
    std::string server;
    std::string tool;
    std::string arguments = "{}";
    /// --mcp-startup-timeout, in seconds.
    unsigned startup_timeout_s = 10;
};

/// `wafer mcp list`: each server, its protocol version and its tools with their annotations.
int mcp_list(const mcp_flags& flags);
/// `wafer mcp call SERVER TOOL [JSON]`: one call; the result's text on standard output. Exit
/// status 1 when the tool reports an error. On a terminal the server may ask for input
/// (elicitation), answered on the terminal as in `wafer run`.
int mcp_call(const mcp_flags& flags);
/// `wafer mcp login SERVER`: authorizes wafer to an HTTP server with OAuth, the browser step
/// included (the authorization URL on standard error; the browser comes back to 127.0.0.1),
/// and keeps the tokens for the other commands, which refresh them but never ask again.
int mcp_login(const mcp_flags& flags);

} // namespace wafer::cli
