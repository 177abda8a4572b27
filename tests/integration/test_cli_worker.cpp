// `wafer submit` and `wafer worker` against the test cluster (tests/pg/cluster.sh): submitted
// tasks and JSONL runs are driven by a worker process with the agent flags they were submitted
// with, a bad line is reported with its number, SIGTERM drains a worker (a run cut short goes
// back to the queue and the next worker finishes it), and a SQLite store is refused.
#include <wafer/testing/offline_model.hpp>

#include "cli_harness.hpp"
#include "pg_env.hpp"

#ifdef WAFER_CLI_PATH

using namespace wafer::testing::cli;
using wafer::testing::postgres_available;

namespace {

std::vector<std::string>
on(std::vector<std::string> args, const std::string& uri, const std::string& schema) {
    args.insert(args.end(), {"--store", uri, "--store-schema", schema});
    return args;
}

/// The run ids `wafer submit` printed, one per line.
std::vector<std::string> ids_of(const std::string& out) {
    std::vector<std::string> ids;
    std::istringstream in(out);
    for (std::string line; std::getline(in, line);) {
        if (!line.empty()) {
            ids.push_back(line);
        }
    }
    return ids;
}

} // namespace

TEST_SUITE("postgres/cli_worker") {

    TEST_CASE("wafer submit queues tasks and JSONL runs; wafer worker drives them with their "
              "flags and drains after --max-runs") {
        if (!postgres_available()) {
            return;
        }
        const std::string uri = wafer::testing::postgres_uri("wafer");
        const std::string schema = wafer::testing::unique_schema();
        sample_workspace ws;
        const std::string wsd = ws.dir.string();
        served s;
        const std::string url = s.server.base_url();
        // The offline stand-in answers: it reads stats.sh when the task names read_file.
        s.server.set_responder([](const wafer::api::chat_request& req) {
            return wafer::testing::offline_reply(req);
        });

        auto one = run_wafer(
            on({"submit",
                "--workspace",
                wsd,
                "--max-turns",
                "3",
                "--id",
                "task-1",
                "use read_file on stats.sh"},
               uri,
               schema)
        );
        INFO("submit:\n" << one.out << one.err);
        REQUIRE(one.status == 0);
        CHECK(ids_of(one.out) == std::vector<std::string>{"task-1"});

        const fs::path jsonl = ws.dir / "runs.jsonl";
        {
            std::ofstream f(jsonl);
            f << "\"say hello\"\n{\"input\": 3}\n{\"id\": \"j-2\", \"input\": \"say bye\", "
                 "\"model\": \"gpt-oss-120b\"}\n";
        }
        auto many =
            run_wafer(on({"submit", "--workspace", wsd, "--file", jsonl.string()}, uri, schema));
        INFO("submit --file:\n" << many.out << many.err);
        CHECK(many.status == 1); // one line was bad; the others were queued
        CHECK(contains(many.err, "line 2: "));
        const auto ids = ids_of(many.out);
        REQUIRE(ids.size() == 2);
        CHECK(ids[1] == "j-2");
        // The same id again is refused, the rest goes on.
        auto again = run_wafer(on({"submit", "--id", "j-2", "again"}, uri, schema));
        CHECK(again.status == 1);
        CHECK(contains(again.err, "run j-2 already exists"));

        auto w = s.while_serving([&] {
            return run_wafer(
                on({"worker", "--base-url", url, "--max-runs", "3", "--json", "-j", "2"},
                   uri,
                   schema),
                {},
                60s
            );
        });
        INFO("worker:\n" << w.out << w.err);
        CHECK(w.status == 0);
        const auto lines = json_lines(w.out);
        std::map<std::string, json> ended;
        for (const auto& l : lines) {
            if (l.value("type", "") == "run") {
                ended[l.value("id", "")] = l;
            }
        }
        REQUIRE(ended.size() == 3);
        for (const auto& [id, l] : ended) {
            CHECK_MESSAGE(l.value("outcome", "") == "completed", id);
            CHECK(l.value("recorded", false));
        }
        CHECK(contains(w.err, "3 claimed, 3 completed"));
        // The runs were driven with their submitted flags: j-2's model; task-1 called a tool.
        bool saw_other_model = false;
        bool tool_result = false;
        for (const auto& body : s.chat_bodies()) {
            saw_other_model = saw_other_model || body.value("model", "") == "gpt-oss-120b";
            for (const auto& m : body.at("messages")) {
                tool_result = tool_result || m.value("role", "") == "tool";
            }
        }
        CHECK(saw_other_model);
        CHECK(tool_result);

        // `wafer runs` on the same store shows them finished.
        auto list = run_wafer(on({"runs", "--all", "--json"}, uri, schema));
        CHECK(list.status == 0);
        CHECK(count(list.out, "\"status\":\"finished\"") == 3);
    }

    TEST_CASE("SIGTERM drains a worker: the run it cut short goes back to the queue, and the "
              "next worker finishes it") {
        if (!postgres_available()) {
            return;
        }
        const std::string uri = wafer::testing::postgres_uri("wafer");
        const std::string schema = wafer::testing::unique_schema();
        sample_workspace ws;
        served s;
        const std::string url = s.server.base_url();
        // The first reply takes long (the worker is stopped meanwhile); the rest are at once.
        wafer::testing::delivery slow;
        slow.header_delay = std::chrono::milliseconds(20'000);
        s.server.enqueue(reply::text("too late", slow));
        s.server.enqueue(reply::text("finished after all"));

        auto sub = run_wafer(
            on({"submit", "--workspace", ws.dir.string(), "--id", "slow", "wait"}, uri, schema)
        );
        REQUIRE(sub.status == 0);

        process_result first;
        first = s.while_serving([&] {
            process_result r;
            spawned_wafer w(
                on({"worker", "--base-url", url, "--drain-timeout", "0"}, uri, schema), {}
            );
            std::string out;
            const bool claimed = w.read_stdout_until(out, "claimed slow", 20'000ms);
            CHECK(claimed);
            std::this_thread::sleep_for(300ms); // the model call is in flight
            ::kill(w.pid, SIGTERM);
            r = w.collect(30s);
            r.out = out + r.out;
            return r;
        });
        INFO("first worker:\n" << first.out << first.err);
        CHECK(first.status == 0);
        CHECK(contains(first.out, "slow released"));
        CHECK(contains(first.err, "draining"));
        CHECK(contains(first.err, "1 given back"));

        auto second = s.while_serving([&] {
            return run_wafer(
                on({"worker", "--base-url", url, "--max-runs", "1"}, uri, schema), {}, 60s
            );
        });
        INFO("second worker:\n" << second.out << second.err);
        CHECK(second.status == 0);
        CHECK(contains(second.out, "claimed slow (attempt 1)")); // a release is not an attempt
        CHECK(contains(second.out, "slow completed"));
        auto show = run_wafer(on({"runs", "show", "slow"}, uri, schema));
        CHECK(contains(show.out, "finished after all"));
    }

    TEST_CASE("wafer worker and submit refuse a SQLite store, and a task with --file") {
        auto w = run_wafer({"worker", "--store", "/tmp/some.db"});
        CHECK(w.status == 2);
        CHECK(contains(w.err, "needs a PostgreSQL store"));
        auto s = run_wafer({"submit", "--store", "/tmp/some.db", "a task"});
        CHECK(s.status == 2);
        CHECK(contains(s.err, "needs a PostgreSQL store"));
        auto both = run_wafer({"submit", "--store", "postgresql://x@/y", "--file", "f.jsonl", "t"});
        CHECK(both.status == 2);
        CHECK(contains(both.err, "not both"));
    }
}

#endif
