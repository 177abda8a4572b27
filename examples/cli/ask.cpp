// `wafer ask`: one chat completion through the agent loop (no tools, one turn), so --json prints
// the same events as `wafer run`.
#include <wafer/agent.hpp>
#include <wafer/api/client.hpp>
#include <wafer/cerebras_model.hpp>

#include <boost/asio/io_context.hpp>
#include <boost/asio/this_coro.hpp>

#include <chrono>
#include <iostream>
#include <memory>

#include "commands.hpp"
#include "failure.hpp"
#include "printer.hpp"
#include "session.hpp"
#include "terminal.hpp"
#include "tracing.hpp"
#include "visible.hpp"

namespace asio = boost::asio;

namespace wafer::cli {

namespace {

/// The reply that asked for tools, when the one turn ended on tool calls (ask offers none).
const api::message* unexpected_tool_calls(const run_result& r) {
    if (r.stop_reason != stop_reason::max_turns) {
        return nullptr;
    }
    const auto& msgs = r.conversation.messages();
    for (auto it = msgs.rbegin(); it != msgs.rend(); ++it) {
        if (it->role == api::role::assistant) {
            return it->tool_calls.empty() ? nullptr : &*it;
        }
    }
    return nullptr;
}

asio::awaitable<int>
ask_task(ask_flags flags, std::shared_ptr<api::client> client, std::string base_url) {
    agent_config cfg;
    cfg.name = "ask";
    cfg.model = std::make_shared<cerebras_model>(client, flags.model, !flags.no_stream);
    cfg.limits.max_turns = 1;
    cfg.limits.on_max_turns = max_turns_policy::stop;
    // A reply that trickles forever never trips the client's idle timeout: bound the whole.
    if (flags.timeout_s > 0) {
        cfg.limits.run_timeout = std::chrono::seconds(flags.timeout_s);
    }
    apply_sampling_defaults(cfg.request, flags.model);
    if (flags.temperature) {
        cfg.request.temperature = *flags.temperature;
    }
    if (flags.max_tokens) {
        cfg.request.max_completion_tokens = *flags.max_tokens;
    }
    cfg.system_prompt = flags.system;
    cfg.tracer = cli_tracer(client->config());
    const agent asker(std::move(cfg));

    event_printer printer(
        std::cout,
        {.json = flags.json,
         .reasoning = flags.reasoning,
         .color = output_color(flags.color),
         .steps = false,
         .thinking = thinking_line_allowed()},
        &std::cerr
    );
    printer.coalesce_writes(co_await asio::this_coro::executor);
    run_options options;
    options.on_event = [&printer](const event& e) {
        printer.on_event(e);
    };
    std::string input = std::move(flags.prompt);
    auto op = asker.async_run(std::move(input), std::move(options));
    run_result result = co_await std::move(op);
    const api::message* asked = unexpected_tool_calls(result);
    if (asked == nullptr) {
        printer.finish(result);
        co_return run_status(result, base_url, std::chrono::seconds(flags.timeout_s));
    }
    // Some servers answer with tool calls nobody offered: the text is the answer, the calls are
    // left alone (ask runs no tools) and named.
    const std::string text = asked->text();
    result.final_text = text;
    printer.finish(result);
    std::string ignored;
    for (const auto& c : asked->tool_calls) {
        ignored += (ignored.empty() ? "" : ", ") + c.name + " " + shortened(c.arguments, 120);
    }
    const std::size_t n = asked->tool_calls.size();
    print_failure(
        "the model asked for " + std::to_string(n) + " tool call" + (n == 1 ? "" : "s") +
        " (ask offers no tools; ignored): " + ignored
    );
    co_return text.empty() ? exit_incomplete : exit_ok;
}

} // namespace

int ask(const ask_flags& flags) {
    asio::io_context ioc(1);
    endpoint ep = open_endpoint(
        ioc.get_executor(), endpoint_request::from_env(flags.base_url, flags.ca_file)
    );
    auto client = std::make_shared<api::client>(ioc.get_executor(), ep.config);
    return run_session(ioc, ep, ask_task(flags, client, ep.display_url));
}

} // namespace wafer::cli
