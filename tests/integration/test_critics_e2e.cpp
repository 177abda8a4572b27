// A critic end to end: the main agent and its critic both talk to the fake Cerebras server over
// 127.0.0.1; the critic's verdict comes back as a json_schema reply.
#include <wafer/agent.hpp>
#include <wafer/api/client.hpp>
#include <wafer/cerebras_model.hpp>
#include <wafer/critic.hpp>
#include <wafer/testing/fake_server.hpp>
#include <wafer/tools/registry.hpp>
#include <wafer/tools/tool.hpp>

#include <boost/asio/io_context.hpp>

#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

#include <memory>
#include <string>
#include <vector>

#include "run_coro.hpp"

namespace asio = boost::asio;
using namespace std::chrono_literals;
using nlohmann::json;
using namespace wafer;
using wafer::testing::fake_server;
using wafer::testing::reply;
using wafer::testing::run_coro;
using wafer::testing::scripted_turn;

TEST_SUITE("integration/critics") {
    TEST_CASE("a security critic's json_schema verdict over HTTP denies a command; the model adapts"
    ) {
        asio::io_context ioc;
        fake_server server(ioc.get_executor());
        std::size_t main_turns = 0;
        // Critic requests are recognised by their response format; everything else is the
        // main agent, scripted by how many main turns it has had.
        server.set_responder([&](const api::chat_request& req) {
            if (req.response_format &&
                req.response_format->type == api::response_format::kind::json_schema) {
                json v = {
                    {"decision", "deny"},
                    {"reasons", {"rm -rf / destroys the machine"}},
                    {"suggested_fix", "remove only build/"},
                    {"corrected_arguments", nullptr}};
                scripted_turn t;
                t.content = v.dump();
                return reply::of(t);
            }
            scripted_turn t;
            if (main_turns++ == 0) {
                t.reasoning = "The user wants space; I will delete things.";
                t.tool_calls = {{"", "run_command", R"({"command":"rm -rf /"})"}};
            } else {
                t.reasoning = "The command was refused.";
                t.content = "I did not run it: it was refused as unsafe.";
            }
            return reply::of(t);
        });

        api::client_config cc;
        cc.api_key = "sk-critic-e2e";
        cc.base_url = server.base_url();
        auto client = std::make_shared<api::client>(ioc.get_executor(), cc);
        auto main_model = std::make_shared<cerebras_model>(client, "zai-glm-4.7");
        auto critic_model = std::make_shared<cerebras_model>(client, "llama3.1-8b");

        int started = 0;
        auto tools = std::make_shared<tools::registry>();
        tools->add(tools::make_tool<json>(
            "run_command",
            "Run a command",
            json{{"type", "object"}},
            [&](json) {
                ++started;
                return std::string("ran");
            }
        ));
        agent_config cfg;
        cfg.model = main_model;
        cfg.tools = tools;
        cfg.critics.push_back(builtin_critic("security", critic_model));
        const agent a(std::move(cfg));
        std::vector<event> evs;
        run_options opts;
        opts.on_event = [&](const event& e) {
            evs.push_back(e);
        };
        const run_result r =
            run_coro(ioc, a.async_run("free some disk space", std::move(opts)), 10s);

        CHECK(r.stop_reason == stop_reason::completed);
        CHECK(started == 0);
        CHECK(r.final_text == "I did not run it: it was refused as unsafe.");
        REQUIRE(r.reviews.size() == 1);
        CHECK(r.reviews[0].verdict.decision == critic_decision::deny);
        CHECK(r.reviews[0].verdict.suggested_fix == "remove only build/");
        CHECK_FALSE(r.reviews[0].error);
        CHECK(r.critic_usage.total_tokens > 0);

        // On the wire: the critic's request asked for a strict json_schema verdict.
        std::vector<json> bodies;
        for (const auto& req : server.requests()) {
            if (req.target == "/v1/chat/completions") {
                bodies.push_back(json::parse(req.body));
            }
        }
        REQUIRE(bodies.size() == 3);
        const json& critic_body = bodies[1];
        CHECK(critic_body.at("model") == "llama3.1-8b");
        CHECK(critic_body.at("response_format").at("type") == "json_schema");
        CHECK(critic_body.at("response_format").at("json_schema").at("name") == "critic_verdict");
        CHECK(critic_body.at("response_format").at("json_schema").at("strict") == true);
        CHECK(critic_body.at("response_format").at("json_schema").at("schema") == verdict_schema());
        // The main agent's second request carries the refusal as the call's result.
        const json& last = bodies[2];
        bool found = false;
        for (const auto& m : last.at("messages")) {
            if (m.at("role") == "tool") {
                found = m.at("content").get<std::string>().find("destroys the machine") !=
                        std::string::npos;
            }
        }
        CHECK(found);
        bool verdict_event = false;
        for (const auto& e : evs) {
            if (auto* v = e.get_if<events::critic_verdict>()) {
                verdict_event = v->critic == "security" && v->decision == critic_decision::deny;
            }
        }
        CHECK(verdict_event);
    }
}
