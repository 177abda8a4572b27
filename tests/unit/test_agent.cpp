// The agent loop against the scripted model: no network.
#include <wafer/agent.hpp>
#include <wafer/scripted_model.hpp>
#include <wafer/tools/registry.hpp>
#include <wafer/tools/tool.hpp>

#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <doctest/doctest.h>

#include <atomic>
#include <cctype>
#include <set>
#include <thread>

#include "run_coro.hpp"

namespace asio = boost::asio;
using namespace std::chrono_literals;
using namespace wafer;
using wafer::testing::run_coro;
using turn = scripted_model::turn;

namespace {

api::tool_call call(std::string id, std::string name, std::string args = "{}") {
    return {std::move(id), std::move(name), std::move(args)};
}

api::usage usage_of(std::int64_t prompt, std::int64_t completion) {
    api::usage u;
    u.prompt_tokens = prompt;
    u.completion_tokens = completion;
    u.total_tokens = prompt + completion;
    return u;
}

asio::awaitable<std::string> sleep_tool(nlohmann::json args) {
    asio::steady_timer t(co_await asio::this_coro::executor);
    t.expires_after(std::chrono::milliseconds(args.value("ms", 100)));
    co_await t.async_wait(asio::use_awaitable);
    co_return "slept " + std::to_string(args.value("ms", 100)) + " ms";
}

// Throws something that is not a std::exception.
asio::awaitable<std::string> throw_int_tool(nlohmann::json args) {
    if (args.is_object()) {
        throw 42;
    }
    co_return "unreachable";
}

std::shared_ptr<tools::registry> make_tools() {
    auto reg = std::make_shared<tools::registry>();
    nlohmann::json echo_schema = {
        {"type", "object"},
        {"properties", {{"text", {{"type", "string"}}}}},
        {"required", {"text"}},
        {"additionalProperties", false}};
    reg->add(tools::make_tool<nlohmann::json>(
        "echo",
        "Echo text",
        echo_schema,
        [](nlohmann::json a) { return "echo: " + a["text"].get<std::string>(); }
    ));
    nlohmann::json sleep_schema = {
        {"type", "object"}, {"properties", {{"ms", {{"type", "integer"}}}}}};
    reg->add(tools::make_async_tool<nlohmann::json>("sleep", "Wait", sleep_schema, &sleep_tool));
    return reg;
}

struct fixture {
    asio::io_context ioc;
    std::shared_ptr<scripted_model> model = std::make_shared<scripted_model>("zai-glm-4.7");
    std::shared_ptr<tools::registry> tools = make_tools();
    std::vector<event> events;

    agent make_agent(agent_limits limits = {}) {
        agent_config cfg;
        cfg.name = "tester";
        cfg.model = model;
        cfg.system_prompt = "You are a test agent.";
        cfg.tools = tools;
        cfg.limits = limits;
        return agent(std::move(cfg));
    }

