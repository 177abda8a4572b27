// An agent as a tool of another agent: each call is a child run, nested under the calling run
// through the host the calling run's driver passes to its handlers (compose/run_host.hpp).
#include <wafer/agent.hpp>
#include <wafer/event_emitter.hpp>

#include <boost/asio/post.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <nlohmann/json.hpp>

#include <memory>
#include <string>

#include "compose/child_run.hpp"
#include "compose/run_host.hpp"

namespace wafer {

namespace asio = boost::asio;
using nlohmann::json;

namespace {

// What every call of one such tool shares.
struct agent_tool_spec {
    agent child;
    std::string tool_name;
    agent_tool_options options;
};

json default_parameters() {
    return {
        {"type", "object"},
        {"properties",
         {{"input", {{"type", "string"}, {"description", "The task for the sub-agent."}}}}},
        {"required", {"input"}}};
}

std::string child_input(const agent_tool_spec& spec, const json& args) {
    if (spec.options.input) {
        return spec.options.input(args);
    }
    if (const auto it = args.find("input"); it != args.end() && it->is_string()) {
        return it->get<std::string>();
    }
    return args.dump(-1, ' ', false, json::error_handler_t::replace);
}

// A child "finished with an answer": completed, or max_turns with the final-answer turn's text.
bool answered(const run_result& r) {
    return r.stop_reason == stop_reason::completed ||
           (r.stop_reason == stop_reason::max_turns && !r.final_text.empty());
}

tools::tool_output failure_output(const agent_tool_spec& spec, const run_result& r) {
    std::string text = "the sub-agent '" + spec.child.config().name + "' (tool " + spec.tool_name +
                       ") did not finish: " + std::string(to_string(r.stop_reason));
    if (r.error) {
        text += ": " + r.error->code.message();
        if (auto d = r.error->diagnostics.to_string(); !d.empty()) {
            text += " (" + d + ")";
        }
    }
    if (!r.final_text.empty()) {
        text += ". Its last answer: " + r.final_text;
    }
    return {std::move(text), true};
}

tools::tool_output output_of(const agent_tool_spec& spec, const run_result& r) {
    if (spec.options.result) {
        return spec.options.result(r);
    }
    if (!answered(r)) {
        return failure_output(spec, r);
    }
    if (spec.options.output == agent_tool_output::structured) {
        if (!r.final_json) {
            return {
                "the sub-agent '" + spec.child.config().name +
                    "' gave no valid JSON output: " + r.final_text,
                true};
        }
        return {r.final_json->dump(-1, ' ', false, json::error_handler_t::replace), false};
    }
    return {r.final_text, false};
}

void forward(const std::shared_ptr<detail::run_host>& host, const event& e) {
    host->deliver(e);
}

// One call: a named coroutine taking everything by value (no capturing lambda as a body).
asio::awaitable<tools::tool_output>
run_child(std::shared_ptr<const agent_tool_spec> spec, json args, tools::call_context ctx) {
    const std::string input =
        child_input(*spec, args); // argument_error: an invalid-arguments result
    // One turn of the executor first, before the child counts as started (a cancellation
    // here throws): the handler starts inline in the dispatch, and the parent's driver is to
    // announce the call (tool_call_started) before the child's events.
    auto ex = co_await asio::this_coro::executor;
    co_await asio::post(ex, asio::use_awaitable);
    auto host = std::dynamic_pointer_cast<detail::run_host>(ctx.host);
    run_options ro;
    if (host) {
        ro.run_id = host->run_id + "/" + ctx.call_id;
        ro.parent_run_id = host->run_id;
        ro.deadline = host->deadline;
        if (spec->options.forward_events && host->parent != nullptr) {
            ro.on_event = [host](const event& e) {
                forward(host, e);
            };
            ro.events = host->parent->events;
            ro.finish_events = false;
        }
        host->child_started();
    }
    const std::string run_id = ro.run_id;
    run_result r;
    std::string failure;
    try {
        if (host && host->journal) {
            // A journaled parent: the child is a run in the same store, under its owner.
            r = co_await detail::async_run_child(spec->child, input, std::move(ro), *host->journal);
        } else {
            r = co_await spec->child.async_run(input, std::move(ro));
        }
    } catch (const std::exception& e) {
        failure = e.what();
    } catch (...) {
        failure = "an exception that is not a std::exception";
    }
    if (!failure.empty()) {
        r.stop_reason = stop_reason::error;
        r.run_id = run_id;
    }
    if (host && failure.empty() && r.stop_reason == stop_reason::awaiting_approval &&
        host->journal) {
        // The parent stops for the child's calls too; each names the run it belongs to.
        std::vector<pending_approval> pending = r.pending_approvals;
        for (auto& p : pending) {
            if (p.run_id.empty()) {
                p.run_id = r.run_id;
            }
        }
        host->paused[ctx.call_id] = std::move(pending);
    }
    if (host) {
        host->child_ended(child_run{
            r.run_id,
            spec->child.config().name,
            spec->tool_name,
            ctx.call_id,
            r.stop_reason,
            r.turns.size(),
            r.total_usage()});
    }
    if (!failure.empty()) {
        co_return tools::tool_output{
            "the sub-agent '" + spec->child.config().name + "' (tool " + spec->tool_name +
                ") failed: " + failure,
            true};
    }
    co_return output_of(*spec, r);
}

} // namespace

tools::tool
agent::as_tool(std::string name, std::string description, agent_tool_options options) const {
    agent_config cfg = cfg_;
    if (options.max_turns) {
        cfg.limits.max_turns = *options.max_turns;
    }
    if (options.run_timeout) {
        cfg.limits.run_timeout = options.run_timeout;
    }
    if (options.token_budget) {
        cfg.limits.token_budget = options.token_budget;
    }
    json parameters = options.parameters.is_null() ? default_parameters() : options.parameters;
    tools::tool_options tool_opts = options.tool;
    tool_opts.child_run = true;
    auto spec = std::make_shared<const agent_tool_spec>(agent_tool_spec{
        agent(std::move(cfg)), name, std::move(options)});
    tools::async_handler_fn fn = [spec](json args, tools::call_context ctx) {
        return run_child(spec, std::move(args), std::move(ctx));
    };
    return tools::tool{
        std::move(name),
        std::move(description),
        std::move(parameters),
        false,
        tool_opts,
        tools::async_handler{std::move(fn)}};
}

} // namespace wafer
