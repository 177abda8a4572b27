// Parallel dispatch of tool calls on a real io_context: concurrency, barriers, deadlines,
// cancellation, emission order and failures as data. Every run has a wall deadline.
#include <wafer/tools/registry.hpp>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace {

namespace asio = boost::asio;
namespace tools = wafer::tools;
using nlohmann::json;
using namespace std::chrono_literals;
using clock_type = std::chrono::steady_clock;

// ---------------------------------------------------------------------------------------------
// run_coro: spawn a coroutine, run the io_context until it completes or a wall deadline passes,
// rethrow its exception into the test body. Optionally cancel it (terminal) after `cancel_after`.

template <class T>
struct run_state {
    bool done = false;
    std::exception_ptr error;
    std::optional<T> value;
};

template <class T>
struct on_done {
    std::shared_ptr<run_state<T>> st;
    void operator()(std::exception_ptr e, T v) {
        st->done = true;
        st->error = e;
        if (!e) {
            st->value.emplace(std::move(v));
        }
    }
};

template <class T>
T run_coro(
    asio::io_context& ioc,
    asio::awaitable<T> aw,
    std::optional<std::chrono::milliseconds> cancel_after = std::nullopt,
    std::chrono::milliseconds deadline = 10s
) {
    auto st = std::make_shared<run_state<T>>();
    asio::cancellation_signal sig;
    asio::steady_timer cancel_timer(ioc);
    asio::co_spawn(ioc, std::move(aw), asio::bind_cancellation_slot(sig.slot(), on_done<T>{st}));
    if (cancel_after) {
        cancel_timer.expires_after(*cancel_after);
        cancel_timer.async_wait([&sig](boost::system::error_code ec) {
            if (!ec) {
                sig.emit(asio::cancellation_type::terminal);
            }
        });
    }
    const auto until = clock_type::now() + deadline;
    while (!st->done && clock_type::now() < until) {
        if (ioc.stopped()) {
            ioc.restart();
        }
        ioc.run_one_for(5ms);
    }
    cancel_timer.cancel();
    REQUIRE_MESSAGE(st->done, "coroutine did not finish before the wall deadline");
    if (st->error) {
        std::rethrow_exception(st->error);
    }
    return std::move(*st->value);
}

// Runs whatever work is left (stragglers); true if the io_context ran out of work in time.
bool drain(asio::io_context& ioc, std::chrono::milliseconds deadline = 5s) {
    if (ioc.stopped()) {
        ioc.restart();
    }
    ioc.run_for(deadline);
    return ioc.stopped();
}

template <class D>
long long ms(D d) {
    return std::chrono::duration_cast<std::chrono::milliseconds>(d).count();
}

// ---------------------------------------------------------------------------------------------
// Handlers that record what happened to them.

struct probe {
    std::mutex m;
    std::vector<std::string> events; // "start:x", "end:x"
    int running = 0;
    int max_running = 0;
    std::atomic<int> slot_fired{0}; // async handler saw its cancellation slot fire
    std::atomic<int> stop_seen{0};  // blocking handler saw its stop_token fire
    std::atomic<int> stragglers_done{0};
    std::atomic<std::thread::id> handler_thread{};

    void start(const std::string& name) {
        std::lock_guard lk(m);
        events.push_back("start:" + name);
        max_running = std::max(max_running, ++running);
    }
    void end(const std::string& name) {
        std::lock_guard lk(m);
        events.push_back("end:" + name);
        --running;
    }
    std::ptrdiff_t index_of(const std::string& e) {
        std::lock_guard lk(m);
        auto it = std::find(events.begin(), events.end(), e);
        REQUIRE_MESSAGE(it != events.end(), "event " << e << " missing");
        return it - events.begin();
    }
};

// Reports 1/2 and 2/2, a timer apart; says so when nobody listens.
asio::awaitable<std::string> progress_steps(json, tools::call_context ctx) {
    if (!ctx.report_progress) {
        co_return "nobody listens";
    }
    ctx.report_progress(tools::call_progress{1, 2.0, "half way"});
    asio::steady_timer t(co_await asio::this_coro::executor, 10ms);
    co_await t.async_wait(asio::use_awaitable);
    ctx.report_progress(tools::call_progress{2, 2.0, ""});
    co_return "stepped";
}

struct sleep_args {
    int ms = 0;
    std::string label;
};

void from_json(const json& j, sleep_args& a) {
    j.at("ms").get_to(a.ms);
    a.label = j.value("label", std::string());
}

const json sleep_schema = json::parse(R"({
    "type": "object",
    "properties": {"ms": {"type": "integer", "minimum": 0}, "label": {"type": "string"}},
    "required": ["ms"],
    "additionalProperties": false
})");

