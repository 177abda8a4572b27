// 04: the agent loop. The model asks for several tools in one reply; wafer runs them in parallel
// on C++ handlers, sends the results back, and the model answers. Everything that happens is an
// event: reasoning (dimmed) and answer text as they stream, each tool call, each turn.
//
// GLM 4.7 "preserved thinking": the reasoning of every turn is stored verbatim in the
// conversation and sent back with the next request (`clear_thinking: false`), so the model keeps
// its train of thought across tool calls. The end of the run shows that it happened.
//
// Offline, the stand-in server is given two scripted replies (three parallel calls, then the
// answer); with CEREBRAS_API_KEY set a real model decides.
#include <wafer/agent.hpp>
#include <wafer/cerebras_model.hpp>
#include <wafer/tools/registry.hpp>
#include <wafer/tools/tool.hpp>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <chrono>
#include <iomanip>
#include <iostream>
#include <map>
#include <optional>
#include <string_view>

#include "endpoint.hpp"

namespace asio = boost::asio;
using namespace std::chrono_literals;

namespace {

struct weather_args {
    std::string city;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(weather_args, city)

// An async tool with 150 ms of simulated latency: three calls in one turn take ~150 ms, not 450.
asio::awaitable<std::string> get_weather(weather_args a) {
    asio::steady_timer latency(co_await asio::this_coro::executor, 150ms);
    co_await latency.async_wait(asio::use_awaitable);
    static const std::map<std::string, std::string> today{
        {"Florence", "22 C, sunny"}, {"Rome", "25 C, clear"}, {"Milan", "18 C, light rain"}};
    auto it = today.find(a.city);
    co_return a.city + ": " + (it != today.end() ? it->second : "14 C, cloudy");
}

std::shared_ptr<wafer::tools::registry> make_tools() {
    auto reg = std::make_shared<wafer::tools::registry>();
    wafer::tools::tool_options read_only;
    read_only.read_only = true;
    reg->add(wafer::tools::make_async_tool<weather_args>(
        "get_weather",
        "Today's weather in one city.",
        {{"type", "object"},
         {"properties", {{"city", {{"type", "string"}, {"description", "city name"}}}}},
         {"required", {"city"}},
         {"additionalProperties", false}},
        &get_weather,
        read_only
    ));
    return reg;
}

// Offline: what a GLM-like model would reply, scripted on the stand-in server. The first reply
// carries reasoning and three tool calls at once; the second reasons over the results.
void script_offline_replies(wafer::testing::fake_server& server) {
    wafer::testing::scripted_turn calls;
    calls.reasoning = "The user wants to compare three cities. I can ask for all three at once: "
                      "get_weather for Florence, Rome and Milan, in parallel.";
    for (const char* city : {"Florence", "Rome", "Milan"}) {
        calls.tool_calls.push_back(
            {.id = {}, .name = "get_weather", .arguments = nlohmann::json{{"city", city}}.dump()}
        );
    }
    wafer::testing::scripted_turn answer;
    answer.reasoning = "As planned, I asked for all three cities. Rome is 25 C, Florence 22 C, "
                       "Milan 18 C with rain, so Rome is the warmest.";
    answer.content = "Rome is the warmest today (25 C, clear), then Florence (22 C, sunny); "
                     "Milan is the coolest at 18 C with light rain.";
    server.enqueue({wafer::testing::reply::of(calls), wafer::testing::reply::of(answer)});
}

// --- Printing events -----------------------------------------------------------------------
struct printer {
    bool dimmed = false;
    bool mid_line = false; // streamed text left the cursor mid-line
    std::optional<std::chrono::steady_clock::time_point> batch_start;
    std::size_t running = 0;

    void text(std::string_view t, bool dim) {
        if (dim != dimmed) {
            std::cout << (dim ? "\x1b[2m" : "\x1b[0m");
            if (mid_line) {
                std::cout << "\n"; // reasoning and answer on lines of their own
            }
            dimmed = dim;
        }
        std::cout << t << std::flush;
        mid_line = !t.empty() && t.back() != '\n';
    }

    // Starts a line of our own (after resetting the dim colour).
    std::ostream& line() {
        if (dimmed) {
            std::cout << "\x1b[0m";
            dimmed = false;
        }
        if (mid_line) {
            std::cout << "\n";
            mid_line = false;
        }
        return std::cout;
    }