    run_result run(const agent& a, std::string input, std::chrono::seconds deadline = 10s) {
        run_options opts;
        opts.on_event = [this](const event& e) {
            events.push_back(e);
        };
        return run_coro(ioc, a.async_run(std::move(input), std::move(opts)), deadline);
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
};

asio::awaitable<void>
emit_after(std::shared_ptr<asio::cancellation_signal> sig, std::chrono::milliseconds d) {
    asio::steady_timer t(co_await asio::this_coro::executor, d);
    co_await t.async_wait(asio::use_awaitable);
    sig->emit(asio::cancellation_type::terminal);
}

asio::awaitable<run_result>
run_cancelled_after(const agent& a, std::string input, std::chrono::milliseconds d) {
    auto ex = co_await asio::this_coro::executor;
    auto sig = std::make_shared<asio::cancellation_signal>();
    asio::co_spawn(ex, emit_after(sig, d), asio::detached);
    // Named pieces, not temporaries inside the co_await expression (GCC 12 coroutine bug).
    auto token = asio::bind_cancellation_slot(sig->slot(), asio::use_awaitable);
    asio::awaitable<run_result> op = a.async_run(std::move(input));
    run_result r = co_await asio::co_spawn(ex, std::move(op), token);
    co_return r;
}

} // namespace

TEST_SUITE("unit/agent") {
    TEST_CASE("a reply without tool calls is the final answer") {
        fixture f;
        turn t = turn::text("Paris.", "The capital of France is Paris.");
        t.usage = usage_of(20, 5);
        f.model->push(t);
        agent a = f.make_agent();
        run_result r = f.run(a, "Capital of France?");
        CHECK(r.stop_reason == stop_reason::completed);
        CHECK(r.final_text == "Paris.");
        CHECK(r.turn_count() == 1);
        CHECK(r.usage.prompt_tokens == 20);
        CHECK(r.usage.completion_tokens == 5);
        REQUIRE(r.conversation.size() == 3);
        CHECK(r.conversation.messages()[0].role == api::role::system);
        CHECK(r.conversation.messages()[1].text() == "Capital of France?");
        CHECK(
            r.conversation.messages()[2].reasoning ==
            std::optional<std::string>("The capital of France is Paris.")
        );
        // The request offered the tools and carried the system prompt first.
        auto req = f.model->request(0);
        CHECK(req.model == "zai-glm-4.7");
        CHECK(req.tools.size() == 2);
        CHECK(req.messages.front().role == api::role::system);
        // Events: numbered without gaps, from run_started to run_finished.
        REQUIRE(f.events.size() >= 4);
        for (std::size_t i = 0; i < f.events.size(); ++i) {
            CHECK(f.events[i].seq == i + 1);
            CHECK(f.events[i].agent == "tester");
        }
        CHECK(f.events.front().is<events::run_started>());
        CHECK(f.events.back().is<events::run_finished>());
        CHECK(f.events.back().get_if<events::run_finished>()->stop_reason == "completed");
    }

    TEST_CASE("tools added to the registry after the agent was built are offered and run") {
        fixture f;
        agent a = f.make_agent();
        f.tools->add(tools::make_tool<nlohmann::json>(
            "shout",
            "Upper-case text",
            nlohmann::json{{"type", "object"}, {"properties", {{"text", {{"type", "string"}}}}}},
            [](nlohmann::json args) {
                std::string t = args.value("text", "");
                for (auto& c : t) {
                    c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
                }
                return t;
            }
        ));
        f.model->push(turn::calls({call("c1", "shout", R"({"text":"hi"})")}));
        f.model->push(turn::text("HI it is."));
        run_result r = f.run(a, "Shout hi.");
        CHECK(r.stop_reason == stop_reason::completed);
        const auto req = f.model->request(0);
        REQUIRE(req.tools.size() == 3);
        CHECK(req.tools[2].name == "shout");
        CHECK(req.tools[2].parameters->at("type") == "object");
        CHECK(f.model->request(1).messages.back().text() == "HI");
    }

    TEST_CASE("a run nobody observes gives the same result as an observed one") {
        fixture f;
        for (int i = 0; i < 2; ++i) {
            f.model->push(turn::calls({call("c1", "echo", R"({"text":"x"})")}, "Echo first."));
            f.model->push(turn::text("Done: echo: x.", "The tool answered."));
        }
        agent a = f.make_agent();
        run_result observed = f.run(a, "Echo x.");
        run_result quiet = run_coro(f.ioc, a.async_run("Echo x."));
        CHECK(quiet.stop_reason == stop_reason::completed);
        CHECK(quiet.final_text == observed.final_text);
        CHECK(quiet.turn_count() == observed.turn_count());
        REQUIRE(quiet.conversation.size() == observed.conversation.size());
        for (std::size_t i = 0; i < quiet.conversation.size(); ++i) {
            CHECK(quiet.conversation.messages()[i] == observed.conversation.messages()[i]);
        }
        CHECK(!f.events.empty());
    }

    TEST_CASE("GLM: tool calls run, results follow in emission order, reasoning is sent back") {
        fixture f;
        f.model->push(turn::calls(
            {call("c1", "sleep", R"({"ms":60})"),
             call("c2", "echo", R"({"text":"hi"})"),
             call("c3", "sleep", R"({"ms":10})")},
            "I should call three tools."
        ));
        f.model->push(turn::text("All done."));
        agent a = f.make_agent();
        run_result r = f.run(a, "go");
        CHECK(r.stop_reason == stop_reason::completed);
        CHECK(r.final_text == "All done.");
        CHECK(r.turn_count() == 2);
        const auto& msgs = r.conversation.messages();
        REQUIRE(msgs.size() == 7); // system, user, assistant, 3 tool results, assistant
        CHECK(msgs[3].tool_call_id == std::optional<std::string>("c1"));
        CHECK(msgs[3].text() == "slept 60 ms");
        CHECK(msgs[4].tool_call_id == std::optional<std::string>("c2"));
        CHECK(msgs[4].text() == "echo: hi");
        CHECK(msgs[5].tool_call_id == std::optional<std::string>("c3"));

        // The second request carries the first turn's reasoning, with clear_thinking false.
        auto second = f.model->request(1);
        CHECK(second.clear_thinking == std::optional<bool>(false));
        bool found = false;
        for (const auto& m : second.messages) {
            if (m.role == api::role::assistant && !m.tool_calls.empty()) {
                found = true;
                CHECK(m.reasoning == std::optional<std::string>("I should call three tools."));
            }
        }
        CHECK(found);

        // Tool events: three starts and three finishes, finishes carry the outputs.
        auto started = f.events_of<events::tool_call_started>();
        auto finished = f.events_of<events::tool_call_finished>();
        CHECK(started.size() == 3);
        REQUIRE(finished.size() == 3);
        for (const auto* e : finished) {
            CHECK_FALSE(e->is_error);
        }
    }

    TEST_CASE("tool failures are data: unknown tool and invalid arguments") {
        fixture f;
        f.model->push(turn::calls(
            {call("a", "nope"), call("b", "echo", R"({"text":5})"), call("c", "echo", "{bad")}
        ));
        f.model->push(turn::text("Recovered."));
        agent a = f.make_agent();
        run_result r = f.run(a, "go");
        CHECK(r.stop_reason == stop_reason::completed);
        const auto& msgs = r.conversation.messages();
        REQUIRE(msgs.size() == 7);
        CHECK(msgs[3].text().find("echo") != std::string::npos);  // lists the available tools
        CHECK(msgs[4].text().find("/text") != std::string::npos); // names the violating path
        CHECK(r.conversation.meta()[3].is_error);
        CHECK(r.conversation.meta()[4].is_error);
        CHECK(r.conversation.meta()[5].is_error);
    }

    TEST_CASE("a dispatch that fails as a whole (1e400 arguments, throwing handlers) while a slow "
              "call is in flight: every call gets a result, the run goes on, late reports reach "
              "nobody") {
        for (const bool observed : {true, false}) {
            CAPTURE(observed);
            fixture f;
            f.tools->add(tools::make_async_tool<nlohmann::json>(
                "throw_int", "Throws an int", nlohmann::json{{"type", "object"}}, &throw_int_tool
            ));
            f.tools->add(tools::make_blocking_tool<nlohmann::json>(
                "throw_string",
                "Throws a std::string",
                nlohmann::json{{"type", "object"}},
                [](const nlohmann::json&) -> std::string { throw std::string("not an exception"); }
            ));
            nlohmann::json num_schema = {
                {"type", "object"}, {"properties", {{"x", {{"type", "number"}}}}}};
            f.tools->add(tools::make_tool<nlohmann::json>(
                "num",
                "Takes a number",
                num_schema,
                [](const nlohmann::json&) { return std::string("got it"); }
            ));
            f.model->push(turn::calls({
                call("c1", "sleep", R"({"ms":150})"),
                call("c2", "throw_int"),
                call("c3", "throw_string"),
                call("c4", "num", R"({"x":1e400})"),
            }));
            f.model->push(turn::text("Recovered."));
            agent a = f.make_agent();
            run_result r =
                observed ? f.run(a, "go") : run_coro(f.ioc, a.async_run("go", run_options{}));
            CHECK(r.stop_reason == stop_reason::completed);
            CHECK(r.final_text == "Recovered.");
            const auto& msgs = r.conversation.messages();
            REQUIRE(msgs.size() == 8); // system, user, calls, 4 results, answer
            for (std::size_t i = 3; i < 7; ++i) {
                CHECK(msgs[i].role == api::role::tool);
            }
            CHECK(msgs[4].text().find("throw_int") != std::string::npos);
            CHECK(r.conversation.meta()[4].is_error);
            CHECK(r.conversation.meta()[5].is_error);
            CHECK(r.conversation.meta()[6].is_error);
            // The second request carried one result per call.
            REQUIRE(f.model->request_count() == 2);
            api::chat_request second = f.model->request(1);
            CHECK(api::validate(second) == "");
            // Let whatever still runs finish: its report must not reach the finished run.
            const std::size_t finished_events = f.events_of<events::tool_call_finished>().size();
            f.ioc.restart();
            f.ioc.run_for(400ms);
            CHECK(f.events_of<events::tool_call_finished>().size() == finished_events);
            if (observed) {
                CHECK(finished_events == 4);
            }
        }
    }

    TEST_CASE("a server that reuses call_0 every turn or sends no ids: every call runs, every "
              "result is kept, each under its own id") {
        fixture f;
        f.model->push(turn::calls({call("call_0", "echo", R"({"text":"one"})")}));
        f.model->push(turn::calls({call("call_0", "echo", R"({"text":"two"})")}));
        f.model->push(turn::calls(
            {call("", "echo", R"({"text":"three"})"), call("", "echo", R"({"text":"four"})")}
        ));
        f.model->push(turn::text("done"));
        agent a = f.make_agent();
        run_result r = f.run(a, "go");
        CHECK(r.stop_reason == stop_reason::completed);
        REQUIRE(f.model->request_count() == 4);
        api::chat_request last = f.model->request(3);
        CHECK(api::validate(last) == "");
        std::set<std::string> call_ids;
        std::vector<std::string> results;
        for (const auto& m : last.messages) {
            for (const auto& c : m.tool_calls) {
                CHECK(call_ids.insert(c.id).second);
            }
            if (m.role == api::role::tool) {
                results.push_back(m.text());
            }
        }
        CHECK(call_ids.size() == 4);
        CHECK(
            results ==
            std::vector<std::string>{"echo: one", "echo: two", "echo: three", "echo: four"}
        );
        // The tool events name the ids the history keeps.
        std::set<std::string> event_ids;
        for (const auto* e : f.events_of<events::tool_call_finished>()) {
            event_ids.insert(e->call_id);
        }
        CHECK(event_ids == call_ids);
    }

    TEST_CASE("parallel tool calls overlap (generous bound: catches serialisation only)") {
        fixture f;
        std::vector<api::tool_call> calls;
        for (int i = 0; i < 8; ++i) {
            calls.push_back(call("s" + std::to_string(i), "sleep", R"({"ms":100})"));
        }
        f.model->push(turn::calls(calls));
        f.model->push(turn::text("ok"));
        agent a = f.make_agent();
        auto t0 = std::chrono::steady_clock::now();
        run_result r = f.run(a, "sleep");
        auto took = std::chrono::steady_clock::now() - t0;
        CHECK(r.stop_reason == stop_reason::completed);
        CHECK(took < 500ms);
    }

    TEST_CASE("max_turns: one last turn without tools must answer") {
        fixture f;
        f.model->push(turn::calls({call("1", "echo", R"({"text":"a"})")}));
        f.model->push(turn::calls({call("2", "echo", R"({"text":"b"})")}));
        f.model->push(turn::text("Final answer."));
        agent_limits limits;
        limits.max_turns = 2;
        agent a = f.make_agent(limits);
        run_result r = f.run(a, "loop");
        CHECK(r.stop_reason == stop_reason::max_turns);
        CHECK(r.final_text == "Final answer.");
        CHECK(r.turn_count() == 3);
        auto last = f.model->request(2);
        CHECK(last.tools.empty());
        CHECK_FALSE(last.tool_choice);
        CHECK(last.messages.back().role == api::role::user);
        CHECK(last.messages.back().text().find("final answer") != std::string::npos);
    }

    TEST_CASE("max_turns with the stop policy ends without a final answer") {
        fixture f;
        f.model->push(turn::calls({call("1", "echo", R"({"text":"a"})")}));
        agent_limits limits;
        limits.max_turns = 1;
        limits.on_max_turns = max_turns_policy::stop;
        agent a = f.make_agent(limits);
        run_result r = f.run(a, "loop");
        CHECK(r.stop_reason == stop_reason::max_turns);
        CHECK(r.final_text.empty());
        CHECK(f.model->request_count() == 1);
    }

    TEST_CASE("a calls-only reply in the final turn is treated as the answer, tools never run") {
        fixture f;
        f.model->push(turn::calls({call("1", "echo", R"({"text":"a"})")}));
        turn stubborn = turn::calls({call("2", "echo", R"({"text":"b"})")});
        stubborn.content = "Here is what I have.";
        f.model->push(stubborn);
        agent_limits limits;
        limits.max_turns = 1;
        agent a = f.make_agent(limits);
        run_result r = f.run(a, "loop");
        CHECK(r.stop_reason == stop_reason::max_turns);
        CHECK(r.final_text == "Here is what I have.");
        CHECK(f.events_of<events::tool_call_started>().size() == 1);
        CHECK(r.conversation.messages().back().tool_calls.empty());
    }

    TEST_CASE("the token budget stops the run and leaves a valid history") {
        fixture f;
        turn t = turn::calls({call("1", "echo", R"({"text":"a"})")});
        t.usage = usage_of(900, 200);
        f.model->push(t);
        agent_limits limits;
        limits.token_budget = 1000;
        agent a = f.make_agent(limits);
        run_result r = f.run(a, "spend");
        CHECK(r.stop_reason == stop_reason::token_budget);
        CHECK(r.usage.prompt_tokens == 900);
        // The unanswered call got a synthetic result: the history can be sent again.
        const auto& msgs = r.conversation.messages();
        REQUIRE(msgs.back().role == api::role::tool);
        CHECK(msgs.back().tool_call_id == std::optional<std::string>("1"));
    }

    TEST_CASE("the run deadline interrupts a slow model call") {
        fixture f;
        turn slow = turn::text("too late");
        slow.delay = 5s;
        f.model->push(slow);
        agent_limits limits;
        limits.run_timeout = 100ms;
        agent a = f.make_agent(limits);
        auto t0 = std::chrono::steady_clock::now();
        run_result r = f.run(a, "hurry");
        CHECK(std::chrono::steady_clock::now() - t0 < 2s);
        CHECK(r.stop_reason == stop_reason::deadline);
        CHECK(r.final_text.empty());
    }

    TEST_CASE("no model call starts after the run deadline, even when a tool batch ends on it") {
        // The batch is cut by the run deadline. Rounded down to whole milliseconds, it ended up
        // to 1 ms early and the next model call started after all; a few runs catch that.
        for (int attempt = 0; attempt < 5; ++attempt) {
            CAPTURE(attempt);
            fixture f;
            f.model->push(turn::calls({call("s", "sleep", R"({"ms":5000})")}));
            f.model->push(turn::text("too late"));
            agent_limits limits;
            limits.run_timeout = 60ms;
            agent a = f.make_agent(limits);
            run_result r = f.run(a, "hurry");
            CHECK(r.stop_reason == stop_reason::deadline);
            CHECK(f.model->request_count() == 1);
            CHECK(r.final_text.empty());
            // The call was answered (timed out), so the history can be sent again.
            api::chat_request again;
            again.model = "m";
            again.messages = r.conversation.messages();
            CHECK(api::validate(again) == "");
        }
    }

    TEST_CASE("no tool batch starts when the deadline passed while the model answered") {
        fixture f;
        f.model->push(turn::calls({call("e", "echo", R"({"text":"x"})")}));
        f.model->push(turn::text("too late"));
        agent_limits limits;
        limits.run_timeout = 300ms;
        agent a = f.make_agent(limits);
        // An observer that burns the rest of the time while the turn's events go out.
        run_options opts;
        const auto deadline = std::chrono::steady_clock::now() + 300ms;
        bool burned = false;
        opts.on_event = [&](const event& e) {
            f.events.push_back(e);
            if (e.get_if<events::turn_finished>() && !burned) {
                burned = true;
                std::this_thread::sleep_until(deadline + 50ms);
            }
        };
        run_result r = run_coro(f.ioc, a.async_run("hurry", std::move(opts)), 20s);
        CHECK(r.stop_reason == stop_reason::deadline);
        CHECK(f.events_of<events::tool_call_started>().empty());
        CHECK(f.model->request_count() == 1);
        REQUIRE(r.conversation.size() == 4); // system, user, calls, the synthetic result
        CHECK(r.conversation.meta()[3].synthetic);
    }

    TEST_CASE("the turn timeout is an error with errc::timeout") {
        fixture f;
        turn slow = turn::text("too late");
        slow.delay = 5s;
        f.model->push(slow);
        agent_limits limits;
        limits.turn_timeout = 50ms;
        agent a = f.make_agent(limits);
        run_result r = f.run(a, "hurry");
        CHECK(r.stop_reason == stop_reason::error);
        REQUIRE(r.error);
        CHECK(r.error->code == errc::timeout);
    }

    TEST_CASE("a model failure ends the run with the error, usage so far is kept") {
        fixture f;
        turn first = turn::calls({call("1", "echo", R"({"text":"a"})")});
        first.usage = usage_of(10, 2);
        f.model->push(first);
        f.model->push(turn::failure(errc::rate_limited, "Requests per minute limit exceeded"));
        agent a = f.make_agent();
        run_result r = f.run(a, "fail");
        CHECK(r.stop_reason == stop_reason::error);
        REQUIRE(r.error);
        CHECK(r.error->code == errc::rate_limited);
        CHECK(r.usage.prompt_tokens == 10);
        CHECK(r.turn_count() == 1);
        auto fin = f.events_of<events::run_finished>();
        REQUIRE(fin.size() == 1);
        REQUIRE(fin[0]->error);
        CHECK(fin[0]->stop_reason == "error");
    }

    TEST_CASE("cancellation from the caller stops running tools and leaves a valid history") {
        fixture f;
        f.model->push(turn::calls(
            {call("fast", "echo", R"({"text":"x"})"), call("slow", "sleep", R"({"ms":5000})")}
        ));
        agent a = f.make_agent();
        auto t0 = std::chrono::steady_clock::now();
        run_result r = run_coro(f.ioc, run_cancelled_after(a, "cancel me", 100ms));
        CHECK(std::chrono::steady_clock::now() - t0 < 2s);
        CHECK(r.stop_reason == stop_reason::cancelled);
        const auto& msgs = r.conversation.messages();
        REQUIRE(msgs.size() == 5);
        CHECK(msgs[3].text() == "echo: x");
        CHECK(msgs[4].tool_call_id == std::optional<std::string>("slow"));
        CHECK(r.conversation.meta()[4].is_error);
    }

    TEST_CASE("cancellation during a model call") {
        fixture f;
        turn slow = turn::text("never");
        slow.delay = 5s;
        f.model->push(slow);
        agent a = f.make_agent();
        run_result r = run_coro(f.ioc, run_cancelled_after(a, "cancel me", 50ms));
        CHECK(r.stop_reason == stop_reason::cancelled);
        CHECK(r.conversation.messages().back().role == api::role::user);
    }

    TEST_CASE("JSON output is parsed; GLM's repeated tool call next to valid JSON is ignored") {
        fixture f;
        turn t = turn::calls({call("1", "echo", R"({"text":"a"})")});
        t.content = R"({"answer": 42})";
        f.model->push(t);
        agent_config cfg;
        cfg.model = f.model;
        cfg.tools = f.tools;
        cfg.request.response_format =
            api::response_format::json_schema_of("answer", {{"type", "object"}});
        agent a(cfg);
        run_result r = f.run(a, "json please");
        CHECK(r.stop_reason == stop_reason::completed);
        REQUIRE(r.final_json);
        CHECK((*r.final_json)["answer"] == 42);
        CHECK(f.events_of<events::tool_call_started>().empty());
    }

    TEST_CASE("a conversation continues from an earlier run's history") {
        fixture f;
        f.model->push(turn::text("First."));
        f.model->push(turn::text("Second."));
        agent a = f.make_agent();
        run_result first = f.run(a, "one");
        run_options opts;
        opts.history = first.conversation;
        run_result second = run_coro(f.ioc, a.async_run("two", opts));
        CHECK(second.final_text == "Second.");
        auto req = f.model->request(1);
        REQUIRE(req.messages.size() == 4);
        CHECK(req.messages[2].text() == "First.");
        CHECK(req.messages[3].text() == "two");
    }

    TEST_CASE("events reach a pull consumer through the channel, which is finished at the end") {
        fixture f;
        f.model->push(turn::calls({call("1", "echo", R"({"text":"a"})")}));
        f.model->push(turn::text("done"));
        agent a = f.make_agent();
        auto channel = std::make_shared<event_channel>(f.ioc.get_executor(), 1);
        run_options opts;
        opts.events = channel;
        asio::co_spawn(f.ioc, a.async_run("go", opts), asio::detached);
        auto drain = [](std::shared_ptr<event_channel> ch) -> asio::awaitable<std::vector<event>> {
            std::vector<event> got;
            while (auto e = co_await ch->async_receive()) {
                got.push_back(std::move(*e));
            }
            co_return got;
        };
        std::vector<event> got = run_coro(f.ioc, drain(channel));
        REQUIRE(got.size() >= 6);
        for (std::size_t i = 0; i < got.size(); ++i) {
            CHECK(got[i].seq == i + 1);
        }
        CHECK(got.back().is<events::run_finished>());
    }

    TEST_CASE("many concurrent runs share one agent and one io_context") {
        fixture f;
        f.model->set_responder([](const api::chat_request& req, std::size_t) {
            if (req.messages.back().role == api::role::user) {
                return turn::calls({call("c", "sleep", R"({"ms":20})")});
            }
            return turn::text("done");
        });
        agent a = f.make_agent();
        std::size_t completed = 0;
        for (int i = 0; i < 200; ++i) {
            asio::co_spawn(
                f.ioc,
                a.async_run("run " + std::to_string(i)),
                [&completed](std::exception_ptr e, run_result r) {
                    if (!e && r.stop_reason == stop_reason::completed) {
                        ++completed;
                    }
                }
            );
        }
        f.ioc.run_for(10s);
        CHECK(completed == 200);
        CHECK(f.model->request_count() == 400);
    }
}
