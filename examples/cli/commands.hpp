// The wafer CLI's commands and their options (parsed in main.cpp with CLI11).
#pragma once

#include <nlohmann/json.hpp>

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <set>
#include <string>
#include <vector>

namespace wafer::cli {

/// Flags every command that talks to a model shares.
struct model_flags {
    std::string model = "zai-glm-4.7";
    std::string base_url; ///< empty: CEREBRAS_BASE_URL, else the default or the offline stand-in
    bool json = false;
    /// --color: auto (a terminal without NO_COLOR or TERM=dumb), always, never.
    std::string color = "auto";
    /// --ca-file: a PEM file of CA certificates trusted in addition to the system store (and to
    /// SSL_CERT_FILE's).
    std::string ca_file;
};

struct ask_flags : model_flags {
    /// Seconds the whole answer may take (0: no limit); a reply that never ends fails then.
    unsigned timeout_s = 600;
    bool no_stream = false;
    bool reasoning = false;
    /// The prompt's words as given ("-": standard input); `prompt` is composed from them and
    /// standard input (conventions.hpp).
    std::vector<std::string> words;
    std::string prompt;
    /// --system: the system message.
    std::string system;
    /// --temperature (0 to 2) and --max-tokens: sent when given (the GLM defaults otherwise).
    std::optional<double> temperature;
    std::optional<std::int64_t> max_tokens;
};

/// Where runs are journaled (store.hpp).
struct store_flags {
    /// --store: the SQLite file (empty: the default in the XDG state directory), or a
    /// PostgreSQL URI (postgresql://...).
    std::string store;
    /// --store-schema: the PostgreSQL schema holding the tables (empty: "wafer").
    std::string store_schema;
};

/// What `wafer run` and `wafer resume` build the agent from.
struct run_flags : model_flags, store_flags {
    /// --workspace. `wafer resume` leaves it empty: the run's own workspace.
    std::string workspace = ".";
    std::vector<std::string> critics;
    std::size_t max_turns = 16;
    /// --context-window: the model's window in tokens (0: the model's known one).
    std::int64_t context_window = 0;
    /// Seconds the whole run may take (0: no limit).
    unsigned timeout_s = 1800;
    /// Default seconds a run_command may take when the model gives no timeout_ms.
    unsigned command_timeout_s = 120;
    /// run_command's sandbox: "on" (refuse commands where Landlock is missing), "auto", "off".
    std::string sandbox = "on";
    /// Let sandboxed commands open TCP connections.
    bool allow_network = false;
    bool yes = false;
    /// --no-store: the run is not journaled (and cannot be resumed).
    bool no_store = false;
    /// --mcp-config FILE (repeatable): MCP servers whose tools the agent gets beside the
    /// built-in ones (the workspace's .mcp.json too, with --yes or the user's consent).
    std::vector<std::string> mcp_configs;
    /// --mcp-startup-timeout: seconds each MCP server may take to answer initialize and
    /// tools/list; one that takes longer is left out of the run.
    unsigned mcp_startup_timeout_s = 10;
    /// --continue: `task` is a follow-up to the last run of this workspace.
    bool continue_last = false;
    /// The task's words as given ("-": standard input); `task` is composed from them.
    std::vector<std::string> task_words;
    std::string task;
    /// The agent flags given on this command line ("--model", "--critic", ...): a resumed or
    /// continued run takes the others from the flags stored with it.
    std::set<std::string> given;
};

/// `wafer resume ID [MESSAGE]`: the agent as `wafer run` built it. The agent flags the run was
/// started with are stored with it (run_options::metadata); those not given again here are
/// taken from there (the same for `wafer run --continue`).
struct resume_flags : run_flags {
    std::string id;
    std::optional<std::string> message;
};

/// The workspace's AGENTS.md, for the system prompt: its first max_bytes (a regular file only,
/// not a link); empty text when there is none.
struct project_instructions {
    static constexpr std::size_t max_bytes = 32 * 1024;
    std::string text;
    std::size_t bytes = 0;
    bool truncated = false;
};
project_instructions read_project_instructions(const std::filesystem::path& root);

/// The agent flags of a run, as stored with it.
nlohmann::json agent_flags_json(const run_flags& flags);
/// `flags` with every agent flag not in `given` taken from `stored` (agent_flags_json).
void apply_stored_flags(
    run_flags& flags, const nlohmann::json& stored, const std::set<std::string>& given
);

/// `wafer runs` and `wafer runs show ID`.
struct runs_flags : store_flags {
    std::string workspace = ".";
    bool all = false;
    bool json = false;
    /// `show`: the run whose history to print; --full: every result and argument whole (and
    /// the summaries context compaction wrote).
    std::string show_id;
    bool full = false;
};

/// `wafer approve ID CALL [--args JSON]` and `wafer deny ID CALL [--message TEXT]`.
struct decide_flags : store_flags {
    std::string id;
    std::string call;
    bool approve = true;
    /// approve: the call runs with these arguments (a JSON object) instead of the model's.
    std::optional<std::string> arguments;
    /// deny: why, for the model.
    std::string message;
};

struct models_flags {
    std::string base_url;
    std::string ca_file;
    bool json = false;
};

/// `wafer ask`: one chat completion, streamed. Returns the exit status.
int ask(const ask_flags& flags);
/// `wafer run`: the coding agent with the built-in tools. Returns the exit status.
int run(const run_flags& flags);
/// `wafer resume`: continues a journaled run. Returns the exit status.
int resume(const resume_flags& flags);
/// `wafer approve` / `wafer deny`: records a decision on a call a stopped run waits for (the
/// next `wafer resume` acts on it). Returns the exit status.
int decide(const decide_flags& flags);
/// `wafer models`: the models the endpoint serves. Returns the exit status.
int models(const models_flags& flags);
/// `wafer runs`: the journaled runs of a workspace (or all), newest first. Returns the exit
/// status.
int runs(const runs_flags& flags);
/// `wafer runs show ID`: one run's history as its journal has it. Returns the exit status.
int show_run(const runs_flags& flags);

} // namespace wafer::cli
