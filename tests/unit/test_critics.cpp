// Critics at their gates, against scripted models: no network.
#include <wafer/agent.hpp>
#include <wafer/critic.hpp>
#include <wafer/gate.hpp>
#include <wafer/scripted_model.hpp>
#include <wafer/tools/registry.hpp>
#include <wafer/tools/tool.hpp>

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

#include <array>
#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "run_coro.hpp"

namespace asio = boost::asio;
using namespace std::chrono_literals;
using namespace wafer;
using wafer::testing::run_coro;
using turn = scripted_model::turn;
using nlohmann::json;

namespace {

api::tool_call call(std::string id, std::string name, std::string args = "{}") {
    return {std::move(id), std::move(name), std::move(args)};
}

std::string verdict_json(
    std::string_view decision,
    std::vector<std::string> reasons = {},
    std::optional<std::string> fix = std::nullopt
) {
    json j = {
        {"decision", decision},
        {"reasons", reasons},
        {"suggested_fix", fix ? json(*fix) : json(nullptr)},
        {"corrected_arguments", nullptr}};
    return j.dump();
}

turn verdict_turn(std::string_view decision, std::vector<std::string> reasons = {}) {
    return turn::text(verdict_json(decision, std::move(reasons)));
}

// Every start of every tool is recorded, so a test can prove that a call never started.
struct start_log {
    std::vector<std::string> started;
    std::vector<std::chrono::steady_clock::time_point> times;
    void record(std::string name) {
        started.push_back(std::move(name));
        times.push_back(std::chrono::steady_clock::now());
    }
    std::size_t count(std::string_view name) const {
        return static_cast<std::size_t>(std::count(started.begin(), started.end(), name));
    }
};

asio::awaitable<std::string> slow_peek(std::shared_ptr<start_log> log, json) {
    log->record("peek");
    asio::steady_timer t(co_await asio::this_coro::executor, 5ms);
    co_await t.async_wait(asio::use_awaitable);
    co_return "peeked";
}

std::shared_ptr<tools::registry> make_tools(std::shared_ptr<start_log> log) {
    auto reg = std::make_shared<tools::registry>();
    json any_object = {{"type", "object"}};
    tools::tool_options ro;
    ro.read_only = true;
    reg->add(tools::make_async_tool<json>(
        "peek",
        "Read something (read-only)",
        any_object,
        [log](json a) { return slow_peek(log, std::move(a)); },
        ro
    ));
    reg->add(tools::make_tool<json>(
        "run_command",
        "Run a shell command",
        any_object,
        [log](json a) {
            log->record("run_command");
            return "ran " + a.value("command", std::string());
        }
    ));
    reg->add(tools::make_tool<json>("write_file", "Write a file", any_object, [log](json) {
        log->record("write_file");
        return std::string("written");
    }));
    return reg;
}

struct fixture {
    asio::io_context ioc;
    std::shared_ptr<start_log> log = std::make_shared<start_log>();
    std::shared_ptr<scripted_model> model = std::make_shared<scripted_model>("zai-glm-4.7");
    std::shared_ptr<tools::registry> tools = make_tools(log);
    std::vector<event> events;

    agent_config config() {
        agent_config cfg;
        cfg.name = "coder";
        cfg.model = model;
        cfg.system_prompt = "You are a test agent.";
        cfg.tools = tools;
        return cfg;
    }

    critic gate_critic(
        std::string name,
        std::shared_ptr<scripted_model> m,
        gate_set gates,
        std::vector<std::string> tool_names = {}
    ) {
        critic c;
        c.name = std::move(name);
        c.model = std::move(m);
        c.instructions = "Review it.";
        c.gates = gates;
        c.tool_names = std::move(tool_names);
        return c;
    }

    run_result run(const agent& a, std::string input) {
        run_options opts;
        opts.on_event = [this](const event& e) {
            events.push_back(e);
        };
        return run_coro(ioc, a.async_run(std::move(input), std::move(opts)), 10s);
    }

    template <class T>
    std::vector<const T*> events_of() const {
        std::vector<const T*> out;
        for (const auto& e : events) {
            if (auto* p = e.get_if<T>()) {
                out.push_back(p);
            }
        }
        return out;
    }

