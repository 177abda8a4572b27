// Composition: handoffs between agents and fan-out of child runs, on scripted models.
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

#include <algorithm>
#include <map>

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

turn text_turn(std::string text, api::usage u = usage_of(1, 1)) {
    turn t = turn::text(std::move(text));
    t.usage = u;
    return t;
}

turn transfer_turn(std::string to, std::string message) {
    nlohmann::json args = {{"message", std::move(message)}};
    turn t = turn::calls({{"h1", "transfer_to_" + to, args.dump()}});
    t.usage = usage_of(1, 1);
    return t;
}

agent make_agent(std::string name, std::shared_ptr<model> m, std::string system) {
    agent_config cfg;
    cfg.name = std::move(name);
    cfg.model = std::move(m);
    cfg.system_prompt = std::move(system);
    return agent(std::move(cfg));
}

struct desk {
    std::shared_ptr<scripted_model> triage_model = std::make_shared<scripted_model>("zai-glm-4.7");
    std::shared_ptr<scripted_model> billing_model = std::make_shared<scripted_model>("zai-glm-4.7");
    handoff_team team{"desk"};

    explicit desk(handoff_history h) {
        team.add(make_agent("triage", triage_model, "You are triage."));
        team.add(make_agent("billing", billing_model, "You are billing."));
        team.route("triage", "billing", std::move(h));
    }

    // Triage talks once, then hands over; billing answers.
    handoff_result run(asio::io_context& ioc, std::vector<event>* seen = nullptr) {
        triage_model->push(transfer_turn("billing", "wants a refund of invoice 7"));
        billing_model->push(text_turn("refunded"));
        run_options o;
        o.run_id = "t1";
        o.history = conversation();
        o.history->add_system("You are triage.");
        o.history->add_user("I was charged twice");
        o.history->append(api::message::assistant("Which invoice?"));
        if (seen) {
            o.on_event = [seen](const event& e) {
                seen->push_back(e);
            };
        }
        return run_coro(ioc, team.async_run("triage", "invoice 7", std::move(o)));
    }
};

std::vector<std::string> texts(const std::vector<api::message>& msgs) {
    std::vector<std::string> out;
    for (const auto& m : msgs) {
        out.push_back(std::string(to_string(m.role)) + ":" + m.text());
    }
    return out;
}

// Fan-out children: the input says "name delay_ms"; the answer is "answer name".
turn by_input(const api::chat_request& req, std::size_t) {
    const std::string in = req.messages.back().text();
    const auto sp = in.find(' ');
    turn t = turn::text("answer " + in.substr(0, sp));
    t.delay = std::chrono::milliseconds(std::stoi(in.substr(sp + 1)));
    t.usage = usage_of(10, 5);
    return t;
}

struct fleet {
    std::shared_ptr<scripted_model> m = std::make_shared<scripted_model>("zai-glm-4.7");
    agent worker = [this] {
        m->set_responder(&by_input);
        agent_config cfg;
        cfg.name = "worker";
        cfg.model = m;
        return agent(std::move(cfg));
    }();

