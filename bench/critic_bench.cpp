// Gate latency: what critics add to a run beyond their own model time.
//
// Two identical agents run the same 2-turn script (one covered tool call, then an answer) with
// scripted models on one io_context: one without critics, one with a critic on before_tools and
// final_answer that approves at once. The critic's model is wrapped to time its own completions.
//   added per gate = (T_with - T_without - critic model time) / gates per run
// The scripted models cost the same in both runs, so the difference is the gate machinery:
// building the review input, the critic's sub-agent loop, the verdict parse, the policy, the
// events, and (at before_tools) holding the covered call until its verdict is in.
#include <wafer/agent.hpp>
#include <wafer/critic.hpp>
#include <wafer/scripted_model.hpp>
#include <wafer/tools/registry.hpp>
#include <wafer/tools/tool.hpp>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>

#include <nlohmann/json.hpp>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>

namespace asio = boost::asio;
using clock_type = std::chrono::steady_clock;
using namespace wafer;

namespace {

// Times the wrapped model's completions (the critic's "own model time").
class timed_model final : public model {
public:
    explicit timed_model(std::shared_ptr<model> inner) : inner_(std::move(inner)) {}
    const model_info& info() const noexcept override { return inner_->info(); }
    asio::awaitable<model_reply>
    async_complete(api::chat_request req, model_observer* obs) override {
        const auto t0 = clock_type::now();
        asio::awaitable<model_reply> call = inner_->async_complete(std::move(req), obs);
        model_reply r = co_await std::move(call);
        spent += clock_type::now() - t0;
        co_return r;
    }
    clock_type::duration spent{};

private:
    std::shared_ptr<model> inner_;
};

std::shared_ptr<scripted_model> main_script() {
    auto m = std::make_shared<scripted_model>("zai-glm-4.7");
    m->check_requests(false);
    m->set_responder([](const api::chat_request&, std::size_t i) {
        if (i % 2 == 0) {
            return scripted_model::turn::calls({{"call_1", "write_file", R"({"path":"a.txt"})"}});
        }
        return scripted_model::turn::text("done");
    });
    return m;
}

asio::awaitable<void> run_many(const agent* a, int runs, clock_type::duration* out) {
    const auto t0 = clock_type::now();
    for (int i = 0; i < runs; ++i) {
        asio::awaitable<run_result> op = a->async_run("write a.txt");
        run_result r = co_await std::move(op);
        if (r.stop_reason != stop_reason::completed) {
            std::fprintf(
                stderr, "unexpected stop: %s\n", std::string(to_string(r.stop_reason)).c_str()
            );
            std::exit(1);
        }
    }
    *out = clock_type::now() - t0;
}

double us(clock_type::duration d) {
    return std::chrono::duration<double, std::micro>(d).count();
}

} // namespace

int main(int argc, char** argv) {
    int runs = 20000;
    for (int i = 1; i + 1 < argc; ++i) {
        if (std::strcmp(argv[i], "--runs") == 0) {
            runs = std::atoi(argv[i + 1]);
        }
    }
    auto tools = std::make_shared<tools::registry>();
    tools->add(tools::make_tool<nlohmann::json>(
        "write_file",
        "Write a file",
        nlohmann::json{{"type", "object"}},
        [](nlohmann::json) { return std::string("ok"); }
    ));

    agent_config plain_cfg;
    plain_cfg.model = main_script();
    plain_cfg.tools = tools;
    const agent plain(plain_cfg);

    auto critic_inner = std::make_shared<scripted_model>("llama3.1-8b");
    critic_inner->check_requests(false);
    critic_inner->set_responder([](const api::chat_request&, std::size_t) {
        return scripted_model::turn::text(
            R"({"decision":"approve","reasons":[],"suggested_fix":null,"corrected_arguments":null})"
        );
    });
    auto critic_model = std::make_shared<timed_model>(critic_inner);
    agent_config gated_cfg = plain_cfg;
    gated_cfg.model = main_script();
    critic c = builtin_critic("code-review", critic_model);
    c.gates = {gate::before_tools, gate::final_answer};
    c.tool_names = {"write_file"};
    gated_cfg.critics.push_back(c);
    const agent gated(gated_cfg);
    constexpr int gates_per_run = 2;

    asio::io_context ioc;
    clock_type::duration warm{}, t_plain{}, t_gated{};
    asio::co_spawn(ioc, run_many(&plain, runs / 10, &warm), asio::detached);
    asio::co_spawn(ioc, run_many(&gated, runs / 10, &warm), asio::detached);
    ioc.run();
    ioc.restart();
    critic_model->spent = {};
    asio::co_spawn(ioc, run_many(&plain, runs, &t_plain), asio::detached);
    ioc.run();
    ioc.restart();
    asio::co_spawn(ioc, run_many(&gated, runs, &t_gated), asio::detached);
    ioc.run();

    const double plain_run = us(t_plain) / runs;
    const double gated_run = us(t_gated) / runs;
    const double critic_model_per_run = us(critic_model->spent) / runs;
    const double added = (gated_run - plain_run - critic_model_per_run) / gates_per_run;
    std::printf(
        "critic gate latency (%d runs of 2 turns; critic on before_tools + final_answer)\n", runs
    );
    std::printf("  run without critics        %8.1f us\n", plain_run);
    std::printf("  run with critics           %8.1f us\n", gated_run);
    std::printf(
        "  critic model time per run  %8.1f us (scripted model, timed)\n", critic_model_per_run
    );
    std::printf(
        "  added per gate             %8.1f us   (target <= 100 us: %s)\n",
        added,
        added <= 100.0 ? "met" : "missed"
    );
    std::printf("  ratio added/target         %8.2f\n", added / 100.0);
    return 0;
}
