// The wafer CLI's configuration file: $XDG_CONFIG_HOME/wafer/config.toml (else
// ~/.config/wafer/config.toml). It gives defaults; the environment (CEREBRAS_BASE_URL) comes
// before it and the command line before both. A resumed run keeps the flags stored with it.
//
//   model = "gpt-oss-120b"
//   base_url = "https://api.cerebras.ai/v1"
//   critics = ["security"]
//   [sandbox]
//   mode = "auto"            # on | auto | off
//   allow_network = false
//   [mcp_servers.files]     # as an entry of .mcp.json's mcpServers
//   command = "npx"
//   args = ["-y", "@modelcontextprotocol/server-filesystem", "."]
//
// Anything else in the file (an unknown key, a value of the wrong type, bad TOML) is an error
// naming the file, line and key: a typo must not be ignored.
#pragma once

#include <filesystem>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "commands.hpp"
#include "mcp.hpp"

namespace wafer::cli {

struct user_config {
    /// The file read; empty when there is none.
    std::filesystem::path path;
    std::optional<std::string> model;
    std::optional<std::string> base_url;
    std::optional<std::vector<std::string>> critics;
    std::optional<std::string> sandbox;
    std::optional<bool> allow_network;
    /// The file has an [mcp_servers] table: --mcp-config `path` reads it (mcp.cpp).
    bool has_mcp_servers = false;
};

/// $XDG_CONFIG_HOME/wafer/config.toml, else $HOME/.config/wafer/config.toml; empty if neither
/// variable is set.
std::filesystem::path user_config_path();

/// Reads `path` (a file that does not exist is an empty configuration). Throws cli_error
/// (exit_usage) with "PATH:LINE:COLUMN: what" for a file that cannot be read or parsed, an
/// unknown key, a value of the wrong type, or an unknown critic or sandbox mode.
user_config load_user_config(const std::filesystem::path& path);

/// The mcpServers JSON text ({"mcpServers":{...}}) of the file's [mcp_servers] table, for
/// tools::mcp::parse_server_config. Throws cli_error (exit_usage) as load_user_config does.
std::string mcp_servers_json(const std::filesystem::path& path);

/// Fills what the command line did not give: `model_given` / `base_url_given` say whether
/// --model / --base-url were on it; the file's base URL is used only when CEREBRAS_BASE_URL is
/// not set either.
void apply_user_config(
    const user_config& cfg, model_flags& flags, bool model_given, bool base_url_given
);
/// As above for `wafer run`, `wafer resume` and `wafer chat`: also the critics, the sandbox,
/// and the file's MCP servers (after the --mcp-config files). `given` holds the agent flags on
/// the command line (given_agent_flags in main.cpp); `base_url_given` as above.
void apply_user_config(
    const user_config& cfg,
    run_flags& flags,
    const std::set<std::string>& given,
    bool base_url_given
);
/// For `wafer models` and `wafer mcp`: the base URL, or the MCP servers.
void apply_user_config(const user_config& cfg, models_flags& flags, bool base_url_given);
void apply_user_config(const user_config& cfg, mcp_flags& flags);

} // namespace wafer::cli
