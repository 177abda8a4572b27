// MCP servers in the wafer CLI: the configuration (--mcp-config files and the workspace's
// .mcp.json), starting the servers, their tools beside the built-in ones, and the `wafer mcp`
// commands.
#pragma once

#include <wafer/tools/mcp/client.hpp>
#include <wafer/tools/tool.hpp>

#include <boost/asio/awaitable.hpp>

#include <filesystem>
#include <memory>
#include <string>
#include <vector>

namespace wafer::cli {

/// What decides which servers start.
struct mcp_sources {
    /// --mcp-config FILE (repeatable): always used.
    std::vector<std::string> configs;
    /// The workspace: its .mcp.json starts servers only when `trust_workspace` (--yes) or when
    /// the user says so on a terminal (a cloned repository must not start programs by itself).
    std::filesystem::path workspace;
    bool trust_workspace = false;
};

/// The servers that started and the registry tools they bring.
struct mcp_servers {
    std::vector<std::shared_ptr<tools::mcp::client>> clients;
    std::vector<tools::tool> tools;
    /// Registry names of the tools that need approval (no readOnlyHint, destructiveHint true).
    std::vector<std::string> gated;
};

/// Starts the configured servers (all at once) and lists their tools. A server that fails is
/// one line on standard error and the others go on; a configuration file that cannot be read
/// is a cli_error (exit_usage). Server logging and stderr go to standard error (escaped), only
/// with `verbose`.
boost::asio::awaitable<mcp_servers> async_start_mcp(mcp_sources sources, bool verbose);

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
};

/// `wafer mcp list`: each server, its protocol version and its tools with their annotations.
int mcp_list(const mcp_flags& flags);
/// `wafer mcp call SERVER TOOL [JSON]`: one call; the result's text on standard output. Exit
/// status 1 when the tool reports an error.
int mcp_call(const mcp_flags& flags);

} // namespace wafer::cli
