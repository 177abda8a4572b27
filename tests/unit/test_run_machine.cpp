// The run machine as action scripts: inputs in, actions out. No io_context, no timers, no
// threads: time is a value the test moves.
#include <wafer/agent_config.hpp>
#include <wafer/scripted_model.hpp>
#include <wafer/tools/registry.hpp>
#include <wafer/tools/tool.hpp>

#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

#include <memory>
#include <string>
#include <vector>

#include "loop/run_machine.hpp"

using namespace wafer;
using namespace wafer::detail;
using namespace std::chrono_literals;
using nlohmann::json;

namespace {

api::tool_call call(std::string id, std::string name, std::string args = "{}") {
    return {std::move(id), std::move(name), std::move(args)};
}

model_reply text_reply(std::string text, std::int64_t prompt = 10, std::int64_t completion = 5) {
    model_reply r;
    r.message.content = std::move(text);
    r.finish_reason = api::finish_reason::stop;
    api::usage u;
    u.prompt_tokens = prompt;
    u.completion_tokens = completion;
    u.total_tokens = prompt + completion;
    r.usage = u;
    return r;
}

model_reply calls_reply(std::vector<api::tool_call> calls) {
    model_reply r = text_reply("");
    r.message.tool_calls = std::move(calls);
    r.finish_reason = api::finish_reason::tool_calls;
    return r;
}

tools::tool_result ok_result(const std::string& id, const std::string& name, std::string text) {
    tools::tool_result r;
    r.tool_call_id = id;
    r.name = name;
    r.content = std::move(text);
    return r;
}

critic_review verdict_of(
    const review_job& job, const std::string& critic_name, critic_decision d, std::string reason
) {
    critic_review r;
    r.critic = critic_name;
    r.gate = job.gate;
    r.turn = job.turn;
    r.call_id = job.call_id;
    r.verdict.decision = d;
    r.verdict.reasons = {std::move(reason)};
    return r;
}

// A read-only "read" and a "write" with `write_options`.
std::shared_ptr<tools::registry> make_tools(tools::tool_options write_options = {}) {
    auto reg = std::make_shared<tools::registry>();
    json any = {{"type", "object"}};
    tools::tool_options ro;
    ro.read_only = true;
    reg->add(tools::make_tool<json>(
        "read", "reads", any, [](json) { return std::string("r"); }, ro
    ));
    reg->add(tools::make_tool<json>(
        "write", "writes", any, [](json) { return std::string("w"); }, std::move(write_options)
    ));
    return reg;
}

critic make_critic(std::string name, gate_set gates) {
    critic c;
    c.name = std::move(name);
    c.model = std::make_shared<scripted_model>("critic-model");
    c.gates = gates;
    return c;
}

// A machine and a clock the test owns.
struct script {
    agent_config cfg;
    std::optional<run_machine> m;
    clock_type::time_point now = clock_type::time_point(1000s);
    std::vector<event_data> events;

    explicit script(agent_config c, bool observed = true, std::string input = "do the task")
        : cfg(std::move(c)) {
        if (!cfg.model) {
            cfg.model = std::make_shared<scripted_model>("zai-glm-4.7");
        }
        run_setup s;
        s.run_id = "run-1";
        s.input = std::move(input);
        s.started = now;
        s.observed = observed;
        m.emplace(cfg, std::move(s));
    }

    // The next action that is not an event (events are collected).
    run_action next() {
        for (;;) {
            run_action a = m->next(now);
            if (a.type != run_action_type::emit) {
                return a;
            }
            events.push_back(std::move(a.event()));
        }
    }
    run_action expect(run_action_type t) {
        run_action a = next();
        REQUIRE(static_cast<int>(a.type) == static_cast<int>(t));
        return a;
    }
    run_result done() {
        expect(run_action_type::done);
        return std::move(*m).take_result();
    }
    template <class T>
    std::size_t count() const {
        std::size_t n = 0;
        for (const auto& e : events) {
            n += std::holds_alternative<T>(e) ? 1U : 0U;
        }
        return n;
    }
};

} // namespace

