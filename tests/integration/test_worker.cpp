// wafer::worker against the throwaway PostgreSQL server (ctest: the postgres_cluster fixture):
// submitted runs start and finish, two workers share a queue without running anything twice,
// a drain gives running runs back and another worker finishes them without repeating a call,
// a claim taken over is noticed and its run abandoned, failures and pauses are recorded. The
// outcome mapping itself is tested without I/O (unit/worker).
#include <wafer/agent.hpp>
#include <wafer/child_queue.hpp>
#include <wafer/fan_out.hpp>
#include <wafer/scripted_model.hpp>
#include <wafer/store/error.hpp>
#include <wafer/store/postgres_queue.hpp>
#include <wafer/store/postgres_store.hpp>
#include <wafer/tools/registry.hpp>
#include <wafer/worker.hpp>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

#include <chrono>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "pg_env.hpp"
#include "run_coro.hpp"
#include "worker/outcome.hpp"

namespace {

namespace asio = boost::asio;
namespace store = wafer::store;
using namespace std::chrono_literals;
using nlohmann::json;
using wafer::testing::run_coro;
using turn = wafer::scripted_model::turn;

std::size_t tool_results(const wafer::api::chat_request& req) {
    std::size_t n = 0;
    for (const auto& m : req.messages) {
        n += m.role == wafer::api::role::tool ? 1U : 0U;
    }
    return n;
}

/// What the world saw: each call's runs by idempotency key, and calls that were cut short.
struct world {
    std::map<std::string, int> runs;
    int cancelled = 0;
};

/// An agent whose model calls "work" once and then answers; "work" takes `work_time`
/// (cancellable) and counts its runs.
struct work_agent {
    std::shared_ptr<world> seen = std::make_shared<world>();
    std::shared_ptr<wafer::scripted_model> model =
        std::make_shared<wafer::scripted_model>("zai-glm-4.7");
    std::optional<wafer::agent> runner;

    explicit work_agent(std::chrono::milliseconds work_time, bool needs_approval = false) {
        model->set_responder([](const wafer::api::chat_request& req, std::size_t) {
            if (tool_results(req) == 0) {
                return turn::calls({{"w1", "work", "{}"}});
            }
            return turn::text("done");
        });
        wafer::tools::tool_options o;
        o.needs_approval = needs_approval;
        auto seen_by_tool = seen;
        auto reg = std::make_shared<wafer::tools::registry>();
        reg->add(wafer::tools::make_async_tool<json>(
            "work",
            "works",
            json{{"type", "object"}},
            [seen_by_tool,
             work_time](json, wafer::tools::call_context ctx) -> asio::awaitable<std::string> {
                ++seen_by_tool->runs[ctx.idempotency_key];
                asio::steady_timer t(co_await asio::this_coro::executor);
                t.expires_after(work_time);
                try {
                    co_await t.async_wait(asio::use_awaitable);
                } catch (const boost::system::system_error&) {
                    ++seen_by_tool->cancelled;
                    throw;
                }
                co_return std::string("worked");
            },
            o
        ));
        wafer::agent_config cfg;
        cfg.name = "worker-test";
        cfg.model = model;
        cfg.tools = reg;
        runner.emplace(std::move(cfg));
    }
};

struct pg_queue {
    wafer::testing::pg_thread pg;
    std::string schema = wafer::testing::unique_schema();
    std::shared_ptr<store::postgres_store> st;
    std::shared_ptr<store::postgres_queue> queue;

