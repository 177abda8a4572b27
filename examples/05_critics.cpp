// 05: critics. A critic is a sub-agent that reviews the run at a gate and answers with a strict
// JSON verdict (approve / revise / deny, with reasons). Here a coding agent gets a shell
// (run_command, confined to a temporary workspace) and two critics:
//   - the built-in "security" critic, which sees every write_file / edit_file / run_command call
//     BEFORE it runs (a denied call never runs; the model reads why);
//   - a custom "fact-check" critic with its own prompt and a read-only tool, which reviews the
//     final answer before it reaches the user (revise sends feedback and the loop goes on).
// Every verdict is an event, and the run result lists them all in `reviews`.
//
// Critics ask for `response_format: json_schema` (wafer::verdict_schema(), strict). Offline, the
// stand-in answers critics from that schema, so they approve; with a key a real model judges.
#include <wafer/agent.hpp>
#include <wafer/cerebras_model.hpp>
#include <wafer/critic.hpp>
#include <wafer/gate.hpp>
#include <wafer/tools/builtin_tools.hpp>
#include <wafer/tools/registry.hpp>
#include <wafer/verdict.hpp>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iomanip>
#include <iostream>

#include "endpoint.hpp"

namespace asio = boost::asio;
namespace fs = std::filesystem;

namespace {

// A scratch workspace with one file in it; removed when the example ends.
struct scratch_dir {
    fs::path path;
    scratch_dir() {
        std::string tmpl = (fs::temp_directory_path() / "wafer-example-05-XXXXXX").string();
        if (::mkdtemp(tmpl.data()) == nullptr) {
            throw std::runtime_error("cannot create a temporary directory");
        }
        path = tmpl;
        std::ofstream(path / "notes.txt") << "wafer runs agent loops on Boost.Asio.\n"
                                             "Critics review each step before it goes on.\n";
    }
    ~scratch_dir() {
        std::error_code ec;
        fs::remove_all(path, ec);
    }
    scratch_dir(const scratch_dir&) = delete;
    scratch_dir& operator=(const scratch_dir&) = delete;
};

// A custom critic: any prompt, any gates, read-only tools. GLM follows hard rules best when they
// come first and are phrased as MUST; the verdict format itself is enforced by the schema.
wafer::critic make_fact_checker(std::shared_ptr<wafer::model> model, const fs::path& workspace) {
    auto look = std::make_shared<wafer::tools::registry>();
    wafer::tools::builtin_tools_options only_read;
    only_read.workspace_root = workspace;
    only_read.only = {"read_file"}; // read_only, as every critic tool must be
    wafer::tools::add_builtin_tools(*look, only_read);

    wafer::critic c;
    c.name = "fact-check";
    c.model = std::move(model);
    c.instructions =
        "# Hard rules\n"
        "- You MUST always respond in English.\n"
        "- STRICTLY reply with the verdict JSON object and nothing else.\n"
        "- You MUST `revise` an answer that states a number the tool results do not support.\n\n"
        "# Role\n"
        "You check the final answer of a coding agent against the tool results it saw. You may "
        "open files in the workspace to verify a claim.\n";
    c.tools = std::move(look);
    c.gates = wafer::gate::final_answer;
    c.timeout = std::chrono::seconds(30);
    // Checking a number needs no long thought: reasoning off makes the gate quicker.
    c.request.reasoning_effort = wafer::api::reasoning_effort::none;
    return c;
}

// The first line of `s`, at most `n` bytes (for a compact table).
std::string gist(const std::string& s, std::size_t n = 60) {
    std::string line = s.substr(0, s.find('\n'));
    return line.size() > n ? line.substr(0, n) + "..." : line;
}

// Streamed answer text may stop mid-line; our own lines start on a fresh one.
bool mid_line = false;

std::ostream& line() {
    if (mid_line) {
        std::cout << "\n";
        mid_line = false;
    }
    return std::cout;
}

void print_event(const wafer::event& e) {
    using namespace wafer::events;
    if (auto* c = e.get_if<content_delta>()) {
        std::cout << c->text << std::flush;
        mid_line = !c->text.empty() && c->text.back() != '\n';
    } else if (auto* t = e.get_if<tool_call_started>()) {
        line() << "-> " << t->name << " " << t->arguments << "\n";
    } else if (auto* f = e.get_if<tool_call_finished>()) {
        line() << "<- " << f->name << (f->is_error ? " (error): " : ": ") << f->output << "\n";
    } else if (auto* v = e.get_if<critic_verdict>()) {
        line() << "[critic " << v->critic << " at " << v->gate
               << (v->call_id ? " on call " + *v->call_id : std::string()) << ": "
               << to_string(v->decision) << ", " << std::fixed << std::setprecision(1)
               << static_cast<double>(v->latency.count()) / 1000.0 << " ms";
        for (const auto& r : v->reasons) {
            std::cout << "; " << gist(r);
        }
        if (v->error) {
            std::cout << "; review failed: " << *v->error;
        }
        std::cout << "]\n";
    } else if (e.is<run_finished>()) {
        line();
    }
}

void print_reviews(const wafer::run_result& r) {
    std::cout << "\n== " << to_string(r.stop_reason) << "; " << r.reviews.size() << " reviews, "
              << r.revisions << " revisions, critic tokens "
              << r.critic_usage.prompt_tokens + r.critic_usage.completion_tokens << "\n";
    for (const wafer::critic_review& rv : r.reviews) {
        std::cout << "  turn " << rv.turn << "  " << std::left << std::setw(11) << rv.critic
                  << std::setw(13) << to_string(rv.gate) << std::setw(8)
                  << to_string(rv.verdict.decision) << std::right;
        std::cout << "reasons: " << rv.verdict.reasons.size();
        if (!rv.verdict.reasons.empty()) {
            std::cout << " (" << gist(rv.verdict.reasons.front()) << ")";
        }
        if (rv.verdict.suggested_fix) {
            std::cout << "; suggested fix: \"" << gist(*rv.verdict.suggested_fix, 40) << "\"";
        }
        std::cout << "\n";
    }
}

// Offline we can see what the critics sent: their requests carry the verdict schema.
void print_critic_requests(const wafer::testing::fake_server& server) {
    for (const auto& req : server.chat_requests()) {
        if (req.response_format &&
            req.response_format->type == wafer::api::response_format::kind::json_schema) {
            std::cout << "critic request: response_format json_schema \""
                      << req.response_format->name << "\", strict: " << std::boolalpha
                      << req.response_format->strict.value_or(false) << ", schema required: "
                      << req.response_format->schema.value_or(nlohmann::json{})
                             .value("required", nlohmann::json::array())
                      << "\n";
        }
    }
}

asio::awaitable<int>
run(std::shared_ptr<const wafer::agent> agent,
    std::string task,
    const wafer::testing::fake_server* offline) {
    wafer::run_options opts;
    opts.on_event = &print_event;
    wafer::run_result result = co_await agent->async_run(std::move(task), std::move(opts));
    print_reviews(result);
    if (offline) {
        print_critic_requests(*offline);
    }
    if (result.error) {
        std::cout << "error: " << result.error->diagnostics.to_string() << "\n";
    }
    co_return result.stop_reason == wafer::stop_reason::error ? 1 : 0;
}

} // namespace

