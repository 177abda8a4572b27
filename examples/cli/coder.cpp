#include "coder.hpp"

#include <wafer/cerebras_model.hpp>
#include <wafer/context_window.hpp>
#include <wafer/critic.hpp>
#include <wafer/prompts.hpp>
#include <wafer/resume.hpp>
#include <wafer/tools/builtin_tools.hpp>
#include <wafer/tools/sandbox.hpp>

#include <algorithm>
#include <chrono>
#include <fstream>

#include "failure.hpp"
#include "session.hpp"
#include "store.hpp"
#include "terminal.hpp"
#include "tracing.hpp"
#include "visible.hpp"

namespace asio = boost::asio;
namespace fs = std::filesystem;

namespace wafer::cli {

fs::path workspace_root(const std::string& dir, const std::string& what) {
    std::error_code ec;
    fs::path root = fs::canonical(dir, ec);
    if (ec || !fs::is_directory(root, ec)) {
        throw cli_error(what + " " + dir + " is not a directory", exit_usage);
    }
    return root;
}

nlohmann::json stored_agent_flags(const store::run_info& run) {
    const nlohmann::json m = run_metadata(run);
    return m.is_object() ? m.value("agent_flags", nlohmann::json()) : nlohmann::json();
}

std::vector<store::run_info>
runs_of(asio::io_context& ioc, store::run_store& st, const fs::path& root, std::size_t limit) {
    store::run_filter filter;
    filter.scope = root.string();
    filter.top_level_only = true;
    filter.limit = limit;
    try {
        return wait_for(ioc, st.async_list_runs(std::move(filter)));
    } catch (const wafer::error& e) {
        throw cli_error(store_failure_line(e), exit_failure);
    }
}

approval_mode approvals(bool yes, bool journaled) {
    if (yes) {
        return approval_mode::allow;
    }
    if (can_prompt()) {
        return approval_mode::ask;
    }
    return journaled ? approval_mode::pause : approval_mode::deny;
}

// Why an approved command would run unconfined: the sandbox is required (on) and this kernel
// has no Landlock. Empty otherwise.
std::string unconfined_reason(const run_flags& flags) {
    const auto mode = tools::parse_sandbox_mode(flags.sandbox).value_or(tools::sandbox_mode::on);
    if (mode != tools::sandbox_mode::on) {
        return {};
    }
    const tools::sandbox_support support = tools::probe_sandbox_support();
    if (support.landlock_abi > 0) {
        return {};
    }
    return support.reason.empty() ? "no Landlock" : support.reason;
}

namespace {

// What run_command's sandbox does on this machine, as the header of a run says it.
std::string sandbox_text(const run_flags& flags) {
    const auto mode = tools::parse_sandbox_mode(flags.sandbox).value_or(tools::sandbox_mode::on);
    if (mode == tools::sandbox_mode::off) {
        return "off (commands run with your rights)";
    }
    const tools::sandbox_support support = tools::probe_sandbox_support();
    if (support.landlock_abi == 0) {
        return mode == tools::sandbox_mode::on
                   ? "unavailable (" + visible(support.reason) +
                         "): run_command runs only when you approve each command, unconfined "
                         "(never with --yes); --sandbox=off runs every command unconfined"
                   : "unavailable (" + visible(support.reason) + "): commands run unconfined";
    }
    return "Landlock ABI " + std::to_string(support.landlock_abi) +
           ": writes only in the workspace and a private temp dir, " +
           (flags.allow_network ? "network allowed" : "no network");
}

std::string approvals_text(approval_mode m) {
    switch (m) {
    case approval_mode::allow:
        return "every tool call runs (--yes)";
    case approval_mode::ask:
        return "write_file, edit_file and run_command ask first";
    case approval_mode::pause:
        return "write_file, edit_file and run_command stop the run for wafer approve / wafer deny "
               "(no terminal to ask)";
    case approval_mode::deny:
        return "write_file, edit_file and run_command are denied (no terminal to ask, no journal "
               "to wait in; use --yes)";
    }
    return {};
}

/// Bounds a run so that nothing the model does can keep it going forever: the --timeout, a
/// deadline per model call, a cap on concurrent tool calls and a deadline per call that leaves
/// run_command its own (longer) timeout, which reports the output.
void apply_run_limits(
    agent_limits& limits, const run_flags& flags, std::chrono::milliseconds longest_command
) {
    if (flags.timeout_s > 0) {
        limits.run_timeout = std::chrono::seconds(flags.timeout_s);
    }
    limits.turn_timeout = std::chrono::minutes(5);
    limits.max_tool_concurrency = 8;
    limits.tool_call_timeout = longest_command + std::chrono::seconds(30);
}

} // namespace

project_instructions read_project_instructions(const fs::path& root) {
    project_instructions out;
    const fs::path file = root / "AGENTS.md";
    std::error_code ec;
    // A regular file of the workspace itself: a link could point anywhere.
    if (!fs::is_regular_file(fs::symlink_status(file, ec))) {
        return out;
    }
    std::ifstream in(file, std::ios::binary);
    std::string text(project_instructions::max_bytes + 1, '\0');
    in.read(text.data(), static_cast<std::streamsize>(text.size()));
    text.resize(static_cast<std::size_t>(std::max<std::streamsize>(in.gcount(), 0)));
    out.bytes = static_cast<std::size_t>(fs::file_size(file, ec));
    if (text.size() > project_instructions::max_bytes) {
        text.resize(project_instructions::max_bytes);
        while (!text.empty() && (static_cast<unsigned char>(text.back()) & 0xC0) == 0x80) {
            text.pop_back(); // no half UTF-8 sequence at the cut
        }
        if (!text.empty() && static_cast<unsigned char>(text.back()) >= 0xC0) {
            text.pop_back();
        }
        out.truncated = true;
        text += "\n[AGENTS.md continues; only its first " +
                std::to_string(project_instructions::max_bytes) + " bytes are shown]";
    }
    out.text = std::move(text);
    return out;
}

agent_config make_config(
    const run_flags& flags,
    const fs::path& root,
    std::shared_ptr<api::client> client,
    approval_mode mode,
    mcp_servers& mcp,
    const std::function<void(agent_config&)>& adjust,
    const std::function<void(tools::tool&)>& adjust_tool
) {
    tools::registry builtin;
    tools::builtin_tools_options topts;
    topts.workspace_root = root;
    // run_command's options: its default and longest timeout, the sandbox, and the key to redact
    // from command output.
    topts.command.run.timeout = std::chrono::seconds(flags.command_timeout_s);
    topts.command.run.sandbox.mode =
        tools::parse_sandbox_mode(flags.sandbox).value_or(tools::sandbox_mode::on);
    topts.command.run.sandbox.allow_network = flags.allow_network;
    if (!client->config().api_key.empty()) {
        topts.command.run.redact = {client->config().api_key};
    }
    topts.command.max_timeout =
        std::max<std::chrono::milliseconds>(topts.command.max_timeout, topts.command.run.timeout);
    // Without Landlock, a command a person approved may run unconfined (never one under --yes:
    // live_approver denies those).
    topts.command.unconfined_if_approved =
        topts.command.run.sandbox.mode == tools::sandbox_mode::on;
    tools::add_builtin_tools(builtin, topts);

    agent_config cfg;
    cfg.name = "wafer";
    auto model = std::make_shared<cerebras_model>(client, flags.model);
    cfg.model = model;
    cfg.system_prompt = prompt_library::builtin().render(
        "coding-agent", {{"language", "English"}, {"workspace", visible(root.string())}}
    );
    // The project's instructions go into the system prompt, which compaction never touches.
    if (const project_instructions pi = read_project_instructions(root); !pi.text.empty()) {
        cfg.system_prompt += "\n\n# Project instructions (AGENTS.md)\n";
        cfg.system_prompt += pi.text;
    }
    if (flags.context_window > 0) {
        cfg.context.window = flags.context_window;
    }
    const std::shared_ptr<tools::registry> registry =
        with_approval(builtin, gated_tools(), mode, adjust_tool);
    // The MCP servers' tools after the built-in ones; a server's list_changed replaces its
    // tools there, and the next turn offers them.
    attach_mcp_tools(mcp, registry);
    cfg.tools = registry;
    cfg.limits.max_turns = flags.max_turns;
    apply_run_limits(cfg.limits, flags, topts.command.max_timeout);
    apply_sampling_defaults(cfg.request, flags.model);
    cfg.tracer = cli_tracer(client->config());

    if (!flags.critics.empty()) {
        // Critics may look around with the read-only tools, never change anything.
        auto look = std::make_shared<tools::registry>();
        tools::builtin_tools_options ro;
        ro.workspace_root = root;
        ro.only = {"read_file", "list_dir", "search"};
        tools::add_builtin_tools(*look, ro);
        for (const auto& name : flags.critics) {
            critic c = builtin_critic(name, model);
            c.tools = look;
            cfg.critics.push_back(std::move(c));
        }
    }
    if (adjust) {
        adjust(cfg);
    }
    return cfg;
}

asio::awaitable<void> discover_context_window(run_flags& flags, api::client& client) {
    if (flags.context_window != 0 || known_context_window(flags.model)) {
        co_return;
    }
    // Stored with the run's flags, so that a resume uses the same window.
    std::vector<api::model_info> listed;
    diagnostics diag;
    if (!co_await client.async_models(listed, diag)) {
        for (const auto& m : listed) {
            if (m.id == flags.model && m.context_window) {
                flags.context_window = *m.context_window;
            }
        }
    }
}

asio::awaitable<mcp_servers>
start_mcp_servers(const run_flags& flags, const fs::path& root, approval_mode mode) {
    mcp_sources sources;
    sources.configs = flags.mcp_configs;
    sources.workspace = root;
    sources.trust_workspace = flags.yes;
    sources.startup_timeout = std::chrono::seconds(flags.mcp_startup_timeout_s);
    // Servers may ask the user (elicitation) only where approvals are asked: at a terminal,
    // without --yes.
    sources.elicit = mode == approval_mode::ask;
    // A server's destructive tools are gated like the built-in tools that change the workspace.
    std::function<void(tools::tool&)> gate = [mode](tools::tool& t) {
        gate_tool(t, mode);
    };
    co_return co_await async_start_mcp(std::move(sources), false, std::move(gate));
}

void print_header(
    std::ostream& out,
    const run_flags& flags,
    const fs::path& root,
    approval_mode mode,
    const mcp_servers& mcp
) {
    out << "workspace: " << visible(root.string()) << "\nmodel: " << visible(flags.model)
        << "\ncritics: ";
    for (std::size_t i = 0; i < flags.critics.size(); ++i) {
        out << (i ? ", " : "") << flags.critics[i];
    }
    out << (flags.critics.empty() ? "none" : "") << "\napprovals: " << approvals_text(mode)
        << "\nsandbox: " << sandbox_text(flags);
    if (const project_instructions pi = read_project_instructions(root); !pi.text.empty()) {
        out << "\ninstructions: AGENTS.md (" << pi.bytes << " bytes"
            << (pi.truncated ? ", the first 32768 read" : "") << ")";
    }
    if (!mcp.servers.empty()) {
        out << "\nmcp: ";
        for (std::size_t i = 0; i < mcp.servers.size(); ++i) {
            const auto& s = mcp.servers[i];
            out << (i ? ", " : "") << visible(s.client->name()) << " (" << s.tools->names().size()
                << " tools)";
        }
    }
    out << "\n\n" << std::flush;
}

} // namespace wafer::cli
