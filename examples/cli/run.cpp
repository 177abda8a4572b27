// `wafer run`: the coding agent. The built-in tools confined to --workspace (write_file,
// edit_file and run_command behind approval unless --yes), optional critics, the events printed
// as they happen and a summary at the end.
#include <wafer/agent.hpp>
#include <wafer/api/client.hpp>
#include <wafer/cerebras_model.hpp>
#include <wafer/critic.hpp>
#include <wafer/prompts.hpp>
#include <wafer/tools/builtin_tools.hpp>
#include <wafer/tools/sandbox.hpp>

#include <boost/asio/io_context.hpp>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <iostream>
#include <memory>

#include "approval.hpp"
#include "commands.hpp"
#include "failure.hpp"
#include "printer.hpp"
#include "session.hpp"
#include "terminal.hpp"
#include "visible.hpp"

namespace asio = boost::asio;
namespace fs = std::filesystem;

namespace wafer::cli {

namespace {

fs::path workspace_root(const std::string& dir) {
    std::error_code ec;
    fs::path root = fs::canonical(dir, ec);
    if (ec || !fs::is_directory(root, ec)) {
        throw cli_error("--workspace " + dir + " is not a directory", exit_usage);
    }
    return root;
}

approval_mode approvals(bool yes) {
    if (yes) {
        return approval_mode::allow;
    }
    return can_prompt() ? approval_mode::ask : approval_mode::deny;
}

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
                         "): run_command is refused; use --sandbox=off to run commands unconfined"
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
    case approval_mode::deny:
        return "write_file, edit_file and run_command are denied (no terminal to ask; use --yes)";
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

agent_config make_config(
    const run_flags& flags,
    const fs::path& root,
    std::shared_ptr<api::client> client,
    approval_mode mode
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
    tools::add_builtin_tools(builtin, topts);

    agent_config cfg;
    cfg.name = "wafer";
    auto model = std::make_shared<cerebras_model>(client, flags.model);
    cfg.model = model;
    cfg.system_prompt = prompt_library::builtin().render(
        "coding-agent", {{"language", "English"}, {"workspace", visible(root.string())}}
    );
    cfg.tools = with_approval(builtin, gated_tools(), mode);
    cfg.limits.max_turns = flags.max_turns;
    apply_run_limits(cfg.limits, flags, topts.command.max_timeout);
    apply_sampling_defaults(cfg.request, flags.model);

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
    return cfg;
}

asio::awaitable<int> run_task(
    run_flags flags, fs::path root, std::shared_ptr<api::client> client, std::string base_url
) {
    const approval_mode mode = approvals(flags.yes);
    const agent coder(make_config(flags, root, client, mode));

    event_printer printer(
        std::cout, {.json = flags.json, .reasoning = true, .color = stdout_is_tty(), .steps = true}
    );
    if (!flags.json) {
        std::cout << "workspace: " << visible(root.string()) << "\nmodel: " << visible(flags.model)
                  << "\ncritics: ";
        for (std::size_t i = 0; i < flags.critics.size(); ++i) {
            std::cout << (i ? ", " : "") << flags.critics[i];
        }
        std::cout << (flags.critics.empty() ? "none" : "")
                  << "\napprovals: " << approvals_text(mode) << "\nsandbox: " << sandbox_text(flags)
                  << "\n\n"
                  << std::flush;
    }
    run_options options;
    options.on_event = [&printer](const event& e) {
        printer.on_event(e);
    };
    std::string input = std::move(flags.task);
    auto op = coder.async_run(std::move(input), std::move(options));
    const run_result result = co_await std::move(op);
    printer.finish(result);
    printer.summary(result);
    co_return run_status(result, base_url, std::chrono::seconds(flags.timeout_s));
}

} // namespace

int run(const run_flags& flags) {
    const fs::path root = workspace_root(flags.workspace);
    asio::io_context ioc(1);
    endpoint ep = open_endpoint(ioc.get_executor(), endpoint_request::from_env(flags.base_url));
    auto client = std::make_shared<api::client>(ioc.get_executor(), ep.config);
    return run_session(ioc, ep, run_task(flags, root, client, ep.display_url));
}

} // namespace wafer::cli