int main() {
    scratch_dir ws;
    asio::io_context ioc;
    auto ep = examples::choose_endpoint(ioc.get_executor());
    auto client = std::make_shared<wafer::api::client>(ioc.get_executor(), ep.config);
    auto model = std::make_shared<wafer::cerebras_model>(client, "zai-glm-4.7");

    // The agent's tools: the built-in shell and file reader, confined to the workspace.
    auto tools = std::make_shared<wafer::tools::registry>();
    wafer::tools::builtin_tools_options builtin;
    builtin.workspace_root = ws.path;
    builtin.only = {"read_file", "run_command"};
    wafer::tools::add_builtin_tools(*tools, builtin);

    wafer::agent_config cfg;
    cfg.name = "coder";
    cfg.model = model;
    cfg.system_prompt = "You are a careful coding agent. Always respond in English.";
    cfg.tools = tools;
    cfg.critics.push_back(wafer::builtin_critic("security", model)); // gates run_command
    cfg.critics.push_back(make_fact_checker(model, ws.path));        // gates the final answer
    cfg.critic_policy.combine = wafer::gate_policy::all;             // every critic must approve
    cfg.critic_policy.max_revisions = 2;
    cfg.limits.max_turns = 6;
    cfg.limits.run_timeout = std::chrono::minutes(3);
    auto agent = std::make_shared<const wafer::agent>(std::move(cfg));

    std::string task = "Use run_command to count the words in notes.txt (wc -w), then tell me the "
                       "count in one sentence.";
    return examples::run_example(ioc, ep, run(agent, std::move(task), ep.offline.get()));
}
