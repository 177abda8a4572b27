// Events: numbering, callback delivery, the bounded channel (backpressure, end of stream, close,
// cancellation), JSON form, and deltas forwarded from a model.
#include <wafer/error.hpp>
#include <wafer/event.hpp>
#include <wafer/event_channel.hpp>
#include <wafer/event_emitter.hpp>
#include <wafer/scripted_model.hpp>

#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>

#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

#include <chrono>
#include <exception>
#include <memory>
#include <optional>
#include <string>
#include <vector>

// GCC 12 false positive on Asio's awaitable frame allocator at -O1 and above.
#if defined(__GNUC__) && !defined(__clang__) && __GNUC__ == 12
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
#endif

using namespace wafer;
using namespace std::chrono_literals;
namespace asio = boost::asio;
using nlohmann::json;

namespace {

struct task_state {
    bool done = false;
    std::exception_ptr error;
};

struct task_handler {
    std::shared_ptr<task_state> st;
    void operator()(std::exception_ptr e) const {
        st->done = true;
        st->error = e;
    }
};

std::shared_ptr<task_state>
spawn(asio::io_context& ioc, asio::awaitable<void> aw, asio::cancellation_signal* sig = nullptr) {
    auto st = std::make_shared<task_state>();
    if (sig) {
        asio::co_spawn(
            ioc, std::move(aw), asio::bind_cancellation_slot(sig->slot(), task_handler{st})
        );
    } else {
        asio::co_spawn(ioc, std::move(aw), task_handler{st});
    }
    return st;
}

// Runs until every task is done, with a wall deadline so no test can hang.
void run_until(asio::io_context& ioc, std::vector<std::shared_ptr<task_state>> tasks) {
    const auto deadline = std::chrono::steady_clock::now() + 5s;
    auto all_done = [&] {
        for (auto& t : tasks) {
            if (!t->done) {
                return false;
            }
        }
        return true;
    };
    ioc.restart();
    while (!all_done() && std::chrono::steady_clock::now() < deadline) {
        ioc.run_for(10ms);
        ioc.restart();
    }
    REQUIRE_MESSAGE(all_done(), "tasks did not finish before the test deadline");
    for (auto& t : tasks) {
        if (t->error) {
            std::rethrow_exception(t->error);
        }
    }
}

// Runs ready handlers only (no waiting).
void drain_ready(asio::io_context& ioc) {
    ioc.restart();
    ioc.poll();
}

errc errc_of(const std::exception_ptr& e) {
    REQUIRE(e);
    try {
        std::rethrow_exception(e);
    } catch (const wafer::error& err) {
        return static_cast<errc>(err.code().value());
    }
}

// Producer: emits `n` content deltas, recording how many were emitted so far.
asio::awaitable<void> produce(event_emitter& em, int n, int* emitted) {
    for (int i = 0; i < n; ++i) {
        event_data d = events::content_delta{1, std::to_string(i)};
        co_await em.async_emit(std::move(d));
        ++*emitted;
    }
}

// Consumer: pulls until the stream ends.
asio::awaitable<void> consume_all(std::shared_ptr<event_channel> ch, std::vector<event>* out) {
    while (auto e = co_await ch->async_receive()) {
        out->push_back(std::move(*e));
    }
}

asio::awaitable<void>
produce_then_finish(event_emitter& em, std::shared_ptr<event_channel> ch, int n) {
    int emitted = 0;
    co_await produce(em, n, &emitted);
    co_await ch->async_finish();
}

asio::awaitable<void> receive_one(std::shared_ptr<event_channel> ch, std::optional<event>* out) {
    auto got = co_await ch->async_receive(); // named: GCC 12 co_await temporary bug
    *out = std::move(got);
}

asio::awaitable<void> send_one(std::shared_ptr<event_channel> ch, bool* accepted) {
    event e;
    const bool ok = co_await ch->async_send(std::move(e));
    *accepted = ok;
}

asio::awaitable<void> complete_into(model& m, api::chat_request req, model_observer* obs) {
    co_await m.async_complete(std::move(req), obs);
}

event sample(event_data d) {
    event e;
    e.seq = 7;
    e.run_id = "0123456789abcdef";
    e.agent = "coder";
    e.time = std::chrono::system_clock::time_point{std::chrono::microseconds{1779146781786984}};
    e.data = std::move(d);
    return e;
}

} // namespace