    // The seq of the first event matching `pred`, or 0.
    template <class T, class Pred>
    std::uint64_t seq_of(Pred pred) const {
        for (const auto& e : events) {
            if (auto* p = e.get_if<T>(); p && pred(*p)) {
                return e.seq;
            }
        }
        return 0;
    }
};

// The text of the tool message answering `id` in `req`.
std::string tool_text(const api::chat_request& req, const std::string& id) {
    for (const auto& m : req.messages) {
        if (m.role == api::role::tool && m.tool_call_id == id) {
            return m.text();
        }
    }
    return "<no tool message>";
}

} // namespace

TEST_SUITE("unit/critics") {
    TEST_CASE("combine_decisions: all, any, majority") {
        using d = critic_decision;
        auto combine = [](std::vector<d> v, gate_policy p) {
            return combine_decisions(v, p);
        };
        CHECK(combine({}, gate_policy::all) == d::approve);
        CHECK(combine({d::approve, d::approve}, gate_policy::all) == d::approve);
        CHECK(combine({d::approve, d::revise}, gate_policy::all) == d::revise);
        CHECK(combine({d::revise, d::deny}, gate_policy::all) == d::deny);
        CHECK(combine({d::approve, d::deny}, gate_policy::any) == d::approve);
        CHECK(combine({d::revise, d::deny}, gate_policy::any) == d::deny);
        CHECK(combine({d::revise, d::revise}, gate_policy::any) == d::revise);
        CHECK(combine({d::approve, d::deny}, gate_policy::majority) == d::deny);
        CHECK(combine({d::approve, d::revise}, gate_policy::majority) == d::revise);
        CHECK(combine({d::approve, d::approve, d::deny}, gate_policy::majority) == d::approve);
        CHECK(combine({d::approve, d::revise, d::deny}, gate_policy::majority) == d::deny);
    }

    TEST_CASE("verdicts parse leniently where harmless, strictly on the decision") {
        auto v = parse_verdict_text(verdict_json("revise", {"too broad"}, "narrow it"));
        REQUIRE(v);
        CHECK(v->decision == critic_decision::revise);
        CHECK(v->reasons == std::vector<std::string>{"too broad"});
        CHECK(v->suggested_fix == "narrow it");
        CHECK_FALSE(v->corrected_arguments);
        auto fenced = parse_verdict_text("```json\n{\"decision\":\"DENY\"}\n```");
        REQUIRE(fenced);
        CHECK(fenced->decision == critic_decision::deny);
        CHECK(fenced->reasons.empty());
        auto obj_args =
            parse_verdict(json{{"decision", "revise"}, {"corrected_arguments", {{"a", 1}}}});
        REQUIRE(obj_args);
        CHECK(obj_args->corrected_arguments == R"({"a":1})");
        std::string why;
        CHECK_FALSE(parse_verdict_text(R"({"decision":"maybe"})", &why));
        CHECK(why.find("maybe") != std::string::npos);
        CHECK_FALSE(parse_verdict_text("approve", &why));
        CHECK_FALSE(parse_verdict(json::array(), &why));
        // The schema is strict-mode ready: every property required, no extras.
        const json& s = verdict_schema();
        CHECK(s.at("additionalProperties") == false);
        CHECK(s.at("required").size() == s.at("properties").size());
    }

    TEST_CASE(
        "security critic denies rm -rf /: the call never starts, a read-only call runs meanwhile"
    ) {
        fixture f;
        auto critic_model = std::make_shared<scripted_model>("llama3.1-8b");
        turn deny = verdict_turn("deny", {"deletes the whole file system"});
        deny.delay = 60ms; // the read-only call must not wait for this
        critic_model->push(deny);
        f.model->push(turn::calls(
            {call("c1", "peek", R"({"path":"README"})"),
             call("c2", "run_command", R"({"command":"rm -rf /"})")},
            "I will look and clean up."
        ));
        f.model->push(turn::text("I did not delete anything."));
        agent_config cfg = f.config();
        cfg.critics.push_back(builtin_critic("security", critic_model));
        const agent a(std::move(cfg));
        const run_result r = f.run(a, "clean the disk");

        CHECK(r.stop_reason == stop_reason::completed);
        CHECK(f.log->count("run_command") == 0);
        CHECK(f.log->count("peek") == 1);
        // The read-only call started before the verdict arrived.
        const auto peek_started =
            f.seq_of<events::tool_call_started>([](auto& e) { return e.name == "peek"; });
        const auto verdict_seq = f.seq_of<events::critic_verdict>([](auto&) { return true; });
        CHECK(peek_started > 0);
        CHECK(peek_started < verdict_seq);
        CHECK(f.seq_of<events::tool_call_started>([](auto& e) {
            return e.name == "run_command";
        }) == 0);
        // The model reads the critic's reason as the call's result, in emission order.
        REQUIRE(f.model->request_count() == 2);
        const auto second = f.model->request(1);
        CHECK(tool_text(second, "c1") == "peeked");
        const std::string refused = tool_text(second, "c2");
        CHECK(refused.find("denied") != std::string::npos);
        CHECK(refused.find("security") != std::string::npos);
        CHECK(refused.find("deletes the whole file system") != std::string::npos);
        // One review, recorded and sent as an event.
        REQUIRE(r.reviews.size() == 1);
        CHECK(r.reviews[0].critic == "security");
        CHECK(r.reviews[0].gate == gate::before_tools);
        CHECK(r.reviews[0].call_id == "c2");
        CHECK(r.reviews[0].verdict.decision == critic_decision::deny);
        auto verdicts = f.events_of<events::critic_verdict>();
        REQUIRE(verdicts.size() == 1);
        CHECK(verdicts[0]->gate == "before_tools");
        CHECK(verdicts[0]->call_id == "c2");
        CHECK(verdicts[0]->latency >= 50ms);
        // The critic asked with its prompt and a strict json_schema response format.
        REQUIRE(critic_model->request_count() == 1);
        const auto creq = critic_model->request(0);
        REQUIRE(creq.response_format);
        CHECK(creq.response_format->type == api::response_format::kind::json_schema);
        CHECK(creq.response_format->name == "critic_verdict");
        CHECK(creq.messages.front().text().find("SECURITY REVIEWER") != std::string::npos);
        const std::string shown = creq.messages.back().text();
        CHECK(shown.find("rm -rf /") != std::string::npos);
        CHECK(shown.find("clean the disk") != std::string::npos);
        // Critic tokens are counted apart from the run's.
        CHECK(r.critic_usage.completion_tokens > 0);
        CHECK(
            r.usage.prompt_tokens == r.turns[0].usage.prompt_tokens + r.turns[1].usage.prompt_tokens
        );
    }

    TEST_CASE("an approved call starts only after its verdict") {
        fixture f;
        auto critic_model = std::make_shared<scripted_model>("llama3.1-8b");
        turn ok = verdict_turn("approve");
        ok.delay = 20ms;
        critic_model->push(ok);
        f.model->push(turn::calls({call("c1", "write_file", R"({"path":"a"})")}));
        f.model->push(turn::text("written"));
        agent_config cfg = f.config();
        cfg.critics.push_back(f.gate_critic("guard", critic_model, gate::before_tools));
        const run_result r = f.run(agent(std::move(cfg)), "write a");
        CHECK(r.stop_reason == stop_reason::completed);
        CHECK(f.log->count("write_file") == 1);
        const auto verdict_seq = f.seq_of<events::critic_verdict>([](auto&) { return true; });
        const auto start_seq =
            f.seq_of<events::tool_call_started>([](auto& e) { return e.name == "write_file"; });
        CHECK(verdict_seq > 0);
        CHECK(start_seq > verdict_seq);
        CHECK(tool_text(f.model->request(1), "c1") == "written");
    }

    TEST_CASE("a revise at before_tools does not run the call and passes the feedback on") {
        fixture f;
        auto critic_model = std::make_shared<scripted_model>("llama3.1-8b");
        json v = {
            {"decision", "revise"},
            {"reasons", {"too broad"}},
            {"suggested_fix", "delete build/ only"},
            {"corrected_arguments", R"({"command":"rm -rf build"})"}};
        critic_model->push(turn::text(v.dump()));
        critic_model->push(verdict_turn("approve"));
        f.model->push(turn::calls({call("c1", "run_command", R"({"command":"rm -rf ."})")}));
        f.model->push(turn::calls({call("c2", "run_command", R"({"command":"rm -rf build"})")}));
        f.model->push(turn::text("cleaned"));
        agent_config cfg = f.config();
        cfg.critics.push_back(builtin_critic("security", critic_model));
        const run_result r = f.run(agent(std::move(cfg)), "clean the build");
        CHECK(r.stop_reason == stop_reason::completed);
        CHECK(f.log->count("run_command") == 1);
        const std::string feedback = tool_text(f.model->request(1), "c1");
        CHECK(feedback.find("revise") != std::string::npos);
        CHECK(feedback.find("delete build/ only") != std::string::npos);
        CHECK(feedback.find(R"({"command":"rm -rf build"})") != std::string::npos);
        CHECK(tool_text(f.model->request(2), "c2") == "ran rm -rf build");
        CHECK(r.revisions == 0); // before_tools revisions do not use the budget
    }

    TEST_CASE("code review: revise twice on the final answer, the third answer is accepted") {
        fixture f;
        auto reviewer = std::make_shared<scripted_model>("llama3.1-8b");
        reviewer->push(verdict_turn("revise", {"no tests were run"}));
        reviewer->push(verdict_turn("revise", {"the summary names the wrong file"}));
        reviewer->push(verdict_turn("approve"));
        f.model->push(turn::text("answer one"));
        f.model->push(turn::text("answer two"));
        f.model->push(turn::text("answer three"));
        agent_config cfg = f.config();
        cfg.critics.push_back(builtin_critic("code-review", reviewer));
        const run_result r = f.run(agent(std::move(cfg)), "fix the bug");

        CHECK(r.stop_reason == stop_reason::completed);
        CHECK(r.final_text == "answer three");
        CHECK(r.revisions == 2);
        CHECK(r.turn_count() == 3);
        REQUIRE(f.model->request_count() == 3);
        // The feedback reaches the model as a user message after its rejected answer.
        const auto second = f.model->request(1);
        REQUIRE(second.messages.size() >= 2);
        CHECK(second.messages[second.messages.size() - 2].text() == "answer one");
        CHECK(second.messages.back().role == api::role::user);
        CHECK(second.messages.back().text().find("no tests were run") != std::string::npos);
        CHECK(f.model->request(2).messages.back().text().find("wrong file") != std::string::npos);
        // The reviewer saw each answer.
        REQUIRE(reviewer->request_count() == 3);
        CHECK(
            reviewer->request(2).messages.back().text().find("answer three") != std::string::npos
        );
        // Verdict events in order, before the run finished.
        auto verdicts = f.events_of<events::critic_verdict>();
        REQUIRE(verdicts.size() == 3);
        CHECK(verdicts[0]->decision == critic_decision::revise);
        CHECK(verdicts[1]->decision == critic_decision::revise);
        CHECK(verdicts[2]->decision == critic_decision::approve);
        CHECK(verdicts[0]->turn == 1);
        CHECK(verdicts[2]->turn == 3);
        for (std::size_t i = 1; i < f.events.size(); ++i) {
            CHECK(f.events[i].seq == f.events[i - 1].seq + 1);
        }
        CHECK(f.events.back().is<events::run_finished>());
    }

    TEST_CASE("past the revision budget the run stops, or accepts by policy") {
        for (auto policy : {revisions_exhausted_policy::stop, revisions_exhausted_policy::accept}) {
            fixture f;
            auto reviewer = std::make_shared<scripted_model>("llama3.1-8b");
            reviewer->set_responder([](const api::chat_request&, std::size_t) {
                return verdict_turn("revise", {"still not good"});
            });
            f.model->set_responder([](const api::chat_request&, std::size_t i) {
                return turn::text("answer " + std::to_string(i + 1));
            });
            agent_config cfg = f.config();
            cfg.critics.push_back(f.gate_critic("picky", reviewer, gate::final_answer));
            cfg.critic_policy.max_revisions = 1;
            cfg.critic_policy.on_exhausted = policy;
            const run_result r = f.run(agent(std::move(cfg)), "do it");
            CHECK(r.revisions == 1);
            CHECK(r.final_text == "answer 2");
            CHECK(f.model->request_count() == 2);
            CHECK(
                r.stop_reason == (policy == revisions_exhausted_policy::stop
                                      ? stop_reason::revisions_exhausted
                                      : stop_reason::completed)
            );
            CHECK(wafer::conversation(r.conversation).repair().empty());
        }
    }

    TEST_CASE("a deny on the final answer ends the run without an answer") {
        fixture f;
        auto reviewer = std::make_shared<scripted_model>("llama3.1-8b");
        reviewer->push(verdict_turn("deny", {"leaks a secret"}));
        f.model->push(turn::text("the key is sk-123"));
        agent_config cfg = f.config();
        cfg.critics.push_back(f.gate_critic("privacy", reviewer, gate::final_answer));
        const run_result r = f.run(agent(std::move(cfg)), "what is the key?");
        CHECK(r.stop_reason == stop_reason::critic_denied);
        CHECK(r.final_text.empty());
        auto fin = f.events_of<events::run_finished>();
        REQUIRE(fin.size() == 1);
        CHECK(fin[0]->stop_reason == "critic_denied");
    }

    TEST_CASE("after_step: revise sends feedback after the tool results, deny stops") {
        fixture f;
        auto reviewer = std::make_shared<scripted_model>("llama3.1-8b");
        reviewer->push(verdict_turn("revise", {"check the output"}));
        reviewer->push(verdict_turn("deny", {"this went wrong"}));
        f.model->push(turn::calls({call("c1", "peek")}));
        f.model->push(turn::calls({call("c2", "peek")}));
        f.model->push(turn::text("never reached"));
        agent_config cfg = f.config();
        cfg.critics.push_back(f.gate_critic("steps", reviewer, gate::after_step));
        const run_result r = f.run(agent(std::move(cfg)), "look twice");
        CHECK(r.stop_reason == stop_reason::critic_denied);
        CHECK(f.model->request_count() == 2);
        const auto second = f.model->request(1);
        CHECK(second.messages.back().role == api::role::user);
        CHECK(second.messages.back().text().find("check the output") != std::string::npos);
        CHECK(second.messages[second.messages.size() - 2].role == api::role::tool);
        // The reviewer saw the call and its result.
        const std::string shown = reviewer->request(0).messages.back().text();
        CHECK(shown.find("peek") != std::string::npos);
        CHECK(shown.find("peeked") != std::string::npos);
        CHECK(wafer::conversation(r.conversation).repair().empty());
    }

    TEST_CASE("a critic that hangs past its deadline denies (fail-closed)") {
        fixture f;
        auto slow = std::make_shared<scripted_model>("llama3.1-8b");
        turn hang = verdict_turn("approve");
        hang.delay = 30s;
        slow->push(hang);
        f.model->push(turn::calls({call("c1", "write_file", R"({"path":"x"})")}));
        f.model->push(turn::text("gave up"));
        agent_config cfg = f.config();
        critic c = f.gate_critic("slowpoke", slow, gate::before_tools);
        c.timeout = 50ms;
        cfg.critics.push_back(c);
        const auto t0 = std::chrono::steady_clock::now();
        const run_result r = f.run(agent(std::move(cfg)), "write x");
        CHECK(std::chrono::steady_clock::now() - t0 < 5s); // generous: catches a hang only
        CHECK(r.stop_reason == stop_reason::completed);
        CHECK(f.log->count("write_file") == 0);
        REQUIRE(r.reviews.size() == 1);
        CHECK(r.reviews[0].verdict.decision == critic_decision::deny);
        REQUIRE(r.reviews[0].error);
        CHECK(r.reviews[0].error->find("50 ms") != std::string::npos);
        auto verdicts = f.events_of<events::critic_verdict>();
        REQUIRE(verdicts.size() == 1);
        CHECK(verdicts[0]->error);
        CHECK(tool_text(f.model->request(1), "c1").find("denied") != std::string::npos);
    }

    TEST_CASE("fail-open critics count a failure as approve; an invalid verdict is a failure") {
        fixture f;
        auto broken = std::make_shared<scripted_model>("llama3.1-8b");
        broken->push(turn::text("looks fine to me"));
        f.model->push(turn::calls({call("c1", "write_file")}));
        f.model->push(turn::text("done"));
        agent_config cfg = f.config();
        critic c = f.gate_critic("lenient", broken, gate::before_tools);
        c.fail_closed = false;
        cfg.critics.push_back(c);
        const run_result r = f.run(agent(std::move(cfg)), "write");
        CHECK(f.log->count("write_file") == 1);
        REQUIRE(r.reviews.size() == 1);
        CHECK(r.reviews[0].verdict.decision == critic_decision::approve);
        REQUIRE(r.reviews[0].error);
        CHECK(r.reviews[0].error->find("not valid JSON") != std::string::npos);
    }

    TEST_CASE("two critics under the majority policy run concurrently") {
        struct scenario {
            std::string_view second;
            bool runs;
        };
        for (auto s : {scenario{"approve", true}, scenario{"deny", false}}) {
            fixture f;
            auto a = std::make_shared<scripted_model>("critic-a");
            auto b = std::make_shared<scripted_model>("critic-b");
            turn ta = verdict_turn("approve");
            ta.delay = 100ms;
            turn tb = verdict_turn(s.second, {"second opinion"});
            tb.delay = 100ms;
            a->push(ta);
            b->push(tb);
            f.model->push(turn::calls({call("c1", "run_command", R"({"command":"make"})")}));
            f.model->push(turn::text("ok"));
            agent_config cfg = f.config();
            cfg.critics.push_back(f.gate_critic("a", a, gate::before_tools));
            cfg.critics.push_back(f.gate_critic("b", b, gate::before_tools));
            cfg.critic_policy.combine = gate_policy::majority;
            const auto t0 = std::chrono::steady_clock::now();
            const run_result r = f.run(agent(std::move(cfg)), "build");
            // Generous bound: two 100 ms reviews in series would take 200 ms.
            CHECK(std::chrono::steady_clock::now() - t0 < 190ms);
            CHECK(f.log->count("run_command") == (s.runs ? 1u : 0u));
            CHECK(r.reviews.size() == 2);
            CHECK(f.events_of<events::critic_verdict>().size() == 2);
        }
    }

    TEST_CASE("uncovered and read-only calls skip the gate; the default covers non-read-only tools"
    ) {
        fixture f;
        auto guard_model = std::make_shared<scripted_model>("llama3.1-8b");
        guard_model->push(verdict_turn("deny", {"no writes"}));
        f.model->push(
            turn::calls({call("c1", "peek"), call("c2", "write_file"), call("c3", "no_such_tool")})
        );
        f.model->push(turn::text("done"));
        agent_config cfg = f.config();
        cfg.critics.push_back(f.gate_critic("guard", guard_model, gate::before_tools));
        const run_result r = f.run(agent(std::move(cfg)), "go");
        CHECK(guard_model->request_count() == 1); // only write_file was reviewed
        CHECK(f.log->count("peek") == 1);
        CHECK(f.log->count("write_file") == 0);
        const auto second = f.model->request(1);
        CHECK(tool_text(second, "c3").find("unknown tool") != std::string::npos);
        CHECK(wafer::conversation(r.conversation).repair().empty());
    }

    TEST_CASE("a stateful event callback sees every event once, in order, whichever path sent it") {
        // Tool and verdict events of concurrent steps take a different path from the others.
        // A callback whose state is held by value must still see one unbroken sequence: two
        // diverging copies would each see gaps.
        struct sequence_checker {
            std::uint64_t last = 0;
            std::shared_ptr<bool> broken = std::make_shared<bool>(false);
            std::shared_ptr<std::size_t> seen = std::make_shared<std::size_t>(0);
            void operator()(const event& e) {
                if (e.seq != last + 1) {
                    *broken = true;
                }
                last = e.seq;
                ++*seen;
            }
        };
        fixture f;
        auto guard = std::make_shared<scripted_model>("llama3.1-8b");
        guard->push(verdict_turn("approve"));
        f.model->push(turn::calls({call("c1", "peek"), call("c2", "write_file")}));
        f.model->push(turn::text("done"));
        agent_config cfg = f.config();
        cfg.critics.push_back(f.gate_critic("guard", guard, gate::before_tools));
        const agent a(std::move(cfg));
        sequence_checker checker;
        auto broken = checker.broken;
        auto seen = checker.seen;
        run_options opts;
        opts.on_event = checker;
        const run_result r = run_coro(f.ioc, a.async_run("go", std::move(opts)));
        CHECK(r.stop_reason == stop_reason::completed);
        CHECK_FALSE(*broken);
        CHECK(*seen > 8);
    }

    TEST_CASE("invalid critic configurations are refused when the agent is built") {
        fixture f;
        auto m = std::make_shared<scripted_model>("llama3.1-8b");
        auto build = [&](critic c) {
            agent_config cfg = f.config();
            cfg.critics.push_back(std::move(c));
            return agent(std::move(cfg));
        };
        critic no_model = f.gate_critic("x", nullptr, gate::final_answer);
        CHECK_THROWS_AS(build(no_model), std::invalid_argument);
        CHECK_THROWS_AS(build(f.gate_critic("", m, gate::final_answer)), std::invalid_argument);
        CHECK_THROWS_AS(build(f.gate_critic("x", m, gate_set{})), std::invalid_argument);
        critic writer = f.gate_critic("x", m, gate::final_answer);
        writer.tools = f.tools; // has run_command, not read-only
        CHECK_THROWS_WITH_AS(
            build(writer), doctest::Contains("run_command"), std::invalid_argument
        );
        agent_config twice = f.config();
        twice.critics.push_back(f.gate_critic("x", m, gate::final_answer));
        twice.critics.push_back(f.gate_critic("x", m, gate::after_step));
        CHECK_THROWS_AS(agent(std::move(twice)), std::invalid_argument);
        CHECK_THROWS_WITH_AS(
            builtin_critic("astrologer", m), doctest::Contains("security"), std::invalid_argument
        );
    }
}