    std::vector<fan_out_job> jobs(const std::vector<std::string>& inputs) const {
        std::vector<fan_out_job> out;
        for (const auto& in : inputs) {
            out.push_back({&worker, in, {}});
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

asio::awaitable<fan_out_result> fan_out_cancelled_after(
    std::vector<fan_out_job> jobs, fan_out_options o, std::chrono::milliseconds d
) {
    auto ex = co_await asio::this_coro::executor;
    auto sig = std::make_shared<asio::cancellation_signal>();
    asio::co_spawn(ex, emit_after(sig, d), asio::detached);
    auto token = asio::bind_cancellation_slot(sig->slot(), asio::use_awaitable);
    asio::awaitable<fan_out_result> op = async_fan_out(std::move(jobs), std::move(o));
    fan_out_result r = co_await asio::co_spawn(ex, std::move(op), token);
    co_return r;
}

} // namespace

TEST_SUITE("unit/compose") {
    TEST_CASE("handoff: the receiver takes over with its own system prompt and the history") {
        asio::io_context ioc;
        desk d(handoff_history::all());
        std::vector<event> seen;
        handoff_result r = d.run(ioc, &seen);

        CHECK(r.result.agent == "billing");
        CHECK(r.result.stop_reason == stop_reason::completed);
        CHECK(r.result.final_text == "refunded");
        REQUIRE(r.runs.size() == 2);
        CHECK(r.runs[0].agent == "triage");
        CHECK(r.runs[0].stop_reason == stop_reason::handoff);
        CHECK(r.runs[0].run_id == "t1/0");
        CHECK(r.result.run_id == "t1/1");
        REQUIRE(r.handoffs.size() == 1);
        CHECK(r.handoffs[0].from == "triage");
        CHECK(r.handoffs[0].to == "billing");
        CHECK(r.handoffs[0].message == "wants a refund of invoice 7");
        CHECK(r.handoffs[0].messages_passed == 3);
        CHECK(r.usage.prompt_tokens == 2); // triage's transfer turn and billing's answer
        // Billing's request: its system prompt, the history (not the transfer step), the note.
        const std::vector<std::string> sent = texts(d.billing_model->request(0).messages);
        REQUIRE(sent.size() == 5);
        CHECK(sent[0] == "system:You are billing.");
        CHECK(sent[1] == "user:I was charged twice");
        CHECK(sent[2] == "assistant:Which invoice?");
        CHECK(sent[3] == "user:invoice 7");
        CHECK(
            sent[4].find("'triage' handed this conversation over to you: wants a refund") !=
            std::string::npos
        );
        CHECK(sent[4].find("The user's request: invoice 7") != std::string::npos);
        // Triage was offered the transfer tool; billing has no route, so no tool.
        CHECK(d.triage_model->request(0).tools.at(0).name == "transfer_to_billing");
        CHECK(d.billing_model->request(0).tools.empty());
        // Events: the handoff between the two runs, every run nested under the team.
        const auto handoff_at = std::find_if(seen.begin(), seen.end(), [](const event& e) {
            return e.is<events::handoff>();
        });
        REQUIRE(handoff_at != seen.end());
        CHECK(handoff_at->run_id == "t1");
        CHECK(handoff_at->get_if<events::handoff>()->to_run_id == "t1/1");
        const auto billing_start = std::find_if(seen.begin(), seen.end(), [](const event& e) {
            return e.run_id == "t1/1" && e.is<events::run_started>();
        });
        REQUIRE(billing_start != seen.end());
        CHECK(handoff_at < billing_start);
        CHECK(billing_start->parent_run_id == "t1");
    }

    TEST_CASE("handoff: history policies none, last N and a predicate") {
        SUBCASE("none") {
            asio::io_context ioc;
            desk d(handoff_history::none());
            handoff_result r = d.run(ioc);
            const auto sent = texts(d.billing_model->request(0).messages);
            REQUIRE(sent.size() == 2);
            CHECK(sent[0] == "system:You are billing.");
            CHECK(sent[1].find("The user's request: invoice 7") != std::string::npos);
            CHECK(r.handoffs.at(0).messages_passed == 0);
        }
        SUBCASE("last 1") {
            asio::io_context ioc;
            desk d(handoff_history::last(1));
            d.run(ioc);
            const auto sent = texts(d.billing_model->request(0).messages);
            REQUIRE(sent.size() == 3);
            CHECK(sent[1] == "user:invoice 7");
        }
        SUBCASE("user messages only") {
            asio::io_context ioc;
            desk d(handoff_history::filter([](const api::message& m) {
                return m.role == api::role::user;
            }));
            d.run(ioc);
            const auto sent = texts(d.billing_model->request(0).messages);
            REQUIRE(sent.size() == 4);
            CHECK(sent[1] == "user:I was charged twice");
            CHECK(sent[2] == "user:invoice 7");
        }
    }

    TEST_CASE("handoff: max_handoffs stops a ping-pong") {
        asio::io_context ioc;
        auto a_model = std::make_shared<scripted_model>("zai-glm-4.7");
        auto b_model = std::make_shared<scripted_model>("zai-glm-4.7");
        handoff_team team;
        team.add(make_agent("a", a_model, "A"));
        team.add(make_agent("b", b_model, "B"));
        team.route("a", "b");
        team.route("b", "a");
        team.max_handoffs = 1;
        a_model->push(transfer_turn("b", "yours"));
        b_model->push(transfer_turn("a", "no, yours"));
        handoff_result r = run_coro(ioc, team.async_run("a", "hello", run_options{}));
        CHECK(r.handoffs.size() == 1);
        CHECK(r.result.agent == "b");
        CHECK(r.result.stop_reason == stop_reason::handoff);
        CHECK(a_model->request_count() == 1);
        CHECK_THROWS_AS(team.route("a", "nobody"), std::invalid_argument);
    }

    TEST_CASE("fan-out all: results in input order with per-child usage") {
        asio::io_context ioc;
        fleet f;
        fan_out_options o;
        o.run_id = "fan";
        fan_out_result r =
            run_coro(ioc, async_fan_out(f.jobs({"a 150", "b 0", "c 50"}), std::move(o)));
        CHECK(r.satisfied);
        CHECK(r.succeeded == 3);
        REQUIRE(r.children.size() == 3);
        CHECK(r.children[0].result->final_text == "answer a");
        CHECK(r.children[1].result->final_text == "answer b");
        CHECK(r.children[2].result->final_text == "answer c");
        CHECK(r.children[0].result->run_id == "fan/0");
        CHECK(r.children[0].usage.prompt_tokens == 10);
        CHECK(r.usage.prompt_tokens == 30);
        CHECK(r.finish_order == std::vector<std::size_t>{1, 2, 0});
        for (const auto& c : r.children) {
            CHECK(c.status == fan_out_status::succeeded);
        }
    }

    TEST_CASE("fan-out: the concurrency cap holds") {
        asio::io_context ioc;
        fleet f;
        fan_out_options o;
        o.max_concurrency = 2;
        int running = 0;
        int peak = 0;
        std::map<std::string, std::string> parents;
        o.on_event = [&](const event& e) {
            if (e.is<events::run_started>()) {
                peak = std::max(peak, ++running);
                parents[e.run_id] = e.parent_run_id;
            } else if (e.is<events::run_finished>()) {
                --running;
            }
        };
        o.run_id = "cap";
        fan_out_result r =
            run_coro(ioc, async_fan_out(f.jobs({"a 40", "b 40", "c 40", "d 40", "e 40"}), o));
        CHECK(r.succeeded == 5);
        CHECK(peak == 2);
        CHECK(parents.size() == 5);
        CHECK(parents["cap/4"] == "cap");
    }

    TEST_CASE("fan-out first: the first success wins, the losers are cancelled") {
        asio::io_context ioc;
        fleet f;
        fan_out_options o;
        o.wait = fan_out_wait::first;
        const auto t0 = std::chrono::steady_clock::now();
        fan_out_result r =
            run_coro(ioc, async_fan_out(f.jobs({"slow 10000", "fast 20", "slower 10000"}), o));
        CHECK(std::chrono::steady_clock::now() - t0 < 5s);
        CHECK(r.satisfied);
        CHECK(r.succeeded == 1);
        CHECK(r.children[1].status == fan_out_status::succeeded);
        CHECK(r.children[0].status == fan_out_status::cancelled);
        CHECK(r.children[2].status == fan_out_status::cancelled);
        CHECK(r.children[0].result->stop_reason == stop_reason::cancelled);
        CHECK(r.finish_order.front() == 1);
    }

    TEST_CASE("fan-out quorum: K successes end the wait; children not started are skipped") {
        asio::io_context ioc;
        fleet f;
        fan_out_options o;
        o.wait = fan_out_wait::quorum;
        o.quorum = 2;
        o.max_concurrency = 3;
        fan_out_result r =
            run_coro(ioc, async_fan_out(f.jobs({"a 10", "b 10000", "c 20", "d 10000", "e 10"}), o));
        CHECK(r.satisfied);
        CHECK(r.succeeded == 2);
        CHECK(r.children[0].status == fan_out_status::succeeded);
        CHECK(r.children[1].status == fan_out_status::cancelled);
        CHECK(r.children[2].status == fan_out_status::succeeded);
        // d started when a ended (the cap) and lost; e never started.
        CHECK(r.children[3].status == fan_out_status::cancelled);
        CHECK(r.children[4].status == fan_out_status::skipped);
        CHECK(!r.children[4].result);
    }

    TEST_CASE("fan-out: a spent token budget stops new children") {
        asio::io_context ioc;
        fleet f;
        fan_out_options o;
        o.max_concurrency = 1;
        o.token_budget = 25; // each child uses 15
        fan_out_result r = run_coro(ioc, async_fan_out(f.jobs({"a 0", "b 0", "c 0", "d 0"}), o));
        CHECK(r.budget_exhausted);
        CHECK(r.children[0].status == fan_out_status::succeeded);
        CHECK(r.children[1].status == fan_out_status::succeeded);
        CHECK(r.children[2].status == fan_out_status::skipped);
        CHECK(r.children[3].status == fan_out_status::skipped);
        CHECK(r.usage.prompt_tokens == 20);
        CHECK(f.m->request_count() == 2);
        CHECK(!r.satisfied);
    }

    TEST_CASE("fan-out: the caller's cancellation cancels every child and awaits them") {
        asio::io_context ioc;
        fleet f;
        fan_out_options o;
        const auto t0 = std::chrono::steady_clock::now();
        fan_out_result r =
            run_coro(ioc, fan_out_cancelled_after(f.jobs({"a 10000", "b 10000"}), o, 50ms));
        CHECK(std::chrono::steady_clock::now() - t0 < 5s);
        CHECK(r.cancelled);
        CHECK(r.children[0].status == fan_out_status::cancelled);
        CHECK(r.children[1].status == fan_out_status::cancelled);
        CHECK(r.children[1].result->stop_reason == stop_reason::cancelled);
    }
}

TEST_SUITE("unit/compose") {
    TEST_CASE("handoff: a route adds its transfer tool to a copy of the member's tools") {
        auto reg = std::make_shared<tools::registry>();
        reg->add(tools::make_tool<nlohmann::json>(
            "lookup",
            "Look up",
            nlohmann::json{{"type", "object"}},
            [](const nlohmann::json&) { return "found"; }
        ));
        const std::uint64_t before = reg->revision();
        agent_config cfg;
        cfg.name = "triage";
        cfg.model = std::make_shared<scripted_model>("zai-glm-4.7");
        cfg.tools = reg;
        auto billing_model = std::make_shared<scripted_model>("zai-glm-4.7");
        auto triage_model = std::static_pointer_cast<scripted_model>(cfg.model);
        handoff_team team;
        team.add(agent(std::move(cfg)));
        team.add(make_agent("billing", billing_model, "B"));
        team.route("triage", "billing");
        // The member's own registry is untouched.
        CHECK(reg->names() == std::vector<std::string>{"lookup"});
        CHECK(reg->revision() == before);
        triage_model->push(transfer_turn("billing", ""));
        billing_model->push(text_turn("hi"));
        asio::io_context ioc;
        handoff_result r = run_coro(ioc, team.async_run("triage", "hello", run_options{}));
        CHECK(r.result.final_text == "hi");
        const std::vector<api::function_tool> offered = triage_model->request(0).tools;
        REQUIRE(offered.size() == 2);
        CHECK(offered[0].name == "lookup");
        CHECK(offered[1].name == "transfer_to_billing");
        CHECK(r.handoffs.at(0).message.empty());
        // No message: the note says so plainly.
        CHECK(
            billing_model->request(0).messages.back().text().find("over to you.") !=
            std::string::npos
        );
    }
}
