// 06: a multi-agent pipeline: a planner splits the task into steps, workers run the steps in
// waves (independent ones at once, through wafer::async_fan_out with a concurrency cap and a
// shared token budget), and a lead agent with the reviewer and the worker as its tools
// (agent::as_tool) gets the result reviewed and, on "revise", redone once. The control flow is
// ordinary C++ and each agent an ordinary wafer::agent; child runs nest under their parent in
// events and usage.
//
// Offline, the three roles run on wafer::scripted_model: canned, deterministic replies (what you
// would use in your own tests), with a delay on each worker reply so the parallelism shows.
// With CEREBRAS_API_KEY set, all three talk to the real endpoint.
#include <wafer/agent.hpp>
#include <wafer/cerebras_model.hpp>
#include <wafer/fan_out.hpp>
#include <wafer/prompts.hpp>
#include <wafer/scripted_model.hpp>
#include <wafer/verdict.hpp>

#include <boost/asio/io_context.hpp>

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

// The lead, offline: review the draft; on "revise", redo the step with the fix and review
// again; on "approve", answer with the draft under review.
std::string section(const std::string& text, const std::string& from, const std::string& to) {
    const auto a = text.find(from);
    if (a == std::string::npos) {
        return {};
    }
    const auto b = to.empty() ? std::string::npos : text.find(to, a + from.size());
    return text.substr(a + from.size(), b == std::string::npos ? b : b - a - from.size());
}

wafer::scripted_model::turn scripted_lead(const wafer::api::chat_request& req, std::size_t n) {
    const std::string brief = req.messages.at(1).text();
    const std::string goal = section(brief, "GOAL: ", "\n");
    std::string draft = section(brief, "DRAFT:\n", "");
    const std::string id = "lead_" + std::to_string(n);
    const auto review_call = [&](const std::string& d) {
        return wafer::scripted_model::turn::calls(
            {{id,
              "review",
              json{{"input", "Goal: " + goal + "\n\nResult to review:\n" + d}}.dump()}}
        );
    };
    const wafer::api::message& last = req.messages.back();
    if (last.role != wafer::api::role::tool) {
        return review_call(draft);
    }
    const json verdict = json::parse(last.text(), nullptr, false);
    if (!verdict.is_object()) { // the revise result: a new draft
        return review_call(last.text());
    }
    if (verdict.value("decision", "") == "revise") {
        const std::string step = section(brief, "STEP:\n", "DRAFT:\n") +
                                 "Reviewer feedback to address: " +
                                 verdict.value("suggested_fix", "address the reasons") + "\n";
        return wafer::scripted_model::turn::calls({{id, "revise", json{{"input", step}}.dump()}});
    }
    // Approved: the draft it approved is the last revise result, else the first draft.
    for (const auto& m : req.messages) {
        if (m.role == wafer::api::role::tool &&
            !json::parse(m.text(), nullptr, false).is_object()) {
            draft = m.text();
        }
    }
    return wafer::scripted_model::turn::text(draft);
}

struct team {
    std::shared_ptr<wafer::model> planner, worker, reviewer, lead;
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
    auto lead = std::make_shared<wafer::scripted_model>("zai-glm-4.7");
    lead->set_responder(&scripted_lead);
    return {planner, worker, reviewer, lead};
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

wafer::agent make_lead(
    std::shared_ptr<wafer::model> m, const wafer::agent& reviewer, const wafer::agent& worker
) {
    auto tools = std::make_shared<wafer::tools::registry>();
    wafer::agent_tool_options review;
    review.output = wafer::agent_tool_output::structured; // the verdict JSON
    tools->add(reviewer.as_tool("review", "Review a draft against its goal.", review));
    tools->add(worker.as_tool("revise", "Redo the step: give the step text plus the feedback."));
    wafer::agent_config cfg;
    cfg.name = "lead";
    cfg.model = std::move(m);
    cfg.system_prompt =
        "You MUST always respond in English. You lead the final check of release notes.\n"
        "1. Call review with the goal and the draft.\n"
        "2. If the verdict is revise, call revise with the STEP text followed by the line "
        "'Reviewer feedback to address: ' and the suggested fix; then review the new draft.\n"
        "3. Once approved, answer with the accepted draft only.";
    cfg.tools = std::move(tools);
    cfg.limits.max_turns = 6;
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

// Runs `inputs` concurrently on one shared worker agent (wafer::async_fan_out): at most two at
// once, all under one token budget; results come back in input order.
asio::awaitable<std::vector<wafer::run_result>> run_wave(
    const wafer::agent* worker, std::vector<std::string> ids, std::vector<std::string> inputs
) {
    std::vector<wafer::fan_out_job> jobs;
    for (std::size_t i = 0; i < ids.size(); ++i) {
        wafer::fan_out_job job{worker, inputs[i], {}};
        job.options.run_id = ids[i];
        jobs.push_back(std::move(job));
    }
    wafer::fan_out_options opts;
    opts.max_concurrency = 3;
    opts.token_budget = 200'000;
    opts.on_event = &print_progress;
    wafer::fan_out_result wave = co_await wafer::async_fan_out(std::move(jobs), std::move(opts));
    std::vector<wafer::run_result> results;
    for (std::size_t i = 0; i < wave.children.size(); ++i) {
        wafer::fan_out_child& c = wave.children[i];
        if (c.status != wafer::fan_out_status::succeeded) {
            throw std::runtime_error(
                "step " + ids[i] + " " + std::string(to_string(c.status)) +
                (c.error.empty() ? "" : ": " + c.error)
            );
        }
        results.push_back(std::move(*c.result));
    }
    std::cout << "  wave used " << wave.usage.prompt_tokens + wave.usage.completion_tokens
              << " tokens\n";
    co_return results;
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

    // 3. Review: a lead agent with the reviewer and the worker as its tools (agent::as_tool)
    // asks for a review, has the step redone with the feedback if the reviewer wants that,
    // and answers with the accepted notes. Each tool call is a child run of the lead's.
    const plan_step& last = *std::find_if(p.steps.begin(), p.steps.end(), [&](const plan_step& s) {
        return s.id == last_id;
    });
    const wafer::agent lead = make_lead(t.lead, reviewer, worker);
    std::string lead_input = "GOAL: " + p.goal + "\nSTEP:\n" + worker_input(p, last, done, {}) +
                             "DRAFT:\n" + done[last_id];
    wafer::run_options lead_opts;
    lead_opts.run_id = "lead";
    lead_opts.on_event = &print_progress;
    wafer::run_result led = co_await lead.async_run(std::move(lead_input), std::move(lead_opts));
    if (led.stop_reason != wafer::stop_reason::completed) {
        std::cout << "the lead stopped: " << to_string(led.stop_reason) << "\n";
        co_return 1;
    }
    int round = 0;
    for (const auto& m : led.conversation.messages()) {
        std::optional<wafer::verdict> v;
        if (m.role == wafer::api::role::tool) {
            const json j = json::parse(m.text(), nullptr, false);
            v = j.is_object() ? wafer::parse_verdict(j) : std::nullopt;
        }
        if (v) {
            std::cout << "review " << ++round << ": " << to_string(v->decision);
            for (const auto& r : v->reasons) {
                std::cout << "; " << r;
            }
            std::cout << "\n";
        }
    }
    done[last_id] = led.final_text;
    const wafer::api::usage all = led.total_usage();
    std::cout << "lead: " << led.usage.prompt_tokens + led.usage.completion_tokens
              << " tokens of its own, " << all.prompt_tokens + all.completion_tokens << " with its "
              << led.children.size() << " child runs\n";

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
        t = {glm, glm, glm, glm};
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