// Async: sleeps on a timer; reports whether its cancellation slot fired.
asio::awaitable<tools::tool_output>
async_sleep(sleep_args a, std::string name, std::shared_ptr<probe> p) {
    const std::string who = a.label.empty() ? name : a.label;
    p->start(who);
    asio::steady_timer t(co_await asio::this_coro::executor, std::chrono::milliseconds(a.ms));
    auto [ec] = co_await t.async_wait(asio::as_tuple(asio::use_awaitable));
    p->end(who);
    if (ec == asio::error::operation_aborted) {
        auto cs = co_await asio::this_coro::cancellation_state;
        if (cs.cancelled() != asio::cancellation_type::none) {
            ++p->slot_fired;
        }
        co_return tools::tool_output{"interrupted", true};
    }
    co_return tools::tool_output{"slept " + std::to_string(a.ms), false};
}

struct async_sleeper {
    std::string name;
    std::shared_ptr<probe> p;
    asio::awaitable<tools::tool_output> operator()(sleep_args a) const {
        return async_sleep(std::move(a), name, p);
    }
};

// Blocking: sleeps in 1 ms steps, honouring the stop token unless told to ignore it.
struct blocking_sleeper {
    std::shared_ptr<probe> p;
    bool honour_stop = true;
    tools::tool_output operator()(sleep_args a, const tools::call_context& ctx) const {
        p->handler_thread = std::this_thread::get_id();
        p->start(a.label.empty() ? ctx.tool_name : a.label);
        const auto until = clock_type::now() + std::chrono::milliseconds(a.ms);
        bool stopped = false;
        while (clock_type::now() < until) {
            if (honour_stop && ctx.stop.stop_requested()) {
                stopped = true;
                break;
            }
            std::this_thread::sleep_for(1ms);
        }
        p->end(a.label.empty() ? ctx.tool_name : a.label);
        if (stopped) {
            ++p->stop_seen;
        }
        if (!honour_stop) {
            ++p->stragglers_done;
        }
        return {stopped ? "stopped" : "slept " + std::to_string(a.ms), stopped};
    }
};

tools::tool_call_request call(std::string id, std::string name, json args) {
    return {std::move(id), std::move(name), args.dump()};
}

tools::tool_call_request
sleep_call(std::string id, std::string name, int ms_, std::string label = {}) {
    json a{{"ms", ms_}};
    if (!label.empty()) {
        a["label"] = label;
    }
    return call(std::move(id), std::move(name), a);
}

tools::registry make_registry(const std::shared_ptr<probe>& p, std::size_t blocking_threads = 4) {
    tools::registry reg(tools::registry_params{blocking_threads, nullptr});
    reg.add(tools::make_async_tool<sleep_args>(
        "sleep", "Sleeps asynchronously", sleep_schema, async_sleeper{"sleep", p}
    ));
    reg.add(tools::make_blocking_tool<sleep_args>(
        "block", "Sleeps on the blocking pool", sleep_schema, blocking_sleeper{p, true}
    ));
    return reg;
}

struct add_args {
    int a = 0;
    int b = 0;
};
void from_json(const json& j, add_args& x) {
    j.at("a").get_to(x.a);
    j.at("b").get_to(x.b);
}

asio::awaitable<tools::tool_output> async_throw(json) {
    throw std::runtime_error("async disk on fire");
    co_return tools::tool_output{};
}

} // namespace

