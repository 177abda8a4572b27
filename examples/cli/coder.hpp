// The coding agent as `wafer run`, `wafer resume` and the interactive session build it: the
// workspace, the approval mode, the tools (built-in ones confined to the workspace, MCP servers'
// beside them), critics, limits, the system prompt with AGENTS.md, and the header that says how
// a run is set up. One place, so that every command drives the same agent.
#pragma once

#include <wafer/agent_config.hpp>
#include <wafer/api/client.hpp>
#include <wafer/store/run_store.hpp>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>

#include <nlohmann/json.hpp>

#include <cstddef>
#include <filesystem>
#include <functional>
#include <memory>
#include <ostream>
#include <string>
#include <vector>

#include "approval.hpp"
#include "commands.hpp"
#include "mcp.hpp"

namespace wafer::cli {

/// `dir` made canonical; cli_error (exit_usage) naming `what` when it is not a directory.
std::filesystem::path
workspace_root(const std::string& dir, const std::string& what = "--workspace");

/// The agent flags stored with a run (null if none).
nlohmann::json stored_agent_flags(const store::run_info& run);

/// The top-level runs of `root`, newest first (at most `limit`, 0: all). Store failures are
/// cli_error.
std::vector<store::run_info> runs_of(
    boost::asio::io_context& ioc,
    store::run_store& st,
    const std::filesystem::path& root,
    std::size_t limit
);

/// How the gated tools are approved: --yes allows, a terminal asks, a journaled run without one
/// pauses, anything else denies.
approval_mode approvals(bool yes, bool journaled);

/// Why an approved command would run unconfined (the sandbox is required and this kernel has no
/// Landlock); empty otherwise.
std::string unconfined_reason(const run_flags& flags);

/// The agent for `flags` in `root`: the built-in tools gated by `mode`, the MCP servers' tools,
/// critics, limits, system prompt. `adjust` (if set) may change the configuration last.
agent_config make_config(
    const run_flags& flags,
    const std::filesystem::path& root,
    std::shared_ptr<api::client> client,
    approval_mode mode,
    mcp_servers& mcp,
    const std::function<void(agent_config&)>& adjust = {},
    const std::function<void(tools::tool&)>& adjust_tool = {}
);

/// For a model wafer does not know the window of: the endpoint's model list may say it (vLLM's
/// max_model_len, ...); sets flags.context_window then.
boost::asio::awaitable<void> discover_context_window(run_flags& flags, api::client& client);

/// The MCP servers `flags` names (and the workspace's .mcp.json with --yes or consent), their
/// destructive tools gated like the built-in ones under `mode`.
boost::asio::awaitable<mcp_servers>
start_mcp_servers(const run_flags& flags, const std::filesystem::path& root, approval_mode mode);

/// The header of a run: workspace, model, critics, approvals, sandbox, AGENTS.md, MCP servers.
void print_header(
    std::ostream& out,
    const run_flags& flags,
    const std::filesystem::path& root,
    approval_mode mode,
    const mcp_servers& mcp
);

} // namespace wafer::cli
