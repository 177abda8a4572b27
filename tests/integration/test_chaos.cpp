// The queue under chaos: 3 worker processes (tests/pg/queue_worker.cpp) share 200 runs in the
// throwaway PostgreSQL server, a third of them pipelines whose step runs as a durable child run
// that goes through the queue to any worker (worker_options::spread_children);
// every run's tool inserts a row keyed by its call into a side table. One worker is killed with
// SIGKILL every 0.6 to 1.5 s and restarted under a new name, and the server itself is restarted
// once. Every run must complete, no call key may appear twice in the side table, and no run is
// lost.
#include <wafer/store/postgres_queue.hpp>
#include <wafer/store/postgres_store.hpp>
#include <wafer/testing/fake_server.hpp>
#include <wafer/worker.hpp>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>

#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

#include <chrono>
#include <csignal>
#include <cstdio>
#include <fcntl.h>
#include <filesystem>
#include <random>
#include <spawn.h>
#include <string>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>
#include <vector>

#include "pg_env.hpp"
#include "run_coro.hpp"

#ifdef WAFER_QUEUE_WORKER

extern char** environ;

namespace {

namespace asio = boost::asio;
namespace fs = std::filesystem;
using namespace std::chrono_literals;

/// The first line psql prints for `sql` (unaligned, tuples only), empty on failure.
std::string psql_value(const std::string& schema, const std::string& sql) {
    const std::string cmd = "psql -X -q -At -v ON_ERROR_STOP=1 '" +
                            wafer::testing::postgres_conninfo() + "' -c 'SET search_path TO \"" +
                            schema + "\"' -c \"" + sql + "\" 2>/dev/null";
    FILE* p = ::popen(cmd.c_str(), "r");
    if (!p) {
        return {};
    }
    std::string out;
    char buf[256];
    while (std::fgets(buf, sizeof buf, p)) {
        out += buf;
    }
    ::pclose(p);
    // The SET prints "SET"; the value is on the last line.
    while (!out.empty() && out.back() == '\n') {
        out.pop_back();
    }
    const auto nl = out.rfind('\n');
    return nl == std::string::npos ? out : out.substr(nl + 1);
}

long psql_count(const std::string& schema, const std::string& sql) {
    const std::string v = psql_value(schema, sql);
    try {
        return std::stol(v);
    } catch (const std::exception&) {
        return -1;
    }
}

/// The chat server the workers talk to: "record" (or "delegate" where offered), then an answer.
struct chat_server {
    asio::io_context io;
    asio::executor_work_guard<asio::io_context::executor_type> work{io.get_executor()};
    wafer::testing::fake_server server{io.get_executor()};
    std::thread thread{[this] {
        io.run();
    }};

    chat_server() {
        server.set_responder([](const wafer::api::chat_request& req) {
            if (!req.messages.empty() && req.messages.back().role == wafer::api::role::tool) {
                return wafer::testing::reply::text("done");
            }
            bool delegates = false;
            for (const auto& t : req.tools) {
                delegates = delegates || t.name == "delegate";
            }
            wafer::testing::scripted_turn t;
            if (delegates) {
                t.tool_calls.push_back({"", "delegate", R"({"input":"the step"})"});
            } else {
                t.tool_calls.push_back({"", "record", "{}"});
            }
            return wafer::testing::reply::of(t);
        });
    }
    ~chat_server() {
        asio::post(io, [this] { server.stop(); });
        work.reset();
        thread.join();
    }
};

struct worker_process {
    pid_t pid = -1;
    int generation = 0;
};

pid_t spawn_worker(
    const std::string& schema,
    const std::string& base_url,
    const std::string& name,
    const fs::path& log
) {
    const std::vector<std::string> args{
        WAFER_QUEUE_WORKER,
        "--store",
        wafer::testing::postgres_conninfo(),
        "--schema",
        schema,
        "--base-url",
        base_url,
        "--name",
        name,
        "--concurrency",
        "4",
        "--ttl-ms",
        "2000",
        "--work-ms",
        "600",
        "--spread",
        "1"};
    std::vector<char*> argv;
    for (const auto& a : args) {
        argv.push_back(const_cast<char*>(a.c_str()));
    }
    argv.push_back(nullptr);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 1, log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    posix_spawn_file_actions_adddup2(&fa, 1, 2);
    pid_t pid = -1;
    const int rc = ::posix_spawn(&pid, argv[0], &fa, nullptr, argv.data(), environ);
    posix_spawn_file_actions_destroy(&fa);
    REQUIRE(rc == 0);
    return pid;
}

} // namespace

