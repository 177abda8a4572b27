// Composition: agents as tools, handoffs and fan-out, on scripted models (no network).
#include <wafer/agent.hpp>
#include <wafer/fan_out.hpp>
#include <wafer/handoff.hpp>
#include <wafer/scripted_model.hpp>
#include <wafer/tools/registry.hpp>

#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

#include <algorithm>

#include "run_coro.hpp"

namespace asio = boost::asio;
using namespace std::chrono_literals;
using namespace wafer;
using wafer::testing::run_coro;
using turn = scripted_model::turn;

namespace {

api::usage usage_of(std::int64_t prompt, std::int64_t completion) {
    api::usage u;
    u.prompt_tokens = prompt;
    u.completion_tokens = completion;
    u.total_tokens = prompt + completion;
    return u;
}

turn text_turn(std::string text, api::usage u, std::chrono::milliseconds delay = 0ms) {
    turn t = turn::text(std::move(text));
    t.usage = u;
    t.delay = delay;
    return t;
}

turn call_turn(std::string id, std::string name, std::string args, api::usage u) {
    turn t = turn::calls({{std::move(id), std::move(name), std::move(args)}});
    t.usage = u;
    return t;
}

agent make_agent(std::string name, std::shared_ptr<model> m, std::string system = {}) {
    agent_config cfg;
    cfg.name = std::move(name);
    cfg.model = std::move(m);
    cfg.system_prompt = std::move(system);
    return agent(std::move(cfg));
}

// A parent agent whose only tool is `child` as a tool named "research".
agent parent_of(
    const agent& child, std::shared_ptr<model> m, agent_tool_options o = {}, agent_limits l = {}
) {
    auto reg = std::make_shared<tools::registry>();
    reg->add(child.as_tool("research", "Research a question", std::move(o)));
    agent_config cfg;
    cfg.name = "parent";
    cfg.model = std::move(m);
    cfg.tools = reg;
    cfg.limits = l;
    return agent(std::move(cfg));
}

asio::awaitable<void>
emit_after(std::shared_ptr<asio::cancellation_signal> sig, std::chrono::milliseconds d) {
    asio::steady_timer t(co_await asio::this_coro::executor, d);
    co_await t.async_wait(asio::use_awaitable);
    sig->emit(asio::cancellation_type::terminal);
}

template <class T>
asio::awaitable<T> cancelled_after(asio::awaitable<T> op, std::chrono::milliseconds d) {
    auto ex = co_await asio::this_coro::executor;
    auto sig = std::make_shared<asio::cancellation_signal>();
    asio::co_spawn(ex, emit_after(sig, d), asio::detached);
    auto token = asio::bind_cancellation_slot(sig->slot(), asio::use_awaitable);
    T r = co_await asio::co_spawn(ex, std::move(op), token);
    co_return r;
}

const api::message* tool_message(const conversation& c) {
    for (const auto& m : c.messages()) {
        if (m.role == api::role::tool) {
            return &m;
        }
    }
    return nullptr;
}

} // namespace

