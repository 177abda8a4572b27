// The tracing layer without sockets: traceparent rules, the span tree a run produces, attribute
// names and values per the GenAI conventions, the usage rule, content opt-in, the OTLP JSON
// shape, and the exporter's bounded queue.
#include <wafer/agent.hpp>
#include <wafer/scripted_model.hpp>
#include <wafer/telemetry/otlp_exporter.hpp>
#include <wafer/telemetry/tracer.hpp>
#include <wafer/tools/registry.hpp>
#include <wafer/tools/tool.hpp>

#include <boost/asio/io_context.hpp>

#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

#include <cstdlib>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "run_coro.hpp"

using namespace std::chrono_literals;
namespace telemetry = wafer::telemetry;
namespace api = wafer::api;
using nlohmann::json;
using telemetry::span_data;
using wafer::scripted_model;

namespace {

struct capture_sink final : telemetry::span_sink {
    std::mutex mu;
    std::vector<span_data> spans;
    std::vector<telemetry::chat_measurement> chats;
    std::vector<std::string> chat_models;
    void on_span(span_data&& s) noexcept override {
        std::lock_guard lock(mu);
        spans.push_back(std::move(s));
    }
    void on_chat(const telemetry::chat_measurement& m) noexcept override {
        std::lock_guard lock(mu);
        chats.push_back(m);
        chat_models.emplace_back(m.request_model);
    }
    std::vector<const span_data*> named(std::string_view prefix) const {
        std::vector<const span_data*> out;
        for (const auto& s : spans) {
            if (s.name.rfind(prefix, 0) == 0) {
                out.push_back(&s);
            }
        }
        return out;
    }
};

template <class T>
T attr(const span_data& s, std::string_view key) {
    const auto* v = s.find(key);
    REQUIRE_MESSAGE(v != nullptr, "missing attribute " << key << " on " << s.name);
    const T* x = std::get_if<T>(v);
    REQUIRE_MESSAGE(x != nullptr, "attribute " << key << " has another type");
    return *x;
}

api::usage
usage_of(std::int64_t in, std::int64_t out, std::int64_t cached, std::int64_t reasoning) {
    api::usage u;
    u.prompt_tokens = in;
    u.completion_tokens = out;
    u.total_tokens = in + out;
    u.cached_tokens = cached;
    u.reasoning_tokens = reasoning;
    return u;
}

std::shared_ptr<wafer::tools::registry> echo_tools() {
    auto reg = std::make_shared<wafer::tools::registry>();
    json schema = {{"type", "object"}, {"properties", {{"text", {{"type", "string"}}}}}};
    reg->add(wafer::tools::make_tool<json>("echo", "Echo text", schema, [](json a) {
        return "echo: " + a.value("text", std::string());
    }));
    return reg;
}

struct traced_run {
    boost::asio::io_context ioc;
    std::shared_ptr<capture_sink> sink = std::make_shared<capture_sink>();
    std::shared_ptr<scripted_model> model = std::make_shared<scripted_model>("zai-glm-4.7");
    telemetry::tracer_config tcfg;

    traced_run() {
        tcfg.provider = "cerebras";
        tcfg.server_address = "api.cerebras.ai";
        tcfg.server_port = 443;
    }

    wafer::agent_config config() {
        wafer::agent_config cfg;
        cfg.name = "coder";
        cfg.model = model;
        cfg.system_prompt = "You are terse.";
        cfg.tools = echo_tools();
        cfg.tracer = std::make_shared<telemetry::tracer>(tcfg, sink);
        return cfg;
    }

    wafer::run_result run(const wafer::agent& a, wafer::run_options o = {}) {
        return wafer::testing::run_coro(ioc, a.async_run("say hi", std::move(o)), 10s);
    }
};

// Two turns: a tool call, then the answer.
void script_two_turns(scripted_model& m) {
    auto t1 = scripted_model::turn::calls({{"call_1", "echo", R"({"text":"hi"})"}});
    t1.usage = usage_of(100, 20, 64, 5);
    auto t2 = scripted_model::turn::text("hi");
    t2.usage = usage_of(150, 10, 0, 0);
    t2.model_id = "zai-glm-4.7-2026";
    m.push(std::move(t1)).push(std::move(t2));
}

} // namespace

