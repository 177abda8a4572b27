// The whole stack end to end, in process: agent loop + cerebras_model + api::client + the fake
// Cerebras server over 127.0.0.1, all on one io_context. Assertions look at what went over the
// wire (the server's recorded requests, parsed as raw JSON) and at what the caller gets back.
#include <wafer/agent.hpp>
#include <wafer/api/client.hpp>
#include <wafer/cerebras_model.hpp>
#include <wafer/store/sqlite_store.hpp>
#include <wafer/testing/fake_server.hpp>
#include <wafer/tools/registry.hpp>
#include <wafer/tools/tool.hpp>

#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "run_coro.hpp"

namespace asio = boost::asio;
using namespace std::chrono_literals;
using nlohmann::json;
using wafer::agent;
using wafer::agent_config;
using wafer::errc;
using wafer::event;
using wafer::run_options;
using wafer::run_result;
using wafer::stop_reason;
using wafer::testing::delivery;
using wafer::testing::error_shape;
using wafer::testing::fake_server;
using wafer::testing::reply;
using wafer::testing::run_coro;
using wafer::testing::scripted_error;
using wafer::testing::scripted_turn;
namespace events = wafer::events;
namespace api = wafer::api;

namespace {

const std::string secret = "sk-E2E-SECRET-42";
constexpr const char* glm = "zai-glm-4.7";

asio::awaitable<void> no_sleep() {
    co_return;
}

struct weather_args {
    std::string city;
};
void from_json(const json& j, weather_args& a) {
    j.at("city").get_to(a.city);
}

// Paris answers last although the model asked for it first: results must still follow the
// model's order, not completion order.
asio::awaitable<std::string> weather(weather_args a) {
    asio::steady_timer t(co_await asio::this_coro::executor);
    t.expires_after(a.city == "Paris" ? 40ms : 5ms);
    co_await t.async_wait(asio::use_awaitable);
    co_return a.city + ": " + (a.city == "Paris" ? "sunny, 21 C" : "rain, 14 C");
}

std::shared_ptr<wafer::tools::registry> make_tools() {
    auto reg = std::make_shared<wafer::tools::registry>();
    json schema = {
        {"type", "object"},
        {"properties", {{"city", {{"type", "string"}}}}},
        {"required", {"city"}},
        {"additionalProperties", false}};
    reg->add(wafer::tools::make_async_tool<weather_args>(
        "get_weather", "Current weather in a city", schema, &weather
    ));
    json echo_schema = {{"type", "object"}, {"properties", {{"text", {{"type", "string"}}}}}};
    reg->add(wafer::tools::make_tool<json>("echo", "Echo text", echo_schema, [](json a) {
        return "echo: " + a.value("text", std::string());
    }));
    return reg;
}

api::usage usage_of(
    std::int64_t prompt, std::int64_t completion, std::int64_t cached, std::int64_t reasoning
) {
    api::usage u;
    u.prompt_tokens = prompt;
    u.completion_tokens = completion;
    u.total_tokens = prompt + completion;
    u.cached_tokens = cached;
    u.reasoning_tokens = reasoning;
    return u;
}

api::time_info timing_of(double queue, double prompt, double completion, double created) {
    api::time_info t;
    t.queue_time = queue;
    t.prompt_time = prompt;
    t.completion_time = completion;
    t.total_time = queue + prompt + completion;
    t.created = created;
    return t;
}

api::tool_call call(std::string name, std::string args) {
    // Empty id: the fake server makes a 9-hex-character id, as Cerebras does.
    return {std::string(), std::move(name), std::move(args)};
}

// One io_context running the fake server, a real client (instant, recorded retry sleeps), a
// cerebras_model on it, and an agent with two tools.
struct e2e {
    asio::io_context ioc;
    fake_server server{ioc.get_executor()};
    std::shared_ptr<std::vector<std::chrono::milliseconds>> sleeps =
        std::make_shared<std::vector<std::chrono::milliseconds>>();
    std::shared_ptr<api::client> client;
    std::shared_ptr<wafer::cerebras_model> model;
    std::vector<event> events;
    std::vector<std::chrono::steady_clock::time_point> event_times;