    pg_queue() {
        st = wafer::testing::open_postgres(pg.io, schema);
        store::postgres_queue_options qo;
        qo.poll_interval = 200ms;
        queue = std::make_shared<store::postgres_queue>(*st, qo);
    }
    ~pg_queue() {
        queue.reset(); // before the store
    }
};

void submit(asio::io_context& ioc, store::run_queue& q, const std::string& id, int attempts = 3) {
    wafer::queued_run r;
    r.run_id = id;
    r.input = "task " + id;
    r.max_attempts = attempts;
    r.metadata = {{"note", id}};
    run_coro(ioc, q.async_submit(wafer::make_submission(std::move(r))));
}

/// Spawns the worker's run on `ioc`; the returned flag is set when it returned.
std::shared_ptr<std::optional<wafer::worker_stats>> start(asio::io_context& ioc, wafer::worker& w) {
    auto out = std::make_shared<std::optional<wafer::worker_stats>>();
    asio::co_spawn(ioc, w.async_run(), [out](std::exception_ptr e, wafer::worker_stats s) {
        // Reported, not thrown: a throw out of ioc.run() would unwind the test while the other
        // worker's claim is still in flight on the PostgreSQL thread, which then completes
        // into a destroyed io_context (ASan: heap-use-after-free) and hides this message.
        if (e) {
            try {
                std::rethrow_exception(e);
            } catch (const std::exception& x) {
                FAIL_CHECK("the worker threw: " << x.what());
            } catch (...) {
                FAIL_CHECK("the worker threw");
            }
        }
        *out = s;
    });
    return out;
}

/// Runs `ioc` until `done()` or `limit`.
bool run_until(
    asio::io_context& ioc, const std::function<bool()>& done, std::chrono::seconds limit = 30s
) {
    const auto end = std::chrono::steady_clock::now() + limit;
    while (!done() && std::chrono::steady_clock::now() < end) {
        if (ioc.stopped()) {
            ioc.restart();
        }
        ioc.run_one_for(50ms);
    }
    return done();
}

store::queue_entry entry(asio::io_context& ioc, store::run_queue& q, const std::string& id) {
    auto e = run_coro(ioc, q.async_find(id));
    REQUIRE(e);
    return *e;
}

/// A pipeline: "planner" calls "helper" as a tool ("delegate"), which calls "work" once; the
/// planner answers with what the helper said.
struct pipeline_agents {
    work_agent helper_side;
    std::shared_ptr<wafer::scripted_model> planner_model =
        std::make_shared<wafer::scripted_model>("zai-glm-4.7");
    std::optional<wafer::agent> planner;
    std::optional<wafer::agent> helper;

    explicit pipeline_agents(std::chrono::milliseconds work_time) : helper_side(work_time) {
        wafer::agent_config hc = helper_side.runner->config();
        hc.name = "helper";
        helper.emplace(std::move(hc));
        planner_model->set_responder([](const wafer::api::chat_request& req, std::size_t) {
            for (const auto& m : req.messages) {
                if (m.role == wafer::api::role::tool) {
                    return turn::text("planner got: " + m.content.value_or(""));
                }
            }
            return turn::calls({{"d1", "delegate", R"({"input":"sub"})"}});
        });
        auto reg = std::make_shared<wafer::tools::registry>();
        reg->add(helper->as_tool("delegate", "hands a task to the helper"));
        wafer::agent_config pc;
        pc.name = "planner";
        pc.model = planner_model;
        pc.tools = reg;
        planner.emplace(std::move(pc));
    }

    wafer::run_driver driver() const { return wafer::drive_with({*planner, *helper}); }
};

void submit_to(
    asio::io_context& ioc, store::run_queue& q, const std::string& id, const std::string& agent
) {
    wafer::queued_run r;
    r.run_id = id;
    r.input = "plan " + id;
    r.agent = agent;
    run_coro(ioc, q.async_submit(wafer::make_submission(std::move(r))));
}

/// A worker of concurrency 1 that spreads its runs' children over the queue and keeps its
/// reports in `reports`.
wafer::worker_options spreading_worker(std::vector<wafer::worker_report>& reports) {
    wafer::worker_options o;
    o.concurrency = 1;
    o.lease_ttl = 3s;
    o.claim_wait = 200ms;
    o.spread_children = true;
    o.on_report = [&reports](const wafer::worker_report& r) {
        reports.push_back(r);
    };
    return o;
}
} // namespace