TEST_SUITE("unit/events") {

    TEST_CASE("the emitter numbers events 1, 2, 3 and delivers them to the callback in order") {
        asio::io_context ioc;
        std::vector<event> seen;
        event_emitter em("run-1", "coder", [&](const event& e) { seen.push_back(e); });
        int emitted = 0;
        auto t = spawn(ioc, produce(em, 5, &emitted));
        run_until(ioc, {t});
        REQUIRE(seen.size() == 5);
        for (std::size_t i = 0; i < seen.size(); ++i) {
            CHECK(seen[i].seq == i + 1);
            CHECK(seen[i].run_id == "run-1");
            CHECK(seen[i].agent == "coder");
            REQUIRE(seen[i].is<events::content_delta>());
            CHECK(seen[i].get_if<events::content_delta>()->text == std::to_string(i));
            if (i > 0) {
                CHECK(seen[i].time >= seen[i - 1].time);
            }
        }
        CHECK(em.last_seq() == 5);
        CHECK(seen[0].get_if<events::run_started>() == nullptr);
    }

    TEST_CASE("run ids are 16 hex digits and differ") {
        const auto a = make_run_id();
        const auto b = make_run_id();
        CHECK(a.size() == 16);
        CHECK(a.find_first_not_of("0123456789abcdef") == std::string::npos);
        CHECK(a != b);
    }

    TEST_CASE("a full channel blocks the producer until the consumer pulls") {
        asio::io_context ioc;
        auto ch = std::make_shared<event_channel>(ioc.get_executor(), 2);
        event_emitter em("r", "a", {}, ch);
        int emitted = 0;
        auto producer = spawn(ioc, produce(em, 5, &emitted));
        drain_ready(ioc);
        // Two fit; the third send is suspended.
        CHECK(emitted == 2);
        CHECK_FALSE(producer->done);

        std::optional<event> got;
        auto c1 = spawn(ioc, receive_one(ch, &got));
        drain_ready(ioc);
        REQUIRE(got.has_value());
        CHECK(got->seq == 1);
        CHECK(emitted == 3); // one pull made room for exactly one more
        CHECK_FALSE(producer->done);

        std::vector<event> rest;
        auto consumer = spawn(ioc, consume_all(ch, &rest));
        run_until(ioc, {producer, c1});
        auto finisher = spawn(ioc, ch->async_finish()); // only once the producer is done
        run_until(ioc, {finisher, consumer});
        CHECK(emitted == 5);
        REQUIRE(rest.size() == 4);
        for (std::size_t i = 0; i < rest.size(); ++i) {
            CHECK(rest[i].seq == i + 2);
        }
    }

    TEST_CASE("finish ends the stream after every buffered event; later sends are dropped") {
        asio::io_context ioc;
        auto ch = std::make_shared<event_channel>(ioc.get_executor(), 16);
        event_emitter em("r", "a", {}, ch);
        auto producer = spawn(ioc, produce_then_finish(em, ch, 10));
        run_until(ioc, {producer});
        CHECK_FALSE(ch->is_open());
        bool accepted = true;
        auto late = spawn(ioc, send_one(ch, &accepted));
        std::vector<event> got;
        auto consumer = spawn(ioc, consume_all(ch, &got));
        run_until(ioc, {late, consumer});
        CHECK_FALSE(accepted);
        REQUIRE(got.size() == 10);
        CHECK(got.front().seq == 1);
        CHECK(got.back().seq == 10);
        // After the end, receive keeps answering nullopt.
        std::optional<event> after{event{}};
        auto again = spawn(ioc, receive_one(ch, &after));
        run_until(ioc, {again});
        CHECK_FALSE(after.has_value());
    }

    TEST_CASE("a consumer that closes the channel releases a blocked producer; the callback still "
              "sees everything") {
        asio::io_context ioc;
        auto ch = std::make_shared<event_channel>(ioc.get_executor(), 1);
        int callback_count = 0;
        event_emitter em(
            "r", "a", [&](const event&) { ++callback_count; }, ch
        );
        int emitted = 0;
        auto producer = spawn(ioc, produce(em, 6, &emitted));
        drain_ready(ioc);
        CHECK(emitted == 1);
        CHECK_FALSE(producer->done);

        ch->close();
        run_until(ioc, {producer});
        CHECK(emitted == 6);
        CHECK(callback_count == 6);
        CHECK(em.channel() == nullptr); // detached from the closed channel

        std::optional<event> got{event{}};
        auto r = spawn(ioc, receive_one(ch, &got));
        run_until(ioc, {r});
        CHECK_FALSE(got.has_value());
    }

    TEST_CASE("close wakes a waiting receiver with the end of stream") {
        asio::io_context ioc;
        auto ch = std::make_shared<event_channel>(ioc.get_executor(), 4);
        std::optional<event> got{event{}};
        auto r = spawn(ioc, receive_one(ch, &got));
        drain_ready(ioc);
        CHECK_FALSE(r->done);
        ch->close();
        run_until(ioc, {r});
        CHECK_FALSE(got.has_value());
    }

    TEST_CASE("cancelling a producer blocked on a full channel throws errc::cancelled") {
        asio::io_context ioc;
        auto ch = std::make_shared<event_channel>(ioc.get_executor(), 0);
        event_emitter em("r", "a", {}, ch);
        int emitted = 0;
        asio::cancellation_signal sig;
        auto producer = spawn(ioc, produce(em, 3, &emitted), &sig);
        drain_ready(ioc);
        CHECK_FALSE(producer->done);
        sig.emit(asio::cancellation_type::terminal);
        const auto deadline = std::chrono::steady_clock::now() + 5s;
        while (!producer->done && std::chrono::steady_clock::now() < deadline) {
            ioc.restart();
            ioc.run_for(10ms);
        }
        REQUIRE(producer->done);
        CHECK(errc_of(producer->error) == errc::cancelled);
        CHECK(emitted == 0);
        CHECK(ch->is_open()); // cancelling one producer does not end the stream
    }

    TEST_CASE("cancelling a waiting receiver throws errc::cancelled and loses nothing") {
        asio::io_context ioc;
        auto ch = std::make_shared<event_channel>(ioc.get_executor(), 4);
        asio::cancellation_signal sig;
        std::optional<event> got;
        auto r = spawn(ioc, receive_one(ch, &got), &sig);
        drain_ready(ioc);
        sig.emit(asio::cancellation_type::terminal);
        drain_ready(ioc);
        REQUIRE(r->done);
        CHECK(errc_of(r->error) == errc::cancelled);

        event_emitter em("r", "a", {}, ch);
        int emitted = 0;
        auto p = spawn(ioc, produce(em, 1, &emitted));
        auto r2 = spawn(ioc, receive_one(ch, &got));
        run_until(ioc, {p, r2});
        REQUIRE(got.has_value());
        CHECK(got->seq == 1);
    }

    TEST_CASE("several runs can share one channel") {
        asio::io_context ioc;
        auto ch = std::make_shared<event_channel>(ioc.get_executor(), 3);
        event_emitter a("run-a", "x", {}, ch);
        event_emitter b("run-b", "y", {}, ch);
        int na = 0;
        int nb = 0;
        auto pa = spawn(ioc, produce(a, 4, &na));
        auto pb = spawn(ioc, produce(b, 4, &nb));
        std::vector<event> got;
        // Finish once both producers are done (the test drives the order).
        auto consumer = spawn(ioc, consume_all(ch, &got));
        while (!(pa->done && pb->done)) {
            ioc.restart();
            ioc.run_one_for(1s);
        }
        auto fin = spawn(ioc, ch->async_finish());
        run_until(ioc, {pa, pb, consumer, fin});
        REQUIRE(got.size() == 8);
        std::uint64_t last_a = 0;
        std::uint64_t last_b = 0;
        for (const auto& e : got) {
            auto& last = e.run_id == "run-a" ? last_a : last_b;
            CHECK(e.seq == last + 1); // per-run order kept
            last = e.seq;
        }
        CHECK(last_a == 4);
        CHECK(last_b == 4);
    }

    TEST_CASE("delta_forwarder turns a model's stream into numbered delta events") {
        asio::io_context ioc;
        scripted_model m("zai-glm-4.7");
        auto t = scripted_model::turn::text("Hi there", "hmm");
        t.delta_chars = 3;
        m.push(t);
        std::vector<event> seen;
        event_emitter em("r", "a", [&](const event& e) { seen.push_back(e); });
        delta_forwarder fwd(em, 4);
        api::chat_request req;
        req.messages.push_back(api::message::user("q"));
        auto task = spawn(ioc, complete_into(m, req, &fwd));
        run_until(ioc, {task});
        std::vector<std::string> got;
        for (const auto& e : seen) {
            if (auto* r = e.get_if<events::reasoning_delta>()) {
                CHECK(r->turn == 4);
                got.push_back("R:" + r->text);
            } else if (auto* c = e.get_if<events::content_delta>()) {
                CHECK(c->turn == 4);
                got.push_back("C:" + c->text);
            }
        }
        CHECK(got == std::vector<std::string>{"R:hmm", "C:Hi ", "C:the", "C:re"});
        CHECK(seen.back().seq == 4);
    }

    TEST_CASE("a slow consumer throttles the model stream through the forwarder") {
        asio::io_context ioc;
        scripted_model m;
        auto t = scripted_model::turn::text("abcdef");
        t.delta_chars = 1;
        m.push(t);
        auto ch = std::make_shared<event_channel>(ioc.get_executor(), 1);
        event_emitter em("r", "a", {}, ch);
        delta_forwarder fwd(em, 1);
        api::chat_request req;
        req.messages.push_back(api::message::user("q"));
        auto task = spawn(ioc, complete_into(m, req, &fwd));
        drain_ready(ioc);
        CHECK_FALSE(task->done); // stuck: one delta buffered, the next waiting for room
        std::vector<event> got;
        auto consumer = spawn(ioc, consume_all(ch, &got));
        while (!task->done) {
            ioc.restart();
            ioc.run_one_for(1s);
        }
        auto fin = spawn(ioc, ch->async_finish());
        run_until(ioc, {task, consumer, fin});
        CHECK(got.size() == 6);
    }

    TEST_CASE("events serialise to one JSON object each and back") {
        using namespace events;
        const api::usage u{
            .prompt_tokens = 322,
            .completion_tokens = 65,
            .total_tokens = 387,
            .cached_tokens = 256,
            .reasoning_tokens = 58};
        std::vector<event_data> all{
            run_started{"zai-glm-4.7", "fix the test"},
            model_request{1, "zai-glm-4.7", 3, 2},
            history_repaired{1, {"missing_result c1 at #2"}},
            reasoning_delta{1, "Let me think \"quoted\"\n"},
            content_delta{1, "Hello \u00e9"},
            tool_call_started{1, "c1", "read_file", R"({"path":"a.txt"})"},
            tool_call_finished{1, "c1", "read_file", 1234us, true, "error: no such file"},
            turn_finished{
                1,
                api::finish_reason::tool_calls,
                u,
                api::time_info{
                    .queue_time = 0.0029, .total_time = 0.133, .created = 1779146781.786984},
                1,
                150000us},
            critic_verdict{
                2,
                "security",
                "before_tools",
                "c1",
                critic_decision::revise,
                {"uses rm -rf", "no backup"},
                std::nullopt,
                85us,
                u},
            critic_verdict{
                2,
                "qa",
                "final_answer",
                std::nullopt,
                critic_decision::deny,
                {},
                "timed out",
                30us,
                std::nullopt},
            run_finished{"completed", "done", std::nullopt, u, 3, 2500000us},
            run_finished{"error", "", "HTTP 429 too_many_requests_error", {}, 1, 10us},
            approval_requested{2, "c2", "write_file", R"({"path":"x"})"},
            approval_decided{2, "c2", "write_file", true, R"({"path":"y"})", ""},
            approval_decided{2, "c3", "run_command", false, std::nullopt, "not now"},
            tool_call_progress{1, "c1", "everything__long", 3, 10.0, "step \x1b[2J 3"},
            tool_call_progress{1, "c1", "everything__long", 0.5, std::nullopt, ""},
        };
        for (const auto& d : all) {
            const event e = sample(d);
            const std::string line = to_json_line(e);
            CHECK(line.find('\n') == std::string::npos);
            const json j = json::parse(line);
            CHECK(j.at("seq") == 7);
            CHECK(j.at("type") == type_name(d));
            CHECK(j.at("run_id") == "0123456789abcdef");
            CHECK(j.at("agent") == "coder");
            CHECK(j.at("time") == "2026-05-18T23:26:21.786984Z");
            CHECK(j.get<event>() == e);
        }

        const json tf = json(sample(all[7]));
        CHECK(tf.at("type") == "turn_finished");
        CHECK(tf.at("finish_reason") == "tool_calls");
        CHECK(tf.at("usage").at("prompt_tokens_details").at("cached_tokens") == 256);
        CHECK(tf.at("duration_ms") == 150.0);
        const json cv = json(sample(all[8]));
        CHECK(cv.at("decision") == "revise");
        CHECK(cv.at("reasons").size() == 2);
        CHECK(cv.at("latency_ms") == 0.085);
        CHECK(cv.at("call_id") == "c1");
        CHECK_FALSE(cv.contains("error"));
        const json failed = json(sample(all[9]));
        CHECK(failed.at("error") == "timed out");
        CHECK_FALSE(failed.contains("call_id"));
        const json tc = json(sample(all[6]));
        CHECK(tc.at("is_error") == true);
        CHECK(tc.at("duration_ms") == 1.234);
        CHECK_FALSE(json(sample(all[10])).contains("error"));
        CHECK(json(sample(all[11])).at("error") == "HTTP 429 too_many_requests_error");
        CHECK(json(sample(all[12])).at("type") == "approval_requested");
        CHECK(json(sample(all[13])).at("arguments") == R"({"path":"y"})");
        CHECK_FALSE(json(sample(all[14])).contains("arguments"));
        CHECK(json(sample(all[14])).at("approved") == false);

        json bad = json(sample(all[0]));
        bad["type"] = "no_such_event";
        CHECK_THROWS_AS(bad.get<event>(), std::invalid_argument);
    }

    TEST_CASE("hostile numbers in an event's JSON: durations clamped, a huge seq refused") {
        json tc = json(sample(events::tool_call_finished{1, "c", "f", 1234us, true, "out"}));
        for (double ms : {1e300, -1e300}) {
            tc["duration_ms"] = ms;
            const event e = tc.get<event>();
            const auto* p = e.get_if<events::tool_call_finished>();
            REQUIRE(p);
            CHECK(
                p->duration.count() ==
                (ms > 0 ? 9'200'000'000'000'000'000 : -9'200'000'000'000'000'000)
            );
        }
        json seq = json(sample(events::tool_call_finished{1, "c", "f", 1234us, true, "out"}));
        seq["seq"] = 1e300;
        CHECK_THROWS_AS(seq.get<event>(), json::exception);
        seq["seq"] = -1;
        CHECK_THROWS_AS(seq.get<event>(), json::exception);
    }

    TEST_CASE("emitted events round-trip through JSON too (microsecond timestamps)") {
        asio::io_context ioc;
        std::vector<event> seen;
        event_emitter em(make_run_id(), "coder", [&](const event& e) { seen.push_back(e); });
        int emitted = 0;
        auto t = spawn(ioc, produce(em, 2, &emitted));
        run_until(ioc, {t});
        for (const auto& e : seen) {
            CHECK(json::parse(to_json_line(e)).get<event>() == e);
        }
    }

} // TEST_SUITE
