// 03: the agent loop with tools: the model's reasoning and answer stream, tool calls run in
// parallel on C++ handlers, and the run ends with a summary. This is `make demo`.
#include <wafer/agent.hpp>
#include <wafer/cerebras_model.hpp>
#include <wafer/tools/registry.hpp>
#include <wafer/tools/tool.hpp>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>

#include <filesystem>
#include <iomanip>
#include <iostream>

#include "endpoint.hpp"

namespace asio = boost::asio;
namespace fs = std::filesystem;

namespace {

// Lists a directory below the working directory; paths that leave it are refused.
std::string list_files(nlohmann::json args) {
    fs::path dir = args.value("dir", ".");
    if (dir.is_absolute() || dir.lexically_normal().string().starts_with("..")) {
        throw wafer::tools::argument_error(
            "dir must be a relative path inside the working directory"
        );
    }
    std::string out;
    for (const auto& entry : fs::directory_iterator(dir)) {
        out += entry.path().filename().string();
        out += entry.is_directory() ? "/\n" : "\n";
    }
    return out.empty() ? "(empty directory)" : out;
}

std::shared_ptr<wafer::tools::registry> make_tools() {
    auto reg = std::make_shared<wafer::tools::registry>();
    wafer::tools::tool_options read_only;
    read_only.read_only = true;
    reg->add(wafer::tools::make_blocking_tool<nlohmann::json>(
        "list_files",
        "List the entries of a directory (relative to the working directory).",
        {{"type", "object"},
         {"properties", {{"dir", {{"type", "string"}, {"description", "relative directory"}}}}},
         {"required", {"dir"}},
         {"additionalProperties", false}},
        &list_files,
        read_only
    ));
    return reg;
}

// Reasoning is shown dimmed; the escape codes are written only when the kind of text changes.
bool dimmed = false;

void set_dim(bool on) {
    if (on != dimmed) {
        std::cout << (on ? "\x1b[2m" : "\x1b[0m");
        dimmed = on;
    }
}

void print_event(const wafer::event& e) {
    using namespace wafer::events;
    if (!e.is<reasoning_delta>()) {
        set_dim(false);
    }
    if (auto* r = e.get_if<reasoning_delta>()) {
        set_dim(true);
        std::cout << r->text << std::flush;
    } else if (auto* c = e.get_if<content_delta>()) {
        std::cout << c->text << std::flush;
    } else if (auto* t = e.get_if<tool_call_started>()) {
        std::cout << "\n-> " << t->name << " " << t->arguments << "\n";
    } else if (auto* f = e.get_if<tool_call_finished>()) {
        std::cout << "<- " << f->name << (f->is_error ? " (error) " : " ")
                  << static_cast<double>(f->duration.count()) / 1000.0 << " ms, "
                  << f->output.size() << " bytes\n";
    } else if (auto* m = e.get_if<model_request>()) {
        std::cout << "\n[turn " << m->turn << ": " << m->message_count << " messages to "
                  << m->model << "]\n";
    }
}

void print_summary(const wafer::run_result& r) {
    const auto& u = r.usage;
    double wall_s = static_cast<double>(r.duration.count()) / 1e6;
    double gen_s = r.time_info.completion_time > 0 ? r.time_info.completion_time : wall_s;
    std::cout << "\n\n== " << to_string(r.stop_reason) << " after " << r.turn_count()
              << " turns in " << std::fixed << std::setprecision(3) << wall_s << " s\n"
              << "tokens: prompt " << u.prompt_tokens << " (cached " << u.cached_tokens
              << "), completion " << u.completion_tokens << " (reasoning " << u.reasoning_tokens
              << ")";
    if (gen_s > 0) {
        std::cout << ", " << std::setprecision(0)
                  << static_cast<double>(u.completion_tokens) / gen_s << " tokens/s";
    }
    std::cout << "\n";
    if (r.error) {
        std::cout << "error: " << r.error->code.message() << " " << r.error->diagnostics.to_string()
                  << "\n";
    }
}

asio::awaitable<int> run(wafer::agent& agent, std::string task) {
    wafer::run_options opts;
    opts.on_event = &print_event;
    wafer::run_result result = co_await agent.async_run(std::move(task), std::move(opts));
    print_summary(result);
    co_return result.stop_reason == wafer::stop_reason::error ? 1 : 0;
}

} // namespace

int main(int argc, char** argv) {
    std::string task = argc > 1 ? argv[1]
                                : "Use list_files to look at the current directory, then tell me "
                                  "in two sentences what kind of project it is.";
    asio::io_context ioc;
    auto ep = examples::choose_endpoint(ioc.get_executor());
    auto client = std::make_shared<wafer::api::client>(ioc.get_executor(), ep.config);

    wafer::agent_config cfg;
    cfg.name = "demo";
    cfg.model = std::make_shared<wafer::cerebras_model>(client, "zai-glm-4.7");
    cfg.system_prompt = "You are a concise assistant with tools. Always respond in English.";
    cfg.tools = make_tools();
    cfg.limits.max_turns = 6;
    cfg.limits.run_timeout = std::chrono::minutes(2);
    cfg.request.temperature = 1.0;
    cfg.request.top_p = 0.95;
    wafer::agent agent(std::move(cfg));

    int status = 1;
    asio::co_spawn(ioc, run(agent, std::move(task)), [&](std::exception_ptr e, int rc) {
        status = e ? 1 : rc;
        if (ep.offline) {
            ep.offline->stop();
        }
    });
    ioc.run();
    return status;
}