TEST_SUITE("unit/run_machine") {
    TEST_CASE("child paused: a call whose child run stopped for approval holds the step, the run "
              "stops with the child's calls pending, and on_child_resumed dispatches it again") {
        agent_config cfg;
        cfg.tools = make_tools();
        script s(std::move(cfg));
        s.expect(run_action_type::call_model);
        s.m->on_model_reply(1, calls_reply({call("a", "read"), call("h", "write")}), 1us);
        run_action d = s.expect(run_action_type::dispatch);
        REQUIRE(d.dispatch().calls.size() == 2);
        const pending_approval child_call{"c1", "count", "{}", 1, "run-1/h"};
        s.m->on_tool_finished(d.op, 0, ok_result("a", "read", "r"), 1us);
        s.m->on_tool_finished(d.op, 1, ok_result("h", "write", "paused"), 1us, {child_call});
        CHECK(s.m->dispatch_end_due());
        s.m->on_dispatch_done(d.op, false, std::nullopt); // no "results are missing" for h
        run_action w = s.expect(run_action_type::await_approval);
        CHECK(w.approval().calls == std::vector<pending_approval>{child_call});
        CHECK(s.m->awaiting_approval());
        CHECK(s.m->paused_children() == std::vector<std::string>{"h"});
        SUBCASE("paused: stops with the child's call pending") {
            s.m->on_paused();
            run_result r = s.done();
            CHECK(r.stop_reason == stop_reason::awaiting_approval);
            CHECK(r.pending_approvals == std::vector<pending_approval>{child_call});
        }
        SUBCASE("resumed: the call runs again, alone") {
            s.m->on_child_resumed("h");
            run_action again = s.expect(run_action_type::dispatch);
            CHECK(again.dispatch().calls == std::vector<std::size_t>{1});
            s.m->on_tool_finished(again.op, 0, ok_result("h", "write", "child done"), 1us);
            s.m->on_dispatch_done(again.op, false, std::nullopt);
            s.expect(run_action_type::call_model);
            const auto& msgs = s.m->conversation().messages();
            REQUIRE(msgs.size() == 4); // the task, the calls, their results in the model's order
            CHECK(msgs[2].text() == "r");
            CHECK(msgs[3].text() == "child done");
        }
    }

    TEST_CASE("a final answer: one model call, then done with the answer and its usage") {
        agent_config cfg;
        cfg.system_prompt = "be brief";
        script s(cfg);
        run_action a = s.expect(run_action_type::call_model);
        CHECK(a.op == 1);
        CHECK(a.model().turn == 1);
        REQUIRE(a.model().request.messages.size() == 2);
        CHECK(a.model().request.model == "zai-glm-4.7");
        CHECK_FALSE(a.model().call_deadline.is_set());
        s.expect(run_action_type::wait);
        s.m->on_model_reply(1, text_reply("the answer"), 1500us);
        run_result r = s.done();
        CHECK(r.stop_reason == stop_reason::completed);
        CHECK(r.final_text == "the answer");
        CHECK(r.usage.prompt_tokens == 10);
        REQUIRE(r.turns.size() == 1);
        CHECK(r.turns[0].duration == 1500us);
        CHECK(r.conversation.messages().size() == 3);
        CHECK(r.run_id == "run-1");
        REQUIRE(s.events.size() == 4);
        CHECK(std::holds_alternative<events::run_started>(s.events[0]));
        CHECK(std::holds_alternative<events::model_request>(s.events[1]));
        CHECK(std::holds_alternative<events::turn_finished>(s.events[2]));
        CHECK(std::holds_alternative<events::run_finished>(s.events[3]));
    }

    TEST_CASE("a registry that changes mid-turn: the step keeps the turn's tools, the next turn "
              "offers the new ones; progress is an event") {
        agent_config cfg;
        auto reg = make_tools();
        cfg.tools = reg;
        script s(cfg);
        const auto names = [](const api::chat_request& req) {
            std::vector<std::string> out;
            for (const auto& t : req.tools) {
                out.push_back(t.name);
            }
            return out;
        };
        using list = std::vector<std::string>;
        run_action a = s.expect(run_action_type::call_model);
        CHECK(names(a.model().request) == list{"read", "write"});
        s.m->on_model_reply(1, calls_reply({call("a", "read")}), 1us);
        // An MCP server's list_changed lands between the reply and the step.
        std::vector<tools::tool> fresh;
        fresh.push_back(tools::make_tool<json>("fresh", "new", json{{"type", "object"}}, [](json) {
            return std::string("f");
        }));
        reg->replace({"read"}, std::move(fresh));
        run_action d = s.expect(run_action_type::dispatch);
        REQUIRE(d.dispatch().tools);
        CHECK(d.dispatch().tools->find("read") != nullptr);
        CHECK(d.dispatch().tools->find("fresh") == nullptr);
        s.m->on_tool_started(2, 0);
        s.m->on_tool_progress(2, 0, tools::call_progress{1, 4.0, "a quarter"});
        s.m->on_tool_finished(2, 0, ok_result("a", "read", "r"), 1us);
        s.m->on_tool_progress(2, 0, tools::call_progress{2, 4.0, "late"}); // ignored
        s.m->on_dispatch_done(2, false, std::nullopt);
        run_action next_call = s.expect(run_action_type::call_model);
        CHECK(names(next_call.model().request) == list{"fresh", "write"});
        s.m->on_model_reply(3, text_reply("done"), 1us);
        CHECK(s.done().stop_reason == stop_reason::completed);
        REQUIRE(s.count<events::tool_call_progress>() == 1);
        for (const auto& e : s.events) {
            if (const auto* p = std::get_if<events::tool_call_progress>(&e)) {
                CHECK(*p == events::tool_call_progress{1, "a", "read", 1, 4.0, "a quarter"});
            }
        }
    }

    TEST_CASE("an unobserved run builds no events at all") {
        script s(agent_config{}, false);
        s.expect(run_action_type::call_model);
        s.m->on_model_reply(1, text_reply("x"), 1us);
        CHECK(s.done().final_text == "x");
        CHECK(s.events.empty());
    }

    TEST_CASE("tool calls: one dispatch of every call; results in the model's order, whatever "
              "order they finish in") {
        agent_config cfg;
        cfg.tools = make_tools();
        script s(cfg);
        s.expect(run_action_type::call_model);
        s.m->on_model_reply(1, calls_reply({call("a", "read"), call("b", "write")}), 1us);
        run_action d = s.expect(run_action_type::dispatch);
        CHECK(d.op == 2);
        CHECK(d.dispatch().calls == std::vector<std::size_t>{0, 1});
        REQUIRE(d.dispatch().requests.size() == 2);
        CHECK(d.dispatch().requests[1].name == "write");
        s.expect(run_action_type::wait);
        s.m->on_tool_started(2, 1);
        s.m->on_tool_started(2, 0);
        s.m->on_tool_finished(2, 1, ok_result("b", "write", "wrote"), 3us);
        s.expect(run_action_type::wait); // the dispatch has not ended
        s.m->on_tool_finished(2, 0, ok_result("a", "read", "read it"), 4us);
        s.m->on_dispatch_done(2, false, std::nullopt);
        run_action next_call = s.expect(run_action_type::call_model);
        CHECK(next_call.op == 3);
        CHECK(next_call.model().turn == 2);
        s.m->on_model_reply(3, text_reply("done"), 1us);
        run_result r = s.done();
        const auto& msgs = r.conversation.messages();
        REQUIRE(msgs.size() == 5); // user, assistant(calls), tool a, tool b, assistant
        CHECK(msgs[2].tool_call_id == "a");
        CHECK(msgs[2].text() == "read it");
        CHECK(msgs[3].tool_call_id == "b");
        CHECK(s.count<events::tool_call_started>() == 2);
        CHECK(s.count<events::tool_call_finished>() == 2);
        CHECK(r.turns.size() == 2);
    }

    TEST_CASE("reports for unknown ops or in the wrong phase change nothing") {
        agent_config cfg;
        cfg.tools = make_tools();
        script s(cfg);
        s.expect(run_action_type::call_model);
        s.m->on_model_reply(7, text_reply("wrong op"), 1us);
        s.m->on_dispatch_done(1, false, std::nullopt);
        s.expect(run_action_type::wait);
        s.m->on_model_reply(1, calls_reply({call("a", "read")}), 1us);
        s.expect(run_action_type::dispatch);
        s.m->on_tool_finished(2, 5, ok_result("a", "read", "out of range"), 1us);
        s.m->on_tool_finished(2, 0, ok_result("a", "read", "first"), 1us);
        s.m->on_tool_finished(2, 0, ok_result("a", "read", "second"), 1us);
        s.m->on_dispatch_done(2, false, std::nullopt);
        s.expect(run_action_type::call_model);
        s.m->on_model_reply(3, text_reply("ok"), 1us);
        run_result r = s.done();
        CHECK(r.conversation.messages()[2].text() == "first");
    }

    TEST_CASE("a dispatch that fails as a whole: calls it never reported get an error result") {
        agent_config cfg;
        cfg.tools = make_tools();
        script s(cfg);
        s.expect(run_action_type::call_model);
        s.m->on_model_reply(1, calls_reply({call("a", "read"), call("b", "read")}), 1us);
        s.expect(run_action_type::dispatch);
        s.m->on_tool_finished(2, 0, ok_result("a", "read", "fine"), 1us);
        s.m->on_dispatch_done(2, false, std::string("bad_alloc"));
        s.expect(run_action_type::call_model);
        const auto& msgs = s.m->conversation().messages();
        REQUIRE(msgs.size() == 4);
        CHECK(msgs[2].text() == "fine");
        CHECK(msgs[3].text().find("the tool dispatch failed (bad_alloc)") != std::string::npos);
    }

    TEST_CASE("max_turns: stop policy ends at once; final_answer policy asks once without tools") {
        agent_config cfg;
        cfg.tools = make_tools();
        cfg.limits.max_turns = 1;
        SUBCASE("stop") {
            cfg.limits.on_max_turns = max_turns_policy::stop;
            script s(cfg);
            s.expect(run_action_type::call_model);
            s.m->on_model_reply(1, calls_reply({call("a", "read")}), 1us);
            s.expect(run_action_type::dispatch);
            s.m->on_tool_finished(2, 0, ok_result("a", "read", "x"), 1us);
            s.m->on_dispatch_done(2, false, std::nullopt);
            run_result r = s.done();
            CHECK(r.stop_reason == stop_reason::max_turns);
            CHECK(r.final_text.empty());
        }
        SUBCASE("final_answer") {
            script s(cfg);
            s.expect(run_action_type::call_model);
            s.m->on_model_reply(1, calls_reply({call("a", "read")}), 1us);
            s.expect(run_action_type::dispatch);
            s.m->on_tool_finished(2, 0, ok_result("a", "read", "x"), 1us);
            s.m->on_dispatch_done(2, false, std::nullopt);
            run_action last = s.expect(run_action_type::call_model);
            CHECK(last.model().request.tools.empty());
            CHECK(
                last.model().request.messages.back().text().find("final answer") !=
                std::string::npos
            );
            // A final turn never runs tools, even if the model calls one.
            model_reply r = calls_reply({call("c", "write")});
            r.message.content = "my answer";
            s.m->on_model_reply(last.op, std::move(r), 1us);
            run_result res = s.done();
            CHECK(res.stop_reason == stop_reason::max_turns);
            CHECK(res.final_text == "my answer");
        }
    }

    TEST_CASE("deadlines: none passed, run deadline, turn timeout") {
        agent_config cfg;
        cfg.limits.run_timeout = 10s;
        cfg.limits.turn_timeout = 2s;
        SUBCASE("the call carries both deadlines; the turn timeout fails the run as an error") {
            script s(cfg);
            run_action a = s.expect(run_action_type::call_model);
            CHECK(a.model().run_deadline.at() == s.now + 10s);
            CHECK(a.model().call_deadline.at() == s.now + 2s);
            s.m->on_model_failed(a.op, model_failure::turn_timeout, std::nullopt);
            run_result r = s.done();
            CHECK(r.stop_reason == stop_reason::error);
            REQUIRE(r.error);
            CHECK(r.error->code == make_error_code(errc::timeout));
        }
        SUBCASE("the run deadline during the call") {
            script s(cfg);
            run_action a = s.expect(run_action_type::call_model);
            s.m->on_model_failed(a.op, model_failure::run_deadline, std::nullopt);
            CHECK(s.done().stop_reason == stop_reason::deadline);
        }
        SUBCASE("no model call starts after the deadline, compared at full precision") {
            script s(cfg);
            s.now += 10s;
            run_result r = s.done();
            CHECK(r.stop_reason == stop_reason::deadline);
            CHECK(r.turns.empty());
            CHECK(r.duration == 10s);
        }
        SUBCASE("tool batches get what is left of the run, rounded up") {
            cfg.tools = make_tools();
            cfg.limits.tool_batch_timeout = 60s;
            script s(cfg);
            s.expect(run_action_type::call_model);
            s.now += 9s + 300us;
            s.m->on_model_reply(1, calls_reply({call("a", "read")}), 1us);
            run_action d = s.expect(run_action_type::dispatch);
            CHECK(d.dispatch().options.batch_timeout == 1000ms); // 999.7 ms, rounded up
        }
    }

    TEST_CASE("token budget: no new turn once the run's tokens reach it") {
        agent_config cfg;
        cfg.tools = make_tools();
        cfg.limits.token_budget = 100;
        script s(cfg);
        s.expect(run_action_type::call_model);
        model_reply r = calls_reply({call("a", "read")});
        r.usage->prompt_tokens = 90;
        r.usage->completion_tokens = 20;
        s.m->on_model_reply(1, std::move(r), 1us);
        run_result res = s.done();
        CHECK(res.stop_reason == stop_reason::token_budget);
        // The unanswered call got a result from the final repair: the history is valid.
        CHECK(res.conversation.messages().back().role == api::role::tool);
    }

    TEST_CASE("a model failure ends the run with its error") {
        script s(agent_config{});
        run_action a = s.expect(run_action_type::call_model);
        run_error e{errc::rate_limited, {}};
        e.diagnostics.http_status = 429;
        s.m->on_model_failed(a.op, model_failure::error, e);
        run_result r = s.done();
        CHECK(r.stop_reason == stop_reason::error);
        REQUIRE(r.error);
        CHECK(r.error->code == make_error_code(errc::rate_limited));
        CHECK(r.error->diagnostics.http_status == 429);
    }

    TEST_CASE("cancellation: what is in flight is cancelled once, reports, and the run stops") {
        agent_config cfg;
        cfg.tools = make_tools();
        SUBCASE("during the model call") {
            script s(cfg);
            run_action a = s.expect(run_action_type::call_model);
            s.m->on_cancelled();
            s.expect(run_action_type::cancel_ops);
            s.expect(run_action_type::wait);
            s.m->on_model_failed(a.op, model_failure::cancelled, std::nullopt);
            CHECK(s.done().stop_reason == stop_reason::cancelled);
        }
        SUBCASE("during tools: their cancelled results stay in the history") {
            script s(cfg);
            s.expect(run_action_type::call_model);
            s.m->on_model_reply(1, calls_reply({call("a", "write")}), 1us);
            s.expect(run_action_type::dispatch);
            s.m->on_cancelled();
            s.expect(run_action_type::cancel_ops);
            s.expect(run_action_type::wait);
            tools::tool_result c = ok_result("a", "write", "cancelled");
            c.is_error = true;
            c.status = tools::result_status::cancelled;
            s.m->on_tool_finished(2, 0, c, 1us);
            s.m->on_dispatch_done(2, true, std::nullopt);
            run_result r = s.done();
            CHECK(r.stop_reason == stop_reason::cancelled);
            CHECK(r.conversation.messages().back().text() == "cancelled");
        }
        SUBCASE("between steps: nothing to cancel, the next turn does not start") {
            script s(cfg);
            s.m->on_cancelled();
            run_result r = s.done();
            CHECK(r.stop_reason == stop_reason::cancelled);
            CHECK(r.turns.empty());
        }
    }

    TEST_CASE("calls to tools that were never offered are answered without a dispatch") {
        script s(agent_config{});
        s.expect(run_action_type::call_model);
        s.m->on_model_reply(1, calls_reply({call("a", "read")}), 1us);
        run_action a = s.expect(run_action_type::call_model);
        CHECK(a.model().turn == 2);
        CHECK(
            s.m->conversation().messages().back().text().find("no tools are available") !=
            std::string::npos
        );
    }

    TEST_CASE("before_tools: a covered call waits for its verdicts; free calls start at once") {
        agent_config cfg;
        cfg.tools = make_tools();
        cfg.critics.push_back(make_critic("security", gate::before_tools));
        script s(cfg);
        s.expect(run_action_type::call_model);
        s.m->on_model_reply(1, calls_reply({call("a", "read"), call("b", "write")}), 1us);
        run_action review = s.expect(run_action_type::review);
        CHECK(review.review().gate == gate::before_tools);
        CHECK(review.review().call_id == std::optional<std::string>("b"));
        CHECK(review.review().input.find("write") != std::string::npos);
        run_action free = s.expect(run_action_type::dispatch);
        CHECK(free.dispatch().calls == std::vector<std::size_t>{0});
        s.expect(run_action_type::wait);
        SUBCASE("deny: the call never starts and gets the critic's reasons") {
            s.m->on_review(
                review.op, verdict_of(review.review(), "security", critic_decision::deny, "rm -rf")
            );
            s.expect(run_action_type::wait); // the free call is still running
            s.m->on_tool_finished(free.op, 0, ok_result("a", "read", "r"), 1us);
            s.m->on_dispatch_done(free.op, false, std::nullopt);
            s.expect(run_action_type::call_model);
            const auto& msgs = s.m->conversation().messages();
            CHECK(msgs[3].tool_call_id == "b");
            CHECK(msgs[3].text().find("rm -rf") != std::string::npos);
            CHECK(s.count<events::critic_verdict>() == 1);
        }
        SUBCASE("approve: the call is dispatched on its own") {
            s.m->on_review(
                review.op, verdict_of(review.review(), "security", critic_decision::approve, "ok")
            );
            run_action gated = s.expect(run_action_type::dispatch);
            CHECK(gated.dispatch().calls == std::vector<std::size_t>{1});
            s.m->on_tool_finished(gated.op, 0, ok_result("b", "write", "w"), 1us);
            s.m->on_dispatch_done(gated.op, false, std::nullopt);
            s.m->on_tool_finished(free.op, 0, ok_result("a", "read", "r"), 1us);
            s.m->on_dispatch_done(free.op, false, std::nullopt);
            s.expect(run_action_type::call_model);
            CHECK(s.m->conversation().messages()[3].text() == "w");
        }
    }

    TEST_CASE("after_step: revise adds feedback and counts; past max_revisions the run stops") {
        agent_config cfg;
        cfg.tools = make_tools();
        cfg.critics.push_back(make_critic("qa", gate::after_step));
        cfg.critic_policy.max_revisions = 1;
        script s(cfg);
        std::uint32_t op = 0;
        for (int round = 0; round < 2; ++round) {
            run_action m = s.expect(run_action_type::call_model);
            s.m->on_model_reply(
                m.op, calls_reply({call("c" + std::to_string(round), "read")}), 1us
            );
            run_action d = s.expect(run_action_type::dispatch);
            s.m->on_tool_finished(
                d.op, 0, ok_result("c" + std::to_string(round), "read", "r"), 1us
            );
            s.m->on_dispatch_done(d.op, false, std::nullopt);
            run_action review = s.expect(run_action_type::review);
            CHECK(review.review().gate == gate::after_step);
            op = review.op;
            s.m->on_review(
                op, verdict_of(review.review(), "qa", critic_decision::revise, "add a test")
            );
        }
        run_result r = s.done();
        CHECK(r.stop_reason == stop_reason::revisions_exhausted);
        CHECK(r.revisions == 1);
        CHECK(r.reviews.size() == 2);
        bool feedback_seen = false;
        for (const auto& msg : r.conversation.messages()) {
            feedback_seen = feedback_seen || (msg.role == api::role::user &&
                                              msg.text().find("add a test") != std::string::npos);
        }
        CHECK(feedback_seen);
    }

    TEST_CASE("final_answer: deny clears the answer; approve keeps it") {
        agent_config cfg;
        cfg.critics.push_back(make_critic("qa", gate::final_answer));
        script s(cfg);
        s.expect(run_action_type::call_model);
        s.m->on_model_reply(1, text_reply("42"), 1us);
        run_action review = s.expect(run_action_type::review);
        CHECK(review.review().input.find("42") != std::string::npos);
        SUBCASE("deny") {
            s.m->on_review(
                review.op, verdict_of(review.review(), "qa", critic_decision::deny, "no")
            );
            run_result r = s.done();
            CHECK(r.stop_reason == stop_reason::critic_denied);
            CHECK(r.final_text.empty());
        }
        SUBCASE("approve") {
            s.m->on_review(
                review.op, verdict_of(review.review(), "qa", critic_decision::approve, "fine")
            );
            run_result r = s.done();
            CHECK(r.stop_reason == stop_reason::completed);
            CHECK(r.final_text == "42");
        }
    }

    TEST_CASE("the same inputs give the same actions (what a journal replay relies on)") {
        agent_config cfg;
        cfg.tools = make_tools();
        cfg.critics.push_back(make_critic("security", gate::before_tools));
        cfg.limits.run_timeout = 30s;
        auto drive = [&](std::vector<std::string>& trace) {
            script s(cfg);
            auto log = [&](const run_action& a) {
                std::string line =
                    std::to_string(static_cast<int>(a.type)) + ":" + std::to_string(a.op);
                if (a.type == run_action_type::dispatch) {
                    for (auto i : a.dispatch().calls) {
                        line += "," + std::to_string(i);
                    }
                }
                trace.push_back(line);
            };
            run_action m = s.next();
            log(m);
            s.m->on_model_reply(m.op, calls_reply({call("a", "read"), call("b", "write")}), 5us);
            run_action review = s.next();
            log(review);
            run_action free = s.next();
            log(free);
            s.m->on_review(
                review.op, verdict_of(review.review(), "security", critic_decision::approve, "ok")
            );
            run_action gated = s.next();
            log(gated);
            s.m->on_tool_finished(gated.op, 0, ok_result("b", "write", "w"), 1us);
            s.m->on_dispatch_done(gated.op, false, std::nullopt);
            s.m->on_tool_finished(free.op, 0, ok_result("a", "read", "r"), 1us);
            s.m->on_dispatch_done(free.op, false, std::nullopt);
            run_action m2 = s.next();
            log(m2);
            s.m->on_model_reply(m2.op, text_reply("end"), 5us);
            log(s.next());
            trace.push_back(std::to_string(s.events.size()));
        };
        std::vector<std::string> first, second;
        drive(first);
        drive(second);
        CHECK(first == second);
        CHECK(first.size() == 7);
    }
}

