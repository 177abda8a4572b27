// `wafer run` and `wafer resume`: the coding agent. The built-in tools confined to --workspace
// (write_file, edit_file and run_command behind approval unless --yes), optional critics, the
// events printed as they happen and a summary at the end. Runs are journaled in the run store
// (store.hpp) unless --no-store, so that `wafer resume` can continue them.
#include <wafer/agent.hpp>
#include <wafer/api/client.hpp>
#include <wafer/cerebras_model.hpp>
#include <wafer/context_window.hpp>
#include <wafer/critic.hpp>
#include <wafer/event_emitter.hpp>
#include <wafer/prompts.hpp>
#include <wafer/store/run_store.hpp>
#include <wafer/tools/builtin_tools.hpp>
#include <wafer/tools/sandbox.hpp>

#include <boost/asio/io_context.hpp>
#include <boost/asio/this_coro.hpp>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <memory>
#include <optional>

#include "approval.hpp"
#include "commands.hpp"
#include "failure.hpp"
#include "mcp.hpp"
#include "printer.hpp"
#include "session.hpp"
#include "store.hpp"
#include "terminal.hpp"
#include "visible.hpp"

namespace asio = boost::asio;
namespace fs = std::filesystem;

namespace wafer::cli {

namespace {

fs::path workspace_root(const std::string& dir, const std::string& what = "--workspace") {
    std::error_code ec;
    fs::path root = fs::canonical(dir, ec);
    if (ec || !fs::is_directory(root, ec)) {
        throw cli_error(what + " " + dir + " is not a directory", exit_usage);
    }
    return root;
}

/// The agent flags stored with a run (null if none).
nlohmann::json stored_agent_flags(const store::run_info& run) {
    const nlohmann::json m = run_metadata(run);
    return m.is_object() ? m.value("agent_flags", nlohmann::json()) : nlohmann::json();
}

/// What a run_task drives: a new run, or a journaled one resumed (with a follow-up message for
/// a finished one).
struct run_plan {
    fs::path root;
    /// Null: the run is not journaled (--no-store).
    std::shared_ptr<store::run_store> store;
    /// --store as given (for the resume hint).
    std::string store_flag;
    std::string run_id;
    bool resume = false;
    std::optional<std::string> message;
    /// A new run's task.
    std::string task;
};

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

namespace {

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
    approval_mode mode,
    mcp_servers& mcp
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
    const std::shared_ptr<tools::registry> registry = with_approval(builtin, gated_tools(), mode);
    // The MCP servers' tools after the built-in ones; a server's list_changed replaces its
    // tools there, and the next turn offers them.
    attach_mcp_tools(mcp, registry);
    cfg.tools = registry;
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

asio::awaitable<int> run_agent(
    run_flags flags,
    run_plan plan,
    std::shared_ptr<api::client> client,
    std::string base_url,
    mcp_servers& mcp
) {
    const approval_mode mode = approvals(flags.yes, plan.store != nullptr);
    if (flags.context_window == 0 && !known_context_window(flags.model)) {
        // A model wafer does not know: the server's list may say its window (vLLM's
        // max_model_len, ...). Stored with the run's flags, so that a resume uses the same.
        std::vector<api::model_info> listed;
        diagnostics diag;
        if (!co_await client->async_models(listed, diag)) {
            for (const auto& m : listed) {
                if (m.id == flags.model && m.context_window) {
                    flags.context_window = *m.context_window;
                }
            }
        }
    }
    const agent coder(make_config(flags, plan.root, client, mode, mcp));
    std::optional<live_approver> approver;
    if (mode == approval_mode::ask || mode == approval_mode::allow) {
        approver.emplace(mode, unconfined_reason(flags));
    }

    event_printer printer(
        std::cout,
        {.json = flags.json,
         .reasoning = true,
         .color = output_color(flags.color),
         .steps = true,
         .approvals = mode != approval_mode::allow,
         .thinking = thinking_line_allowed()},
        &std::cerr
    );
    printer.coalesce_writes(co_await asio::this_coro::executor);
    if (!flags.json) {
        std::cout << "workspace: " << visible(plan.root.string())
                  << "\nmodel: " << visible(flags.model) << "\ncritics: ";
        for (std::size_t i = 0; i < flags.critics.size(); ++i) {
            std::cout << (i ? ", " : "") << flags.critics[i];
        }
        std::cout << (flags.critics.empty() ? "none" : "")
                  << "\napprovals: " << approvals_text(mode)
                  << "\nsandbox: " << sandbox_text(flags);
        if (const project_instructions pi = read_project_instructions(plan.root);
            !pi.text.empty()) {
            std::cout << "\ninstructions: AGENTS.md (" << pi.bytes << " bytes"
                      << (pi.truncated ? ", the first 32768 read" : "") << ")";
        }
        if (!mcp.servers.empty()) {
            std::cout << "\nmcp: ";
            for (std::size_t i = 0; i < mcp.servers.size(); ++i) {
                const auto& s = mcp.servers[i];
                std::cout << (i ? ", " : "") << visible(s.client->name()) << " ("
                          << s.tools->names().size() << " tools)";
            }
        }
        std::cout << "\n\n" << std::flush;
    }
    // The run's id on stderr once it runs (the first event), so that a failure before it (an
    // unknown run, a busy one) stays one line.
    bool announced = false;
    auto on_event = [&printer, &announced, &plan, &approver](const event& e) {
        if (!announced && plan.store) {
            announced = true;
            std::cerr << "run " << plan.run_id << "\n" << std::flush;
        }
        printer.on_event(e);
        if (approver) {
            approver->on_event(e); // after the printer: the question comes below the step
        }
    };
    const std::shared_ptr<approval_channel> channel =
        approver ? approver->channel() : std::shared_ptr<approval_channel>();
    run_result result;
    if (plan.resume) {
        resume_options options;
        options.store = plan.store;
        options.message = std::move(plan.message);
        options.on_event = on_event;
        options.approvals = channel;
        try {
            auto op = coder.async_resume(plan.run_id, std::move(options));
            result = co_await std::move(op);
        } catch (const wafer::error& e) {
            // Unknown, busy, finished without a message, corrupt, configured differently.
            throw cli_error(store_failure_line(e), exit_failure);
        }
    } else {
        run_options options;
        options.on_event = on_event;
        options.run_id = plan.run_id;
        options.store = plan.store;
        options.scope = plan.root.string();
        options.approvals = channel;
        options.metadata = {{"agent_flags", agent_flags_json(flags)}};
        std::string input = std::move(plan.task);
        auto op = coder.async_run(std::move(input), std::move(options));
        result = co_await std::move(op);
    }
    printer.finish(result);
    printer.summary(result);
    if (result.stop_reason == stop_reason::awaiting_approval) {
        // One line per call, each naming the commands that answer it.
        const std::string hint = store_flag_hint(plan.store_flag);
        for (const auto& p : result.pending_approvals) {
            print_failure(
                "call " + visible(p.call_id) + " waits for approval (" +
                describe_call(p.tool, nlohmann::json::parse(p.arguments, nullptr, false)) +
                "): wafer approve " + plan.run_id + " " + visible(p.call_id) + hint +
                " or wafer deny " + plan.run_id + " " + visible(p.call_id) + hint +
                ", then wafer resume " + plan.run_id + hint
            );
        }
        co_return exit_awaiting_approval;
    }
    if (result.stop_reason == stop_reason::cancelled && plan.store) {
        print_failure(
            "interrupted; the run can go on: wafer resume " + plan.run_id +
            store_flag_hint(plan.store_flag)
        );
        co_return exit_interrupted;
    }
    co_return run_status(result, base_url, std::chrono::seconds(flags.timeout_s));
}

// The run with the MCP servers around it: started first, shut down last, however the run ends.
asio::awaitable<int> run_task(
    run_flags flags, run_plan plan, std::shared_ptr<api::client> client, std::string base_url
) {
    mcp_sources sources;
    sources.configs = flags.mcp_configs;
    sources.workspace = plan.root;
    sources.trust_workspace = flags.yes;
    sources.startup_timeout = std::chrono::seconds(flags.mcp_startup_timeout_s);
    // The approval mode run_agent uses: a server's destructive tools are gated like the
    // built-in tools that change the workspace.
    const approval_mode mode = approvals(flags.yes, plan.store != nullptr);
    std::function<void(tools::tool&)> gate = [mode](tools::tool& t) {
        gate_tool(t, mode);
    };
    mcp_servers mcp = co_await async_start_mcp(std::move(sources), false, std::move(gate));
    std::exception_ptr failure;
    int status = exit_failure;
    try {
        status = co_await run_agent(
            std::move(flags), std::move(plan), std::move(client), std::move(base_url), mcp
        );
    } catch (...) {
        failure = std::current_exception();
    }
    co_await async_stop_mcp(mcp);
    if (failure) {
        std::rethrow_exception(failure);
    }
    co_return status;
}

/// The runs of `root`, newest first (at most `limit`, 0: all).
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

int drive(asio::io_context& ioc, const run_flags& flags, run_plan plan) {
    endpoint ep = open_endpoint(
        ioc.get_executor(), endpoint_request::from_env(flags.base_url, flags.ca_file)
    );
    auto client = std::make_shared<api::client>(ioc.get_executor(), ep.config);
    return run_session(ioc, ep, run_task(flags, std::move(plan), client, ep.display_url));
}

} // namespace

namespace {

// Config files as absolute paths, so that a resumed run finds them from anywhere.
std::vector<std::string> absolute_paths(const std::vector<std::string>& files) {
    std::vector<std::string> out;
    for (const auto& f : files) {
        out.push_back(fs::absolute(f).lexically_normal().string());
    }
    return out;
}

} // namespace

nlohmann::json agent_flags_json(const run_flags& f) {
    return {
        {"model", f.model},
        {"critics", f.critics},
        {"max_turns", f.max_turns},
        {"context_window", f.context_window},
        {"timeout_s", f.timeout_s},
        {"command_timeout_s", f.command_timeout_s},
        {"sandbox", f.sandbox},
        {"allow_network", f.allow_network},
        {"yes", f.yes},
        {"mcp_configs", absolute_paths(f.mcp_configs)},
        {"mcp_startup_timeout_s", f.mcp_startup_timeout_s}};
}

void apply_stored_flags(
    run_flags& f, const nlohmann::json& stored, const std::set<std::string>& given
) {
    if (!stored.is_object()) {
        return; // a run started by an older wafer, or by a program that stores none
    }
    // The store is a file anyone may have edited: a value of the wrong type or out of range is
    // left out, and the command line's (or the default) stays.
    auto take = [&](const char* flag, const char* key, auto& field, auto valid) {
        const auto it = stored.find(key);
        if (given.contains(flag) || it == stored.end()) {
            return;
        }
        using T = std::decay_t<decltype(field)>;
        try {
            T value = it->get<T>();
            if (valid(value)) {
                field = std::move(value);
            }
        } catch (const nlohmann::json::exception&) { // NOLINT(bugprone-empty-catch)
        }
    };
    auto any = [](const auto&) {
        return true;
    };
    take("--model", "model", f.model, [](const std::string& m) {
        return !m.empty() && m.size() < 200;
    });
    take("--critic", "critics", f.critics, [](const std::vector<std::string>& names) {
        static const std::set<std::string> known{"security", "code-review", "qa", "performance"};
        return std::all_of(names.begin(), names.end(), [](const std::string& n) {
            return known.contains(n);
        });
    });
    take("--max-turns", "max_turns", f.max_turns, [](std::size_t n) {
        return n >= 1 && n <= 1000;
    });
    take("--context-window", "context_window", f.context_window, [](std::int64_t n) {
        return n >= 0 && n <= 100'000'000;
    });
    take("--timeout", "timeout_s", f.timeout_s, [](unsigned s) { return s <= 7U * 24 * 3600; });
    take("--command-timeout", "command_timeout_s", f.command_timeout_s, [](unsigned s) {
        return s >= 1 && s <= 600;
    });
    take("--sandbox", "sandbox", f.sandbox, [](const std::string& s) {
        return tools::parse_sandbox_mode(s).has_value();
    });
    take("--allow-network", "allow_network", f.allow_network, any);
    take("--yes", "yes", f.yes, any);
    take("--mcp-config", "mcp_configs", f.mcp_configs, [](const std::vector<std::string>& files) {
        return files.size() <= 64;
    });
    take("--mcp-startup-timeout", "mcp_startup_timeout_s", f.mcp_startup_timeout_s, [](unsigned s) {
        return s >= 1 && s <= 600;
    });
}

int run(const run_flags& flags) {
    run_plan plan;
    plan.root = workspace_root(flags.workspace);
    // The io_context outlives the store: the store's last completions go to it.
    asio::io_context ioc(1);
    std::shared_ptr<store::run_store> st;
    if (!flags.no_store) {
        st = open_store(store_path(flags.store));
        plan.store = st;
        plan.store_flag = flags.store;
    }
    if (flags.continue_last) {
        const auto last = runs_of(ioc, *st, plan.root, 1);
        if (last.empty()) {
            throw cli_error(
                "no run of " + plan.root.string() + " to continue; start one with wafer run TASK"
            );
        }
        const store::run_info& r = last.front();
        if (r.status != store::run_status::finished) {
            throw cli_error(
                "the last run of this workspace, " + r.id + ", has not finished (" +
                (r.stop_reason.empty() ? std::string(store::to_string(r.status)) : r.stop_reason) +
                "); continue it first: wafer resume " + r.id + store_flag_hint(flags.store)
            );
        }
        plan.resume = true;
        plan.run_id = r.id;
        plan.message = flags.task;
        run_flags continued = flags;
        apply_stored_flags(continued, stored_agent_flags(r), flags.given);
        return drive(ioc, continued, std::move(plan));
    } else {
        plan.run_id = make_run_id();
        plan.task = flags.task;
    }
    return drive(ioc, flags, std::move(plan));
}

int resume(const resume_flags& flags) {
    const fs::path file = store_path(flags.store);
    asio::io_context ioc(1); // outlives the store: its last completions go here
    std::shared_ptr<store::run_store> st = store_of_run(flags.store, flags.id);
    std::optional<store::run_info> info;
    try {
        info = wait_for(ioc, st->async_find_run(flags.id));
    } catch (const wafer::error& e) {
        throw cli_error(store_failure_line(e), exit_failure);
    }
    if (!info) {
        throw cli_error("run " + flags.id + " does not exist in " + file.string());
    }
    const std::string hint = store_flag_hint(flags.store);
    const bool finished = info->status == store::run_status::finished;
    if (finished && !flags.message) {
        throw cli_error(
            "run " + info->id + " finished (" + info->stop_reason +
            "); give a message to continue it: wafer resume " + info->id + hint + " \"...\""
        );
    }
    if (!finished && flags.message) {
        throw cli_error(
            "run " + info->id + " has not finished (" +
            (info->stop_reason.empty() ? std::string(store::to_string(info->status))
                                       : info->stop_reason) +
            "); continue it first without a message: wafer resume " + info->id + hint
        );
    }
    if (lease_is_live(*info)) {
        // A process that died keeps its lease until it expires (30 s after its last renewal).
        const auto now_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                                std::chrono::system_clock::now().time_since_epoch()
        )
                                .count();
        const auto left_s = (info->lease_expires_ms - now_ms + 999) / 1000;
        throw cli_error(
            "run " + info->id + " is being driven by another process (" +
            visible(info->lease_owner) + "); if that process is gone, try again in " +
            std::to_string(left_s) + " s"
        );
    }
    // The agent as the run was started: its stored flags, unless given again here.
    resume_flags agent_flags = flags;
    apply_stored_flags(agent_flags, stored_agent_flags(*info), flags.given);
    run_plan plan;
    if (!flags.workspace.empty()) {
        plan.root = workspace_root(flags.workspace);
    } else if (!info->scope.empty()) {
        plan.root = workspace_root(info->scope, "the run's workspace");
    } else {
        plan.root = workspace_root(".");
    }
    plan.store = st;
    plan.store_flag = flags.store;
    plan.run_id = info->id;
    plan.resume = true;
    plan.message = flags.message;
    return drive(ioc, agent_flags, std::move(plan));
}

} // namespace wafer::cli