    void operator()(const wafer::event& e) {
        using namespace wafer::events;
        if (auto* r = e.get_if<reasoning_delta>()) {
            text(r->text, true);
        } else if (auto* c = e.get_if<content_delta>()) {
            text(c->text, false);
        } else if (auto* m = e.get_if<model_request>()) {
            line() << "[turn " << m->turn << ": " << m->message_count << " messages, "
                   << m->tool_count << " tools -> " << m->model << "]\n";
        } else if (auto* t = e.get_if<tool_call_started>()) {
            if (running++ == 0) {
                batch_start = std::chrono::steady_clock::now();
            }
            line() << "-> " << t->name << " " << t->arguments << "\n";
        } else if (auto* f = e.get_if<tool_call_finished>()) {
            line() << "<- " << f->name << (f->is_error ? " (error) " : " ") << std::fixed
                   << std::setprecision(1) << static_cast<double>(f->duration.count()) / 1000.0
                   << " ms: " << f->output << "\n";
            if (--running == 0 && batch_start) {
                auto wall = std::chrono::steady_clock::now() - *batch_start;
                std::cout << "   (batch done in "
                          << std::chrono::duration_cast<std::chrono::milliseconds>(wall).count()
                          << " ms: the calls ran in parallel)\n";
            }
        } else if (e.is<run_finished>()) {
            line();
        }
    }
};

void print_summary(const wafer::run_result& r) {
    const auto& u = r.usage;
    double wall_s = static_cast<double>(r.duration.count()) / 1e6;
    std::cout << "\n== " << to_string(r.stop_reason) << " after " << r.turn_count() << " turns in "
              << std::fixed << std::setprecision(3) << wall_s << " s\n"
              << "tokens: prompt " << u.prompt_tokens << " (cached " << u.cached_tokens
              << "), completion " << u.completion_tokens << " (reasoning " << u.reasoning_tokens
              << ")\n";
    if (r.error) {
        std::cout << "error: " << r.error->code.message() << " " << r.error->diagnostics.to_string()
                  << "\n";
    }
    // Preserved thinking: every assistant message keeps its reasoning verbatim, and the replay
    // policy for GLM sends it back on the following requests.
    std::size_t kept = 0;
    for (const auto& m : r.conversation.messages()) {
        kept += (m.role == wafer::api::role::assistant && m.reasoning) ? 1U : 0U;
    }
    std::cout << "reasoning kept in the conversation: " << kept << " assistant messages\n";
}

// Offline we can also look at what went over the wire: turn 2's request carried turn 1's
// reasoning back, with clear_thinking false.
void show_replayed_reasoning(const wafer::testing::fake_server& server) {
    auto requests = server.chat_requests();
    if (requests.size() < 2) {
        return;
    }
    const auto& second = requests[1];
    for (const auto& m : second.messages) {
        if (m.role == wafer::api::role::assistant && m.reasoning) {
            std::cout << "turn 2's request sent back turn 1's reasoning (clear_thinking: "
                      << (second.clear_thinking == false ? "false" : "unset") << "): \""
                      << m.reasoning->substr(0, 60) << "...\"\n";
        }
    }
}

// `offline` is the stand-in server, or null with a real endpoint.
asio::awaitable<int>
run(const wafer::agent& agent, std::string task, const wafer::testing::fake_server* offline) {
    wafer::run_options opts;
    // The callback may be copied by the run, so its state lives behind one shared pointer.
    opts.on_event = [p = std::make_shared<printer>()](const wafer::event& e) {
        (*p)(e);
    };
    wafer::run_result result = co_await agent.async_run(std::move(task), std::move(opts));
    print_summary(result);
    if (offline) {
        show_replayed_reasoning(*offline);
    }
    co_return result.stop_reason == wafer::stop_reason::completed ? 0 : 1;
}

} // namespace

int main(int argc, char** argv) {
    std::string task = argc > 1 ? argv[1]
                                : "Which is warmest today: Florence, Rome or Milan? Call "
                                  "get_weather for all three at once, then answer in one sentence.";
    asio::io_context ioc;
    auto ep = examples::choose_endpoint(ioc.get_executor());
    if (ep.offline) {
        script_offline_replies(*ep.offline);
    }
    auto client = std::make_shared<wafer::api::client>(ioc.get_executor(), ep.config);

    wafer::agent_config cfg;
    cfg.name = "weather";
    cfg.model = std::make_shared<wafer::cerebras_model>(client, "zai-glm-4.7");
    cfg.system_prompt = "You are a concise assistant with tools. Always respond in English.";
    cfg.tools = make_tools();
    cfg.limits.max_turns = 6;
    cfg.limits.run_timeout = std::chrono::minutes(2);
    cfg.limits.tool_call_timeout = std::chrono::seconds(10);
    // GLM 4.7's recommended sampling; reasoning replay is the default (preserve_all).
    cfg.request.temperature = 1.0;
    cfg.request.top_p = 0.95;
    wafer::agent agent(std::move(cfg));

    return examples::run_example(ioc, ep, run(agent, std::move(task), ep.offline.get()));
}