namespace {

// read (free), write (always needs approval) and push (needs it when "force" is true).
std::shared_ptr<tools::registry> make_gated_tools() {
    tools::tool_options gated;
    gated.needs_approval = true;
    auto reg = make_tools(std::move(gated));
    const json any = {{"type", "object"}};
    tools::tool_options forced;
    forced.needs_approval = [](const json& args) {
        return args.value("force", false);
    };
    reg->add(tools::make_tool<json>(
        "push", "pushes", any, [](json) { return std::string("p"); }, forced
    ));
    return reg;
}

// A step of calls `a` (read) and `b` (write): `a` is dispatched at once, `b` waits.
struct gated_step {
    script s;
    run_action free;

    explicit gated_step(agent_config cfg) : s(with_tools(std::move(cfg))) {
        s.expect(run_action_type::call_model);
        s.m->on_model_reply(1, calls_reply({call("a", "read"), call("b", "write")}), 1us);
        free = s.expect(run_action_type::dispatch);
        REQUIRE(free.dispatch().calls == std::vector<std::size_t>{0});
        s.expect(run_action_type::wait);
    }
    static agent_config with_tools(agent_config cfg) {
        cfg.tools = make_gated_tools();
        return cfg;
    }
    void finish_free() {
        s.m->on_tool_finished(free.op, 0, ok_result("a", "read", "r"), 1us);
        s.m->on_dispatch_done(free.op, false, std::nullopt);
    }
    std::vector<const events::approval_requested*> requested() const {
        std::vector<const events::approval_requested*> out;
        for (const auto& e : s.events) {
            if (const auto* r = std::get_if<events::approval_requested>(&e)) {
                out.push_back(r);
            }
        }
        return out;
    }
};

} // namespace