    explicit e2e(int max_retries = 2) {
        api::client_config cfg;
        cfg.api_key = secret;
        cfg.base_url = server.base_url();
        cfg.timeouts.connect = 2s;
        cfg.timeouts.read = 3s;
        cfg.retry.max_retries = max_retries;
        cfg.sleep = [rec = sleeps](std::chrono::milliseconds d) {
            rec->push_back(d);
            return no_sleep();
        };
        cfg.random = [] {
            return 0.0;
        };
        client = std::make_shared<api::client>(ioc.get_executor(), std::move(cfg));
        model = std::make_shared<wafer::cerebras_model>(client, glm);
    }

    agent make_agent() const {
        agent_config cfg;
        cfg.name = "e2e";
        cfg.model = model;
        cfg.system_prompt = "You are a weather assistant.";
        cfg.tools = make_tools();
        return agent(std::move(cfg));
    }

    run_options options() {
        run_options opts;
        opts.on_event = [this](const event& e) {
            events.push_back(e);
            event_times.push_back(std::chrono::steady_clock::now());
        };
        return opts;
    }

    run_result run(const agent& a, std::string input) {
        return run_coro(ioc, a.async_run(std::move(input), options()), 10s);
    }

    // The raw JSON bodies of the chat requests the server received.
    std::vector<json> chat_bodies() const {
        std::vector<json> out;
        for (const auto& r : server.requests()) {
            if (r.method == "POST" && r.target == "/v1/chat/completions") {
                out.push_back(json::parse(r.body));
            }
        }
        return out;
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

    template <class T>
    std::size_t index_of_first() const {
        for (std::size_t i = 0; i < events.size(); ++i) {
            if (events[i].is<T>()) {
                return i;
            }
        }
        return events.size();
    }
};

bool is_hex_id(const std::string& s) {
    return s.size() == 9 && std::all_of(s.begin(), s.end(), [](char c) {
               return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
           });
}

std::string everything_said(const run_result& r, const std::vector<event>& evs) {
    std::string all;
    if (r.error) {
        all += r.error->code.message() + r.error->diagnostics.to_string() +
               r.error->diagnostics.detail + r.error->diagnostics.message;
    }
    for (const auto& e : evs) {
        all += wafer::to_json_line(e);
    }
    return all;
}

// Runs `a` with terminal cancellation emitted (posted, so it lands while the run is suspended)
// as soon as the first content delta arrives. Records when the signal went off.
struct cancel_probe {
    std::shared_ptr<asio::cancellation_signal> sig = std::make_shared<asio::cancellation_signal>();
    std::chrono::steady_clock::time_point emitted{};
    bool fired = false;
};

asio::awaitable<run_result>
run_cancelled_on_first_delta(const agent& a, std::string input, run_options opts, cancel_probe& p) {
    auto ex = co_await asio::this_coro::executor;
    auto inner = std::move(opts.on_event);
    opts.on_event = [inner, &p, ex](const event& e) {
        inner(e);
        if (e.is<events::content_delta>() && !p.fired) {
            p.fired = true;
            asio::post(ex, [&p] {
                p.emitted = std::chrono::steady_clock::now();
                p.sig->emit(asio::cancellation_type::terminal);
            });
        }
    };
    // Named pieces, not temporaries inside the co_await expression (GCC 12 coroutine bug).
    auto token = asio::bind_cancellation_slot(p.sig->slot(), asio::use_awaitable);
    asio::awaitable<run_result> op = a.async_run(std::move(input), std::move(opts));
    run_result r = co_await asio::co_spawn(ex, std::move(op), token);
    co_return r;
}

} // namespace

TEST_SUITE("integration/agent_e2e") {
    TEST_CASE("GLM session: reasoning + two parallel tool calls, then the answer, over HTTP") {
        e2e f;
        const api::usage u1 = usage_of(120, 40, 0, 25);
        const api::usage u2 = usage_of(210, 12, 128, 5);
        const api::time_info t1 = timing_of(0.001, 0.004, 0.040, 1767225600.25);
        const api::time_info t2 = timing_of(0.002, 0.003, 0.012, 1767225601.5);
        const std::string thinking =
            "The user wants the weather in Paris and Tokyo. I will call get_weather for both.";

        scripted_turn first;
        first.reasoning = thinking;
        first.tool_calls = {
            call("get_weather", R"({"city":"Paris"})"), call("get_weather", R"({"city":"Tokyo"})")};
        first.usage = u1;
        first.time_info = t1;
        delivery small;
        small.chunk_chars = 7;
        f.server.enqueue(reply::of(first, small));
        scripted_turn second;
        second.reasoning = "Both results are in.";
        second.content = "Paris is sunny (21 C); Tokyo has rain (14 C).";
        second.usage = u2;
        second.time_info = t2;
        f.server.enqueue(reply::of(second, small));

        agent a = f.make_agent();
        run_result r = f.run(a, "Weather in Paris and Tokyo?");

        CHECK(r.stop_reason == stop_reason::completed);
        CHECK_FALSE(r.error);
        CHECK(r.final_text == "Paris is sunny (21 C); Tokyo has rain (14 C).");
        CHECK(r.turn_count() == 2);
        api::usage total = u1;
        total += u2;
        CHECK(r.usage == total);
        CHECK(r.usage.prompt_tokens == 330);
        CHECK(r.usage.completion_tokens == 52);
        CHECK(r.usage.cached_tokens == 128);
        CHECK(r.usage.reasoning_tokens == 30);
        REQUIRE(r.turns.size() == 2);
        CHECK(r.turns[0].usage == u1);
        CHECK(r.turns[1].usage == u2);
        CHECK(r.time_info.queue_time == doctest::Approx(0.003));
        CHECK(r.time_info.prompt_time == doctest::Approx(0.007));
        CHECK(r.time_info.completion_time == doctest::Approx(0.052));
        CHECK(r.time_info.total_time == doctest::Approx(t1.total_time + t2.total_time));
        CHECK(r.time_info.created == doctest::Approx(1767225601.5));

        // The conversation: system, user, assistant (reasoning + 2 calls), 2 results, answer.
        const auto& msgs = r.conversation.messages();
        REQUIRE(msgs.size() == 6);
        const api::message& asked = msgs[2];
        CHECK(asked.reasoning == std::optional<std::string>(thinking));
        REQUIRE(asked.tool_calls.size() == 2);
        const std::string id_paris = asked.tool_calls[0].id;
        const std::string id_tokyo = asked.tool_calls[1].id;
        CHECK(is_hex_id(id_paris));
        CHECK(is_hex_id(id_tokyo));
        CHECK(id_paris != id_tokyo);
        CHECK(msgs[3].text() == "Paris: sunny, 21 C");
        CHECK(msgs[4].text() == "Tokyo: rain, 14 C");
        CHECK(msgs[5].reasoning == std::optional<std::string>("Both results are in."));

        // What went over the wire.
        std::vector<json> bodies = f.chat_bodies();
        REQUIRE(bodies.size() == 2);
        for (const json& b : bodies) {
            CHECK(b.at("model") == glm);
            CHECK(b.at("stream") == true);
            CHECK(b.at("stream_options").at("include_usage") == true);
            CHECK(b.at("clear_thinking") == false);
            REQUIRE(b.at("tools").size() == 2);
        }
        CHECK(bodies[0].at("messages").size() == 2);
        const json& sent = bodies[1].at("messages");
        REQUIRE(sent.size() == 5);
        CHECK(sent[0].at("role") == "system");
        CHECK(sent[1].at("role") == "user");
        CHECK(sent[1].at("content") == "Weather in Paris and Tokyo?");
        const json& assistant = sent[2];
        CHECK(assistant.at("role") == "assistant");
        CHECK(assistant.at("reasoning") == thinking);
        REQUIRE(assistant.at("tool_calls").size() == 2);
        CHECK(assistant["tool_calls"][0].at("id") == id_paris);
        CHECK(assistant["tool_calls"][0].at("type") == "function");
        CHECK(assistant["tool_calls"][0].at("function").at("name") == "get_weather");
        CHECK(
            json::parse(assistant["tool_calls"][0]["function"].at("arguments").get<std::string>()
            ) == json{{"city", "Paris"}}
        );
        CHECK(assistant["tool_calls"][1].at("id") == id_tokyo);
        CHECK(sent[3].at("role") == "tool");
        CHECK(sent[3].at("tool_call_id") == id_paris);
        CHECK(sent[3].at("content") == "Paris: sunny, 21 C");
        CHECK(sent[4].at("role") == "tool");
        CHECK(sent[4].at("tool_call_id") == id_tokyo);
        CHECK(sent[4].at("content") == "Tokyo: rain, 14 C");

        // The key went as a bearer token; both turns shared one keep-alive connection.
        CHECK(f.server.requests().at(0).header("authorization") == "Bearer " + secret);
        CHECK(f.client->connections_opened() == 1);
        CHECK(f.server.pending() == 0);

        // Events: two tool calls ran, the run finished with the totals.
        CHECK(f.events_of<events::tool_call_started>().size() == 2);
        auto finished = f.events_of<events::tool_call_finished>();
        REQUIRE(finished.size() == 2);
        auto fin = f.events_of<events::run_finished>();
        REQUIRE(fin.size() == 1);
        CHECK(fin[0]->stop_reason == "completed");
        CHECK(fin[0]->turns == 2);
        CHECK(fin[0]->usage == total);
    }

    TEST_CASE(
        "429 on the second turn: the run stops with rate_limited, diagnostics and turn 1 usage"
    ) {
        e2e f(1); // one retry: two attempts, the advised 20 ms recorded instead of slept
        const api::usage u1 = usage_of(80, 20, 0, 10);
        scripted_turn first;
        first.reasoning = "Check the weather first.";
        first.tool_calls = {call("get_weather", R"({"city":"Oslo"})")};
        first.usage = u1;
        f.server.enqueue(reply::of(first));
        scripted_error limited;
        limited.status = 429;
        limited.shape = error_shape::flat;
        limited.message = "Requests per minute limit exceeded - too many requests sent.";
        limited.type = "too_many_requests_error";
        limited.param = "quota";
        limited.code = "request_quota_exceeded";
        limited.retry_after_ms = "20";
        f.server.enqueue(reply::failure(limited));
        f.server.enqueue(reply::failure(limited));

        agent a = f.make_agent();
        run_result r = f.run(a, "Weather in Oslo?");

        CHECK(r.stop_reason == stop_reason::error);
        REQUIRE(r.error);
        CHECK(r.error->code == errc::rate_limited);
        const wafer::diagnostics& d = r.error->diagnostics;
        CHECK(d.http_status == 429);
        CHECK(d.type == "too_many_requests_error");
        CHECK(d.code == "request_quota_exceeded");
        CHECK(d.param == "quota");
        CHECK(d.message == "Requests per minute limit exceeded - too many requests sent.");
        CHECK(d.retry_after == std::optional<std::chrono::milliseconds>(20ms));
        CHECK(d.attempts == 2);
        CHECK(*f.sleeps == std::vector<std::chrono::milliseconds>{20ms});
        CHECK(f.server.pending() == 0);
        CHECK(f.chat_bodies().size() == 3);

        // Turn 1 is accounted for; the tool ran and its result stays in the history.
        CHECK(r.turn_count() == 1);
        CHECK(r.usage == u1);
        CHECK(r.final_text.empty());
        const auto& msgs = r.conversation.messages();
        REQUIRE(msgs.size() == 4);
        CHECK(msgs[3].role == api::role::tool);
        CHECK(msgs[3].text() == "Oslo: rain, 14 C");

        auto fin = f.events_of<events::run_finished>();
        REQUIRE(fin.size() == 1);
        CHECK(fin[0]->stop_reason == "error");
        REQUIRE(fin[0]->error);
        CHECK(fin[0]->error->find("Requests per minute") != std::string::npos);
        CHECK(fin[0]->usage == u1);
        CHECK(everything_said(r, f.events).find(secret) == std::string::npos);
    }

    TEST_CASE("a journaled run over HTTP: the key and the request headers never reach the store") {
        e2e f;
        scripted_turn first;
        first.reasoning = "One city.";
        first.tool_calls = {call("get_weather", R"({"city":"Paris"})")};
        f.server.enqueue(reply::of(first));
        scripted_turn second;
        second.content = "Sunny in Paris.";
        f.server.enqueue(reply::of(second));
        char tmpl[] = "/tmp/wafer-e2e-store-XXXXXX";
        REQUIRE(::mkdtemp(tmpl) != nullptr);
        const std::filesystem::path dir = tmpl;
        {
            auto st = std::make_shared<wafer::store::sqlite_store>(dir / "runs.db");
            agent a = f.make_agent();
            run_options opts = f.options();
            opts.store = st;
            run_result r = run_coro(f.ioc, a.async_run("Weather in Paris?", std::move(opts)), 10s);
            CHECK(r.stop_reason == stop_reason::completed);
            auto row = run_coro(f.ioc, st->async_find_run(r.run_id));
            REQUIRE(row);
            CHECK(row->status == wafer::store::run_status::finished);
        }
        std::string bytes;
        for (const auto& e : std::filesystem::directory_iterator(dir)) {
            std::ifstream in(e.path(), std::ios::binary);
            bytes += std::string(std::istreambuf_iterator<char>(in), {});
        }
        CHECK(bytes.find("Sunny in Paris.") != std::string::npos); // the journal is in there
        CHECK(bytes.find(secret) == std::string::npos);
        CHECK(bytes.find("Bearer") == std::string::npos);
        CHECK(bytes.find("uthorization") == std::string::npos);
        std::filesystem::remove_all(dir);
    }

    TEST_CASE("a mid-stream disconnect ends the run with stream_truncated") {
        e2e f;
        scripted_turn t;
        t.reasoning = "Thinking about it.";
        t.content = "This answer will be cut off before it ends.";
        delivery cut;
        cut.chunk_chars = 5;
        cut.chunk_delay = 1ms;           // one event per write, so the cut lands mid-content
        cut.disconnect_after_chunks = 7; // role + 4 reasoning pieces + 2 content pieces
        f.server.enqueue(reply::of(t, cut));

        agent a = f.make_agent();
        run_result r = f.run(a, "Say something long.");

        CHECK(r.stop_reason == stop_reason::error);
        REQUIRE(r.error);
        CHECK(r.error->code == errc::stream_truncated);
        CHECK(r.final_text.empty());
        CHECK(r.turn_count() == 0);
        // The partial reply is not in the history: it can be sent again as it is.
        CHECK(r.conversation.messages().back().role == api::role::user);
        // The client did not retry a stream that had started.
        CHECK(f.chat_bodies().size() == 1);
        CHECK(f.client->idle_connections() == 0);
        // What did arrive was streamed to the caller before the failure.
        std::string seen;
        for (const auto* e : f.events_of<events::content_delta>()) {
            seen += e->text;
        }
        CHECK(seen == t.content.substr(0, 10)); // two 5-byte pieces
        auto fin = f.events_of<events::run_finished>();
        REQUIRE(fin.size() == 1);
        CHECK(fin[0]->stop_reason == "error");
    }

    TEST_CASE("cancellation while the server streams slowly stops the run at once") {
        e2e f;
        std::string words;
        for (int i = 0; i < 40; ++i) {
            words += (i ? " word" : "word") + std::to_string(i);
        }
        scripted_turn slow;
        slow.content = words;
        delivery d;
        d.chunk_delay = 100ms; // about 4 s for the whole stream
        f.server.enqueue(reply::of(slow, d));

        agent a = f.make_agent();
        cancel_probe probe;
        const auto t0 = std::chrono::steady_clock::now();
        run_result r = run_coro(
            f.ioc, run_cancelled_on_first_delta(a, "Talk slowly.", f.options(), probe), 10s
        );
        const auto done = std::chrono::steady_clock::now();

        REQUIRE(probe.fired);
        CHECK(r.stop_reason == stop_reason::cancelled);
        CHECK_FALSE(r.error);
        CHECK(done - probe.emitted < 500ms);
        CHECK(done - t0 < 2s);
        CHECK(r.final_text.empty());
        CHECK(r.conversation.messages().back().role == api::role::user);
        // The abandoned connection is closed, never pooled.
        CHECK(f.client->idle_connections() == 0);
        auto fin = f.events_of<events::run_finished>();
        REQUIRE(fin.size() == 1);
        CHECK(fin[0]->stop_reason == "cancelled");
        CHECK(f.events.back().is<events::run_finished>());
    }

    TEST_CASE("streamed reasoning and content reach the caller as delta events, in order") {
        e2e f;
        const std::string thinking = "Count the letters r in strawberry: s-t-r-a-w-b-e-r-r-y.";
        const std::string answer = "There are three r letters in strawberry.";
        scripted_turn t;
        t.reasoning = thinking;
        t.content = answer;
        delivery d;
        d.chunk_chars = 4;
        d.chunk_delay = 1ms; // each event its own HTTP chunk
        f.server.enqueue(reply::of(t, d));

        agent a = f.make_agent();
        run_result r = f.run(a, "How many r in strawberry?");
        CHECK(r.stop_reason == stop_reason::completed);
        CHECK(r.final_text == answer);

        std::string got_reasoning;
        std::string got_content;
        std::size_t reasoning_pieces = 0;
        std::size_t content_pieces = 0;
        bool content_started = false;
        bool reasoning_after_content = false;
        for (const auto& e : f.events) {
            if (auto* p = e.get_if<events::reasoning_delta>()) {
                CHECK(p->turn == 1);
                CHECK(p->text.size() <= 4);
                got_reasoning += p->text;
                ++reasoning_pieces;
                reasoning_after_content = reasoning_after_content || content_started;
            } else if (auto* c = e.get_if<events::content_delta>()) {
                CHECK(c->turn == 1);
                CHECK(c->text.size() <= 4);
                got_content += c->text;
                ++content_pieces;
                content_started = true;
            }
        }
        CHECK(got_reasoning == thinking);
        CHECK(got_content == answer);
        CHECK(reasoning_pieces == (thinking.size() + 3) / 4);
        CHECK(content_pieces == (answer.size() + 3) / 4);
        CHECK_FALSE(reasoning_after_content);

        // Deltas sit between the request and the end of the turn; seq has no gaps.
        for (std::size_t i = 0; i < f.events.size(); ++i) {
            CHECK(f.events[i].seq == i + 1);
        }
        const std::size_t req = f.index_of_first<events::model_request>();
        const std::size_t first_reasoning = f.index_of_first<events::reasoning_delta>();
        const std::size_t first_content = f.index_of_first<events::content_delta>();
        const std::size_t turn_done = f.index_of_first<events::turn_finished>();
        CHECK(req < first_reasoning);
        CHECK(first_reasoning < first_content);
        CHECK(first_content < turn_done);
        CHECK(turn_done < f.events.size());
        // Every delta came before the end of the turn.
        for (std::size_t i = turn_done; i < f.events.size(); ++i) {
            CHECK_FALSE(f.events[i].is<events::content_delta>());
            CHECK_FALSE(f.events[i].is<events::reasoning_delta>());
        }
        CHECK(r.conversation.messages().back().reasoning == std::optional<std::string>(thinking));
    }

    TEST_CASE("concurrent runs share one client; each gets its own conversation back") {
        e2e f;
        // Turn 1 echoes the user's text through the echo tool; turn 2 reports the tool result.
        f.server.set_responder([](const api::chat_request& req) {
            const api::message& last = req.messages.back();
            scripted_turn t;
            if (last.role == api::role::tool) {
                t.content = "Result: " + last.text();
            } else {
                t.reasoning = "Echo it.";
                t.tool_calls = {call("echo", json{{"text", last.text()}}.dump())};
            }
            delivery d;
            d.chunk_chars = 8;
            d.chunk_delay = 1ms; // interleave the streams
            return reply::of(t, d);
        });
        agent a = f.make_agent();
        constexpr int runs = 24;
        std::vector<run_result> results(runs);
        int finished = 0;
        for (int i = 0; i < runs; ++i) {
            asio::co_spawn(
                f.ioc,
                a.async_run("message " + std::to_string(i)),
                [&results, &finished, i](std::exception_ptr e, run_result r) {
                    if (!e) {
                        results[static_cast<std::size_t>(i)] = std::move(r);
                    }
                    ++finished;
                }
            );
        }
        const auto end = std::chrono::steady_clock::now() + 10s;
        while (finished < runs && std::chrono::steady_clock::now() < end) {
            f.ioc.run_one_for(100ms);
        }
        REQUIRE(finished == runs);
        for (int i = 0; i < runs; ++i) {
            const run_result& r = results[static_cast<std::size_t>(i)];
            CHECK(r.stop_reason == stop_reason::completed);
            CHECK(r.final_text == "Result: echo: message " + std::to_string(i));
            CHECK(r.turn_count() == 2);
        }
        CHECK(f.chat_bodies().size() == 2 * runs);
        // Connections are reused between turns and runs: far fewer than one per request.
        CHECK(f.client->connections_opened() <= runs);
    }
}