TEST_SUITE("postgres/chaos") {
    TEST_CASE("postgres/chaos: 3 workers, 200 runs (a third pipelines), SIGKILL every few "
              "seconds and a server restart: every run completes, no call twice, none lost") {
        if (!wafer::testing::postgres_available()) {
            return;
        }
        const std::string schema = wafer::testing::unique_schema();
        {
            // Creates the schema and wafer's tables.
            wafer::testing::pg_thread pg;
            auto st = wafer::testing::open_postgres(pg.io, schema);
        }
        REQUIRE(
            wafer::testing::psql(
                schema, "CREATE TABLE side (call_key text NOT NULL, worker text NOT NULL)"
            ) == 0
        );
        {
            wafer::testing::pg_thread pg;
            std::shared_ptr<wafer::store::postgres_store> st =
                wafer::testing::open_postgres(pg.io, schema);
            wafer::store::postgres_queue queue(*st);
            asio::io_context ioc;
            for (int i = 0; i < 200; ++i) {
                wafer::queued_run r;
                r.run_id = "c" + std::to_string(i);
                r.input = "task " + r.run_id;
                r.agent = i % 3 == 0 ? "pipeline" : "single";
                r.max_attempts = 20; // kills are not poison here (test_postgres has poison)
                wafer::testing::run_coro(ioc, queue.async_submit(wafer::make_submission(r)));
            }
        }
        REQUIRE(psql_count(schema, "SELECT count(*) FROM run_queue WHERE state = 'queued'") == 200);

        chat_server chat;
        const fs::path logs = fs::temp_directory_path() / ("wafer-chaos-" + schema);
        fs::create_directories(logs);
        std::vector<worker_process> workers(3);
        auto start = [&](std::size_t i) {
            workers[i].generation++;
            const std::string name =
                "w" + std::to_string(i) + "-" + std::to_string(workers[i].generation);
            workers[i].pid =
                spawn_worker(schema, chat.server.base_url(), name, logs / (name + ".log"));
        };
        for (std::size_t i = 0; i < workers.size(); ++i) {
            start(i);
        }

        std::mt19937 rng(std::random_device{}());
        std::uniform_int_distribution<int> pause_ms(600, 1500);
        std::uniform_int_distribution<std::size_t> victim(0, workers.size() - 1);
        int kills = 0;
        bool restarted_server = false;
        const auto began = std::chrono::steady_clock::now();
        const std::string top_done =
            "SELECT count(*) FROM run_queue q JOIN runs r ON r.id = q.run_id WHERE q.state = "
            "'done' AND r.parent_id = ''";
        long done = 0;
        while (std::chrono::steady_clock::now() - began < 240s) {
            std::this_thread::sleep_for(std::chrono::milliseconds(pause_ms(rng)));
            done = psql_count(schema, top_done);
            // A child whose worker died after its run finished but before the queue heard is
            // claimed again once its lease lapses, and read back: wait for those too.
            if (done == 200 &&
                psql_count(schema, "SELECT count(*) FROM run_queue WHERE state <> 'done'") == 0) {
                break;
            }
            if (!restarted_server && kills == 2) {
                restarted_server = true;
                REQUIRE(wafer::testing::postgres_ctl("restart"));
                continue;
            }
            const std::size_t v = victim(rng);
            ::kill(workers[v].pid, SIGKILL);
            int status = 0;
            ::waitpid(workers[v].pid, &status, 0);
            ++kills;
            start(v);
        }
        for (auto& w : workers) {
            ::kill(w.pid, SIGTERM);
        }
        for (auto& w : workers) {
            int status = 0;
            ::waitpid(w.pid, &status, 0);
            CHECK_MESSAGE(WIFEXITED(status), "a worker did not drain and exit on SIGTERM");
            if (WIFEXITED(status)) {
                CHECK(WEXITSTATUS(status) == 0);
            }
        }
        MESSAGE(
            "chaos: " << kills << " kills, server restarted: " << restarted_server << ", "
                      << std::chrono::duration_cast<std::chrono::seconds>(
                             std::chrono::steady_clock::now() - began
                         )
                             .count()
                      << " s; logs in " << logs.string()
        );
        CHECK(kills >= 3);
        CHECK(restarted_server);
        CHECK(done == 200);
        CHECK(psql_count(schema, "SELECT count(*) FROM run_queue WHERE state <> 'done'") == 0);
        CHECK(
            psql_count(
                schema,
                "SELECT count(*) FROM runs WHERE parent_id = '' AND (status <> 'finished' OR "
                "stop_reason <> 'completed')"
            ) == 0
        );
        // The pipelines' steps ran as child runs, all finished, each claimed from the queue.
        CHECK(psql_count(schema, "SELECT count(*) FROM runs WHERE parent_id <> ''") >= 67);
        CHECK(
            psql_count(
                schema,
                "SELECT count(*) FROM runs r WHERE r.parent_id <> '' AND NOT EXISTS (SELECT 1 "
                "FROM run_queue q WHERE q.run_id = r.id AND q.state = 'done')"
            ) == 0
        );
        CHECK(
            psql_count(
                schema,
                "SELECT count(*) FROM runs WHERE parent_id <> '' AND status <> "
                "'finished'"
            ) == 0
        );
        // Nothing ran twice.
        CHECK(
            psql_count(
                schema,
                "SELECT count(*) FROM (SELECT call_key FROM side GROUP BY call_key HAVING "
                "count(*) > 1) AS twice"
            ) == 0
        );
        // The kills landed on running runs: some were taken over by another worker.
        CHECK(psql_count(schema, "SELECT count(*) FROM run_queue WHERE attempts > 1") > 0);
        const long rows = psql_count(schema, "SELECT count(*) FROM side");
        CHECK(rows > 150);
        CHECK(rows <= 200);
        std::error_code ec;
        fs::remove_all(logs, ec);
    }
}

#endif
