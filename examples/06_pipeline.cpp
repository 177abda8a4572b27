// 06: a multi-agent pipeline written as plain coroutines: a planner splits the task into steps,
// workers run the steps (independent ones in parallel), and a reviewer judges the result; a
// "revise" sends the last step back once. There is no pipeline framework: the control flow is
// ordinary C++ (loops, ifs, make_parallel_group), and each agent is an ordinary wafer::agent.
//
// Offline, the three roles run on wafer::scripted_model: canned, deterministic replies (what you
// would use in your own tests), with a delay on each worker reply so the parallelism shows.
// With CEREBRAS_API_KEY set, all three talk to the real endpoint.
#include <wafer/agent.hpp>
#include <wafer/cerebras_model.hpp>
#include <wafer/prompts.hpp>
#include <wafer/scripted_model.hpp>
#include <wafer/verdict.hpp>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/deferred.hpp>
#include <boost/asio/experimental/parallel_group.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <iostream>
#include <map>
#include <stdexcept>
#include <string>
#include <vector>

#include "endpoint.hpp"

namespace asio = boost::asio;
using nlohmann::json;
using namespace std::chrono_literals;

namespace {

// --- The plan, as the planner prompt (prompts/planner.md) asks for it ---------------------------
struct plan_step {
    std::string id;
    std::string description;
    std::vector<std::string> depends_on;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(plan_step, id, description, depends_on)

struct plan {
    std::string goal;
    std::vector<plan_step> steps;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(plan, goal, steps)

// Strict structured output: the endpoint must answer with exactly this shape.
json plan_schema() {
    json step = {
        {"type", "object"},
        {"properties",
         {{"id", {{"type", "string"}}},
          {"description", {{"type", "string"}}},
          {"depends_on", {{"type", "array"}, {"items", {{"type", "string"}}}}}}},
        {"required", {"id", "description", "depends_on"}},
        {"additionalProperties", false}};
    return {
        {"type", "object"},
        {"properties",
         {{"goal", {{"type", "string"}}}, {"steps", {{"type", "array"}, {"items", step}}}}},
        {"required", {"goal", "steps"}},
        {"additionalProperties", false}};
}

// --- Offline scripts ----------------------------------------------------------------------------
// The worker's input names its step ("Your step (s2): ...") and carries the results it depends
// on; the scripted worker answers from that, so data really flows through the pipeline.
wafer::scripted_model::turn scripted_worker(const wafer::api::chat_request& req, std::size_t) {
    static const std::map<std::string, std::string> canned{
        {"s1",
         "Wire layer: streaming Chat Completions over Asio with SSE parsed by simdjson, the "
         "official SDKs' retry rules, TLS on by default."},
        {"s2",
         "Agent loop: one coroutine per run, parallel tool calls, preserved GLM thinking "
         "across turns, deadlines and cancellation at every level."},
        {"s3",
         "Critics: sub-agents with strict JSON verdicts that gate tool calls, steps and "
         "final answers."}};
    const std::string input = req.messages.back().text();
    const auto at = input.find("Your step (");
    const std::string id = at == std::string::npos ? "?" : input.substr(at + 11, 2);
    wafer::scripted_model::turn t;
    t.delay = 300ms; // stands in for model time; parallel steps overlap it
    if (auto it = canned.find(id); it != canned.end()) {
        t.content = it->second;
    } else {
        // The merge step: bullet the dependency results it was given, plus any feedback.
        t.content = "wafer 0.1 release notes\n";
        for (std::size_t p = input.find("\n[s"); p != std::string::npos;
             p = input.find("\n[s", p + 1)) {
            t.content += "- " + input.substr(p + 6, input.find('\n', p + 1) - p - 6) + "\n";
        }
        if (input.find("Reviewer feedback") != std::string::npos) {
            t.content += "- Runs offline: without an API key, a built-in stand-in model answers.\n";
        }
    }
    t.reasoning = "Doing step " + id + " as described.";
    return t;
}

struct team {
    std::shared_ptr<wafer::model> planner, worker, reviewer;
};

team scripted_team() {
    auto planner = std::make_shared<wafer::scripted_model>("zai-glm-4.7");
    plan p{
        "Release notes for wafer 0.1",
        {{"s1", "Summarise the wire layer in one sentence.", {}},
         {"s2", "Summarise the agent loop in one sentence.", {}},
         {"s3", "Summarise the critics in one sentence.", {}},
         {"s4", "Merge the summaries into release notes.", {"s1", "s2", "s3"}}}};
    planner->push(wafer::scripted_model::turn::text(
        json(p).dump(), "Three summaries are independent; the merge needs all three."
    ));

    auto worker = std::make_shared<wafer::scripted_model>("zai-glm-4.7");
    worker->set_responder(&scripted_worker);

    auto reviewer = std::make_shared<wafer::scripted_model>("zai-glm-4.7");
    reviewer->push(wafer::scripted_model::turn::text(json{
        {"decision", "revise"},
        {"reasons", {"The notes do not say that wafer works offline."}},
        {"suggested_fix", "Add a line about the offline stand-in."},
        {"corrected_arguments", nullptr}}.dump()));
    reviewer->push(wafer::scripted_model::turn::text(json{
        {"decision", "approve"},
        {"reasons", {"Covers every part, including offline use."}},
        {"suggested_fix", nullptr},
        {"corrected_arguments", nullptr}}.dump()));
    return {planner, worker, reviewer};
}

// --- The roles ------------------------------------------------------------------------------
wafer::agent make_planner(std::shared_ptr<wafer::model> m) {
    wafer::agent_config cfg;
    cfg.name = "planner";
    cfg.model = std::move(m);
    cfg.system_prompt = wafer::prompt_library::builtin().render(
        "planner", {{"language", "English"}, {"max_steps", "4"}}
    );
    cfg.request.response_format =
        wafer::api::response_format::json_schema_of("plan", plan_schema());
    cfg.limits.max_turns = 1;
    return wafer::agent(std::move(cfg));
}

wafer::agent make_worker(std::shared_ptr<wafer::model> m) {
    wafer::agent_config cfg;
    cfg.name = "worker";
    cfg.model = std::move(m);
    cfg.system_prompt = "You MUST always respond in English. You are a worker: do exactly your "
                        "step, in at most three sentences, and output only the result.";
    cfg.limits.max_turns = 4;
    cfg.limits.run_timeout = 2min;
    return wafer::agent(std::move(cfg));
}

wafer::agent make_reviewer(std::shared_ptr<wafer::model> m) {
    wafer::agent_config cfg;
    cfg.name = "reviewer";
    cfg.model = std::move(m);
    cfg.system_prompt =
        "You MUST always respond in English. STRICTLY reply with the verdict JSON object.\n"
        "You review release notes against their goal: approve them, or ask for a revision "
        "naming what is missing. Do not ask for style changes.";
    cfg.request.response_format =
        wafer::api::response_format::json_schema_of("verdict", wafer::verdict_schema());
    cfg.limits.max_turns = 1;
    return wafer::agent(std::move(cfg));
}

// --- The pipeline -------------------------------------------------------------------------------
std::string worker_input(
    const plan& p,
    const plan_step& s,
    const std::map<std::string, std::string>& done,
    const std::string& feedback
) {
    std::string in = "Goal: " + p.goal + "\nYour step (" + s.id + "): " + s.description + "\n";
    if (!s.depends_on.empty()) {
        in += "Results of the steps it depends on:";
        for (const auto& d : s.depends_on) {
            in += "\n[" + d + "] " + (done.count(d) ? done.at(d) : "(missing)");
        }
        in += "\n";
    }
    if (!feedback.empty()) {
        in += "Reviewer feedback to address: " + feedback + "\n";
    }
    return in;
}

void print_progress(const wafer::event& e) {
    if (e.is<wafer::events::run_started>()) {
        std::cout << "  [" << e.run_id << "] started\n";
    } else if (auto* f = e.get_if<wafer::events::run_finished>()) {
        std::cout << "  [" << e.run_id << "] " << f->stop_reason << " in "
                  << f->duration.count() / 1000 << " ms\n";
    }
}

// Runs `steps` concurrently on one shared worker agent; results in the same order.
asio::awaitable<std::vector<wafer::run_result>> run_wave(
    const wafer::agent* worker, std::vector<std::string> ids, std::vector<std::string> inputs
) {
    auto ex = co_await asio::this_coro::executor;
    using op_type = decltype(asio::co_spawn(
        ex, std::declval<asio::awaitable<wafer::run_result>>(), asio::deferred
    ));
    std::vector<op_type> ops;
    for (std::size_t i = 0; i < ids.size(); ++i) {
        wafer::run_options opts;
        opts.run_id = ids[i];
        opts.on_event = &print_progress;
        ops.push_back(
            asio::co_spawn(ex, worker->async_run(inputs[i], std::move(opts)), asio::deferred)
        );
    }
    // A named group: no temporaries with destructors inside co_await (GCC 12).
    auto group = asio::experimental::make_parallel_group(std::move(ops));
    auto [order, errors, results] =
        co_await group.async_wait(asio::experimental::wait_for_all(), asio::use_awaitable);
    for (auto& e : errors) {
        if (e) {
            std::rethrow_exception(e);
        }
    }
    co_return std::move(results);
}

asio::awaitable<int> pipeline(team t, std::string task) {
    const wafer::agent planner = make_planner(t.planner);
    const wafer::agent worker = make_worker(t.worker);
    const wafer::agent reviewer = make_reviewer(t.reviewer);
    const auto t0 = std::chrono::steady_clock::now();

    // 1. Plan.
    // Options go in as a named object: a defaulted `run_options{}` would be a temporary inside
    // the co_await expression, which GCC 12 destroys wrongly (free(): invalid pointer).
    wafer::run_options plan_opts;
    wafer::run_result planned = co_await planner.async_run(task, std::move(plan_opts));
    if (!planned.final_json) {
        std::cout << "the planner gave no plan: " << planned.final_text << "\n";
        co_return 1;
    }
    const plan p = planned.final_json->get<plan>();
    if (p.steps.empty()) {
        std::cout << "the plan has no steps\n";
        co_return 1;
    }
    std::cout << "plan: " << p.goal << "\n";
    for (const auto& s : p.steps) {
        std::cout << "  " << s.id << ": " << s.description
                  << (s.depends_on.empty() ? "" : " (after " + json(s.depends_on).dump() + ")")
                  << "\n";
    }

    // 2. Work, in waves: every step whose dependencies are done runs now, in parallel.
    std::map<std::string, std::string> done;
    std::vector<const plan_step*> remaining;
    for (const auto& s : p.steps) {
        remaining.push_back(&s);
    }
    std::string last_id;
    while (!remaining.empty()) {
        std::vector<const plan_step*> ready, later;
        for (const plan_step* s : remaining) {
            bool deps_done = true;
            for (const auto& d : s->depends_on) {
                deps_done = deps_done && done.count(d) > 0;
            }
            (deps_done ? ready : later).push_back(s);
        }
        if (ready.empty()) { // a cycle or an unknown id: run the rest anyway
            ready.swap(later);
        }
        std::cout << "wave of " << ready.size() << ":\n";
        std::vector<std::string> ids, inputs;
        for (const plan_step* s : ready) {
            ids.push_back(s->id);
            inputs.push_back(worker_input(p, *s, done, {}));
        }
        std::vector<wafer::run_result> results = co_await run_wave(&worker, ids, inputs);
        for (std::size_t i = 0; i < ready.size(); ++i) {
            done[ids[i]] = results[i].final_text;
        }
        last_id = ids.back();
        remaining = std::move(later);
    }

    // 3. Review; one revision of the last step if the reviewer asks for it.
    const plan_step& last = *std::find_if(p.steps.begin(), p.steps.end(), [&](const plan_step& s) {
        return s.id == last_id;
    });
    for (int round = 1;; ++round) {
        std::string review_input = "Goal: " + p.goal + "\n\nResult to review:\n" + done[last_id];
        wafer::run_options review_opts;
        wafer::run_result reviewed =
            co_await reviewer.async_run(std::move(review_input), std::move(review_opts));
        std::optional<wafer::verdict> v =
            reviewed.final_json ? wafer::parse_verdict(*reviewed.final_json) : std::nullopt;
        if (!v) {
            std::cout << "the reviewer gave no verdict: " << reviewed.final_text << "\n";
            co_return 1;
        }
        std::cout << "review " << round << ": " << to_string(v->decision);
        for (const auto& r : v->reasons) {
            std::cout << "; " << r;
        }
        std::cout << "\n";
        if (v->decision != wafer::critic_decision::revise || round == 2) {
            break;
        }
        std::vector<std::string> ids{last_id + "-revised"};
        std::vector<std::string> inputs{
            worker_input(p, last, done, v->suggested_fix.value_or("address the reasons"))};
        std::vector<wafer::run_result> redo = co_await run_wave(&worker, ids, inputs);
        done[last_id] = redo.front().final_text;
    }

    auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(
        std::chrono::steady_clock::now() - t0
    );
    std::cout << "\n" << done[last_id] << "\n(pipeline: " << ms.count() << " ms)\n";
    co_return 0;
}

} // namespace

int main() {
    asio::io_context ioc;
    examples::endpoint ep;
    team t;
    if (examples::real_endpoint_configured()) {
        ep = examples::choose_endpoint(ioc.get_executor());
        auto client = std::make_shared<wafer::api::client>(ioc.get_executor(), ep.config);
        auto glm = std::make_shared<wafer::cerebras_model>(client, "zai-glm-4.7");
        t = {glm, glm, glm};
    } else {
        std::cerr << "wafer: no CEREBRAS_API_KEY set; the pipeline runs on scripted models\n";
        t = scripted_team();
    }
    return examples::run_example(
        ioc,
        ep,
        pipeline(t, "Write short release notes for wafer 0.1: wire layer, agent loop, critics.")
    );
}
