// The README's short tour, whole: one tool, the agent loop, its events, its answer or its error.
// CEREBRAS_API_KEY (and CEREBRAS_BASE_URL for another endpoint) choose where it runs.
#include <wafer/agent.hpp>
#include <wafer/cerebras_model.hpp>
#include <wafer/tools/registry.hpp>
#include <wafer/tools/tool.hpp>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>

#include <chrono>
#include <exception>
#include <iostream>
#include <memory>
#include <string>

struct weather_args {
    std::string city;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(weather_args, city)

boost::asio::awaitable<int> run(std::shared_ptr<wafer::api::client> client) {
    auto tools = std::make_shared<wafer::tools::registry>();
    tools->add(wafer::tools::make_tool<weather_args>(
        "weather",
        "Current weather for a city",
        {{"type", "object"},
         {"properties", {{"city", {{"type", "string"}}}}},
         {"required", {"city"}},
         {"additionalProperties", false}},
        [](weather_args a) { return "22 C and sunny in " + a.city; }
    ));

    wafer::agent_config cfg;
    cfg.model = std::make_shared<wafer::cerebras_model>(client, "zai-glm-4.7");
    cfg.system_prompt = "You are a helpful assistant. Always respond in English.";
    cfg.tools = tools;
    cfg.limits.max_turns = 8;
    cfg.limits.run_timeout = std::chrono::seconds(60);
    const wafer::agent agent(std::move(cfg));

    wafer::run_options opts;
    opts.on_event = [](const wafer::event& e) {
        std::cerr << wafer::to_json_line(e) << "\n";
    };
    const wafer::run_result r = co_await agent.async_run("Weather in Florence and Rome?", opts);
    if (r.error) { // the model or the endpoint failed: HTTP status, provider code and message
        std::cerr << "error: " << r.error->code.message() << ": "
                  << r.error->diagnostics.to_string() << "\n";
        co_return 1;
    }
    std::cout << r.final_text << "\n(" << to_string(r.stop_reason) << ", " << r.turns.size()
              << " turns, " << r.usage.completion_tokens << " completion tokens)\n";
    co_return r.stop_reason == wafer::stop_reason::completed ? 0 : 1;
}

int main() try {
    boost::asio::io_context ioc;
    auto client = std::make_shared<wafer::api::client>(
        ioc.get_executor(), wafer::api::client_config::from_env()
    );
    int status = 1;
    boost::asio::co_spawn(ioc, run(client), [&status](std::exception_ptr e, int rc) {
        if (e) {
            std::rethrow_exception(e); // out of ioc.run(), to the catch below
        }
        status = rc;
    });
    ioc.run();
    return status;
} catch (const std::exception& e) { // a malformed CEREBRAS_BASE_URL, an unreadable CA file, ...
    std::cerr << "exception: " << e.what() << "\n";
    return 1;
}