TEST_SUITE("unit/telemetry") {
    TEST_CASE("traceparent is formatted and parsed as W3C Trace Context says") {
        telemetry::span_context c;
        c.trace = telemetry::new_trace_id();
        c.span = telemetry::new_span_id();
        const std::string tp = telemetry::format_traceparent(c);
        CHECK(tp.size() == 55);
        CHECK(tp.substr(0, 3) == "00-");
        CHECK(tp.substr(52) == "-01");
        CHECK(tp.substr(3, 32) == telemetry::to_hex(c.trace));
        REQUIRE(telemetry::parse_traceparent(tp));
        CHECK(*telemetry::parse_traceparent(tp) == c);

        const std::string ok = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00";
        auto p = telemetry::parse_traceparent(ok);
        REQUIRE(p);
        CHECK_FALSE(p->sampled);
        CHECK(telemetry::format_traceparent(*p) == ok);
        // A later version may append fields; version 00 may not.
        CHECK(telemetry::parse_traceparent(
            "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra"
        ));
        for (const char* bad : {
                 "",
                 "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
                 "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
                 "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
                 "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
                 "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
                 "00-4bf92f3577b34da6a3ce929d0e0e473-600f067aa0ba902b7-01",
                 "00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
                 "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0g",
             }) {
            CHECK_MESSAGE(!telemetry::parse_traceparent(bad), bad);
        }
    }

    TEST_CASE("a run is an invoke_agent span with chat and execute_tool children") {
        traced_run f;
        script_two_turns(*f.model);
        wafer::agent a(f.config());
        const auto r = f.run(a);
        REQUIRE(r.stop_reason == wafer::stop_reason::completed);

        const auto agents = f.sink->named("invoke_agent ");
        const auto chats = f.sink->named("chat ");
        const auto tools = f.sink->named("execute_tool ");
        REQUIRE(agents.size() == 1);
        REQUIRE(chats.size() == 2);
        REQUIRE(tools.size() == 1);
        const span_data& run = *agents[0];
        CHECK(run.name == "invoke_agent coder");
        CHECK(run.kind == telemetry::span_kind::internal);
        CHECK(run.parent == telemetry::span_id{});
        CHECK(attr<std::string>(run, "gen_ai.operation.name") == "invoke_agent");
        CHECK(attr<std::string>(run, "gen_ai.provider.name") == "cerebras");
        CHECK(attr<std::string>(run, "gen_ai.agent.name") == "coder");
        CHECK(attr<std::string>(run, "gen_ai.conversation.id") == r.run_id);
        CHECK(attr<std::string>(run, "wafer.stop_reason") == "completed");
        CHECK_FALSE(run.error);
        for (const span_data* s : {chats[0], chats[1], tools[0]}) {
            CHECK(s->context.trace == run.context.trace);
            CHECK(s->parent == run.context.span);
            CHECK(s->start_ns >= run.start_ns);
            CHECK(s->end_ns <= run.end_ns);
            CHECK(s->end_ns >= s->start_ns);
        }

        const span_data& c1 = *chats[0];
        CHECK(c1.name == "chat zai-glm-4.7");
        CHECK(c1.kind == telemetry::span_kind::client);
        CHECK(attr<std::string>(c1, "gen_ai.operation.name") == "chat");
        CHECK(attr<std::string>(c1, "gen_ai.request.model") == "zai-glm-4.7");
        CHECK(attr<std::string>(c1, "gen_ai.response.model") == "zai-glm-4.7");
        CHECK(attr<std::string>(c1, "server.address") == "api.cerebras.ai");
        CHECK(attr<std::int64_t>(c1, "server.port") == 443);
        CHECK(
            attr<std::vector<std::string>>(c1, "gen_ai.response.finish_reasons") ==
            std::vector<std::string>{"tool_calls"}
        );
        CHECK(attr<std::int64_t>(c1, "gen_ai.usage.input_tokens") == 100);
        CHECK(attr<std::int64_t>(c1, "gen_ai.usage.output_tokens") == 20);
        CHECK(attr<std::int64_t>(c1, "gen_ai.usage.cache_read.input_tokens") == 64);
        CHECK(attr<std::int64_t>(c1, "gen_ai.usage.reasoning.output_tokens") == 5);
        const span_data& c2 = *chats[1];
        CHECK(attr<double>(c2, "gen_ai.response.time_to_first_chunk") >= 0);
        CHECK(attr<std::string>(c2, "gen_ai.response.model") == "zai-glm-4.7-2026");
        CHECK(c2.find("gen_ai.usage.cache_read.input_tokens") == nullptr);

        const span_data& t = *tools[0];
        CHECK(t.name == "execute_tool echo");
        CHECK(t.kind == telemetry::span_kind::internal);
        CHECK(attr<std::string>(t, "gen_ai.operation.name") == "execute_tool");
        CHECK(attr<std::string>(t, "gen_ai.tool.name") == "echo");
        CHECK(attr<std::string>(t, "gen_ai.tool.call.id") == "call_1");
        CHECK(t.start_ns >= c1.end_ns);
        CHECK(t.end_ns <= c2.start_ns);
        // Content is opt-in.
        CHECK(t.find("gen_ai.tool.call.arguments") == nullptr);
        CHECK(c1.find("gen_ai.input.messages") == nullptr);
        CHECK(c2.find("gen_ai.output.messages") == nullptr);

        // The agent span has the sum of its chat spans (and so does the run's usage).
        CHECK(attr<std::int64_t>(run, "gen_ai.usage.input_tokens") == 250);
        CHECK(attr<std::int64_t>(run, "gen_ai.usage.output_tokens") == 30);
        CHECK(attr<std::int64_t>(run, "gen_ai.usage.cache_read.input_tokens") == 64);
        CHECK(r.usage.prompt_tokens == 250);

        // One measurement per model request, for the client metrics.
        REQUIRE(f.sink->chats.size() == 2);
        CHECK(f.sink->chats[0].input_tokens == 100);
        CHECK(f.sink->chats[1].output_tokens == 10);
        CHECK(f.sink->chats[0].error_type.empty());
    }

    TEST_CASE("a critic's review is its own invoke_agent span whose usage stays off the run's") {
        traced_run f;
        auto critic_model = std::make_shared<scripted_model>("critic-model");
        auto verdict = scripted_model::turn::text(R"({"decision":"approve"})");
        verdict.usage = usage_of(1000, 7, 0, 0);
        critic_model->push(verdict);
        auto answer = scripted_model::turn::text("done");
        answer.usage = usage_of(40, 4, 0, 0);
        f.model->push(answer);
        auto cfg = f.config();
        wafer::critic c;
        c.name = "reviewer";
        c.model = critic_model;
        c.instructions = "Review it.";
        c.gates = wafer::gate::final_answer;
        cfg.critics.push_back(c);
        wafer::agent a(std::move(cfg));
        const auto r = f.run(a);
        REQUIRE(r.stop_reason == wafer::stop_reason::completed);

        const auto agents = f.sink->named("invoke_agent ");
        REQUIRE(agents.size() == 2);
        const span_data* run = nullptr;
        const span_data* review = nullptr;
        for (const auto* s : agents) {
            (s->name == "invoke_agent coder" ? run : review) = s;
        }
        REQUIRE(run);
        REQUIRE(review);
        CHECK(review->name == "invoke_agent reviewer");
        CHECK(review->parent == run->context.span);
        CHECK(review->context.trace == run->context.trace);
        const auto chats = f.sink->named("chat ");
        REQUIRE(chats.size() == 2);
        const span_data* critic_chat = chats[0]->name == "chat critic-model" ? chats[0] : chats[1];
        CHECK(critic_chat->name == "chat critic-model");
        CHECK(critic_chat->parent == review->context.span);
        // The rule: each agent span sums its own chat spans only.
        CHECK(attr<std::int64_t>(*run, "gen_ai.usage.input_tokens") == 40);
        CHECK(attr<std::int64_t>(*review, "gen_ai.usage.input_tokens") == 1000);
        CHECK(attr<std::int64_t>(*review, "gen_ai.usage.output_tokens") == 7);
    }

    TEST_CASE("content is captured only when opted in") {
        traced_run f;
        f.tcfg.capture_content = true;
        script_two_turns(*f.model);
        wafer::agent a(f.config());
        f.run(a);
        const auto chats = f.sink->named("chat ");
        const auto tools = f.sink->named("execute_tool ");
        REQUIRE(chats.size() == 2);
        REQUIRE(tools.size() == 1);
        const json in = json::parse(attr<std::string>(*chats[0], "gen_ai.input.messages"));
        REQUIRE(in.size() == 1);
        CHECK(in[0]["role"] == "user");
        CHECK(in[0]["parts"][0] == json{{"type", "text"}, {"content", "say hi"}});
        const json sys = json::parse(attr<std::string>(*chats[0], "gen_ai.system_instructions"));
        CHECK(sys[0]["content"] == "You are terse.");
        const json out1 = json::parse(attr<std::string>(*chats[0], "gen_ai.output.messages"));
        CHECK(out1[0]["parts"][0]["type"] == "tool_call");
        CHECK(out1[0]["parts"][0]["arguments"] == json{{"text", "hi"}});
        CHECK(out1[0]["finish_reason"] == "tool_calls");
        CHECK(attr<std::string>(*tools[0], "gen_ai.tool.call.arguments") == R"({"text":"hi"})");
        CHECK(attr<std::string>(*tools[0], "gen_ai.tool.call.result") == "echo: hi");
        const json in2 = json::parse(attr<std::string>(*chats[1], "gen_ai.input.messages"));
        CHECK(in2.back()["role"] == "tool");
        CHECK(in2.back()["parts"][0]["type"] == "tool_call_response");
    }

    TEST_CASE("a failed model request ends its chat span with error.type; the run's span too") {
        traced_run f;
        f.model->push(
            scripted_model::turn::failure(make_error_code(wafer::errc::rate_limited), "slow down")
        );
        auto cfg = f.config();
        wafer::agent a(std::move(cfg));
        const auto r = f.run(a);
        REQUIRE(r.stop_reason == wafer::stop_reason::error);
        const auto chats = f.sink->named("chat ");
        const auto agents = f.sink->named("invoke_agent ");
        REQUIRE(chats.size() == 1);
        REQUIRE(agents.size() == 1);
        CHECK(chats[0]->error);
        CHECK(attr<std::string>(*chats[0], "error.type") == "rate_limited");
        CHECK(agents[0]->error);
        CHECK(attr<std::string>(*agents[0], "error.type") == "rate_limited");
        CHECK(agents[0]->find("gen_ai.usage.input_tokens") == nullptr);
        REQUIRE(f.sink->chats.size() == 1);
        CHECK(f.sink->chats[0].error_type == "rate_limited");
    }

    TEST_CASE("a run with a trace parent joins the caller's trace") {
        traced_run f;
        f.model->push(scripted_model::turn::text("ok"));
        wafer::agent a(f.config());
        wafer::run_options o;
        o.trace_parent =
            telemetry::parse_traceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01");
        f.run(a, std::move(o));
        const auto agents = f.sink->named("invoke_agent ");
        REQUIRE(agents.size() == 1);
        CHECK(telemetry::to_hex(agents[0]->context.trace) == "4bf92f3577b34da6a3ce929d0e0e4736");
        CHECK(telemetry::to_hex(agents[0]->parent) == "00f067aa0ba902b7");
    }

    TEST_CASE("text that is not UTF-8 is exported with U+FFFD, never as invalid JSON") {
        telemetry::otlp_config cfg;
        span_data s;
        s.context.trace = telemetry::new_trace_id();
        s.context.span = telemetry::new_span_id();
        s.name = "execute_tool bad\xff\xc0name";
        s.attributes = {{"error.type", std::string("\xed\xa0\x80 surrogate")}};
        const json j = json::parse(telemetry::otlp_traces_json(cfg, {s}));
        const json& span = j["resourceSpans"][0]["scopeSpans"][0]["spans"][0];
        CHECK(span["name"] == "execute_tool bad\xEF\xBF\xBD\xEF\xBF\xBDname");
        CHECK(
            span["attributes"][0]["value"]["stringValue"] ==
            "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD surrogate"
        );
    }

    TEST_CASE("the OTLP JSON body uses the protocol's JSON mapping") {
        telemetry::otlp_config cfg;
        cfg.service_name = "svc";
        cfg.resource_attributes = {{"deployment.environment", "test"}};
        span_data s;
        s.context.trace = telemetry::new_trace_id();
        s.context.span = telemetry::new_span_id();
        s.parent = telemetry::new_span_id();
        s.name = "chat \"m\"";
        s.kind = telemetry::span_kind::client;
        s.start_ns = 1'700'000'000'123'456'789;
        s.end_ns = 1'700'000'001'000'000'000;
        s.attributes = {
            {"a.s", std::string("x\ny")},
            {"a.i", std::int64_t{9007199254740993}},
            {"a.d", 0.25},
            {"a.b", true},
            {"a.v", std::vector<std::string>{"stop"}}};
        s.error = true;
        s.status_message = "boom";
        const json j = json::parse(telemetry::otlp_traces_json(cfg, {s}));
        const json& rs = j["resourceSpans"][0];
        CHECK(
            rs["resource"]["attributes"][0] ==
            json{{"key", "service.name"}, {"value", {{"stringValue", "svc"}}}}
        );
        const json& sp = rs["scopeSpans"][0]["spans"][0];
        CHECK(rs["scopeSpans"][0]["scope"]["name"] == "wafer");
        CHECK(sp["traceId"] == telemetry::to_hex(s.context.trace));
        CHECK(sp["spanId"] == telemetry::to_hex(s.context.span));
        CHECK(sp["parentSpanId"] == telemetry::to_hex(s.parent));
        CHECK(sp["name"] == "chat \"m\"");
        CHECK(sp["kind"] == 3);
        CHECK(sp["startTimeUnixNano"] == "1700000000123456789");
        CHECK(sp["endTimeUnixNano"] == "1700000001000000000");
        CHECK(sp["attributes"][0]["value"]["stringValue"] == "x\ny");
        CHECK(sp["attributes"][1]["value"]["intValue"] == "9007199254740993");
        CHECK(sp["attributes"][2]["value"]["doubleValue"] == 0.25);
        CHECK(sp["attributes"][3]["value"]["boolValue"] == true);
        CHECK(sp["attributes"][4]["value"]["arrayValue"]["values"][0]["stringValue"] == "stop");
        CHECK(sp["status"] == json{{"code", 2}, {"message", "boom"}});
    }

    TEST_CASE("OTEL_* variables configure the exporter") {
        struct env_guard {
            std::vector<std::string> names;
            void set(const char* n, const char* v) {
                names.emplace_back(n);
                ::setenv(n, v, 1);
            }
            ~env_guard() {
                for (const auto& n : names) {
                    ::unsetenv(n.c_str());
                }
            }
        } env;
        for (const char* n :
             {"OTEL_SDK_DISABLED",
              "OTEL_TRACES_EXPORTER",
              "OTEL_METRICS_EXPORTER",
              "OTEL_EXPORTER_OTLP_ENDPOINT",
              "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
              "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT",
              "OTEL_EXPORTER_OTLP_PROTOCOL",
              "OTEL_EXPORTER_OTLP_TRACES_HEADERS",
              "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT",
              "OTEL_BSP_EXPORT_TIMEOUT"}) {
            ::unsetenv(n); // the test's own environment must not decide
        }
        CHECK_FALSE(telemetry::otlp_config::from_env());
        env.set("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318/");
        env.set("OTEL_EXPORTER_OTLP_HEADERS", "x-key=a%20b, x-other = 2");
        env.set("OTEL_EXPORTER_OTLP_TIMEOUT", "1500");
        env.set("OTEL_SERVICE_NAME", "batcher");
        env.set("OTEL_RESOURCE_ATTRIBUTES", "service.name=ignored,team=infra");
        env.set("OTEL_BSP_MAX_QUEUE_SIZE", "10");
        env.set("OTEL_BSP_SCHEDULE_DELAY", "250");
        env.set("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "nonsense");
        std::vector<std::string> problems;
        auto c = telemetry::otlp_config::from_env(&problems);
        REQUIRE(c);
        CHECK(c->traces_endpoint == "http://127.0.0.1:4318/v1/traces");
        CHECK(c->metrics_endpoint == "http://127.0.0.1:4318/v1/metrics");
        CHECK(
            c->headers ==
            std::vector<std::pair<std::string, std::string>>{{"x-key", "a b"}, {"x-other", "2"}}
        );
        CHECK(c->timeout == 1500ms);
        CHECK(c->service_name == "batcher");
        CHECK(c->max_queue_size == 10);
        CHECK(c->schedule_delay == 250ms);
        CHECK(c->max_export_batch_size == 512);
        REQUIRE(problems.size() == 1);
        CHECK(problems[0].find("OTEL_BSP_MAX_EXPORT_BATCH_SIZE") != std::string::npos);
        env.set("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://collector:9999/custom");
        CHECK(
            telemetry::otlp_config::from_env()->traces_endpoint == "http://collector:9999/custom"
        );
        env.set("OTEL_SDK_DISABLED", "true");
        CHECK_FALSE(telemetry::otlp_config::from_env());
    }

    TEST_CASE("a full queue drops new spans and counts them, without waiting") {
        telemetry::otlp_config cfg;
        // A port nothing listens on; the long delay keeps the worker from draining meanwhile.
        cfg.traces_endpoint = "http://127.0.0.1:9/v1/traces";
        cfg.metrics_endpoint.clear();
        cfg.max_queue_size = 3;
        cfg.max_export_batch_size = 100;
        cfg.schedule_delay = 60s;
        cfg.shutdown_timeout = 2s;
        telemetry::otlp_exporter ex(cfg);
        for (int i = 0; i < 5; ++i) {
            span_data s;
            s.name = "s";
            ex.on_span(std::move(s));
        }
        auto st = ex.stats();
        CHECK(st.spans_queued == 3);
        CHECK(st.spans_dropped_full == 2);
        ex.shutdown();
        st = ex.stats();
        CHECK(st.spans_exported == 0);
        CHECK(st.spans_dropped_failed == 3);
        CHECK(st.export_failures >= 1);
        CHECK(st.dropped() == 5);
        CHECK_FALSE(st.last_error.empty());
    }
}
