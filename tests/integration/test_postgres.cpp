// postgres_store and postgres_queue against the throwaway server of tests/pg/cluster.sh (ctest:
// the postgres_cluster fixture): what the conformance suite (unit/test_run_store.cpp) cannot
// show. Concurrency across store instances, fencing between them, a server restarted in the
// middle of appends, a server down at open, the queue's claims, leases, poison runs and
// LISTEN/NOTIFY, and a schema from a newer wafer. Skipped without WAFER_TEST_POSTGRES by hand.
#include <wafer/store/error.hpp>
#include <wafer/store/postgres_queue.hpp>
#include <wafer/store/postgres_store.hpp>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <doctest/doctest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "pg_env.hpp"
#include "run_coro.hpp"
#include "store/postgres/pool_state.hpp"

namespace {

namespace asio = boost::asio;
namespace store = wafer::store;
using namespace std::chrono_literals;
using store::errc;
using wafer::testing::run_coro;

struct failure {
    boost::system::error_code code;
    std::string detail;
};

template <class T>
failure failure_of(asio::io_context& ioc, asio::awaitable<T> aw) {
    try {
        run_coro(ioc, std::move(aw), std::chrono::seconds(30));
    } catch (const wafer::error& e) {
        return {e.code(), e.diag().detail};
    }
    return {};
}

store::run_info make_run(std::string id) {
    store::run_info r;
    r.id = std::move(id);
    r.agent = "coder";
    r.task = "task of " + r.id;
    r.setup = "{}";
    return r;
}

std::vector<store::journal_entry> one_entry(std::string body) {
    std::vector<store::journal_entry> e(1);
    e[0].kind = "user_message";
    e[0].body = std::move(body);
    return e;
}

asio::awaitable<void>
append_many(store::run_store& s, std::string run, std::string tag, int n, std::atomic<int>& done) {
    const std::string anyone;
    for (int k = 0; k < n; ++k) {
        auto e = one_entry(tag + ":" + std::to_string(k));
        store::run_update u; // GCC 12: no braced temporaries inside co_await
        co_await s.async_append(run, anyone, std::move(e), std::move(u));
        ++done;
    }
}

/// Spawns every awaitable on `ioc` and runs it until all finished (or `deadline`); returns the
/// errors they threw.
std::vector<std::string> run_all(
    asio::io_context& ioc,
    std::vector<asio::awaitable<void>> tasks,
    std::chrono::seconds deadline = 60s
) {
    auto errors = std::make_shared<std::vector<std::string>>();
    auto left = std::make_shared<std::size_t>(tasks.size());
    for (auto& t : tasks) {
        asio::co_spawn(ioc, std::move(t), [errors, left](std::exception_ptr e) {
            --*left;
            if (e) {
                try {
                    std::rethrow_exception(e);
                } catch (const std::exception& x) {
                    errors->push_back(x.what());
                }
            }
        });
    }
    if (ioc.stopped()) {
        ioc.restart();
    }
    const auto end = std::chrono::steady_clock::now() + deadline;
    while (*left > 0 && std::chrono::steady_clock::now() < end) {
        ioc.run_one_for(100ms);
        if (ioc.stopped()) {
            ioc.restart();
        }
    }
    REQUIRE_MESSAGE(*left == 0, *left << " coroutines did not finish");
    return *errors;
}

/// Claims and completes runs until none is left; counts each claim in `claimed`.
asio::awaitable<void> claim_all(
    store::run_queue& q,
    std::string worker,
    std::map<std::string, int>& claimed,
    std::atomic<int>& total
) {
    for (;;) {
        auto c = co_await q.async_claim(worker, 30s, 0ms);
        if (!c) {
            co_return;
        }
        ++claimed[c->run_id];
        ++total;
        co_await q.async_complete(*c);
    }
}

struct wake_probe {
    std::optional<store::run_claim> got;
    std::chrono::steady_clock::time_point submitted{};
    std::chrono::steady_clock::time_point claimed{};
};

asio::awaitable<void> wait_and_claim(store::run_queue& q, wake_probe& p) {
    const std::string worker = "w";
    p.got = co_await q.async_claim(worker, 30s, 15s);
    p.claimed = std::chrono::steady_clock::now();
}

asio::awaitable<void> submit_later(store::run_queue& q, wake_probe& p);

/// Restarts the server when a test that stopped it ends early.
struct server_back_on {
    bool down = false;
    ~server_back_on() {
        if (down) {
            wafer::testing::postgres_ctl("resume");
        }
    }
};

asio::awaitable<void> sleep_for(std::chrono::milliseconds d) {
    asio::steady_timer t(co_await asio::this_coro::executor);
    t.expires_after(d);
    co_await t.async_wait(asio::use_awaitable);
}

asio::awaitable<void> submit_later(store::run_queue& q, wake_probe& p) {
    co_await sleep_for(700ms); // the claimer is waiting by now
    store::run_submission sub;
    sub.id = "wake";
    co_await q.async_submit(sub);
    p.submitted = std::chrono::steady_clock::now();
}

} // namespace