TEST_SUITE("unit/worker") {
    TEST_CASE("worker outcome: what a run's end records in the queue") {
        using wafer::worker_outcome;
        using wafer::detail::decide_outcome;
        using wafer::detail::run_end;
        auto ended = [](wafer::stop_reason why) {
            run_end e;
            e.result.emplace();
            e.result->stop_reason = why;
            return e;
        };
        CHECK(
            decide_outcome(ended(wafer::stop_reason::completed)).outcome ==
            worker_outcome::completed
        );
        CHECK(
            decide_outcome(ended(wafer::stop_reason::max_turns)).outcome ==
            worker_outcome::completed
        );
        CHECK(
            decide_outcome(ended(wafer::stop_reason::awaiting_approval)).outcome ==
            worker_outcome::paused
        );
        CHECK(
            decide_outcome(ended(wafer::stop_reason::cancelled)).outcome == worker_outcome::released
        );
        run_end failed = ended(wafer::stop_reason::error);
        failed.result->error = wafer::run_error{
            make_error_code(wafer::errc::server_error), wafer::diagnostics{.detail = "HTTP 500"}};
        const auto f = decide_outcome(failed);
        CHECK(f.outcome == worker_outcome::failed);
        CHECK(f.reason.find("HTTP 500") != std::string::npos);
        // A lost claim wins over whatever the run did after it.
        run_end lost = ended(wafer::stop_reason::completed);
        lost.claim_lost = true;
        CHECK(decide_outcome(lost).outcome == worker_outcome::lost);
        // Thrown: another owner's lease is a loss; an unreachable store or a drain gives the
        // run back; anything else fails it with the reason.
        run_end held;
        held.thrown = store::errc::lease_held;
        held.thrown_text = "run r is being driven by another process";
        CHECK(decide_outcome(held).outcome == worker_outcome::lost);
        run_end down;
        down.thrown = store::errc::unavailable;
        CHECK(decide_outcome(down).outcome == worker_outcome::released);
        run_end bad;
        bad.thrown = store::errc::corrupt;
        bad.thrown_text = "run r: its setup does not parse";
        const auto b = decide_outcome(bad);
        CHECK(b.outcome == worker_outcome::failed);
        CHECK(b.reason == "run r: its setup does not parse");
    }

    TEST_CASE("make_submission: the setup async_run writes, with the metadata; bad input "
              "refused") {
        wafer::queued_run r;
        r.run_id = "q1";
        r.input = "do it";
        r.metadata = {{"agent_flags", {{"model", "m"}}}};
        r.scope = "/w";
        const auto sub = wafer::make_submission(r);
        CHECK(sub.id == "q1");
        CHECK(sub.task == "do it");
        CHECK(sub.scope == "/w");
        const json setup = json::parse(sub.setup);
        CHECK(setup.at("version") == 1);
        CHECK(setup.at("run_id") == "q1");
        CHECK(setup.at("input") == "do it");
        CHECK(setup.at("metadata").at("agent_flags").at("model") == "m");
        r.run_id.clear();
        CHECK_THROWS_AS(wafer::make_submission(r), std::invalid_argument);
        r.run_id = "x";
        r.max_attempts = 0;
        CHECK_THROWS_AS(wafer::make_submission(r), std::invalid_argument);
    }

    TEST_CASE("drive_with(agents): an empty list and two agents of one name are refused") {
        CHECK_THROWS_AS(wafer::drive_with(std::vector<wafer::agent>{}), std::invalid_argument);
        work_agent a(1ms);
        CHECK_THROWS_AS(wafer::drive_with({*a.runner, *a.runner}), std::invalid_argument);
        CHECK(wafer::drive_with({*a.runner}));
    }
}

