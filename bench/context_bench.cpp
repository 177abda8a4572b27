// Context compaction: CPU for one pass of every non-model tier over a 120k-token history, beside
// the floor of copying that history once; and the counted figure that matters for prompt
// caching: how many of 50 consecutive requests without compaction keep the previous request as
// a byte-identical prefix.
#include <wafer/agent.hpp>
#include <wafer/compaction.hpp>
#include <wafer/scripted_model.hpp>
#include <wafer/tools/registry.hpp>
#include <wafer/tools/tool.hpp>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>

#include <nlohmann/json.hpp>

#include <chrono>
#include <cstdio>
#include <ctime>
#include <string>

using namespace wafer;

namespace {

double cpu_ms() {
    timespec ts{};
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return static_cast<double>(ts.tv_sec) * 1e3 + static_cast<double>(ts.tv_nsec) / 1e6;
}

// About 120k tokens (4 characters each): 60 steps of reasoning, a call and a 4.6k-character
// result (four of them 50k characters, over the clamp), a few reading the same file again.
conversation history() {
    conversation c;
    c.add_system("You are a coding agent.");
    c.add_user("Refactor the parser.");
    for (int i = 0; i < 60; ++i) {
        const std::string id = "c" + std::to_string(i);
        api::message m = api::empty_message(api::role::assistant);
        m.reasoning = std::string(300, 'r');
        const int file = i % 7 == 0 ? 0 : i;
        m.tool_calls.push_back(
            {id, "read_file", R"({"path":"src/f)" + std::to_string(file) + R"(.cpp"})"}
        );
        c.append(std::move(m));
        std::string out;
        const std::size_t size = i % 15 == 7 ? 50'000 : 4'600;
        while (out.size() < size) {
            out += "line " + std::to_string(out.size()) + " of f" + std::to_string(i) + ": code\n";
        }
        c.add_tool_result(id, std::move(out));
    }
    return c;
}

std::size_t identical_prefixes() {
    auto model = std::make_shared<scripted_model>("zai-glm-4.7");
    int n = 0;
    model->set_responder([&](const api::chat_request&, std::size_t) {
        if (++n <= 49) {
            return scripted_model::turn::calls(
                {{"c" + std::to_string(n), "read_file", R"({"path":"a"})"}}, "r"
            );
        }
        return scripted_model::turn::text("done");
    });
    auto reg = std::make_shared<tools::registry>();
    reg->add(tools::make_tool<nlohmann::json>(
        "read_file",
        "reads",
        nlohmann::json{{"type", "object"}},
        [](nlohmann::json) { return std::string(2'000, 'x'); }
    ));
    agent_config cfg;
    cfg.model = model;
    cfg.tools = reg;
    cfg.limits.max_turns = 60;
    agent a(std::move(cfg));
    boost::asio::io_context ioc;
    boost::asio::co_spawn(ioc, a.async_run("task"), boost::asio::detached);
    ioc.run();
    const auto reqs = model->requests();
    std::size_t same = 0;
    for (std::size_t i = 0; i + 1 < reqs.size(); ++i) {
        api::chat_request next = reqs[i + 1];
        next.messages.resize(reqs[i].messages.size());
        same += api::serialize(next) == api::serialize(reqs[i]) ? 1U : 0U;
    }
    return same;
}

} // namespace

int main() {
    const conversation base = history();
    context_config cfg;
    compaction_plan plan;
    plan.config = &cfg;
    plan.budget_tokens = 131'072;
    plan.target_tokens = 1; // every non-model tier runs
    plan.is_read_only = [](std::string_view name) {
        return name == "read_file";
    };
    const std::int64_t tokens = estimate_tokens(base, plan);
    std::size_t chars = 0;
    for (const auto& m : base.messages()) {
        chars += m.text().size() + m.reasoning.value_or("").size();
        for (const auto& c : m.tool_calls) {
            chars += c.name.size() + c.arguments.size();
        }
    }

    constexpr int rounds = 50;
    // The floor: copying the history (each pass works on a fresh copy).
    double t0 = cpu_ms();
    std::size_t sink = 0;
    for (int i = 0; i < rounds; ++i) {
        conversation c = base;
        sink += c.size();
    }
    const double copy_ms = (cpu_ms() - t0) / rounds;
    std::size_t records = 0;
    std::int64_t after = 0;
    t0 = cpu_ms();
    for (int i = 0; i < rounds; ++i) {
        conversation c = base;
        compaction_pass p = compact(c, plan);
        records = p.records.size();
        after = p.tokens_after;
    }
    const double pass_ms = (cpu_ms() - t0) / rounds - copy_ms;
    std::printf(
        "context: one compaction pass (clamp, dedupe, reasoning, clear: %zu steps) over %zu "
        "characters (%lld tokens at 4 characters each; wafer's uncalibrated estimate %lld) -> "
        "%lld: %.3f ms CPU (target <= 2 ms), copying the history %.3f ms: %.1fx the floor\n",
        records,
        chars,
        static_cast<long long>(chars / 4),
        static_cast<long long>(tokens),
        static_cast<long long>(after),
        pass_ms,
        copy_ms,
        copy_ms > 0 ? pass_ms / copy_ms : 0.0
    );
    std::printf(
        "context: %zu of 49 consecutive requests keep the previous one as a byte-identical "
        "prefix (50 turns, no compaction)\n",
        identical_prefixes()
    );
    return sink == 0 ? 1 : 0;
}