TEST_SUITE("unit/postgres_pool") {
    TEST_CASE("pool_state: idle first, opens up to max_size, then waits; backoff doubles") {
        using wafer::store::postgres::pool_state;
        pool_state p(
            {.max_size = 2,
             .backoff_initial = std::chrono::milliseconds(10),
             .backoff_max = std::chrono::milliseconds(35)}
        );
        auto a = p.acquire();
        CHECK(a.what == pool_state::decision::open);
        auto b = p.acquire();
        CHECK(b.what == pool_state::decision::open);
        CHECK(p.acquire().what == pool_state::decision::wait);
        p.opened(a.slot);
        int w = 0;
        p.add_waiter(&w);
        CHECK(p.open_failed(b.slot)); // a waiter should be woken to try in its turn
        CHECK(p.next_waiter() == &w);
        CHECK(p.backoff() == std::chrono::milliseconds(10));
        auto c = p.acquire();
        CHECK(c.what == pool_state::decision::open);
        p.open_failed(c.slot);
        CHECK(p.backoff() == std::chrono::milliseconds(20));
        p.open_failed(p.acquire().slot);
        CHECK(p.backoff() == std::chrono::milliseconds(35)); // capped
        CHECK_FALSE(p.release(a.slot, true));
        auto again = p.acquire();
        CHECK(again.what == pool_state::decision::use);
        CHECK(again.slot == a.slot);
        p.release(again.slot, false); // broken: dropped
        CHECK(p.size() == 0);
        auto d = p.acquire();
        CHECK(d.what == pool_state::decision::open);
        p.opened(d.slot);
        CHECK(p.backoff() == std::chrono::milliseconds(0)); // a success resets it
        CHECK(p.count(pool_state::slot_state::busy) == 1);
    }
}

