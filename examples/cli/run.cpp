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
#include "coder.hpp"
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

/// What a run_task drives: a new run, or a journaled one resumed (with a follow-up message for
/// a finished one).
struct run_plan {
    fs::path root;
    /// Null: the run is not journaled (--no-store).
    std::shared_ptr<store::run_store> store;
    /// --store (and --store-schema) as given, for the resume hint.
    store_flags store_where;
    std::string run_id;
    bool resume = false;
    std::optional<std::string> message;
    /// A new run's task.
    std::string task;
};

asio::awaitable<int> run_agent(
    run_flags flags,
    run_plan plan,
    std::shared_ptr<api::client> client,
    std::string base_url,
    mcp_servers& mcp
) {
    const approval_mode mode = approvals(flags.yes, plan.store != nullptr);
    co_await discover_context_window(flags, *client);
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
        print_header(std::cout, flags, plan.root, mode, mcp);
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
        const std::string hint = store_flag_hint(plan.store_where);
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
            store_flag_hint(plan.store_where)
        );
        co_return exit_interrupted;
    }
    co_return run_status(result, base_url, std::chrono::seconds(flags.timeout_s));
}

// The run with the MCP servers around it: started first, shut down last, however the run ends.
asio::awaitable<int> run_task(
    run_flags flags, run_plan plan, std::shared_ptr<api::client> client, std::string base_url
) {
    // The approval mode run_agent uses: a server's destructive tools are gated like the
    // built-in tools that change the workspace.
    const approval_mode mode = approvals(flags.yes, plan.store != nullptr);
    mcp_servers mcp = co_await start_mcp_servers(flags, plan.root, mode);
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
        st = open_store(ioc, flags);
        plan.store = st;
        plan.store_where = flags;
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
                "); continue it first: wafer resume " + r.id + store_flag_hint(flags)
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
    asio::io_context ioc(1); // outlives the store: its last completions go here
    std::shared_ptr<store::run_store> st = store_of_run(ioc, flags, flags.id);
    std::optional<store::run_info> info;
    try {
        info = wait_for(ioc, st->async_find_run(flags.id));
    } catch (const wafer::error& e) {
        throw cli_error(store_failure_line(e), exit_failure);
    }
    if (!info) {
        throw cli_error("run " + flags.id + " does not exist in " + store_name(flags));
    }
    const std::string hint = store_flag_hint(flags);
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
    plan.store_where = flags;
    plan.run_id = info->id;
    plan.resume = true;
    plan.message = flags.message;
    return drive(ioc, agent_flags, std::move(plan));
}

} // namespace wafer::cli