TEST_SUITE("unit/dispatch") {

    TEST_CASE("calls without options from inside a coroutine (GCC 12: no aggregate default)") {
        // A defaulted `dispatch_options = {}` argument was double-freed when the call was awaited
        // inside a coroutine (ASan: attempting double-free); the overloads without options avoid
        // building the struct in the caller's co_await expression.
        asio::io_context ioc;
        tools::registry reg;
        reg.add(tools::make_tool<json>("echo", "Echoes", json::object(), [](const json& a) {
            return a.dump();
        }));
        std::vector<std::string> got;
        asio::co_spawn(
            ioc,
            [](tools::registry& r, std::vector<std::string>& out) -> asio::awaitable<void> {
                tools::tool_call_request one;
                one.id = "1";
                one.name = "echo";
                one.arguments = std::string(R"({"x":1})");
                auto res = co_await r.async_call(one);
                out.push_back(res.content);
                std::vector<tools::tool_call_request> batch{one, one};
                auto both = co_await r.async_dispatch(batch);
                for (auto& x : both.results) {
                    out.push_back(x.content);
                }
            }(reg, got),
            asio::detached
        );
        ioc.run();
        CHECK(got == std::vector<std::string>{R"({"x":1})", R"({"x":1})", R"({"x":1})"});
    }

    TEST_CASE("8 async calls of 100 ms run concurrently, results in emission order") {
        // setup
        asio::io_context ioc;
        auto p = std::make_shared<probe>();
        auto reg = make_registry(p);
        std::vector<tools::tool_call_request> calls;
        for (int i = 0; i < 8; ++i) {
            calls.push_back(
                sleep_call("c" + std::to_string(i), "sleep", 100, "s" + std::to_string(i))
            );
        }
        // run
        const auto t0 = clock_type::now();
        auto r = run_coro(ioc, reg.async_dispatch(calls, {}));
        const auto elapsed = clock_type::now() - t0;
        // check
        MESSAGE("8 x 100 ms async tools took " << ms(elapsed) << " ms");
        CHECK(ms(elapsed) < 400);
        CHECK(p->max_running == 8);
        REQUIRE(r.results.size() == 8);
        for (std::size_t i = 0; i < 8; ++i) {
            CHECK(r.results[i].tool_call_id == "c" + std::to_string(i));
            CHECK(r.results[i].name == "sleep");
            CHECK(r.results[i].content == "slept 100");
            CHECK_FALSE(r.results[i].is_error);
            CHECK(r.timings[i].ran);
            CHECK(ms(r.timings[i].duration()) >= 100);
        }
        CHECK(drain(ioc));
    }

    TEST_CASE("8 blocking calls of 100 ms run in parallel on the pool, off the io thread") {
        asio::io_context ioc;
        auto p = std::make_shared<probe>();
        auto reg = make_registry(p, 8);
        std::vector<tools::tool_call_request> calls;
        for (int i = 0; i < 8; ++i) {
            calls.push_back(
                sleep_call("c" + std::to_string(i), "block", 100, "b" + std::to_string(i))
            );
        }
        const auto t0 = clock_type::now();
        auto r = run_coro(ioc, reg.async_dispatch(calls, {}));
        const auto elapsed = clock_type::now() - t0;
        MESSAGE("8 x 100 ms blocking tools took " << ms(elapsed) << " ms");
        CHECK(ms(elapsed) < 400);
        CHECK(p->handler_thread.load() != std::this_thread::get_id());
        for (std::size_t i = 0; i < 8; ++i) {
            CHECK(r.results[i].tool_call_id == "c" + std::to_string(i));
            CHECK(r.results[i].content == "slept 100");
        }
        CHECK(drain(ioc));
    }

    TEST_CASE("results keep emission order while finishes follow completion order") {
        asio::io_context ioc;
        auto p = std::make_shared<probe>();
        auto reg = make_registry(p);
        std::vector<std::size_t> started;
        std::vector<std::size_t> finished;
        tools::dispatch_options opts;
        opts.observer.on_start = [&](std::size_t i) {
            started.push_back(i);
        };
        opts.observer.on_finish = [&](std::size_t i, const tools::tool_result& r) {
            finished.push_back(i);
            CHECK(r.tool_call_id == "id" + std::to_string(i));
        };
        std::vector<tools::tool_call_request> calls{
            sleep_call("id0", "sleep", 80),
            sleep_call("id1", "block", 60),
            sleep_call("id2", "sleep", 40),
            sleep_call("id3", "sleep", 5)};
        auto r = run_coro(ioc, reg.async_dispatch(calls, opts));
        REQUIRE(r.results.size() == 4);
        CHECK(r.results[0].content == "slept 80");
        CHECK(r.results[1].content == "slept 60");
        CHECK(r.results[2].content == "slept 40");
        CHECK(r.results[3].content == "slept 5");
        CHECK(started == std::vector<std::size_t>{0, 1, 2, 3});
        CHECK(finished == std::vector<std::size_t>{3, 2, 1, 0});
        CHECK(drain(ioc));
    }

    TEST_CASE("progress a handler reports reaches the observer on the io thread, never after") {
        asio::io_context ioc;
        tools::registry reg;
        auto keep = std::make_shared<std::function<void(tools::call_progress)>>();
        reg.add(tools::make_async_tool<json>(
            "steps", "Reports progress", json{{"type", "object"}}, &progress_steps
        ));
        reg.add(tools::make_blocking_tool<json>(
            "pool",
            "Reports from a pool thread",
            json{{"type", "object"}},
            [keep](const json&, const tools::call_context& ctx) {
                ctx.report_progress(tools::call_progress{7, std::nullopt, "from the pool"});
                *keep = ctx.report_progress; // reported again once the call is over
                return std::string("pooled");
            }
        ));
        struct seen {
            std::size_t index;
            tools::call_progress p;
            std::thread::id thread;
        };
        std::vector<seen> got;
        tools::dispatch_options opts;
        opts.observer.on_progress = [&got](std::size_t i, const tools::call_progress& p) {
            got.push_back({i, p, std::this_thread::get_id()});
        };
        std::vector<tools::tool_call_request> calls{{"c0", "steps", "{}"}, {"c1", "pool", "{}"}};
        auto r = run_coro(ioc, reg.async_dispatch(calls, opts));
        REQUIRE(r.results.size() == 2);
        CHECK(r.results[0].content == "stepped");
        CHECK(r.results[1].content == "pooled");
        REQUIRE(got.size() == 3);
        std::sort(got.begin(), got.end(), [](const seen& a, const seen& b) {
            return a.index != b.index ? a.index < b.index : a.p.progress < b.p.progress;
        });
        CHECK(got[0].index == 0);
        CHECK(got[0].p.progress == 1);
        CHECK(got[0].p.total == std::optional<double>(2));
        CHECK(got[0].p.message == "half way");
        CHECK(got[1].p.progress == 2);
        CHECK(got[2].index == 1);
        CHECK(got[2].p.message == "from the pool");
        for (const auto& g : got) {
            CHECK(g.thread == std::this_thread::get_id());
        }
        // A report after the call's result (the dispatch is over) reaches nobody.
        REQUIRE(*keep);
        (*keep)(tools::call_progress{8, std::nullopt, "late"});
        CHECK(drain(ioc));
        CHECK(got.size() == 3);

        // Without an observer, handlers get no reporter.
        const auto none = run_coro(ioc, reg.async_dispatch({{"c2", "steps", "{}"}}));
        CHECK(none.results[0].content == "nobody listens");
    }

    TEST_CASE("max_concurrency caps running calls and starts them in order") {
        asio::io_context ioc;
        auto p = std::make_shared<probe>();
        auto reg = make_registry(p);
        std::vector<std::size_t> started;
        tools::dispatch_options opts;
        opts.max_concurrency = 2;
        opts.observer.on_start = [&](std::size_t i) {
            started.push_back(i);
        };
        std::vector<tools::tool_call_request> calls;
        for (int i = 0; i < 6; ++i) {
            calls.push_back(sleep_call(
                "c" + std::to_string(i), i % 2 == 0 ? "sleep" : "block", 30, "x" + std::to_string(i)
            ));
        }
        const auto t0 = clock_type::now();
        auto r = run_coro(ioc, reg.async_dispatch(calls, opts));
        const auto elapsed = clock_type::now() - t0;
        CHECK(p->max_running == 2);
        CHECK(ms(elapsed) >= 90); // three waves of 30 ms
        CHECK(started == std::vector<std::size_t>{0, 1, 2, 3, 4, 5});
        for (const auto& res : r.results) {
            CHECK(res.content == "slept 30");
        }
        CHECK(drain(ioc));
    }

    TEST_CASE("a sequential tool is a barrier") {
        asio::io_context ioc;
        auto p = std::make_shared<probe>();
        auto reg = make_registry(p);
        tools::tool_options seq;
        seq.sequential = true;
        reg.add(tools::make_async_tool<sleep_args>(
            "write", "Sequential", sleep_schema, async_sleeper{"write", p}, seq
        ));
        std::vector<tools::tool_call_request> calls{
            sleep_call("1", "sleep", 40, "a"),
            sleep_call("2", "block", 40, "b"),
            sleep_call("3", "write", 20, "S"),
            sleep_call("4", "sleep", 20, "c"),
            sleep_call("5", "block", 20, "d")};
        auto r = run_coro(ioc, reg.async_dispatch(calls, {}));
        for (const auto& res : r.results) {
            CHECK_FALSE(res.is_error);
        }
        // a and b overlap; S waits for both; c and d wait for S and then overlap.
        CHECK(p->index_of("start:b") < p->index_of("end:a"));
        CHECK(p->index_of("start:S") > p->index_of("end:a"));
        CHECK(p->index_of("start:S") > p->index_of("end:b"));
        CHECK(p->index_of("start:c") > p->index_of("end:S"));
        CHECK(p->index_of("start:d") > p->index_of("end:S"));
        CHECK(p->index_of("start:d") < p->index_of("end:c"));
        CHECK(p->max_running == 2);
        CHECK(drain(ioc));
    }

    TEST_CASE("per-call timeout: async handler is cancelled through its slot") {
        asio::io_context ioc;
        auto p = std::make_shared<probe>();
        auto reg = make_registry(p);
        tools::tool_options quick;
        quick.timeout = 50ms;
        reg.add(tools::make_async_tool<sleep_args>(
            "slow", "Times out", sleep_schema, async_sleeper{"slow", p}, quick
        ));
        tools::dispatch_options opts;
        opts.call_timeout = 2s; // the tool's own timeout wins
        const auto t0 = clock_type::now();
        auto r = run_coro(
            ioc,
            reg.async_dispatch({sleep_call("t", "slow", 5000), sleep_call("f", "sleep", 10)}, opts)
        );
        const auto elapsed = clock_type::now() - t0;
        CHECK(ms(elapsed) < 1000);
        CHECK(r.results[0].status == tools::result_status::timeout);
        CHECK(r.results[0].is_error);
        CHECK(r.results[0].content == "tool \"slow\" timed out after 50 ms and was abandoned");
        CHECK(r.results[1].status == tools::result_status::ok);
        CHECK(drain(ioc));
        CHECK(p->slot_fired == 1);
    }

    TEST_CASE("per-call timeout: blocking handler sees its stop_token") {
        asio::io_context ioc;
        auto p = std::make_shared<probe>();
        auto reg = make_registry(p);
        tools::dispatch_options opts;
        opts.call_timeout = 50ms;
        const auto t0 = clock_type::now();
        auto r = run_coro(ioc, reg.async_dispatch({sleep_call("t", "block", 5000)}, opts));
        CHECK(ms(clock_type::now() - t0) < 1000);
        CHECK(r.results[0].status == tools::result_status::timeout);
        CHECK(r.results[0].content.find("timed out after 50 ms") != std::string::npos);
        CHECK(drain(ioc));
        CHECK(p->stop_seen == 1);
    }

    TEST_CASE("a blocking handler that ignores its stop_token does not delay the dispatch") {
        asio::io_context ioc;
        auto p = std::make_shared<probe>();
        auto reg = make_registry(p);
        tools::tool_options opt;
        opt.timeout = 30ms;
        reg.add(tools::make_blocking_tool<sleep_args>(
            "stubborn", "Ignores stop", sleep_schema, blocking_sleeper{p, false}, opt
        ));
        const auto t0 = clock_type::now();
        auto r = run_coro(ioc, reg.async_dispatch({sleep_call("s", "stubborn", 300)}, {}));
        const auto elapsed = clock_type::now() - t0;
        CHECK(ms(elapsed) < 250);
        CHECK(r.results[0].status == tools::result_status::timeout);
        CHECK(p->stragglers_done == 0);
        // The thread finishes later; its result is dropped and the io_context runs until then.
        CHECK(drain(ioc));
        CHECK(p->stragglers_done == 1);
    }

    TEST_CASE("batch timeout: running calls time out, waiting calls never start") {
        asio::io_context ioc;
        auto p = std::make_shared<probe>();
        auto reg = make_registry(p);
        tools::dispatch_options opts;
        opts.max_concurrency = 1;
        opts.batch_timeout = 80ms;
        std::vector<std::size_t> finished;
        opts.observer.on_finish = [&](std::size_t i, const tools::tool_result&) {
            finished.push_back(i);
        };
        const auto t0 = clock_type::now();
        auto r = run_coro(
            ioc,
            reg.async_dispatch(
                {sleep_call("a", "sleep", 10),
                 sleep_call("b", "sleep", 5000),
                 sleep_call("c", "block", 10)},
                opts
            )
        );
        CHECK(ms(clock_type::now() - t0) < 1000);
        CHECK(r.batch_timed_out);
        CHECK_FALSE(r.cancelled);
        CHECK(r.results[0].status == tools::result_status::ok);
        CHECK(r.results[1].status == tools::result_status::timeout);
        CHECK(
            r.results[1].content ==
            "tool \"sleep\" did not finish before the batch deadline (80 ms); its result is lost"
        );
        CHECK(r.results[2].status == tools::result_status::timeout);
        CHECK(
            r.results[2].content.find("did not start before the batch deadline") !=
            std::string::npos
        );
        CHECK(r.timings[1].ran);
        CHECK_FALSE(r.timings[2].ran);
        CHECK(finished == std::vector<std::size_t>{0, 1, 2});
        CHECK(drain(ioc));
        CHECK(p->slot_fired == 1);
    }

    TEST_CASE("cancelling the dispatch reaches every handler and still returns results") {
        asio::io_context ioc;
        auto p = std::make_shared<probe>();
        auto reg = make_registry(p);
        reg.add(tools::make_tool<add_args>("add", "Adds", json::object(), [](add_args x) {
            return std::to_string(x.a + x.b);
        }));
        tools::dispatch_options opts;
        opts.max_concurrency = 2; // the inline add finishes at once, so 2 and 3 run, 4 waits
        const auto t0 = clock_type::now();
        auto r = run_coro(
            ioc,
            reg.async_dispatch(
                {call("1", "add", {{"a", 1}, {"b", 2}}),
                 sleep_call("2", "sleep", 5000),
                 sleep_call("3", "block", 5000),
                 sleep_call("4", "sleep", 10)},
                opts
            ),
            50ms
        );
        CHECK(ms(clock_type::now() - t0) < 1000);
        CHECK(r.cancelled);
        CHECK(r.results[0].content == "3");
        CHECK(r.results[1].status == tools::result_status::cancelled);
        CHECK(r.results[1].content == "tool \"sleep\" was cancelled before it finished");
        CHECK(r.results[2].status == tools::result_status::cancelled);
        CHECK(r.results[3].status == tools::result_status::cancelled);
        CHECK(r.results[3].content == "tool \"sleep\" was cancelled before it started");
        for (std::size_t i = 1; i < 4; ++i) {
            CHECK(r.results[i].is_error);
            CHECK(r.results[i].tool_call_id == std::to_string(i + 1));
        }
        CHECK(drain(ioc));
        CHECK(p->slot_fired == 1);
        CHECK(p->stop_seen == 1);
    }

    TEST_CASE("every failure kind becomes a result the model can read") {
        asio::io_context ioc;
        tools::registry reg;
        const json add_schema = json::parse(R"({
        "type": "object",
        "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}},
        "required": ["a", "b"], "additionalProperties": false})");
        reg.add(tools::make_tool<add_args>("add", "Adds", add_schema, [](add_args x) {
            return std::to_string(x.a + x.b);
        }));
        // The schema admits anything, so the typed conversion is what fails.
        reg.add(tools::make_tool<add_args>("loose_add", "Adds", json::object(), [](add_args x) {
            return std::to_string(x.a + x.b);
        }));
        reg.add(tools::make_tool<json>(
            "explode",
            "Throws",
            json::object(),
            [](const json&) -> std::string { throw std::runtime_error("disk on fire"); }
        ));
        reg.add(
            tools::make_async_tool<json>("async_explode", "Throws", json::object(), &async_throw)
        );
        reg.add(tools::make_blocking_tool<json>(
            "blocking_explode",
            "Throws",
            json::object(),
            [](const json&) -> std::string {
                throw 42; // not even a std::exception
            }
        ));
        reg.add(tools::make_tool<json>(
            "refuse",
            "Reports failure",
            json::object(),
            [](const json&) {
                return tools::tool_output{"permission denied: /etc/shadow", true};
            }
        ));
        std::vector<tools::tool_call_request> calls{
            call("0", "nope", json::object()),
            {"1", "add", "{\"a\": 1,"},
            call("2", "add", {{"a", "x"}, {"b", 1}, {"c", 0}}),
            call("3", "add", {{"a", 1}}),
            call("4", "loose_add", {{"a", 1}}),
            call("5", "explode", json::object()),
            call("6", "async_explode", json::object()),
            call("7", "blocking_explode", json::object()),
            call("8", "refuse", json::object()),
            {"9", "add", ""},
            call("10", "add", {{"a", 2}, {"b", 3}})};
        int starts = 0;
        int finishes = 0;
        tools::dispatch_options opts;
        opts.observer.on_start = [&](std::size_t) {
            ++starts;
        };
        opts.observer.on_finish = [&](std::size_t, const tools::tool_result&) {
            ++finishes;
        };
        auto r = run_coro(ioc, reg.async_dispatch(calls, opts));
        REQUIRE(r.results.size() == calls.size());
        CHECK(starts == 11);
        CHECK(finishes == 11);
        const auto& res = r.results;
        using st = tools::result_status;

        CHECK(res[0].status == st::unknown_tool);
        CHECK(
            res[0].content == "unknown tool \"nope\". Available tools: add, loose_add, explode, "
                              "async_explode, blocking_explode, refuse."
        );
        CHECK(res[1].status == st::invalid_arguments);
        CHECK(
            res[1].content.find(
                "invalid arguments for tool \"add\": the arguments are not valid JSON"
            ) == 0
        );
        CHECK(res[2].status == st::invalid_arguments);
        CHECK(
            res[2].content == "invalid arguments for tool \"add\": the arguments do not match the "
                              "parameters schema:\n"
                              "- /a: expected integer, got string\n"
                              "- (root): unexpected property \"c\" (allowed: a, b)"
        );
        CHECK(
            res[3].content.find("- (root): missing required property \"b\"") != std::string::npos
        );
        CHECK(res[4].status == st::invalid_arguments);
        CHECK(res[4].content.find("arguments do not fit the expected shape") != std::string::npos);
        CHECK(res[5].status == st::handler_exception);
        CHECK(res[5].content == "tool \"explode\" failed: disk on fire");
        CHECK(res[6].status == st::handler_exception);
        CHECK(res[6].content == "tool \"async_explode\" failed: async disk on fire");
        CHECK(res[7].status == st::handler_exception);
        CHECK(res[7].content == "tool \"blocking_explode\" failed with an unknown exception");
        CHECK(res[8].status == st::tool_error);
        CHECK(res[8].content == "permission denied: /etc/shadow");
        CHECK(res[9].status == st::invalid_arguments); // "" reads as {} and misses a and b
        CHECK(res[9].content.find("missing required property \"a\"") != std::string::npos);
        CHECK(res[10].status == st::ok);
        CHECK(res[10].content == "5");
        for (std::size_t i = 0; i < res.size(); ++i) {
            CHECK(res[i].tool_call_id == calls[i].id);
            CHECK(res[i].name == calls[i].name);
            CHECK(res[i].is_error == (i != 10));
        }
        CHECK(drain(ioc));
    }

    TEST_CASE("output is capped per tool or per dispatch with a visible marker") {
        asio::io_context ioc;
        tools::registry reg;
        tools::tool_options capped;
        capped.output_cap = 100;
        reg.add(tools::make_tool<json>(
            "big",
            "Big output",
            json::object(),
            [](const json&) { return std::string(1000, 'x'); },
            capped
        ));
        reg.add(tools::make_tool<json>("huge", "Huge output", json::object(), [](const json&) {
            return std::string(5000, 'y');
        }));
        reg.add(tools::make_tool<json>("small", "Small output", json::object(), [](const json&) {
            return std::string("ok");
        }));
        tools::dispatch_options opts;
        opts.output_cap = 300;
        auto r = run_coro(
            ioc,
            reg.async_dispatch(
                {call("1", "big", json::object()),
                 call("2", "huge", json::object()),
                 call("3", "small", json::object())},
                opts
            )
        );
        CHECK(r.results[0].truncated);
        CHECK(
            r.results[0].content ==
            std::string(100, 'x') + "\n[output truncated: 100 of 1000 bytes shown]"
        );
        CHECK(r.results[1].truncated);
        CHECK(
            r.results[1].content ==
            std::string(300, 'y') + "\n[output truncated: 300 of 5000 bytes shown]"
        );
        CHECK_FALSE(r.results[2].truncated);
        CHECK(r.results[2].content == "ok");
        CHECK(drain(ioc));
    }

    TEST_CASE("async_call and an empty batch") {
        asio::io_context ioc;
        auto p = std::make_shared<probe>();
        auto reg = make_registry(p);
        auto one = run_coro(ioc, reg.async_call(sleep_call("x", "sleep", 1)));
        CHECK(one.tool_call_id == "x");
        CHECK(one.content == "slept 1");
        auto none = run_coro(ioc, reg.async_dispatch({}, {}));
        CHECK(none.results.empty());
        CHECK(drain(ioc));
    }

    TEST_CASE("a number overflow in the arguments is a result, and the call in flight finishes") {
        // nlohmann throws out_of_range (not parse_error) for 1e400; it used to escape the
        // dispatch and end the run while another call was still running.
        asio::io_context ioc;
        auto p = std::make_shared<probe>();
        auto reg = make_registry(p);
        std::vector<tools::tool_call_request> calls{
            sleep_call("0", "sleep", 50, "in-flight"),
            {"1", "sleep", R"({"ms": 1e400})"},
            {"2", "block", R"({"ms": 1, "label": "x", "deep": [[-1e400]]})"},
            sleep_call("3", "block", 1, "after")};
        int finishes = 0;
        tools::dispatch_options opts;
        opts.observer.on_finish = [&](std::size_t, const tools::tool_result&) {
            ++finishes;
        };
        auto r = run_coro(ioc, reg.async_dispatch(calls, opts));
        REQUIRE(r.results.size() == 4);
        CHECK(finishes == 4);
        CHECK(r.results[0].status == tools::result_status::ok);
        CHECK(r.results[0].content == "slept 50");
        for (std::size_t i : {1U, 2U}) {
            INFO(r.results[i].content);
            CHECK(r.results[i].status == tools::result_status::invalid_arguments);
            CHECK(r.results[i].tool_call_id == calls[i].id);
            CHECK(r.results[i].content.find("invalid arguments for tool ") == 0);
            CHECK(r.results[i].content.find("1e400") != std::string::npos);
        }
        CHECK(r.results[3].content == "slept 1");
        CHECK(drain(ioc));
    }

    TEST_CASE("argument text with invalid UTF-8 gives a result that is valid UTF-8") {
        // The parse error quotes the bytes it read; the result must still be sendable as JSON.
        asio::io_context ioc;
        auto p = std::make_shared<probe>();
        auto reg = make_registry(p);
        auto r = run_coro(ioc, reg.async_call({"1", "sleep", "{\"ms\": \xff\xfe}"}));
        CHECK(r.status == tools::result_status::invalid_arguments);
        CHECK_NOTHROW((void)json(r.content).dump());
        r = run_coro(
            ioc,
            reg.async_call(
                {"2",
                 "sl\xff"
                 "ep",
                 "{}"}
            )
        );
        CHECK(r.status == tools::result_status::unknown_tool);
        CHECK_NOTHROW((void)json(r.content).dump());
        CHECK(drain(ioc));
    }

    TEST_CASE("a batch of 100 calls runs at most the default cap at once and all complete") {
        asio::io_context ioc;
        auto p = std::make_shared<probe>();
        auto reg = make_registry(p);
        std::vector<tools::tool_call_request> calls;
        for (int i = 0; i < 100; ++i) {
            calls.push_back(sleep_call("c" + std::to_string(i), "sleep", 5, "s" + std::to_string(i))
            );
        }
        auto r = run_coro(ioc, reg.async_dispatch(calls, {}));
        REQUIRE(r.results.size() == 100);
        for (const auto& res : r.results) {
            CHECK(res.content == "slept 5");
        }
        CHECK(p->max_running > 1);
        CHECK(p->max_running <= static_cast<int>(tools::default_max_concurrent_calls));
        CHECK(tools::default_max_concurrent_calls == 16);
        CHECK(drain(ioc));
    }

    TEST_CASE("the registry's concurrency cap is configurable and a dispatch may override it") {
        asio::io_context ioc;
        auto p = std::make_shared<probe>();
        tools::registry_params params;
        params.max_concurrent_calls = 3;
        tools::registry reg(params);
        reg.add(tools::make_async_tool<sleep_args>(
            "sleep", "Sleeps asynchronously", sleep_schema, async_sleeper{"sleep", p}
        ));
        std::vector<tools::tool_call_request> calls;
        for (int i = 0; i < 20; ++i) {
            calls.push_back(sleep_call("c" + std::to_string(i), "sleep", 5, "s" + std::to_string(i))
            );
        }
        auto r = run_coro(ioc, reg.async_dispatch(calls, {}));
        CHECK(r.results.size() == 20);
        CHECK(p->max_running == 3);

        p->max_running = 0;
        tools::dispatch_options wide;
        wide.max_concurrency = 20;
        r = run_coro(ioc, reg.async_dispatch(calls, wide));
        CHECK(r.results.back().content == "slept 5");
        CHECK(p->max_running == 20);

        p->max_running = 0;
        params.max_concurrent_calls = 0; // no cap
        tools::registry uncapped(params);
        uncapped.add(tools::make_async_tool<sleep_args>(
            "sleep", "Sleeps asynchronously", sleep_schema, async_sleeper{"sleep", p}
        ));
        r = run_coro(ioc, uncapped.async_dispatch(calls, {}));
        CHECK(p->max_running == 20);
        CHECK(drain(ioc));
    }

    TEST_CASE("whole numbers reach handlers as integers, so typed conversions stay defined") {
        // A handler's get<int>() of a double is undefined behaviour when the double is out of
        // range; of an integer it is a defined conversion.
        asio::io_context ioc;
        tools::registry reg;
        reg.add(tools::make_tool<json>(
            "kinds",
            "Reports argument kinds",
            json::object(),
            [](const json& a) {
                std::string out;
                for (const auto& [k, v] : a.items()) {
                    out += k + "=" + (v.is_number_integer() ? "int" : v.type_name()) + " ";
                }
                return out;
            }
        ));
        auto r = run_coro(
            ioc,
            reg.async_call(
                {"1", "kinds", R"({"a": 1e3, "b": -2.0, "c": 1.5, "d": 1e30, "e": [[4.0]]})"}
            )
        );
        CHECK(r.content == "a=int b=int c=number d=number e=array ");
        reg.add(tools::make_tool<json>("deep", "Nested kinds", json::object(), [](const json& a) {
            return std::string(a.at("e").at(0).at(0).is_number_integer() ? "int " : "float ") +
                   (a.at("f").at("g").is_number_unsigned() ? "uint" : "float");
        }));
        auto nested =
            run_coro(ioc, reg.async_call({"2", "deep", R"({"e": [[4.0]], "f": {"g": 1.8e19}})"}));
        CHECK(nested.content == "int uint");
        CHECK(drain(ioc));
    }

} // TEST_SUITE