TEST_SUITE("postgres") {
    TEST_CASE("postgres: concurrent appends to one run from two store instances all land once") {
        if (!wafer::testing::postgres_available()) {
            return;
        }
        wafer::testing::pg_thread pg;
        const auto schema = wafer::testing::unique_schema();
        auto a = wafer::testing::open_postgres(pg.io, schema);
        auto b = wafer::testing::open_postgres(pg.io, schema);
        asio::io_context ioc;
        run_coro(ioc, a->async_create_run(make_run("r")));
        std::atomic<int> done{0};
        std::vector<asio::awaitable<void>> tasks;
        for (int i = 0; i < 16; ++i) {
            tasks.push_back(append_many(i % 2 ? *a : *b, "r", "c" + std::to_string(i), 10, done));
        }
        CHECK(run_all(ioc, std::move(tasks)).empty());
        CHECK(done == 160);
        auto journal = run_coro(ioc, b->async_read_journal("r"));
        REQUIRE(journal.size() == 160);
        std::set<std::string> bodies;
        for (std::size_t i = 0; i < journal.size(); ++i) {
            CHECK(journal[i].seq == i + 1);
            bodies.insert(journal[i].body);
        }
        CHECK(bodies.size() == 160);
    }

    TEST_CASE("postgres: a lease taken by one store instance fences the other, and expires") {
        if (!wafer::testing::postgres_available()) {
            return;
        }
        wafer::testing::pg_thread pg;
        const auto schema = wafer::testing::unique_schema();
        auto a = wafer::testing::open_postgres(pg.io, schema);
        auto b = wafer::testing::open_postgres(pg.io, schema);
        asio::io_context ioc;
        run_coro(ioc, a->async_create_run(make_run("r")));
        REQUIRE(run_coro(ioc, a->async_acquire_lease("r", "A", 400ms)));
        CHECK_FALSE(run_coro(ioc, b->async_acquire_lease("r", "B", 10s)));
        auto f = failure_of(ioc, b->async_append("r", "B", one_entry("{}"), {}));
        CHECK(f.code == errc::lease_held);
        CHECK(f.detail.find("\"A\"") != std::string::npos);
        CHECK(f.detail.find("postgresql") != std::string::npos);
        CHECK(run_coro(ioc, a->async_append("r", "A", one_entry("{}"), {})) == 1);
        std::this_thread::sleep_for(500ms);
        REQUIRE(run_coro(ioc, b->async_acquire_lease("r", "B", 10s)));
        // A, whose lease expired and was taken, cannot write any more.
        CHECK(
            failure_of(ioc, a->async_append("r", "A", one_entry("{}"), {})).code == errc::lease_held
        );
        CHECK(run_coro(ioc, b->async_append("r", "B", one_entry("{}"), {})) == 2);
        CHECK(run_coro(ioc, a->async_find_run("r"))->lease_owner == "B");
    }

    TEST_CASE("postgres: a server restarted in the middle of appends: reconnect, nothing lost or "
              "repeated") {
        if (!wafer::testing::postgres_available()) {
            return;
        }
        if (!std::getenv("WAFER_TEST_POSTGRES_CTL")) {
            MESSAGE("skipped: WAFER_TEST_POSTGRES_CTL is not set");
            return;
        }
        wafer::testing::pg_thread pg;
        const auto schema = wafer::testing::unique_schema();
        auto s = wafer::testing::open_postgres(
            pg.io, schema, {.connect_timeout = std::chrono::milliseconds(30'000)}
        );
        asio::io_context ioc;
        for (int i = 0; i < 4; ++i) {
            run_coro(ioc, s->async_create_run(make_run("r" + std::to_string(i))));
        }
        std::atomic<int> done{0};
        std::atomic<bool> restarted{false};
        std::thread restarter([&] {
            while (done < 40) {
                std::this_thread::sleep_for(1ms);
            }
            restarted = wafer::testing::postgres_ctl("restart");
        });
        std::vector<asio::awaitable<void>> tasks;
        for (int i = 0; i < 4; ++i) {
            tasks.push_back(append_many(*s, "r" + std::to_string(i), "x", 150, done));
        }
        auto errors = run_all(ioc, std::move(tasks), 90s);
        restarter.join();
        CHECK(restarted);
        for (const auto& e : errors) {
            MESSAGE(e);
        }
        CHECK(errors.empty());
        for (int i = 0; i < 4; ++i) {
            auto journal = run_coro(ioc, s->async_read_journal("r" + std::to_string(i)), 30s);
            REQUIRE(journal.size() == 150);
            for (std::size_t k = 0; k < journal.size(); ++k) {
                CHECK(journal[k].seq == k + 1);
                CHECK(journal[k].body == "x:" + std::to_string(k));
            }
        }
    }

    TEST_CASE("postgres: a server down at open is a clear unavailable error, or is waited for") {
        if (!wafer::testing::postgres_available()) {
            return;
        }
        if (!std::getenv("WAFER_TEST_POSTGRES_CTL")) {
            MESSAGE("skipped: WAFER_TEST_POSTGRES_CTL is not set");
            return;
        }
        wafer::testing::pg_thread pg;
        const auto schema = wafer::testing::unique_schema();
        const std::string secret = "sekrit-pw-123";
        const std::string conninfo = wafer::testing::postgres_conninfo() + " password=" + secret;
        server_back_on guard;
        REQUIRE(wafer::testing::postgres_ctl("kill"));
        guard.down = true;
        std::string detail;
        boost::system::error_code code;
        try {
            wafer::testing::open_postgres(
                pg.io, schema, {.connect_timeout = std::chrono::milliseconds(600)}, conninfo
            );
        } catch (const wafer::error& e) {
            code = e.code();
            detail = e.diag().detail;
        }
        CHECK(code == errc::unavailable);
        CHECK(detail.find("cannot connect") != std::string::npos);
        CHECK(detail.find("postgresql (host=") != std::string::npos);
        CHECK(detail.find(secret) == std::string::npos);
        MESSAGE(detail);

        // Started a second later, the server is waited for.
        std::thread starter([] {
            std::this_thread::sleep_for(1s);
            wafer::testing::postgres_ctl("resume");
        });
        guard.down = false;
        std::unique_ptr<store::postgres_store> s;
        try {
            s = wafer::testing::open_postgres(
                pg.io, schema, {.connect_timeout = std::chrono::milliseconds(30'000)}, conninfo
            );
        } catch (const std::exception& e) {
            FAIL_CHECK(e.what());
        }
        starter.join();
        REQUIRE(s);
        CHECK(s->name().find(secret) == std::string::npos);
        // The URI form names the store without its password as well.
        const auto info = wafer::testing::postgres_conninfo();
        const auto h = info.find("host=") + 5;
        const auto dir = info.substr(h, info.find(' ', h) - h);
        auto by_uri = wafer::testing::open_postgres(
            pg.io, schema, {}, "postgresql://wafer:" + secret + "@/postgres?host=" + dir
        );
        CHECK(by_uri->name().find(secret) == std::string::npos);
        CHECK(by_uri->name().find("user=wafer") != std::string::npos);
        by_uri.reset();
        asio::io_context ioc;
        run_coro(ioc, s->async_create_run(make_run("r")));
        CHECK(run_coro(ioc, s->async_find_run("r")));
    }

    TEST_CASE("postgres: a schema written by a newer wafer is refused") {
        if (!wafer::testing::postgres_available()) {
            return;
        }
        wafer::testing::pg_thread pg;
        const auto schema = wafer::testing::unique_schema();
        wafer::testing::open_postgres(pg.io, schema).reset();
        REQUIRE(
            wafer::testing::psql(
                schema, "UPDATE wafer_meta SET value = '99' WHERE key = 'schema_version'"
            ) == 0
        );
        boost::system::error_code code;
        std::string detail;
        try {
            wafer::testing::open_postgres(pg.io, schema);
        } catch (const wafer::error& e) {
            code = e.code();
            detail = e.diag().detail;
        }
        CHECK(code == errc::schema_too_new);
        CHECK(detail.find("99") != std::string::npos);
        // Foreign tables named like ours, without wafer_meta: corrupt, left alone.
        const auto other = wafer::testing::unique_schema();
        REQUIRE(
            wafer::testing::psql(
                "public",
                "CREATE SCHEMA \"" + other + "\"; CREATE TABLE \"" + other + "\".runs (x int)"
            ) == 0
        );
        code = {};
        try {
            wafer::testing::open_postgres(pg.io, other);
        } catch (const wafer::error& e) {
            code = e.code();
        }
        CHECK(code == errc::corrupt);
    }

    TEST_CASE("postgres queue: N submits claimed by M concurrent claimers exactly once") {
        if (!wafer::testing::postgres_available()) {
            return;
        }
        wafer::testing::pg_thread pg;
        const auto schema = wafer::testing::unique_schema();
        auto s1 = wafer::testing::open_postgres(pg.io, schema);
        auto s2 = wafer::testing::open_postgres(pg.io, schema);
        store::postgres_queue q1(*s1);
        store::postgres_queue q2(*s2);
        asio::io_context ioc;
        constexpr int runs = 60;
        for (int i = 0; i < runs; ++i) {
            store::run_submission sub;
            sub.id = "job-" + std::to_string(i);
            sub.task = "do " + std::to_string(i);
            sub.setup = R"({"n":)" + std::to_string(i) + "}";
            run_coro(ioc, (i % 2 ? q1 : q2).async_submit(sub));
        }
        // A taken id is refused.
        store::run_submission dup;
        dup.id = "job-0";
        CHECK(failure_of(ioc, q1.async_submit(dup)).code == errc::run_exists);

        std::map<std::string, int> claimed;
        std::atomic<int> total{0};
        std::vector<asio::awaitable<void>> tasks;
        for (int m = 0; m < 8; ++m) {
            tasks.push_back(claim_all(m % 2 ? q1 : q2, "w" + std::to_string(m), claimed, total));
        }
        CHECK(run_all(ioc, std::move(tasks)).empty());
        CHECK(total == runs);
        CHECK(claimed.size() == static_cast<std::size_t>(runs));
        for (const auto& [id, n] : claimed) {
            CHECK_MESSAGE(n == 1, id << " claimed " << n << " times");
        }
        auto e = run_coro(ioc, q1.async_find("job-7"));
        REQUIRE(e);
        CHECK(e->state == store::queue_state::done);
        CHECK(e->attempts == 1);
    }

    TEST_CASE("postgres queue: an expired claim is taken over; the stale worker is fenced") {
        if (!wafer::testing::postgres_available()) {
            return;
        }
        wafer::testing::pg_thread pg;
        const auto schema = wafer::testing::unique_schema();
        auto s = wafer::testing::open_postgres(pg.io, schema);
        store::postgres_queue q(*s);
        asio::io_context ioc;
        store::run_submission sub;
        sub.id = "r";
        sub.task = "the task";
        sub.setup = R"({"x":1})";
        run_coro(ioc, q.async_submit(sub));
        auto c1 = run_coro(ioc, q.async_claim("w1", 300ms, 0ms));
        REQUIRE(c1);
        CHECK(c1->owner == "w1#1");
        CHECK(c1->attempt == 1);
        CHECK(c1->task == "the task");
        CHECK(c1->setup == R"({"x":1})");
        CHECK(run_coro(ioc, s->async_find_run("r"))->lease_owner == "w1#1");
        CHECK_FALSE(run_coro(ioc, q.async_claim("w2", 300ms, 0ms)));
        CHECK(run_coro(ioc, s->async_append("r", c1->owner, one_entry("{}"), {})) == 1);
        CHECK(run_coro(ioc, q.async_heartbeat(*c1, 300ms)));

        std::this_thread::sleep_for(400ms); // w1 stalls past its lease
        auto c2 = run_coro(ioc, q.async_claim("w2", 30s, 0ms));
        REQUIRE(c2);
        CHECK(c2->run_id == "r");
        CHECK(c2->owner == "w2#2");
        CHECK(c2->attempt == 2);
        // The stale worker's writes and claim operations are refused.
        auto f = failure_of(ioc, s->async_append("r", c1->owner, one_entry("{}"), {}));
        CHECK(f.code == errc::lease_held);
        CHECK(f.detail.find("w2#2") != std::string::npos);
        CHECK_FALSE(run_coro(ioc, q.async_heartbeat(*c1, 30s)));
        CHECK_FALSE(run_coro(ioc, q.async_complete(*c1)));
        // The new one resumes from the journal.
        CHECK(run_coro(ioc, s->async_read_journal("r")).size() == 1);
        CHECK(run_coro(ioc, s->async_append("r", c2->owner, one_entry("{}"), {})) == 2);
        CHECK(run_coro(ioc, q.async_complete(*c2)));
        auto e = run_coro(ioc, q.async_find("r"));
        REQUIRE(e);
        CHECK(e->state == store::queue_state::done);
        CHECK(run_coro(ioc, s->async_find_run("r"))->lease_owner.empty());

        // Released: back in the queue, the attempt not counted.
        store::run_submission other;
        other.id = "r2";
        run_coro(ioc, q.async_submit(other));
        auto c3 = run_coro(ioc, q.async_claim("w3", 30s, 0ms));
        REQUIRE(c3);
        CHECK(run_coro(ioc, q.async_release(*c3)));
        auto c4 = run_coro(ioc, q.async_claim("w4", 30s, 0ms));
        REQUIRE(c4);
        CHECK(c4->attempt == 1);
        CHECK(c4->generation == 2);
        CHECK(run_coro(ioc, q.async_fail(*c4, "the tool exploded")));
        auto failed = run_coro(ioc, q.async_find("r2"));
        CHECK(failed->state == store::queue_state::failed);
        CHECK(failed->reason == "the tool exploded");
        CHECK(run_coro(ioc, s->async_find_run("r2"))->status == store::run_status::finished);
    }

    TEST_CASE("postgres queue: a poison run is failed after max_attempts lost claims") {
        if (!wafer::testing::postgres_available()) {
            return;
        }
        wafer::testing::pg_thread pg;
        const auto schema = wafer::testing::unique_schema();
        auto s = wafer::testing::open_postgres(pg.io, schema);
        store::postgres_queue q(*s);
        asio::io_context ioc;
        store::run_submission sub;
        sub.id = "poison";
        sub.max_attempts = 2;
        run_coro(ioc, q.async_submit(sub));
        for (int attempt = 1; attempt <= 2; ++attempt) {
            auto c = run_coro(ioc, q.async_claim("w" + std::to_string(attempt), 100ms, 0ms));
            REQUIRE(c);
            CHECK(c->attempt == attempt);
            std::this_thread::sleep_for(150ms); // the worker "crashes": no heartbeat
        }
        CHECK_FALSE(run_coro(ioc, q.async_claim("w3", 100ms, 0ms)));
        auto e = run_coro(ioc, q.async_find("poison"));
        REQUIRE(e);
        CHECK(e->state == store::queue_state::failed);
        CHECK(e->attempts == 2);
        CHECK(e->reason.find("2 times") != std::string::npos);
        CHECK(e->reason.find("w2#2") != std::string::npos);
        auto row = run_coro(ioc, s->async_find_run("poison"));
        CHECK(row->status == store::run_status::finished);
        CHECK(row->stop_reason == "error");
        CHECK(row->lease_owner.empty());
    }

    TEST_CASE("postgres queue: NOTIFY wakes a waiting claimer long before the poll") {
        if (!wafer::testing::postgres_available()) {
            return;
        }
        wafer::testing::pg_thread pg;
        const auto schema = wafer::testing::unique_schema();
        auto s = wafer::testing::open_postgres(pg.io, schema);
        auto s2 = wafer::testing::open_postgres(pg.io, schema);
        store::postgres_queue waiting(*s, {.poll_interval = std::chrono::milliseconds(20'000)});
        store::postgres_queue submitting(*s2);
        asio::io_context ioc;
        wake_probe probe;
        std::vector<asio::awaitable<void>> tasks;
        tasks.push_back(wait_and_claim(waiting, probe));
        tasks.push_back(submit_later(submitting, probe));
        CHECK(run_all(ioc, std::move(tasks), 30s).empty());
        REQUIRE(probe.got);
        CHECK(probe.got->run_id == "wake");
        const auto latency =
            std::chrono::duration_cast<std::chrono::milliseconds>(probe.claimed - probe.submitted);
        MESSAGE("submit -> claim: " << latency.count() << " ms");
        CHECK(latency < 2s);
    }
}