TEST_SUITE("unit/compose") {
    TEST_CASE("as_tool: the child gets the input, the parent reads its answer, usage is kept apart"
    ) {
        asio::io_context ioc;
        auto child_model = std::make_shared<scripted_model>("zai-glm-4.7");
        child_model->push(text_turn("the answer is 42", usage_of(10, 5)));
        const agent child = make_agent("researcher", child_model, "You research.");
        auto parent_model = std::make_shared<scripted_model>("zai-glm-4.7");
        parent_model->push(
            call_turn("call_1", "research", R"({"input":"what is x?"})", usage_of(100, 20))
        );
        parent_model->push(text_turn("x is 42", usage_of(100, 20)));
        const agent parent = parent_of(child, parent_model);

        run_options o;
        o.run_id = "p1";
        run_result r = run_coro(ioc, parent.async_run("find x", std::move(o)));

        CHECK(r.stop_reason == stop_reason::completed);
        CHECK(r.final_text == "x is 42");
        REQUIRE(child_model->request_count() == 1);
        CHECK(child_model->request(0).messages.front().text() == "You research.");
        CHECK(child_model->request(0).messages.back().text() == "what is x?");
        const api::message* tm = tool_message(r.conversation);
        REQUIRE(tm != nullptr);
        CHECK(tm->text() == "the answer is 42");
        // Own usage only in `usage`; the child's in children, once.
        CHECK(r.usage.prompt_tokens == 200);
        CHECK(r.usage.completion_tokens == 40);
        REQUIRE(r.children.size() == 1);
        CHECK(r.children[0].run_id == "p1/call_1");
        CHECK(r.children[0].agent == "researcher");
        CHECK(r.children[0].tool == "research");
        CHECK(r.children[0].call_id == "call_1");
        CHECK(r.children[0].stop_reason == stop_reason::completed);
        CHECK(r.children[0].usage.prompt_tokens == 10);
        CHECK(r.children_usage.prompt_tokens == 10);
        CHECK(r.children_usage.completion_tokens == 5);
        CHECK(r.total_usage().prompt_tokens == 210);
        CHECK(r.total_usage().completion_tokens == 45);
        CHECK(r.agent == "parent");
    }

    TEST_CASE("as_tool: grandchildren roll up through their parent, each counted once") {
        asio::io_context ioc;
        auto leaf_model = std::make_shared<scripted_model>("zai-glm-4.7");
        leaf_model->push(text_turn("leaf", usage_of(1, 1)));
        const agent leaf = make_agent("leaf", leaf_model);
        auto mid_model = std::make_shared<scripted_model>("zai-glm-4.7");
        mid_model->push(call_turn("m1", "research", R"({"input":"deeper"})", usage_of(10, 10)));
        mid_model->push(text_turn("mid", usage_of(10, 10)));
        const agent mid = parent_of(leaf, mid_model);
        auto top_model = std::make_shared<scripted_model>("zai-glm-4.7");
        top_model->push(call_turn("t1", "research", R"({"input":"go"})", usage_of(100, 100)));
        top_model->push(text_turn("top", usage_of(100, 100)));
        const agent top = parent_of(mid, top_model);

        std::vector<event> seen;
        run_options o;
        o.run_id = "top";
        o.on_event = [&seen](const event& e) {
            seen.push_back(e);
        };
        run_result r = run_coro(ioc, top.async_run("start", std::move(o)));

        CHECK(r.final_text == "top");
        CHECK(r.usage.prompt_tokens == 200);
        REQUIRE(r.children.size() == 1);
        CHECK(r.children[0].usage.prompt_tokens == 21); // mid's 20 + leaf's 1
        CHECK(r.total_usage().prompt_tokens == 221);
        // The leaf's events reach the top's observer, nested two deep.
        const auto leaf_started = std::find_if(seen.begin(), seen.end(), [](const event& e) {
            return e.run_id == "top/t1/m1" && e.is<events::run_started>();
        });
        REQUIRE(leaf_started != seen.end());
        CHECK(leaf_started->parent_run_id == "top/t1");
    }

    TEST_CASE("as_tool: the child's events nest under the parent's with the child run id") {
        asio::io_context ioc;
        auto child_model = std::make_shared<scripted_model>("zai-glm-4.7");
        child_model->push(text_turn("child says hi", usage_of(3, 3)));
        const agent child = make_agent("researcher", child_model);
        auto parent_model = std::make_shared<scripted_model>("zai-glm-4.7");
        parent_model->push(call_turn("c9", "research", R"({"input":"hi"})", usage_of(1, 1)));
        parent_model->push(text_turn("done", usage_of(1, 1)));
        const agent parent = parent_of(child, parent_model);

        std::vector<event> seen;
        run_options o;
        o.run_id = "p2";
        o.on_event = [&seen](const event& e) {
            seen.push_back(e);
        };
        run_coro(ioc, parent.async_run("go", std::move(o)));

        std::vector<std::string> order;
        for (const auto& e : seen) {
            if (e.run_id == "p2") {
                CHECK(e.parent_run_id.empty());
            } else {
                CHECK(e.run_id == "p2/c9");
                CHECK(e.parent_run_id == "p2");
                CHECK(e.agent == "researcher");
            }
            order.push_back(e.run_id + ":" + std::string(type_name(e.data)));
        }
        // The child runs inside the parent's tool call, with its own seq from 1.
        const auto at = [&order](const std::string& s) {
            return std::find(order.begin(), order.end(), s) - order.begin();
        };
        INFO(nlohmann::json(order).dump());
        CHECK(at("p2:tool_call_started") < at("p2/c9:run_started"));
        CHECK(at("p2/c9:run_finished") < at("p2:tool_call_finished"));
        CHECK(at("p2:run_finished") < static_cast<std::ptrdiff_t>(order.size()));
        const auto child_first = std::find_if(seen.begin(), seen.end(), [](const event& e) {
            return e.run_id == "p2/c9";
        });
        REQUIRE(child_first != seen.end());
        CHECK(child_first->seq == 1);
        const nlohmann::json j = *child_first;
        CHECK(j["parent_run_id"] == "p2");
        CHECK(j["run_id"] == "p2/c9");
        event back;
        from_json(j, back);
        CHECK(back == *child_first);
        CHECK(nlohmann::json(seen.front()).contains("parent_run_id") == false);
    }

    TEST_CASE("as_tool: custom arguments and structured output") {
        asio::io_context ioc;
        auto child_model = std::make_shared<scripted_model>("zai-glm-4.7");
        child_model->push(text_turn(R"({"score": 7})", usage_of(1, 1)));
        agent_config ccfg;
        ccfg.name = "scorer";
        ccfg.model = child_model;
        ccfg.request.response_format = api::response_format{};
        ccfg.request.response_format->type = api::response_format::kind::json_object;
        const agent child(std::move(ccfg));
        agent_tool_options o;
        o.parameters = {
            {"type", "object"},
            {"properties", {{"topic", {{"type", "string"}}}}},
            {"required", {"topic"}}};
        o.input = [](const nlohmann::json& a) {
            return "Score: " + a["topic"].get<std::string>();
        };
        o.output = agent_tool_output::structured;
        o.max_turns = 1;
        auto parent_model = std::make_shared<scripted_model>("zai-glm-4.7");
        parent_model->push(call_turn("c1", "research", R"({"topic":"pasta"})", usage_of(1, 1)));
        parent_model->push(text_turn("ok", usage_of(1, 1)));
        const agent parent = parent_of(child, parent_model, std::move(o));

        run_result r = run_coro(ioc, parent.async_run("go"));

        CHECK(child_model->request(0).messages.back().text() == "Score: pasta");
        const api::message* tm = tool_message(r.conversation);
        REQUIRE(tm != nullptr);
        CHECK(nlohmann::json::parse(tm->text()) == nlohmann::json{{"score", 7}});
        // The parent model was offered the custom schema.
        const api::chat_request first = parent_model->request(0); // a copy: keep it named
        const auto& offered = first.tools.at(0);
        CHECK((*offered.parameters)["required"] == nlohmann::json{"topic"});
    }

    TEST_CASE("as_tool: a child failure is a tool error the parent model reads") {
        asio::io_context ioc;
        auto child_model = std::make_shared<scripted_model>("zai-glm-4.7");
        child_model->push(turn::failure(make_error_code(errc::rate_limited), "slow down"));
        const agent child = make_agent("researcher", child_model);
        auto parent_model = std::make_shared<scripted_model>("zai-glm-4.7");
        parent_model->push(call_turn("c1", "research", R"({"input":"x"})", usage_of(1, 1)));
        parent_model->push(text_turn("could not research", usage_of(1, 1)));
        const agent parent = parent_of(child, parent_model);

        run_result r = run_coro(ioc, parent.async_run("go"));

        CHECK(r.stop_reason == stop_reason::completed);
        const api::message* tm = tool_message(r.conversation);
        REQUIRE(tm != nullptr);
        CHECK(tm->text().find("sub-agent 'researcher'") != std::string::npos);
        CHECK(tm->text().find("did not finish: error") != std::string::npos);
        const auto& meta = r.conversation.meta();
        const auto idx = static_cast<std::size_t>(tm - r.conversation.messages().data());
        CHECK(meta.at(idx).is_error);
        REQUIRE(r.children.size() == 1);
        CHECK(r.children[0].stop_reason == stop_reason::error);
        // The parent's model saw the failure text in its second request.
        CHECK(parent_model->request(1).messages.back().text() == tm->text());
    }

    TEST_CASE("as_tool: cancelling the parent cancels the child, which is still counted") {
        asio::io_context ioc;
        auto child_model = std::make_shared<scripted_model>("zai-glm-4.7");
        child_model->push(text_turn("too late", usage_of(1, 1), 10s));
        const agent child = make_agent("researcher", child_model);
        auto parent_model = std::make_shared<scripted_model>("zai-glm-4.7");
        parent_model->push(call_turn("c1", "research", R"({"input":"x"})", usage_of(1, 1)));
        const agent parent = parent_of(child, parent_model);

        const auto t0 = std::chrono::steady_clock::now();
        run_result r = run_coro(ioc, cancelled_after(parent.async_run("go"), 100ms));

        CHECK(std::chrono::steady_clock::now() - t0 < 5s);
        CHECK(r.stop_reason == stop_reason::cancelled);
        REQUIRE(r.children.size() == 1);
        CHECK(r.children[0].stop_reason == stop_reason::cancelled);
    }

    TEST_CASE("as_tool: the parent's deadline reaches the child") {
        asio::io_context ioc;
        auto child_model = std::make_shared<scripted_model>("zai-glm-4.7");
        child_model->push(text_turn("too late", usage_of(1, 1), 10s));
        const agent child = make_agent("researcher", child_model);
        auto parent_model = std::make_shared<scripted_model>("zai-glm-4.7");
        parent_model->push(call_turn("c1", "research", R"({"input":"x"})", usage_of(1, 1)));
        agent_limits l;
        l.run_timeout = 150ms;
        const agent parent = parent_of(child, parent_model, {}, l);

        const auto t0 = std::chrono::steady_clock::now();
        run_result r = run_coro(ioc, parent.async_run("go"));

        CHECK(std::chrono::steady_clock::now() - t0 < 5s);
        CHECK(r.stop_reason == stop_reason::deadline);
        REQUIRE(r.children.size() == 1);
        const stop_reason child_stop = r.children[0].stop_reason;
        CHECK((child_stop == stop_reason::deadline || child_stop == stop_reason::cancelled));
    }
}