TEST_SUITE("unit/run_machine") {
    TEST_CASE("approval: the rest of the step runs, then the machine waits; paused, it stops "
              "with the pending calls and the open step") {
        gated_step g(agent_config{});
        REQUIRE(g.requested().size() == 1); // asked as soon as the call is held
        CHECK(g.requested()[0]->call_id == "b");
        CHECK(g.requested()[0]->name == "write");
        g.finish_free();
        run_action w = g.s.expect(run_action_type::await_approval);
        REQUIRE(w.approval().calls.size() == 1);
        CHECK(w.approval().calls[0] == pending_approval{"b", "write", "{}", 1, {}});
        CHECK(g.s.m->awaiting_approval());
        g.s.expect(run_action_type::wait); // asked once
        g.s.m->on_paused();
        run_result r = g.s.done();
        CHECK(r.stop_reason == stop_reason::awaiting_approval);
        CHECK(r.pending_approvals == w.approval().calls);
        // Not repaired: the open step is continued by a resume, not answered with "not run".
        const auto& msgs = r.conversation.messages();
        REQUIRE(msgs.size() == 2);
        CHECK(msgs.back().tool_calls.size() == 2);
        CHECK(g.s.count<events::run_finished>() == 1);
    }

    TEST_CASE("approval: approved with edited arguments, the call runs with them and the history "
              "says so; denied, it never runs and the model reads why") {
        gated_step g(agent_config{});
        g.finish_free();
        g.s.expect(run_action_type::await_approval);
        SUBCASE("approve, edited") {
            g.s.m->on_approval("b", approval_decision::approve(R"({"path":"safe.txt"})"));
            run_action d = g.s.expect(run_action_type::dispatch);
            CHECK(d.dispatch().calls == std::vector<std::size_t>{1});
            REQUIRE(d.dispatch().requests.size() == 1);
            CHECK(d.dispatch().requests[0].arguments == R"({"path":"safe.txt"})");
            CHECK(d.dispatch().requests[0].approved); // the handler is told
            CHECK_FALSE(g.free.dispatch().requests[0].approved);
            g.s.m->on_tool_finished(d.op, 0, ok_result("b", "write", "w"), 1us);
            g.s.m->on_dispatch_done(d.op, false, std::nullopt);
            g.s.expect(run_action_type::call_model);
            const auto& msgs = g.s.m->conversation().messages();
            CHECK(msgs[1].tool_calls[1].arguments == R"({"path":"safe.txt"})");
            CHECK(msgs[2].text() == "r");
            CHECK(msgs[3].text() == "w");
            CHECK(g.s.count<events::approval_decided>() == 1);
        }
        SUBCASE("deny, with a message") {
            g.s.m->on_approval("b", approval_decision::deny("not on a Friday"));
            g.s.expect(run_action_type::call_model); // nothing dispatched
            const auto& msgs = g.s.m->conversation().messages();
            REQUIRE(msgs.size() == 4);
            CHECK(msgs[3].tool_call_id == "b");
            CHECK(msgs[3].text().find("denied: the user declined") != std::string::npos);
            CHECK(msgs[3].text().find("not on a Friday") != std::string::npos);
        }
    }

    TEST_CASE("approval: a decision that comes while the rest runs starts the call at once; "
              "stray and second decisions change nothing") {
        gated_step g(agent_config{});
        g.s.m->on_approval("zz", approval_decision::approve()); // no such call
        g.s.m->on_approval("a", approval_decision::deny());     // needs no approval
        g.s.m->on_approval("b", approval_decision::approve());
        g.s.m->on_approval("b", approval_decision::deny()); // the first one counts
        run_action d = g.s.expect(run_action_type::dispatch);
        CHECK(d.dispatch().calls == std::vector<std::size_t>{1});
        g.s.expect(run_action_type::wait);
        g.finish_free();
        g.s.m->on_tool_finished(d.op, 0, ok_result("b", "write", "w"), 1us);
        g.s.m->on_dispatch_done(d.op, false, std::nullopt);
        g.s.expect(run_action_type::call_model); // no await_approval on the way
        CHECK(g.s.m->conversation().messages()[2].text() == "r");
        CHECK(g.s.m->conversation().messages()[3].text() == "w");
    }

    TEST_CASE("approval: a predicate decides per call; arguments that do not parse always ask") {
        agent_config cfg;
        cfg.tools = make_gated_tools();
        script s(cfg);
        s.expect(run_action_type::call_model);
        s.m->on_model_reply(
            1,
            calls_reply(
                {call("p1", "push", R"({"force":false})"),
                 call("p2", "push", R"({"force":true})"),
                 call("p3", "push", "{not json"),
                 call("p4", "push", "[1]")}
            ),
            1us
        );
        run_action d = s.expect(run_action_type::dispatch);
        CHECK(d.dispatch().calls == std::vector<std::size_t>{0});
        s.m->on_tool_finished(d.op, 0, ok_result("p1", "push", "p"), 1us);
        s.m->on_dispatch_done(d.op, false, std::nullopt);
        run_action w = s.expect(run_action_type::await_approval);
        REQUIRE(w.approval().calls.size() == 3);
        CHECK(w.approval().calls[0].call_id == "p2");
        CHECK(w.approval().calls[1].call_id == "p3");
        CHECK(w.approval().calls[2].call_id == "p4");
        SUBCASE("a partial answer leaves the rest pending") {
            s.m->on_approval("p3", approval_decision::deny());
            run_action again = s.expect(run_action_type::await_approval);
            REQUIRE(again.approval().calls.size() == 2);
            CHECK(again.approval().calls[0].call_id == "p2");
            CHECK(again.approval().calls[1].call_id == "p4");
            s.m->on_paused();
            CHECK(s.done().pending_approvals.size() == 2);
        }
    }

    TEST_CASE("approval: critics review first; nobody is asked about a call they refuse") {
        agent_config cfg;
        cfg.tools = make_gated_tools();
        cfg.critics.push_back(make_critic("security", gate::before_tools));
        script s(cfg);
        s.expect(run_action_type::call_model);
        s.m->on_model_reply(1, calls_reply({call("b", "write")}), 1us);
        run_action review = s.expect(run_action_type::review);
        s.expect(run_action_type::wait);
        CHECK(s.count<events::approval_requested>() == 0);
        SUBCASE("refused by the critic") {
            s.m->on_review(
                review.op, verdict_of(review.review(), "security", critic_decision::deny, "no")
            );
            s.expect(run_action_type::call_model);
            CHECK(s.count<events::approval_requested>() == 0);
        }
        SUBCASE("approved by the critic: then a person is asked") {
            s.m->on_review(
                review.op, verdict_of(review.review(), "security", critic_decision::approve, "ok")
            );
            run_action w = s.expect(run_action_type::await_approval);
            CHECK(w.approval().calls.size() == 1);
            CHECK(s.count<events::approval_requested>() == 1);
        }
    }

    TEST_CASE("approval: cancellation or the deadline while waiting ends the run; the waiting "
              "call never runs") {
        agent_config cfg;
        cfg.limits.run_timeout = 10s;
        gated_step g(cfg);
        g.finish_free();
        run_action w = g.s.expect(run_action_type::await_approval);
        CHECK(w.approval().until.is_set());
        SUBCASE("cancelled") {
            g.s.m->on_cancelled();
            run_result r = g.s.done();
            CHECK(r.stop_reason == stop_reason::cancelled);
            CHECK(
                r.conversation.messages()[3].text().find("waited for approval") != std::string::npos
            );
        }
        SUBCASE("deadline") {
            g.s.now += 11s;
            run_result r = g.s.done();
            CHECK(r.stop_reason == stop_reason::deadline);
            CHECK(r.conversation.messages()[3].text().find("deadline passed") != std::string::npos);
            CHECK(r.pending_approvals.empty());
        }
    }

    TEST_CASE("approval: a resumed machine asks again for what is still pending") {
        gated_step g(agent_config{});
        g.finish_free();
        g.s.expect(run_action_type::await_approval);
        g.s.m->on_resumed();
        g.s.expect(run_action_type::await_approval);
        CHECK(g.requested().size() == 2); // once before, once again
    }
}
