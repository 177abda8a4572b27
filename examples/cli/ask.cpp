// `wafer ask`: one chat completion through the agent loop (no tools, one turn), so --json prints
// the same events as `wafer run`.
#include <wafer/agent.hpp>
#include <wafer/api/client.hpp>
#include <wafer/cerebras_model.hpp>

#include <boost/asio/io_context.hpp>

#include <chrono>
#include <iostream>
#include <memory>

#include "commands.hpp"
#include "printer.hpp"
#include "session.hpp"
#include "terminal.hpp"

namespace asio = boost::asio;

namespace wafer::cli {

namespace {

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
    const agent asker(std::move(cfg));

    event_printer printer(
        std::cout,
        {.json = flags.json, .reasoning = flags.reasoning, .color = stdout_is_tty(), .steps = false}
    );
    run_options options;
    options.on_event = [&printer](const event& e) {
        printer.on_event(e);
    };
    std::string input = std::move(flags.prompt);
    auto op = asker.async_run(std::move(input), std::move(options));
    const run_result result = co_await std::move(op);
    printer.finish(result);
    co_return run_status(result, base_url, std::chrono::seconds(flags.timeout_s));
}

} // namespace

int ask(const ask_flags& flags) {
    asio::io_context ioc(1);
    endpoint ep = open_endpoint(ioc.get_executor(), endpoint_request::from_env(flags.base_url));
    auto client = std::make_shared<api::client>(ioc.get_executor(), ep.config);
    return run_session(ioc, ep, ask_task(flags, client, ep.display_url));
}

} // namespace wafer::cli