TEST_SUITE("postgres/worker") {
    TEST_CASE("postgres/worker: submitted runs start, finish and are done in the queue; each "
              "tool call ran once; a drain ends an idle worker") {
        if (!wafer::testing::postgres_available()) {
            return;
        }
        pg_queue pq;
        asio::io_context ioc;
        work_agent a(20ms);
        for (int i = 0; i < 12; ++i) {
            submit(ioc, *pq.queue, "r" + std::to_string(i));
        }
        std::vector<wafer::worker_report> reports;
        wafer::worker_options o;
        o.concurrency = 4;
        o.lease_ttl = 3s;
        o.claim_wait = 200ms;
        o.on_report = [&](const wafer::worker_report& r) {
            reports.push_back(r);
        };
        wafer::worker w(pq.st, pq.queue, wafer::drive_with(*a.runner), o);
        auto stats = start(ioc, w);
        REQUIRE(run_until(ioc, [&] { return reports.size() == 12; }));
        w.drain();
        REQUIRE(run_until(
            ioc, [&] { return stats->has_value(); }, 5s
        ));
        CHECK((*stats)->claimed == 12);
        CHECK((*stats)->completed == 12);
        for (const auto& r : reports) {
            CHECK(r.outcome == wafer::worker_outcome::completed);
            CHECK(r.recorded);
            REQUIRE(r.result);
            CHECK(r.result->final_text == "done");
            CHECK(entry(ioc, *pq.queue, r.run_id).state == store::queue_state::done);
            auto row = run_coro(ioc, pq.st->async_find_run(r.run_id));
            REQUIRE(row);
            CHECK(row->status == store::run_status::finished);
            CHECK(row->stop_reason == "completed");
            CHECK(row->task == "task " + r.run_id);
            CHECK(wafer::run_metadata(*row).at("note") == r.run_id);
        }
        CHECK(a.seen->runs.size() == 12);
        for (const auto& [key, n] : a.seen->runs) {
            CHECK_MESSAGE(n == 1, key);
        }
    }

    TEST_CASE("postgres/worker: two workers share the queue; no run and no call twice") {
        if (!wafer::testing::postgres_available()) {
            return;
        }
        pg_queue pq;
        asio::io_context ioc;
        work_agent a(30ms);
        for (int i = 0; i < 20; ++i) {
            submit(ioc, *pq.queue, "s" + std::to_string(i));
        }
        std::map<std::string, int> finished;
        std::map<std::string, int> by_worker;
        wafer::worker_options o;
        o.concurrency = 2;
        o.lease_ttl = 3s;
        o.claim_wait = 200ms;
        o.on_report = [&](const wafer::worker_report& r) {
            ++finished[r.run_id];
            ++by_worker[r.owner.substr(0, r.owner.find('#'))];
        };
        o.name = "w1";
        wafer::worker w1(pq.st, pq.queue, wafer::drive_with(*a.runner), o);
        o.name = "w2";
        wafer::worker w2(pq.st, pq.queue, wafer::drive_with(*a.runner), o);
        auto s1 = start(ioc, w1);
        auto s2 = start(ioc, w2);
        REQUIRE(run_until(ioc, [&] { return finished.size() == 20; }));
        w1.drain();
        w2.drain();
        REQUIRE(run_until(
            ioc, [&] { return s1->has_value() && s2->has_value(); }, 5s
        ));
        for (const auto& [id, n] : finished) {
            CHECK_MESSAGE(n == 1, id);
        }
        CHECK(by_worker["w1"] > 0);
        CHECK(by_worker["w2"] > 0);
        CHECK(a.seen->runs.size() == 20);
        for (const auto& [key, n] : a.seen->runs) {
            CHECK_MESSAGE(n == 1, key);
        }
    }

    TEST_CASE("postgres/worker: a drain past its timeout gives a running run back; another "
              "worker finishes it without running the cut-short call again") {
        if (!wafer::testing::postgres_available()) {
            return;
        }
        pg_queue pq;
        asio::io_context ioc;
        work_agent a(30s); // never finishes on its own
        submit(ioc, *pq.queue, "d1");
        std::vector<wafer::worker_report> reports;
        wafer::worker_options o;
        o.lease_ttl = 3s;
        o.claim_wait = 200ms;
        o.drain_timeout = 100ms;
        o.on_report = [&](const wafer::worker_report& r) {
            reports.push_back(r);
        };
        o.name = "first";
        auto w1 = std::make_unique<wafer::worker>(pq.st, pq.queue, wafer::drive_with(*a.runner), o);
        auto s1 = start(ioc, *w1);
        REQUIRE(run_until(ioc, [&] { return a.seen->runs.size() == 1; }));
        w1->drain();
        REQUIRE(run_until(
            ioc, [&] { return s1->has_value(); }, 10s
        ));
        REQUIRE(reports.size() == 1);
        CHECK(reports[0].outcome == wafer::worker_outcome::released);
        CHECK(reports[0].recorded);
        CHECK(a.seen->cancelled == 1);
        const auto e = entry(ioc, *pq.queue, "d1");
        CHECK(e.state == store::queue_state::queued);
        CHECK(e.attempts == 0); // a release is not an attempt

        // The next worker resumes it: the cut-short call is in doubt, marked unknown (never run
        // again), and the run finishes.
        o.name = "second";
        wafer::worker w2(pq.st, pq.queue, wafer::drive_with(*a.runner), o);
        auto s2 = start(ioc, w2);
        REQUIRE(run_until(ioc, [&] { return reports.size() == 2; }));
        w2.drain();
        REQUIRE(run_until(
            ioc, [&] { return s2->has_value(); }, 5s
        ));
        CHECK(reports[1].outcome == wafer::worker_outcome::completed);
        REQUIRE(reports[1].result);
        CHECK(reports[1].result->stop_reason == wafer::stop_reason::completed);
        CHECK(a.seen->runs.size() == 1);
        CHECK(a.seen->runs.begin()->second == 1);
        CHECK(entry(ioc, *pq.queue, "d1").state == store::queue_state::done);
    }

    TEST_CASE("postgres/worker: a claim another worker took over is noticed at the next "
              "heartbeat; the run is abandoned and its writes refused") {
        if (!wafer::testing::postgres_available()) {
            return;
        }
        pg_queue pq;
        asio::io_context ioc;
        work_agent a(30s);
        submit(ioc, *pq.queue, "t1");
        std::vector<wafer::worker_report> reports;
        wafer::worker_options o;
        o.lease_ttl = 900ms; // heartbeats every 300 ms
        o.claim_wait = 200ms;
        o.on_report = [&](const wafer::worker_report& r) {
            reports.push_back(r);
        };
        o.name = "stale";
        wafer::worker w(pq.st, pq.queue, wafer::drive_with(*a.runner), o);
        auto s = start(ioc, w);
        REQUIRE(run_until(ioc, [&] { return a.seen->runs.size() == 1; }));
        // Clock skew, as the stale worker would meet it: its claim looks expired to the server.
        REQUIRE(wafer::testing::psql(pq.schema, "UPDATE run_queue SET lease_expires_ms = 0") == 0);
        auto taken = run_coro(ioc, pq.queue->async_claim("thief", 30s, 0ms));
        REQUIRE(taken);
        CHECK(taken->generation == 2);
        REQUIRE(run_until(
            ioc, [&] { return !reports.empty(); }, 10s
        ));
        CHECK(reports[0].outcome == wafer::worker_outcome::lost);
        CHECK_FALSE(reports[0].recorded);
        w.drain();
        REQUIRE(run_until(
            ioc, [&] { return s->has_value(); }, 5s
        ));
        CHECK((*s)->lost == 1);
        // The thief's claim stands.
        const auto e = entry(ioc, *pq.queue, "t1");
        CHECK(e.state == store::queue_state::claimed);
        CHECK(e.owner == taken->owner);
    }

    TEST_CASE("postgres/worker: a driver that throws fails the run with its reason; a run that "
              "stops for approval is done in the queue and paused in the store") {
        if (!wafer::testing::postgres_available()) {
            return;
        }
        pg_queue pq;
        asio::io_context ioc;
        work_agent gated(10ms, true);
        submit(ioc, *pq.queue, "bad");
        submit(ioc, *pq.queue, "gated");
        std::map<std::string, wafer::worker_report> reports;
        wafer::worker_options o;
        o.lease_ttl = 3s;
        o.claim_wait = 200ms;
        o.on_report = [&](const wafer::worker_report& r) {
            reports[r.run_id] = r;
        };
        const wafer::agent& runner = *gated.runner;
        wafer::run_driver driver = [&runner](
                                       const store::run_claim& c, wafer::resume_options opts
                                   ) -> asio::awaitable<wafer::run_result> {
            if (c.run_id == "bad") {
                throw std::runtime_error("no agent for this run on this worker");
            }
            co_return co_await runner.async_resume(c.run_id, std::move(opts));
        };
        wafer::worker w(pq.st, pq.queue, driver, o);
        auto s = start(ioc, w);
        REQUIRE(run_until(ioc, [&] { return reports.size() == 2; }));
        w.drain();
        REQUIRE(run_until(
            ioc, [&] { return s->has_value(); }, 5s
        ));
        CHECK(reports["bad"].outcome == wafer::worker_outcome::failed);
        CHECK(reports["bad"].reason == "no agent for this run on this worker");
        const auto bad = entry(ioc, *pq.queue, "bad");
        CHECK(bad.state == store::queue_state::failed);
        CHECK(bad.reason == "no agent for this run on this worker");
        CHECK(reports["gated"].outcome == wafer::worker_outcome::paused);
        CHECK(entry(ioc, *pq.queue, "gated").state == store::queue_state::done);
        auto row = run_coro(ioc, pq.st->async_find_run("gated"));
        REQUIRE(row);
        CHECK(row->stop_reason == "awaiting_approval");
        CHECK(gated.seen->runs.empty());
    }

    TEST_CASE("postgres/worker: spread_children: a pipeline's child runs go through the queue "
              "to any worker; parents waiting for them hold no slot (concurrency 1, no "
              "deadlock); each child's answer reaches its parent; each call ran once") {
        if (!wafer::testing::postgres_available()) {
            return;
        }
        pg_queue pq;
        asio::io_context ioc;
        pipeline_agents p(20ms);
        const int parents = 4;
        for (int i = 0; i < parents; ++i) {
            submit_to(ioc, *pq.queue, "p" + std::to_string(i), "planner");
        }
        std::vector<wafer::worker_report> reports;
        std::map<std::string, std::string> claimed_by; // run id -> worker
        wafer::worker_options o = spreading_worker(reports);
        o.on_claim = [&](const store::run_claim& c) {
            claimed_by[c.run_id] = c.owner.substr(0, c.owner.find('#'));
        };
        o.name = "wa";
        wafer::worker w1(pq.st, pq.queue, p.driver(), o);
        o.name = "wb";
        wafer::worker w2(pq.st, pq.queue, p.driver(), o);
        auto s1 = start(ioc, w1);
        auto s2 = start(ioc, w2);
        REQUIRE(run_until(ioc, [&] { return reports.size() == 2 * parents; }));
        w1.drain();
        w2.drain();
        REQUIRE(run_until(
            ioc, [&] { return s1->has_value() && s2->has_value(); }, 10s
        ));

        int parents_done = 0;
        int children_done = 0;
        for (const auto& r : reports) {
            REQUIRE_MESSAGE(r.outcome == wafer::worker_outcome::completed, r.run_id, r.reason);
            REQUIRE(r.result);
            const bool child = r.run_id.find('/') != std::string::npos;
            if (child) {
                ++children_done;
                CHECK(r.result->final_text == "done");
                const auto row = run_coro(ioc, pq.st->async_find_run(r.run_id));
                REQUIRE(row);
                CHECK(row->agent == "helper");
                CHECK(row->parent_id == r.run_id.substr(0, r.run_id.find('/')));
            } else {
                ++parents_done;
                CHECK(r.result->final_text == "planner got: done");
                REQUIRE(r.result->children.size() == 1);
                CHECK(r.result->children[0].run_id == r.run_id + "/d1");
                CHECK(r.result->children[0].stop_reason == wafer::stop_reason::completed);
                CHECK(r.result->children_usage.total_tokens > 0);
                CHECK(r.result->usage.total_tokens > 0);
            }
        }
        CHECK(parents_done == parents);
        CHECK(children_done == parents);
        // Every child was claimed from the queue, not run inside its parent's worker.
        for (int i = 0; i < parents; ++i) {
            CHECK(claimed_by.count("p" + std::to_string(i) + "/d1") == 1);
        }
        REQUIRE(p.helper_side.seen->runs.size() == parents);
        for (const auto& [key, n] : p.helper_side.seen->runs) {
            CHECK_MESSAGE(n == 1, key);
        }
    }

    TEST_CASE("postgres/worker: spread_children: a worker stopped while its parent waits for "
              "a queued child; the next worker finishes both from their journals, the child's "
              "call not run again; a run meant for no agent of the driver fails") {
        if (!wafer::testing::postgres_available()) {
            return;
        }
        pg_queue pq;
        asio::io_context ioc;
        pipeline_agents p(400ms);
        submit_to(ioc, *pq.queue, "s1", "planner");
        submit_to(ioc, *pq.queue, "nobody", "no-such-agent");
        std::vector<wafer::worker_report> reports;
        wafer::worker_options o = spreading_worker(reports);
        o.name = "first";
        auto w1 = std::make_unique<wafer::worker>(pq.st, pq.queue, p.driver(), o);
        auto s1 = start(ioc, *w1);
        // The child started its call: the parent is waiting for it.
        REQUIRE(run_until(ioc, [&] { return p.helper_side.seen->runs.size() == 1; }));
        w1->stop();
        REQUIRE(run_until(
            ioc, [&] { return s1->has_value(); }, 10s
        ));
        for (const auto& r : reports) {
            if (r.run_id != "nobody") {
                CHECK_MESSAGE(r.outcome == wafer::worker_outcome::released, r.run_id);
            }
        }
        o.name = "second";
        wafer::worker w2(pq.st, pq.queue, p.driver(), o);
        auto s2 = start(ioc, w2);
        REQUIRE(run_until(ioc, [&] {
            return entry(ioc, *pq.queue, "s1").state == store::queue_state::done;
        }));
        w2.drain();
        REQUIRE(run_until(
            ioc, [&] { return s2->has_value(); }, 10s
        ));
        const wafer::worker_report* parent = nullptr;
        const wafer::worker_report* nobody = nullptr;
        for (const auto& r : reports) {
            if (r.run_id == "s1" && r.outcome == wafer::worker_outcome::completed) {
                parent = &r;
            }
            if (r.run_id == "nobody") {
                nobody = &r;
            }
        }
        REQUIRE(parent != nullptr);
        REQUIRE(parent->result);
        // The cut-short call is in doubt, marked unknown, never run twice; the child answers.
        CHECK(parent->result->final_text == "planner got: done");
        CHECK(entry(ioc, *pq.queue, "s1/d1").state == store::queue_state::done);
        REQUIRE(p.helper_side.seen->runs.size() == 1);
        CHECK(p.helper_side.seen->runs.begin()->second == 1);
        REQUIRE(nobody != nullptr);
        CHECK(nobody->outcome == wafer::worker_outcome::failed);
        CHECK(nobody->reason.find("no agent named 'no-such-agent'") != std::string::npos);
        CHECK(entry(ioc, *pq.queue, "nobody").state == store::queue_state::failed);
    }
    TEST_CASE("postgres/worker: a fan-out with fan_out_options::children sends its children "
              "to the workers and gathers their results; run again, it reads them back") {
        if (!wafer::testing::postgres_available()) {
            return;
        }
        pg_queue pq;
        asio::io_context ioc;
        pipeline_agents p(20ms);
        std::vector<wafer::worker_report> reports;
        std::map<std::string, int> claims;
        wafer::worker_options o = spreading_worker(reports);
        o.on_claim = [&](const store::run_claim& c) {
            ++claims[c.run_id];
        };
        o.name = "wa";
        wafer::worker w1(pq.st, pq.queue, p.driver(), o);
        o.name = "wb";
        wafer::worker w2(pq.st, pq.queue, p.driver(), o);
        auto s1 = start(ioc, w1);
        auto s2 = start(ioc, w2);

        auto fan_out = [&] {
            std::vector<wafer::fan_out_job> jobs;
            for (int i = 0; i < 4; ++i) {
                jobs.push_back({&*p.helper, "part " + std::to_string(i), {}});
            }
            wafer::fan_out_options fo;
            fo.run_id = "fan";
            fo.store = pq.st;
            auto q = std::make_shared<wafer::child_queue>();
            q->queue = pq.queue;
            fo.children = q;
            return run_coro(ioc, wafer::async_fan_out(std::move(jobs), std::move(fo)));
        };
        const wafer::fan_out_result r = fan_out();
        CHECK(r.satisfied);
        CHECK(r.succeeded == 4);
        REQUIRE(r.children.size() == 4);
        for (int i = 0; i < 4; ++i) {
            const auto& c = r.children[static_cast<std::size_t>(i)];
            REQUIRE(c.result);
            CHECK(c.result->final_text == "done");
            CHECK(c.usage.total_tokens > 0);
            CHECK(claims["fan/" + std::to_string(i)] == 1); // each went through the queue
        }
        CHECK(r.usage.total_tokens > 0);
        REQUIRE(p.helper_side.seen->runs.size() == 4);

        // The same fan-out again: every child is read back; nothing is queued or run again.
        const wafer::fan_out_result again = fan_out();
        CHECK(again.succeeded == 4);
        CHECK(p.helper_side.seen->runs.size() == 4);
        for (const auto& [key, n] : p.helper_side.seen->runs) {
            CHECK_MESSAGE(n == 1, key);
        }
        for (const auto& [id, n] : claims) {
            CHECK_MESSAGE(n == 1, id);
        }
        w1.drain();
        w2.drain();
        REQUIRE(run_until(
            ioc, [&] { return s1->has_value() && s2->has_value(); }, 10s
        ));
    }
    TEST_CASE("postgres/worker: spread_children: a child its worker fails (the driver throws) "
              "is a failed call of its parent with the queue's reason; the parent goes on") {
        if (!wafer::testing::postgres_available()) {
            return;
        }
        pg_queue pq;
        asio::io_context ioc;
        pipeline_agents p(20ms);
        submit_to(ioc, *pq.queue, "f1", "planner");
        std::vector<wafer::worker_report> reports;
        wafer::worker_options o = spreading_worker(reports);
        wafer::run_driver planner_only = [&p](const store::run_claim& c, wafer::resume_options ro) {
            if (c.agent == "helper") {
                throw std::runtime_error("the helper's machine is on fire");
            }
            return p.planner->async_resume(c.run_id, std::move(ro));
        };
        wafer::worker w(pq.st, pq.queue, planner_only, o);
        auto s1 = start(ioc, w);
        REQUIRE(run_until(ioc, [&] { return reports.size() == 2; }));
        w.drain();
        REQUIRE(run_until(
            ioc, [&] { return s1->has_value(); }, 10s
        ));
        const wafer::worker_report* parent = nullptr;
        for (const auto& r : reports) {
            if (r.run_id == "f1") {
                parent = &r;
            } else {
                CHECK(r.run_id == "f1/d1");
                CHECK(r.outcome == wafer::worker_outcome::failed);
            }
        }
        REQUIRE(parent != nullptr);
        CHECK(parent->outcome == wafer::worker_outcome::completed);
        REQUIRE(parent->result);
        INFO(parent->result->final_text);
        CHECK(parent->result->final_text.find("failed in the run queue") != std::string::npos);
        CHECK(
            parent->result->final_text.find("the helper's machine is on fire") != std::string::npos
        );
        REQUIRE(parent->result->children.size() == 1);
        CHECK(parent->result->children[0].stop_reason == wafer::stop_reason::error);
        CHECK(p.helper_side.seen->runs.empty());
    }
}
