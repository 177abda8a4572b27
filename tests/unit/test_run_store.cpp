// Run stores: one conformance suite run against memory_store, sqlite_store and postgres_store
// (runs, journal, leases, concurrency; tests/integration/test_postgres.cpp has what only
// PostgreSQL shows), then what only a file can show (reopening, two stores and two processes
// on one file, damaged and newer files, group commit), then the journal codec's round trips.
#include <wafer/store/codec.hpp>
#include <wafer/store/error.hpp>
#include <wafer/store/memory_store.hpp>
#include <wafer/store/postgres_store.hpp>
#include <wafer/store/sqlite_store.hpp>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>

#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <memory>
#include <optional>
#include <sqlite3.h>
#include <string>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>
#include <vector>

#include "child_process.hpp"
#include "counting_vfs.hpp"
#include "pg_env.hpp"
#include "run_coro.hpp"
#include "temp_dir.hpp"

namespace {

namespace asio = boost::asio;
namespace fs = std::filesystem;
namespace store = wafer::store;
using nlohmann::json;
using namespace std::chrono_literals;
using store::errc;
using wafer::testing::run_coro;

// ---------------------------------------------------------------------------------------------
// The second process of the cross-process lease test: this same executable, exec'd to run only
// the skipped test case "run store child process" with WAFER_STORE_CHILD=<action>. It opens the
// file, tries the action and exits: 0 done, 1 refused (lease held), 2 anything else.

constexpr const char* child_test_name = "run store child process";

int child_main(const char* action, const char* file, const char* run) {
    try {
        asio::io_context ioc;
        store::sqlite_store s(file);
        int code = 2;
        auto body = [&]() -> asio::awaitable<void> {
            const std::string id = run;
            const std::string me = "child";
            if (std::string_view(action) == "acquire") {
                const bool got = co_await s.async_acquire_lease(id, me, 30s);
                code = got ? 0 : 1;
            } else if (std::string_view(action) == "append") {
                std::vector<store::journal_entry> e(1);
                e[0].kind = "user_message";
                e[0].body = R"({"text":"hi"})";
                try {
                    co_await s.async_append(id, me, e, store::run_update{});
                    code = 0;
                } catch (const wafer::error& err) {
                    code = err.code() == errc::lease_held ? 1 : 2;
                }
            }
        };
        asio::co_spawn(ioc, body(), [](std::exception_ptr) {});
        ioc.run();
        return code;
    } catch (...) {
        return 2;
    }
}

/// Runs this executable as the child with `action` on `file`/`run`; returns its exit status.
int run_child(const fs::path& file, const std::string& run, const std::string& action) {
    const pid_t pid = wafer::testing::spawn_test_case(
        child_test_name,
        {"WAFER_STORE_CHILD=" + action,
         "WAFER_STORE_CHILD_FILE=" + file.string(),
         "WAFER_STORE_CHILD_RUN=" + run},
        false
    );
    REQUIRE(pid > 0);
    int status = 0;
    REQUIRE(::waitpid(pid, &status, 0) == pid);
    REQUIRE(WIFEXITED(status));
    return WEXITSTATUS(status);
}

// ---------------------------------------------------------------------------------------------
// Helpers

using wafer::testing::temp_dir;

std::string read_bytes(const fs::path& p) {
    std::ifstream in(p, std::ios::binary);
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

void write_bytes(const fs::path& p, const std::string& bytes) {
    std::ofstream out(p, std::ios::binary | std::ios::trunc);
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

/// What an operation threw: its code and detail (no code if it did not throw).
struct failure {
    boost::system::error_code code;
    std::string detail;
};

template <class T>
failure failure_of(asio::io_context& ioc, asio::awaitable<T> aw) {
    try {
        run_coro(ioc, std::move(aw));
    } catch (const wafer::error& e) {
        return {e.code(), e.diag().detail};
    }
    return {};
}

template <class F>
failure failure_of_ctor(F&& f) {
    try {
        f();
    } catch (const wafer::error& e) {
        return {e.code(), e.diag().detail};
    }
    return {};
}

store::run_info make_run(std::string id, std::string scope = "ws", std::string parent = "") {
    store::run_info r;
    r.id = std::move(id);
    r.parent_id = std::move(parent);
    r.agent = "coder";
    r.task = "fix the bug in " + r.id;
    r.scope = std::move(scope);
    r.setup = R"({"input":"fix it","limits":{"max_turns":8}})";
    return r;
}

std::vector<store::journal_entry>
entries(std::initializer_list<std::pair<const char*, std::string>> l) {
    std::vector<store::journal_entry> out;
    for (const auto& [kind, body] : l) {
        store::journal_entry e;
        e.kind = kind;
        e.body = body;
        out.push_back(std::move(e));
    }
    return out;
}

std::vector<std::string> ids(const std::vector<store::run_info>& runs) {
    std::vector<std::string> out;
    for (const auto& r : runs) {
        out.push_back(r.id);
    }
    return out;
}

/// Lets the wall clock move on, so updated_ms orders what happens next.
void tick() {
    std::this_thread::sleep_for(3ms);
}

// ---------------------------------------------------------------------------------------------
// The two stores behind one fixture interface.

struct memory_kind {
    static bool available() { return true; }
    temp_dir dir;
    std::unique_ptr<store::run_store> open() { return std::make_unique<store::memory_store>(); }
};

struct sqlite_kind {
    static bool available() { return true; }
    temp_dir dir;
    std::unique_ptr<store::run_store> open() {
        return std::make_unique<store::sqlite_store>(dir.path / "runs.db");
    }
};

/// sqlite_store running operations on the caller's thread when it is idle.
struct sqlite_caller_kind {
    static bool available() { return true; }
    temp_dir dir;
    std::unique_ptr<store::run_store> open() {
        return std::make_unique<store::sqlite_store>(
            dir.path / "runs.db",
            store::sqlite_options{.threading = store::sqlite_threading::caller_when_idle}
        );
    }
};

/// postgres_store in a schema of its own on the test server (WAFER_TEST_POSTGRES), its I/O on a
/// thread of its own. Skipped when no server is given (run by hand; ctest always gives one).
struct postgres_kind {
    static bool available() { return wafer::testing::postgres_available(); }
    wafer::testing::pg_thread pg;
    std::string schema = wafer::testing::unique_schema();
    std::unique_ptr<store::run_store> open() {
        return wafer::testing::open_postgres(pg.io, schema);
    }
};

/// Starts `n` coroutines at once on `ioc` and runs it until all finished; returns the number
/// that failed (and their codes).
struct burst {
    int done = 0;
    std::vector<boost::system::error_code> errors;
};

template <class MakeAwaitable>
burst run_burst(asio::io_context& ioc, int n, MakeAwaitable make) {
    burst b;
    for (int i = 0; i < n; ++i) {
        asio::co_spawn(ioc, make(i), [&b](std::exception_ptr e, auto&&...) {
            ++b.done;
            if (e) {
                try {
                    std::rethrow_exception(e);
                } catch (const wafer::error& err) {
                    b.errors.push_back(err.code());
                } catch (...) {
                    b.errors.push_back(make_error_code(wafer::errc::invalid_response));
                }
            }
        });
    }
    if (ioc.stopped()) {
        ioc.restart();
    }
    const auto end = std::chrono::steady_clock::now() + 20s;
    while (b.done < n && std::chrono::steady_clock::now() < end) {
        ioc.run_one_for(100ms);
        if (ioc.stopped()) {
            ioc.restart();
        }
    }
    REQUIRE_MESSAGE(b.done == n, "only " << b.done << " of " << n << " coroutines finished");
    return b;
}

// (GCC 12: no string literals or braced lists inside a co_await expression; they are built
// first.)
asio::awaitable<void> append_steps(store::run_store& s, std::string run, int steps) {
    const std::string anyone;
    for (int k = 0; k < steps; ++k) {
        auto e = entries(
            {{"model_reply", R"({"step":)" + std::to_string(k) + "}"},
             {"tool_result", R"({"step":)" + std::to_string(k) + R"(,"ok":true})"}}
        );
        store::run_update u;
        u.turns = static_cast<std::size_t>(k + 1);
        co_await s.async_append(run, anyone, std::move(e), std::move(u));
    }
}

asio::awaitable<std::uint64_t> append_one(store::run_store& s, std::string run, std::string owner) {
    auto e = entries({{"user_message", "{}"}});
    co_return co_await s.async_append(
        std::move(run), std::move(owner), std::move(e), store::run_update{}
    );
}

} // namespace

TYPE_TO_STRING(memory_kind);
TYPE_TO_STRING(sqlite_kind);
TYPE_TO_STRING(sqlite_caller_kind);
TYPE_TO_STRING(postgres_kind);

TEST_SUITE("unit/run_store") {
    // Not a test: the second process of the cross-process test (see run_child).
    TEST_CASE("run store child process" * doctest::skip()) {
        const char* action = std::getenv("WAFER_STORE_CHILD");
        const char* file = std::getenv("WAFER_STORE_CHILD_FILE");
        const char* run = std::getenv("WAFER_STORE_CHILD_RUN");
        if (action && file && run) {
            std::_Exit(child_main(action, file, run));
        }
    }

    TEST_CASE_TEMPLATE(
        "create, find and list runs with filters, newest first",
        K,
        memory_kind,
        sqlite_kind,
        sqlite_caller_kind,
        postgres_kind
    ) {
        if (!K::available()) {
            return;
        }
        K kind;
        auto s = kind.open();
        asio::io_context ioc;

        const auto t0 = std::chrono::duration_cast<std::chrono::milliseconds>(
                            std::chrono::system_clock::now().time_since_epoch()
        )
                            .count();
        auto a = make_run("a", "ws1");
        a.created_ms = 7; // the store sets the times
        run_coro(ioc, s->async_create_run(a));
        tick();
        auto b = make_run("b", "ws1", "a");
        b.status = store::run_status::awaiting_approval;
        b.stop_reason = "awaiting_approval";
        run_coro(ioc, s->async_create_run(b));
        tick();
        auto c = make_run("c", "ws2");
        c.status = store::run_status::finished;
        c.turns = 4;
        c.prompt_tokens = 1200;
        c.completion_tokens = 300;
        run_coro(ioc, s->async_create_run(c));

        auto found = run_coro(ioc, s->async_find_run("c"));
        REQUIRE(found);
        CHECK(found->created_ms >= t0);
        CHECK(found->updated_ms == found->created_ms);
        auto expected = c;
        expected.created_ms = found->created_ms;
        expected.updated_ms = found->updated_ms;
        CHECK(*found == expected);
        CHECK(run_coro(ioc, s->async_find_run("a"))->created_ms >= t0);
        CHECK_FALSE(run_coro(ioc, s->async_find_run("nope")));

        // A taken id is refused and the first run is unchanged.
        auto dup = make_run("a", "elsewhere");
        auto f = failure_of(ioc, s->async_create_run(dup));
        CHECK(f.code == errc::run_exists);
        CHECK(f.detail.find("\"a\"") != std::string::npos);
        CHECK(run_coro(ioc, s->async_find_run("a"))->scope == "ws1");

        using V = std::vector<std::string>;
        CHECK(ids(run_coro(ioc, s->async_list_runs({}))) == V{"c", "b", "a"});
        // An append makes a run the newest.
        tick();
        run_coro(ioc, s->async_append("a", "", {}, {}));
        CHECK(ids(run_coro(ioc, s->async_list_runs({}))) == V{"a", "c", "b"});

        CHECK(ids(run_coro(ioc, s->async_list_runs({.scope = "ws1"}))) == V{"a", "b"});
        CHECK(ids(run_coro(ioc, s->async_list_runs({.scope = "ws3"}))).empty());
        CHECK(
            ids(run_coro(ioc, s->async_list_runs({.status = store::run_status::finished}))) ==
            V{"c"}
        );
        CHECK(ids(run_coro(ioc, s->async_list_runs({.top_level_only = true}))) == V{"a", "c"});
        CHECK(ids(run_coro(ioc, s->async_list_runs({.limit = 2}))) == V{"a", "c"});
        CHECK(
            ids(run_coro(
                ioc,
                s->async_list_runs({.scope = "ws1", .status = store::run_status::awaiting_approval})
            )) == V{"b"}
        );
        auto listed = run_coro(ioc, s->async_list_runs({.scope = "ws1", .limit = 1}));
        REQUIRE(listed.size() == 1);
        CHECK(listed[0] == *run_coro(ioc, s->async_find_run("a")));
    }

    TEST_CASE_TEMPLATE(
        "append assigns seq in order, keeps bodies verbatim, applies the update",
        K,
        memory_kind,
        sqlite_kind,
        sqlite_caller_kind,
        postgres_kind
    ) {
        if (!K::available()) {
            return;
        }
        K kind;
        auto s = kind.open();
        asio::io_context ioc;
        run_coro(ioc, s->async_create_run(make_run("r")));
        const auto created = run_coro(ioc, s->async_find_run("r"))->created_ms;

        // Bodies are bytes: a NUL, invalid UTF-8, non-JSON text all come back as they went in.
        const std::string odd("{\"a\":\"\0\xff\xfe\"} not json", 19);
        auto first = entries(
            {{"model_reply", R"({"message":{"role":"assistant"}})"},
             {"tool_result", odd},
             {"review", ""}}
        );
        first[0].seq = 42; // assigned by the store
        first[0].at_ms = 1;
        tick();
        CHECK(
            run_coro(ioc, s->async_append("r", "", first, {.turns = 1, .prompt_tokens = 10})) == 3
        );
        CHECK(
            run_coro(
                ioc,
                s->async_append(
                    "r",
                    "",
                    entries({{"approval", R"({"ok":true})"}, {"user_message", "{}"}}),
                    {.status = store::run_status::awaiting_approval,
                     .stop_reason = "awaiting_approval",
                     .completion_tokens = 5}
                )
            ) == 5
        );
        // No entries: the journal's length, and the update still applies.
        CHECK(run_coro(ioc, s->async_append("r", "", {}, {.turns = 2})) == 5);

        auto all = run_coro(ioc, s->async_read_journal("r"));
        REQUIRE(all.size() == 5);
        for (std::size_t i = 0; i < all.size(); ++i) {
            CHECK(all[i].seq == i + 1);
            CHECK(all[i].at_ms >= created);
        }
        CHECK(all[0].kind == "model_reply");
        CHECK(all[0].body == R"({"message":{"role":"assistant"}})");
        CHECK(all[1].body == odd);
        CHECK(all[2].body.empty());
        CHECK(all[3].kind == "approval");
        CHECK(all[4].kind == "user_message");
        CHECK(all[0].at_ms == all[2].at_ms); // one append, one time

        auto tail = run_coro(ioc, s->async_read_journal("r", 3));
        REQUIRE(tail.size() == 2);
        CHECK(tail[0] == all[3]);
        CHECK(tail[1] == all[4]);
        CHECK(run_coro(ioc, s->async_read_journal("r", 5)).empty());
        CHECK(run_coro(ioc, s->async_read_journal("r", 1000)).empty());

        auto row = run_coro(ioc, s->async_find_run("r"));
        REQUIRE(row);
        CHECK(row->status == store::run_status::awaiting_approval);
        CHECK(row->stop_reason == "awaiting_approval");
        CHECK(row->turns == 2);
        CHECK(row->prompt_tokens == 10);
        CHECK(row->completion_tokens == 5);
        CHECK(row->updated_ms >= all[4].at_ms);
        CHECK(row->created_ms == created);
        CHECK(row->setup == make_run("r").setup);
    }

    TEST_CASE_TEMPLATE(
        "operations on an unknown run",
        K,
        memory_kind,
        sqlite_kind,
        sqlite_caller_kind,
        postgres_kind
    ) {
        if (!K::available()) {
            return;
        }
        K kind;
        auto s = kind.open();
        asio::io_context ioc;
        run_coro(ioc, s->async_create_run(make_run("known")));

        auto f = failure_of(ioc, s->async_append("ghost", "", entries({{"x", "{}"}}), {}));
        CHECK(f.code == errc::run_not_found);
        CHECK(f.detail.find("\"ghost\"") != std::string::npos);
        CHECK(failure_of(ioc, s->async_read_journal("ghost")).code == errc::run_not_found);
        CHECK(
            failure_of(ioc, s->async_acquire_lease("ghost", "me", 1s)).code == errc::run_not_found
        );
        CHECK_FALSE(failure_of(ioc, s->async_release_lease("ghost", "me")).code);
        CHECK_FALSE(run_coro(ioc, s->async_find_run("ghost")));
        CHECK(run_coro(ioc, s->async_read_journal("known")).empty());
        CHECK(make_error_code(errc::run_not_found).category().name() == std::string("wafer.store"));
    }

    TEST_CASE_TEMPLATE(
        "leases: acquire, renew, refuse, release, expire",
        K,
        memory_kind,
        sqlite_kind,
        sqlite_caller_kind,
        postgres_kind
    ) {
        if (!K::available()) {
            return;
        }
        K kind;
        auto s = kind.open();
        asio::io_context ioc;
        run_coro(ioc, s->async_create_run(make_run("r")));

        const auto t0 = run_coro(ioc, s->async_find_run("r"))->created_ms;
        CHECK(run_coro(ioc, s->async_acquire_lease("r", "A", 10s)));
        auto row = run_coro(ioc, s->async_find_run("r"));
        CHECK(row->lease_owner == "A");
        CHECK(row->lease_expires_ms >= t0 + 10'000);
        CHECK_FALSE(run_coro(ioc, s->async_acquire_lease("r", "B", 10s)));
        CHECK(run_coro(ioc, s->async_find_run("r"))->lease_owner == "A");

        // Renewal by the holder moves the expiry.
        tick();
        CHECK(run_coro(ioc, s->async_acquire_lease("r", "A", 60s)));
        CHECK(
            run_coro(ioc, s->async_find_run("r"))->lease_expires_ms >=
            row->lease_expires_ms + 40'000
        );

        // A live lease is taken over only from the holder named as dead.
        CHECK_FALSE(run_coro(ioc, s->async_acquire_lease("r", "B", 10s, "someone else")));
        CHECK(run_coro(ioc, s->async_find_run("r"))->lease_owner == "A");
        CHECK(run_coro(ioc, s->async_acquire_lease("r", "C", 10s, "A")));
        CHECK(run_coro(ioc, s->async_find_run("r"))->lease_owner == "C");
        CHECK(run_coro(ioc, s->async_acquire_lease("r", "A", 60s, "C")));

        // Only the holder releases.
        run_coro(ioc, s->async_release_lease("r", "B"));
        CHECK(run_coro(ioc, s->async_find_run("r"))->lease_owner == "A");
        run_coro(ioc, s->async_release_lease("r", "A"));
        row = run_coro(ioc, s->async_find_run("r"));
        CHECK(row->lease_owner.empty());
        CHECK(row->lease_expires_ms == 0);
        CHECK(run_coro(ioc, s->async_acquire_lease("r", "B", 10s)));

        // An expired lease is free for anyone.
        run_coro(ioc, s->async_create_run(make_run("short")));
        CHECK(run_coro(ioc, s->async_acquire_lease("short", "A", 60ms)));
        CHECK_FALSE(run_coro(ioc, s->async_acquire_lease("short", "B", 10s)));
        std::this_thread::sleep_for(120ms);
        CHECK(run_coro(ioc, s->async_acquire_lease("short", "B", 10s)));
        CHECK(run_coro(ioc, s->async_find_run("short"))->lease_owner == "B");
    }

    TEST_CASE_TEMPLATE(
        "appends are fenced by the lease",
        K,
        memory_kind,
        sqlite_kind,
        sqlite_caller_kind,
        postgres_kind
    ) {
        if (!K::available()) {
            return;
        }
        K kind;
        auto s = kind.open();
        asio::io_context ioc;
        run_coro(ioc, s->async_create_run(make_run("r")));
        auto one = [] {
            return entries({{"user_message", "{}"}});
        };

        // Without a lease, a named owner cannot write; an anonymous append can.
        CHECK(failure_of(ioc, s->async_append("r", "A", one(), {})).code == errc::lease_held);
        CHECK(run_coro(ioc, s->async_append("r", "", one(), {})) == 1);

        REQUIRE(run_coro(ioc, s->async_acquire_lease("r", "A", 10s)));
        CHECK(run_coro(ioc, s->async_append("r", "A", one(), {.turns = 1})) == 2);
        auto f = failure_of(ioc, s->async_append("r", "B", one(), {.turns = 9}));
        CHECK(f.code == errc::lease_held);
        CHECK(f.detail.find("\"A\"") != std::string::npos);
        CHECK(failure_of(ioc, s->async_append("r", "", one(), {})).code == errc::lease_held);
        // Refused appends leave no trace.
        CHECK(run_coro(ioc, s->async_read_journal("r")).size() == 2);
        CHECK(run_coro(ioc, s->async_find_run("r"))->turns == 1);

        run_coro(ioc, s->async_release_lease("r", "A"));
        CHECK(failure_of(ioc, s->async_append("r", "A", one(), {})).code == errc::lease_held);
        CHECK(run_coro(ioc, s->async_append("r", "", one(), {})) == 3);

        // A lease that expired fences its former holder out; anonymous appends pass again.
        REQUIRE(run_coro(ioc, s->async_acquire_lease("r", "A", 50ms)));
        CHECK(failure_of(ioc, s->async_append("r", "", one(), {})).code == errc::lease_held);
        std::this_thread::sleep_for(100ms);
        CHECK(failure_of(ioc, s->async_append("r", "A", one(), {})).code == errc::lease_held);
        CHECK(run_coro(ioc, s->async_append("r", "", one(), {})) == 4);

        // A run created with its lease is fenced from the start.
        auto leased = make_run("leased");
        leased.lease_owner = "creator";
        leased.lease_expires_ms = run_coro(ioc, s->async_find_run("r"))->updated_ms + 60'000;
        run_coro(ioc, s->async_create_run(leased));
        CHECK(failure_of(ioc, s->async_append("leased", "B", one(), {})).code == errc::lease_held);
        CHECK(run_coro(ioc, s->async_append("leased", "creator", one(), {})) == 1);
        CHECK_FALSE(run_coro(ioc, s->async_acquire_lease("leased", "B", 1s)));
    }

    TEST_CASE_TEMPLATE(
        "concurrent appends from many coroutines all land",
        K,
        memory_kind,
        sqlite_kind,
        sqlite_caller_kind,
        postgres_kind
    ) {
        if (!K::available()) {
            return;
        }
        K kind;
        auto s = kind.open();
        asio::io_context ioc;
        constexpr int runs = 64;
        constexpr int steps = 5;
        auto created = run_burst(ioc, runs, [&](int i) {
            return s->async_create_run(make_run("run-" + std::to_string(i)));
        });
        CHECK(created.errors.empty());

        auto appended = run_burst(ioc, runs, [&](int i) {
            return append_steps(*s, "run-" + std::to_string(i), steps);
        });
        CHECK(appended.errors.empty());
        // Many coroutines on one run: every append gets its own seq.
        auto same = run_burst(ioc, 32, [&](int) { return append_one(*s, "run-0", ""); });
        CHECK(same.errors.empty());

        for (int i = 0; i < runs; ++i) {
            const auto id = "run-" + std::to_string(i);
            auto journal = run_coro(ioc, s->async_read_journal(id));
            const std::size_t want = 2 * steps + (i == 0 ? 32 : 0);
            REQUIRE(journal.size() == want);
            for (std::size_t k = 0; k < journal.size(); ++k) {
                CHECK(journal[k].seq == k + 1);
            }
            for (int k = 0; k < steps; ++k) {
                CHECK(
                    journal[2 * static_cast<std::size_t>(k)].body ==
                    R"({"step":)" + std::to_string(k) + "}"
                );
            }
            CHECK(run_coro(ioc, s->async_find_run(id))->turns == steps);
        }
    }

    TEST_CASE_TEMPLATE(
        "a refused append among concurrent ones fails alone",
        K,
        memory_kind,
        sqlite_kind,
        sqlite_caller_kind,
        postgres_kind
    ) {
        if (!K::available()) {
            return;
        }
        K kind;
        auto s = kind.open();
        asio::io_context ioc;
        for (int i = 0; i < 8; ++i) {
            run_coro(ioc, s->async_create_run(make_run("r" + std::to_string(i))));
        }
        REQUIRE(run_coro(ioc, s->async_acquire_lease("r3", "holder", 10s)));
        // r3 by a non-holder, r5 a ghost; the others succeed, in the same burst.
        auto b = run_burst(ioc, 8, [&](int i) {
            if (i == 3) {
                return append_one(*s, "r3", "intruder");
            }
            return append_one(*s, i == 5 ? "ghost" : "r" + std::to_string(i), "");
        });
        std::vector<boost::system::error_code> want{errc::lease_held, errc::run_not_found};
        std::sort(b.errors.begin(), b.errors.end());
        std::sort(want.begin(), want.end());
        CHECK(b.errors == want);
        for (int i = 0; i < 8; ++i) {
            auto n = run_coro(ioc, s->async_read_journal("r" + std::to_string(i))).size();
            CHECK(n == (i == 3 || i == 5 ? 0u : 1u));
        }
    }

    // --- SQLite files ------------------------------------------------------------------------

    TEST_CASE("sqlite: reopening the file keeps runs, journals and leases") {
        temp_dir dir;
        const auto file = dir.path / "nested" / "dir" / "runs.db"; // directories are created
        asio::io_context ioc;
        std::vector<store::journal_entry> journal;
        std::optional<store::run_info> row;
        {
            store::sqlite_store s(file);
            CHECK(s.path() == file);
            run_coro(ioc, s.async_create_run(make_run("r")));
            run_coro(ioc, append_steps(s, "r", 3));
            REQUIRE(run_coro(ioc, s.async_acquire_lease("r", "A", 60s)));
            journal = run_coro(ioc, s.async_read_journal("r"));
            row = run_coro(ioc, s.async_find_run("r"));
        }
        REQUIRE(fs::exists(file));
        store::sqlite_store again(file, {.durability = store::sqlite_durability::normal});
        CHECK(run_coro(ioc, again.async_read_journal("r")) == journal);
        CHECK(run_coro(ioc, again.async_find_run("r")) == row);
        CHECK_FALSE(run_coro(ioc, again.async_acquire_lease("r", "B", 1s)));
        CHECK(run_coro(ioc, again.async_append("r", "A", entries({{"x", "{}"}}), {})) == 7);
    }

    TEST_CASE("sqlite: a second store on the same file sees the writes and respects the lease") {
        temp_dir dir;
        const auto file = dir.path / "runs.db";
        asio::io_context ioc;
        store::sqlite_store one(file);
        store::sqlite_store two(file);
        run_coro(ioc, one.async_create_run(make_run("r")));
        REQUIRE(run_coro(ioc, one.async_acquire_lease("r", "one", 30s)));
        CHECK(run_coro(ioc, one.async_append("r", "one", entries({{"a", "1"}}), {})) == 1);

        auto seen = run_coro(ioc, two.async_find_run("r"));
        REQUIRE(seen);
        CHECK(seen->lease_owner == "one");
        CHECK(run_coro(ioc, two.async_read_journal("r")).size() == 1);
        CHECK_FALSE(run_coro(ioc, two.async_acquire_lease("r", "two", 30s)));
        CHECK(
            failure_of(ioc, two.async_append("r", "two", entries({{"b", "2"}}), {})).code ==
            errc::lease_held
        );
        CHECK(failure_of(ioc, two.async_create_run(make_run("r"))).code == errc::run_exists);

        CHECK(run_coro(ioc, one.async_append("r", "one", entries({{"c", "3"}}), {})) == 2);
        CHECK(run_coro(ioc, two.async_read_journal("r", 1)).at(0).body == "3");
        run_coro(ioc, one.async_release_lease("r", "one"));
        CHECK(run_coro(ioc, two.async_acquire_lease("r", "two", 30s)));
        CHECK(
            failure_of(ioc, one.async_append("r", "one", entries({{"d", "4"}}), {})).code ==
            errc::lease_held
        );
        // Both write concurrently, each to its own run: nothing is lost.
        run_coro(ioc, one.async_create_run(make_run("p")));
        run_coro(ioc, two.async_create_run(make_run("q")));
        auto b = run_burst(ioc, 40, [&](int i) {
            return i % 2 ? append_one(one, "p", "") : append_one(two, "q", "");
        });
        CHECK(b.errors.empty());
        CHECK(run_coro(ioc, one.async_read_journal("q")).size() == 20);
        CHECK(run_coro(ioc, two.async_read_journal("p")).size() == 20);
    }

    TEST_CASE("sqlite: what another connection writes is seen by the next append (no stale lease "
              "or seq)") {
        for (auto threading :
             {store::sqlite_threading::store_thread, store::sqlite_threading::caller_when_idle}) {
            temp_dir dir;
            const auto file = dir.path / "runs.db";
            asio::io_context ioc;
            store::sqlite_store one(file, {.threading = threading});
            store::sqlite_store two(file);
            run_coro(ioc, one.async_create_run(make_run("r")));
            REQUIRE(run_coro(ioc, one.async_acquire_lease("r", "one", 30s)));
            CHECK(run_coro(ioc, one.async_append("r", "one", entries({{"a", "1"}}), {})) == 1);
            CHECK(run_coro(ioc, one.async_append("r", "one", entries({{"a", "2"}}), {})) == 2);

            // Another store takes the lease over (the holder is known dead): the holder's next
            // append is refused, although its own last write left it holding the lease.
            REQUIRE(run_coro(ioc, two.async_acquire_lease("r", "two", 30s, "one")));
            CHECK(
                failure_of(ioc, one.async_append("r", "one", entries({{"x", "x"}}), {})).code ==
                errc::lease_held
            );
            CHECK(run_coro(ioc, two.async_append("r", "two", entries({{"b", "3"}}), {})) == 3);
            run_coro(ioc, two.async_release_lease("r", "two"));
            // The journal goes on after the other store's entries.
            REQUIRE(run_coro(ioc, one.async_acquire_lease("r", "one", 30s)));
            CHECK(run_coro(ioc, one.async_append("r", "one", entries({{"c", "4"}}), {})) == 4);

            // A plain SQLite connection writing behind the store's back is seen too.
            sqlite3* db = nullptr;
            REQUIRE(sqlite3_open(file.c_str(), &db) == SQLITE_OK);
            sqlite3_busy_timeout(db, 5000);
            REQUIRE(
                sqlite3_exec(
                    db,
                    "UPDATE runs SET lease_owner = 'other', lease_expires_ms = 9000000000000",
                    nullptr,
                    nullptr,
                    nullptr
                ) == SQLITE_OK
            );
            sqlite3_close(db);
            CHECK(
                failure_of(ioc, one.async_append("r", "one", entries({{"y", "y"}}), {})).code ==
                errc::lease_held
            );
            CHECK_FALSE(run_coro(ioc, one.async_acquire_lease("r", "one", 30s)));
            auto journal = run_coro(ioc, two.async_read_journal("r"));
            REQUIRE(journal.size() == 4);
            CHECK(journal[3].body == "4");
        }
    }

    TEST_CASE("sqlite: another process is fenced by the lease and takes it once released") {
        temp_dir dir;
        const auto file = dir.path / "runs.db";
        asio::io_context ioc;
        store::sqlite_store s(file);
        run_coro(ioc, s.async_create_run(make_run("r")));
        REQUIRE(run_coro(ioc, s.async_acquire_lease("r", "parent", 30s)));

        CHECK(run_child(file, "r", "acquire") == 1);
        CHECK(run_child(file, "r", "append") == 1);
        CHECK(run_coro(ioc, s.async_read_journal("r")).empty());

        run_coro(ioc, s.async_release_lease("r", "parent"));
        CHECK(run_child(file, "r", "acquire") == 0);
        CHECK(run_child(file, "r", "append") == 0);
        CHECK(run_coro(ioc, s.async_find_run("r"))->lease_owner == "child");
        CHECK_FALSE(run_coro(ioc, s.async_acquire_lease("r", "parent", 30s)));
        auto journal = run_coro(ioc, s.async_read_journal("r"));
        REQUIRE(journal.size() == 1);
        CHECK(journal[0].body == R"({"text":"hi"})");
        CHECK(run_child(dir.path / "missing-dir-is-created" / "x.db", "nope", "acquire") == 2);
    }

    TEST_CASE("sqlite: a file that is not SQLite is refused as corrupt and left untouched") {
        temp_dir dir;
        const auto file = dir.path / "runs.db";
        std::string garbage;
        for (int i = 0; i < 8192; ++i) {
            garbage += static_cast<char>((i * 7919 + 13) % 251);
        }
        for (const auto& bytes : {garbage, std::string("hello"), std::string(200, 'x')}) {
            write_bytes(file, bytes);
            auto f = failure_of_ctor([&] { store::sqlite_store s(file); });
            CHECK(f.code == errc::corrupt);
            CHECK(f.detail.find(file.string()) != std::string::npos);
            CHECK(f.detail.find("not a SQLite database") != std::string::npos);
            CHECK(f.detail.find('\n') == std::string::npos);
            CHECK(read_bytes(file) == bytes);
            CHECK_FALSE(fs::exists(file.string() + "-wal"));
            CHECK_FALSE(fs::exists(file.string() + "-shm"));
        }
    }

    TEST_CASE("sqlite: a truncated database is refused as corrupt and left untouched") {
        temp_dir dir;
        const auto file = dir.path / "runs.db";
        asio::io_context ioc;
        {
            store::sqlite_store s(file, {.durability = store::sqlite_durability::normal});
            const std::string body(2000, 'b');
            for (int i = 0; i < 50; ++i) {
                const auto id = "r" + std::to_string(i);
                run_coro(ioc, s.async_create_run(make_run(id)));
                run_coro(ioc, s.async_append(id, "", entries({{"a", body}, {"b", body}}), {}));
            }
        }
        const auto whole = read_bytes(file);
        REQUIRE(whole.size() > 100'000);
        for (std::size_t cut : {whole.size() / 2, std::size_t{4096}, std::size_t{60}}) {
            const auto part = whole.substr(0, cut);
            write_bytes(file, part);
            auto f = failure_of_ctor([&] { store::sqlite_store s(file); });
            CHECK_MESSAGE(f.code == errc::corrupt, "cut at " << cut << ": " << f.detail);
            if (cut == whole.size() / 2) {
                MESSAGE("truncated: " << f.detail);
            }
            CHECK(f.detail.find(file.string()) != std::string::npos);
            CHECK(read_bytes(file) == part);
            CHECK_FALSE(fs::exists(file.string() + "-wal"));
        }
    }

    TEST_CASE("sqlite: a newer schema is refused, a foreign database too") {
        temp_dir dir;
        const auto file = dir.path / "runs.db";
        asio::io_context ioc;
        {
            store::sqlite_store s(file);
            run_coro(ioc, s.async_create_run(make_run("r")));
        }
        auto exec = [](const fs::path& p, const char* sql) {
            sqlite3* db = nullptr;
            REQUIRE(sqlite3_open(p.c_str(), &db) == SQLITE_OK);
            CHECK(sqlite3_exec(db, sql, nullptr, nullptr, nullptr) == SQLITE_OK);
            sqlite3_close(db);
        };
        exec(file, "PRAGMA user_version=99");
        const auto bytes = read_bytes(file);
        auto f = failure_of_ctor([&] { store::sqlite_store s(file); });
        CHECK(f.code == errc::schema_too_new);
        CHECK(
            f.detail == "run store " + file.string() +
                            ": written by a newer wafer (schema 99; this build reads up to 1)"
        );
        CHECK(read_bytes(file) == bytes);
        exec(file, "PRAGMA user_version=1");
        {
            store::sqlite_store s(file); // back to a version this build reads
            CHECK(run_coro(ioc, s.async_find_run("r")));
        }

        const auto other = dir.path / "other.db";
        exec(other, "CREATE TABLE notes (t TEXT); INSERT INTO notes VALUES ('keep me')");
        const auto other_bytes = read_bytes(other);
        f = failure_of_ctor([&] { store::sqlite_store s(other); });
        CHECK(f.code == errc::corrupt);
        CHECK(f.detail.find("not a wafer run store") != std::string::npos);
        CHECK(read_bytes(other) == other_bytes);

        // A directory where the file should be cannot be opened.
        fs::create_directories(dir.path / "adir");
        CHECK(failure_of_ctor([&] { store::sqlite_store s(dir.path / "adir"); }).code == errc::io);
    }

    TEST_CASE("sqlite: concurrent appends share commits (group commit); sequential ones do not") {
        temp_dir dir;
        auto& vfs = wafer::testing::counting_vfs::instance();
        asio::io_context ioc;
        store::sqlite_store s(dir.path / "runs.db", {.vfs = vfs.name});
        constexpr int n = 100;
        auto created = run_burst(ioc, n, [&](int i) {
            return s.async_create_run(make_run("r" + std::to_string(i)));
        });
        REQUIRE(created.errors.empty());

        auto before = vfs.wal_syncs.load();
        for (int i = 0; i < 10; ++i) {
            run_coro(ioc, append_one(s, "r0", ""));
        }
        const auto sequential = vfs.wal_syncs.load() - before;
        CHECK(sequential >= 10); // FULL: every commit syncs the log

        before = vfs.wal_syncs.load();
        auto b =
            run_burst(ioc, n, [&](int i) { return append_one(s, "r" + std::to_string(i), ""); });
        const auto grouped = vfs.wal_syncs.load() - before;
        CHECK(b.errors.empty());
        MESSAGE("100 concurrent appends: " << grouped << " log syncs");
        CHECK(grouped >= 1);
        CHECK(grouped < n / 2);
        for (int i = 0; i < n; ++i) {
            CHECK(
                run_coro(ioc, s.async_read_journal("r" + std::to_string(i))).size() ==
                (i == 0 ? 11u : 1u)
            );
        }

        // NORMAL durability does not sync the log at commit.
        store::sqlite_store normal(
            dir.path / "normal.db",
            {.durability = store::sqlite_durability::normal, .vfs = vfs.name}
        );
        run_coro(ioc, normal.async_create_run(make_run("r")));
        before = vfs.wal_syncs.load();
        for (int i = 0; i < 10; ++i) {
            run_coro(ioc, append_one(normal, "r", ""));
        }
        CHECK(vfs.wal_syncs.load() - before == 0);
    }

    TEST_CASE("sqlite FULL: an append without run_update::sync is not synced, the next synced "
              "commit makes it durable, and a reopened store (a crashed process) has it") {
        temp_dir dir;
        auto& vfs = wafer::testing::counting_vfs::instance();
        asio::io_context ioc;
        const auto file = dir.path / "runs.db";
        for (auto threading :
             {store::sqlite_threading::store_thread, store::sqlite_threading::caller_when_idle}) {
            CAPTURE(static_cast<int>(threading));
            fs::remove(file);
            store::sqlite_store s(file, {.threading = threading, .vfs = vfs.name});
            run_coro(ioc, s.async_create_run(make_run("r")));
            store::run_update deferred;
            deferred.sync = false;
            auto before = vfs.wal_syncs.load();
            for (int i = 0; i < 5; ++i) {
                run_coro(ioc, s.async_append("r", "", entries({{"tool_result", "{}"}}), deferred));
            }
            CHECK(vfs.wal_syncs.load() - before == 0);
            {
                store::sqlite_store other(file); // what another process sees at once
                CHECK(run_coro(ioc, other.async_read_journal("r")).size() == 5);
            }
            before = vfs.wal_syncs.load();
            run_coro(ioc, append_one(s, "r", "")); // synced: the five go to disk with it
            CHECK(vfs.wal_syncs.load() - before >= 1);
            before = vfs.wal_syncs.load();
            run_coro(ioc, append_one(s, "r", "")); // and the setting went back to FULL
            CHECK(vfs.wal_syncs.load() - before >= 1);
            CHECK(run_coro(ioc, s.async_read_journal("r")).size() == 7);
        }
    }

    TEST_CASE(
        "sqlite: a failing disk fails the appends with io, lands nothing, and the store recovers"
    ) {
        temp_dir dir;
        auto& vfs = wafer::testing::counting_vfs::instance();
        asio::io_context ioc;
        const auto file = dir.path / "runs.db";
        store::sqlite_store s(file, {.vfs = vfs.name});
        run_coro(ioc, s.async_create_run(make_run("r")));
        for (int i = 0; i < 4; ++i) {
            run_coro(ioc, s.async_create_run(make_run("p" + std::to_string(i))));
        }
        CHECK(run_coro(ioc, append_one(s, "r", "")) == 1);

        vfs.fail_wal_writes = true;
        auto f = failure_of(ioc, append_one(s, "r", ""));
        auto b =
            run_burst(ioc, 4, [&](int i) { return append_one(s, "p" + std::to_string(i), ""); });
        vfs.fail_wal_writes = false;
        CHECK(f.code == errc::io);
        CHECK(f.detail.find(file.string()) != std::string::npos);
        CHECK(f.detail.find('\n') == std::string::npos);
        MESSAGE("disk full: " << f.detail);
        CHECK(b.errors == std::vector<boost::system::error_code>(4, errc::io));

        // Nothing of the failed commits landed, and the store goes on once the disk recovers.
        CHECK(run_coro(ioc, s.async_read_journal("r")).size() == 1);
        CHECK(run_coro(ioc, append_one(s, "r", "")) == 2);
        for (int i = 0; i < 4; ++i) {
            CHECK(run_coro(ioc, s.async_read_journal("p" + std::to_string(i))).empty());
        }
        store::sqlite_store again(file);
        CHECK(run_coro(ioc, again.async_read_journal("r")).size() == 2);
    }

    TEST_CASE("sqlite: the destructor finishes every queued operation") {
        temp_dir dir;
        const auto file = dir.path / "runs.db";
        asio::io_context ioc;
        constexpr int n = 50;
        int finished = 0;
        int failed = 0;
        auto s = std::make_unique<store::sqlite_store>(file);
        run_coro(ioc, s->async_create_run(make_run("r")));
        // Another connection holds the write lock, so nothing the store queues can commit until
        // it lets go.
        sqlite3* blocker = nullptr;
        REQUIRE(sqlite3_open(file.c_str(), &blocker) == SQLITE_OK);
        REQUIRE(sqlite3_exec(blocker, "BEGIN IMMEDIATE", nullptr, nullptr, nullptr) == SQLITE_OK);
        for (int i = 0; i < n; ++i) {
            asio::co_spawn(ioc, append_one(*s, "r", ""), [&](std::exception_ptr e, std::uint64_t) {
                ++finished;
                failed += e ? 1 : 0;
            });
        }
        ioc.restart();
        ioc.poll(); // every coroutine has queued its append
        CHECK(finished == 0);
        std::thread release([blocker] {
            std::this_thread::sleep_for(300ms);
            sqlite3_exec(blocker, "COMMIT", nullptr, nullptr, nullptr);
            sqlite3_close(blocker);
        });
        s.reset(); // destroyed with its queue full: waits for the lock, then drains the queue
        release.join();
        ioc.restart();
        ioc.run();
        CHECK(finished == n);
        CHECK(failed == 0);
        store::sqlite_store again(file);
        CHECK(run_coro(ioc, again.async_read_journal("r")).size() == n);
    }

    TEST_CASE("sqlite: caller_when_idle leaves waiting for another connection to the store's thread"
    ) {
        temp_dir dir;
        const auto file = dir.path / "runs.db";
        asio::io_context ioc;
        store::sqlite_store s(file, {.threading = store::sqlite_threading::caller_when_idle});
        run_coro(ioc, s.async_create_run(make_run("r")));
        CHECK(run_coro(ioc, append_one(s, "r", "")) == 1); // idle: on this thread
        sqlite3* blocker = nullptr;
        REQUIRE(sqlite3_open(file.c_str(), &blocker) == SQLITE_OK);
        REQUIRE(sqlite3_exec(blocker, "BEGIN IMMEDIATE", nullptr, nullptr, nullptr) == SQLITE_OK);
        constexpr int n = 5;
        int finished = 0;
        int failed = 0;
        for (int i = 0; i < n; ++i) {
            asio::co_spawn(ioc, append_one(s, "r", ""), [&](std::exception_ptr e, std::uint64_t) {
                ++finished;
                failed += e ? 1 : 0;
            });
        }
        ioc.restart();
        // The file is locked: nothing runs here (no waiting on this thread, no SQLITE_BUSY), all
        // of it queues for the store's thread, which waits for the lock.
        ioc.poll();
        CHECK(finished == 0);
        std::thread release([blocker] {
            std::this_thread::sleep_for(200ms);
            sqlite3_exec(blocker, "COMMIT", nullptr, nullptr, nullptr);
            sqlite3_close(blocker);
        });
        const auto end = std::chrono::steady_clock::now() + 10s;
        while (finished < n && std::chrono::steady_clock::now() < end) {
            ioc.run_one_for(50ms);
            ioc.restart();
        }
        release.join();
        CHECK(finished == n);
        CHECK(failed == 0);
        CHECK(run_coro(ioc, s.async_read_journal("r")).size() == n + 1);
    }

    TEST_CASE("sqlite: caller_when_idle from several threads at once") {
        temp_dir dir;
        store::sqlite_store s(
            dir.path / "runs.db", {.threading = store::sqlite_threading::caller_when_idle}
        );
        constexpr int threads = 4;
        constexpr int steps = 40;
        {
            asio::io_context ioc;
            for (int t = 0; t < threads; ++t) {
                run_coro(ioc, s.async_create_run(make_run("t" + std::to_string(t))));
            }
            run_coro(ioc, s.async_create_run(make_run("shared")));
        }
        std::vector<std::thread> pool;
        std::atomic<int> failures{0};
        for (int t = 0; t < threads; ++t) {
            pool.emplace_back([&s, &failures, t] {
                asio::io_context ioc;
                auto body = [&]() -> asio::awaitable<void> {
                    for (int k = 0; k < steps; ++k) {
                        co_await append_steps(s, "t" + std::to_string(t), 1);
                        co_await append_one(s, "shared", "");
                        co_await s.async_find_run("shared");
                    }
                };
                asio::co_spawn(ioc, body(), [&failures](std::exception_ptr e) {
                    failures += e ? 1 : 0;
                });
                ioc.run();
            });
        }
        for (auto& th : pool) {
            th.join();
        }
        CHECK(failures == 0);
        asio::io_context ioc;
        for (int t = 0; t < threads; ++t) {
            CHECK(run_coro(ioc, s.async_read_journal("t" + std::to_string(t))).size() == 2 * steps);
        }
        const auto shared = run_coro(ioc, s.async_read_journal("shared"));
        REQUIRE(shared.size() == threads * steps);
        for (std::size_t k = 0; k < shared.size(); ++k) {
            CHECK(shared[k].seq == k + 1);
        }
    }

    TEST_CASE("sqlite: the log is checkpointed into the database file as it grows") {
        for (auto threading :
             {store::sqlite_threading::store_thread, store::sqlite_threading::caller_when_idle}) {
            CAPTURE(static_cast<int>(threading));
            temp_dir dir;
            const auto file = dir.path / "runs.db";
            asio::io_context ioc;
            store::sqlite_store s(
                file, {.durability = store::sqlite_durability::normal, .threading = threading}
            );
            run_coro(ioc, s.async_create_run(make_run("r")));
            const auto small = fs::file_size(file);
            // 8 MB of bodies: about 2,000 pages of log, twice the checkpoint threshold.
            const std::string body(100 * 1024, 'x');
            for (int i = 0; i < 80; ++i) {
                auto e = entries({{"tool_result", body}});
                run_coro(ioc, s.async_append("r", "", std::move(e), store::run_update{}));
            }
            // Checkpoints run on the store's thread, after the commits that crossed the
            // threshold.
            const auto end = std::chrono::steady_clock::now() + 10s;
            while (fs::file_size(file) < 4 * 1024 * 1024 && std::chrono::steady_clock::now() < end
            ) {
                std::this_thread::sleep_for(10ms);
            }
            CHECK(small < 100 * 1024);
            CHECK(fs::file_size(file) >= 4 * 1024 * 1024);
            // The log was started over after a checkpoint instead of growing to hold it all.
            CHECK(fs::file_size(fs::path(file.string() + "-wal")) < 7 * 1024 * 1024);
            CHECK(run_coro(ioc, s.async_read_journal("r")).size() == 80);
        }
    }

    TEST_CASE("sqlite: operations complete on the caller's executor, which counts them as work") {
        temp_dir dir;
        store::sqlite_store s(dir.path / "runs.db");
        asio::io_context ioc;
        bool done = false;
        std::thread::id where;
        auto body = [&]() -> asio::awaitable<void> {
            auto run = make_run("r");
            co_await s.async_create_run(run);
            co_await append_one(s, run.id, std::string());
            where = std::this_thread::get_id();
            done = true;
        };
        asio::co_spawn(ioc, body(), [](std::exception_ptr e) {
            if (e) {
                std::rethrow_exception(e);
            }
        });
        ioc.run(); // returns only once nothing is outstanding: the store's pending ops count
        CHECK(done);
        CHECK(where == std::this_thread::get_id());
    }

    // --- Journal codec -----------------------------------------------------------------------

    TEST_CASE("codec: a model reply round-trips, reasoning and arguments verbatim") {
        wafer::model_reply r;
        r.message.content = "Done: the test passes.";
        r.message.reasoning = "  Let me think...\n\tthe bug is in `parse()` — off by one.  ";
        r.message.tool_calls = {
            {"call_1", "read_file", R"({"path": "src/x.cpp", "offset":1})"},
            {"call_2", "run_command", "{not json"}};
        r.finish_reason = wafer::api::finish_reason::tool_calls;
        r.usage = wafer::api::usage{
            .prompt_tokens = 1234,
            .completion_tokens = 56,
            .total_tokens = 1290,
            .cached_tokens = 1000,
            .reasoning_tokens = 40,
            .accepted_prediction_tokens = 1,
            .rejected_prediction_tokens = 2};
        r.time_info = wafer::api::time_info{
            .queue_time = 0.000123,
            .prompt_time = 0.0123456789,
            .completion_time = 0.1,
            .total_time = 0.11245,
            .created = 1764630000.123456};
        r.model_id = "zai-glm-4.7";
        r.response_id = "chatcmpl-abc";
        const json j = r;
        CHECK(j.at("finish_reason") == "tool_calls");
        CHECK(json::parse(j.dump()).get<wafer::model_reply>() == r);

        wafer::model_reply bare;
        bare.finish_reason = wafer::api::finish_reason::stop;
        const json jb = bare;
        CHECK_FALSE(jb.contains("usage"));
        CHECK_FALSE(jb.contains("time_info"));
        CHECK(json::parse(jb.dump()).get<wafer::model_reply>() == bare);

        CHECK_THROWS_AS(json::array().get<wafer::model_reply>(), json::exception);
        auto broken = j;
        broken["message"] = 5;
        CHECK_THROWS_AS(broken.get<wafer::model_reply>(), json::exception);
        broken = j;
        broken.erase("model_id");
        CHECK_THROWS_AS(broken.get<wafer::model_reply>(), json::exception);
    }

    TEST_CASE("codec: tool results round-trip with every status by name") {
        using wafer::tools::result_status;
        for (auto st :
             {result_status::ok,
              result_status::tool_error,
              result_status::invalid_arguments,
              result_status::unknown_tool,
              result_status::handler_exception,
              result_status::timeout,
              result_status::cancelled,
              result_status::refused}) {
            wafer::tools::tool_result r;
            r.tool_call_id = "call_9";
            r.name = "edit_file";
            r.content = "line 1\nline 2\n[output truncated: 10 of 99 bytes shown]";
            r.is_error = st != result_status::ok;
            r.status = st;
            r.truncated = st == result_status::ok;
            const json j = r;
            CHECK(j.at("status") == wafer::tools::to_string(st));
            auto back = json::parse(j.dump()).get<wafer::tools::tool_result>();
            CHECK(back.tool_call_id == r.tool_call_id);
            CHECK(back.name == r.name);
            CHECK(back.content == r.content);
            CHECK(back.is_error == r.is_error);
            CHECK(back.status == r.status);
            CHECK(back.truncated == r.truncated);
        }
        json bad = wafer::tools::tool_result{};
        bad["status"] = "exploded";
        CHECK_THROWS_AS(bad.get<wafer::tools::tool_result>(), json::exception);
        bad.erase("status");
        CHECK_THROWS_AS(bad.get<wafer::tools::tool_result>(), json::exception);
    }

    TEST_CASE("codec: critic reviews round-trip") {
        wafer::critic_review r;
        r.critic = "security";
        r.gate = wafer::gate::before_tools;
        r.turn = 3;
        r.call_id = "call_1";
        r.verdict.decision = wafer::critic_decision::revise;
        r.verdict.reasons = {"writes outside the workspace", "no backup"};
        r.verdict.suggested_fix = "write under ./out";
        r.verdict.corrected_arguments = R"({"path":"out/x"})";
        r.latency = std::chrono::microseconds(123456);
        r.usage.prompt_tokens = 900;
        r.usage.completion_tokens = 20;
        auto check_round_trip = [](const wafer::critic_review& in) {
            auto out = json::parse(json(in).dump()).get<wafer::critic_review>();
            CHECK(out.critic == in.critic);
            CHECK(out.gate == in.gate);
            CHECK(out.turn == in.turn);
            CHECK(out.call_id == in.call_id);
            CHECK(out.verdict == in.verdict);
            CHECK(out.error == in.error);
            CHECK(out.latency == in.latency);
            CHECK(out.usage == in.usage);
        };
        check_round_trip(r);
        wafer::critic_review failed;
        failed.critic = "qa";
        failed.gate = wafer::gate::final_answer;
        failed.verdict.decision = wafer::critic_decision::deny;
        failed.error = "the review timed out";
        check_round_trip(failed);
        CHECK(json(failed).at("call_id").is_null());

        json bad = r;
        bad["verdict"]["decision"] = "maybe";
        CHECK_THROWS_AS(bad.get<wafer::critic_review>(), json::exception);
        bad = r;
        bad["gate"] = "nowhere";
        CHECK_THROWS_AS(bad.get<wafer::critic_review>(), json::exception);
    }

    TEST_CASE("codec: run errors keep wafer codes; other categories become invalid_response") {
        wafer::run_error e;
        e.code = make_error_code(wafer::errc::rate_limited);
        e.diagnostics.http_status = 429;
        e.diagnostics.type = "too_many_requests_error";
        e.diagnostics.code = "queue_exceeded";
        e.diagnostics.message = "Requests per minute limit exceeded";
        e.diagnostics.request_id = "req-1";
        e.diagnostics.retry_after = std::chrono::milliseconds(1500);
        e.diagnostics.rate_limit = {{"x-ratelimit-limit-requests-minute", "30"}};
        e.diagnostics.attempts = 3;
        e.diagnostics.detail = "after 3 attempts";
        e.diagnostics.refused = true;
        auto back = json::parse(json(e).dump()).get<wafer::run_error>();
        CHECK(back.code == e.code);
        CHECK(back.code == wafer::errc::rate_limited);
        CHECK(json(back.diagnostics) == json(e.diagnostics));
        CHECK(back.diagnostics.retry_after == std::chrono::milliseconds(1500));
        CHECK(back.diagnostics.rate_limit == e.diagnostics.rate_limit);

        wafer::run_error s;
        s.code = make_error_code(store::errc::io);
        CHECK(json(s).get<wafer::run_error>().code == store::errc::io);

        wafer::run_error sys;
        sys.code = boost::system::error_code(ENOENT, boost::system::system_category());
        sys.diagnostics.detail = "opening the workspace";
        auto mapped = json::parse(json(sys).dump()).get<wafer::run_error>();
        CHECK(mapped.code == wafer::errc::invalid_response);
        CHECK(
            mapped.diagnostics.detail == "system error " + std::to_string(ENOENT) + ": " +
                                             sys.code.message() + "; opening the workspace"
        );
        CHECK_FALSE(mapped.diagnostics.retry_after);

        json bad = e;
        bad["code"]["value"] = "seven";
        CHECK_THROWS_AS(bad.get<wafer::run_error>(), json::exception);
        bad = e;
        bad["diagnostics"].erase("attempts");
        CHECK_THROWS_AS(bad.get<wafer::run_error>(), json::exception);
    }
}
