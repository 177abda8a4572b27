// The CLI on a PostgreSQL run store (--store postgresql://...): run, runs, runs show, resume,
// approve against the test cluster (tests/pg/cluster.sh), a URI's password never printed nor
// handed to the agent's commands, and an unreachable server, a bad URI or a newer schema as one
// line.
#include "cli_harness.hpp"
#include "pg_env.hpp"

#ifdef WAFER_CLI_PATH

using namespace wafer::testing::cli;
using wafer::testing::postgres_available;
using wafer::testing::postgres_conninfo;

namespace {

/// The password every URI below carries (the test cluster trusts the socket: any one works).
const std::string password = "secret";

std::string database_uri(const std::string& user_part) {
    return wafer::testing::postgres_uri(user_part);
}

/// A temporary XDG_STATE_HOME, removed at the end: a run journaled to PostgreSQL leaves it empty.
struct state_dir {
    fs::path dir;
    state_dir() {
        std::random_device rd;
        dir = fs::temp_directory_path() / ("wafer-cli-pg-" + std::to_string(rd()));
        fs::create_directories(dir);
    }
    ~state_dir() {
        std::error_code ec;
        fs::remove_all(dir, ec);
    }
    state_dir(const state_dir&) = delete;
    state_dir& operator=(const state_dir&) = delete;
};

/// The id a journaled run names in its "run <id>" line on stderr (empty if none).
std::string run_id_of(const std::string& err) {
    std::istringstream in(err);
    for (std::string line; std::getline(in, line);) {
        if (line.starts_with("run ") && line.size() == 4 + 16) {
            return line.substr(4);
        }
    }
    return {};
}

/// `args` followed by --store URI --store-schema SCHEMA.
std::vector<std::string>
on(std::vector<std::string> args, const std::string& uri, const std::string& schema) {
    args.insert(args.end(), {"--store", uri, "--store-schema", schema});
    return args;
}

/// Checks that nothing the process printed holds the password.
void check_no_password(const process_result& r) {
    INFO("stdout:\n" << r.out << "\nstderr:\n" << r.err);
    CHECK_FALSE(contains(r.out, password));
    CHECK_FALSE(contains(r.err, password));
}

} // namespace

TEST_SUITE("postgres/cli") {

    TEST_CASE("a run journaled to PostgreSQL: runs lists it, runs show prints it, resume "
              "continues it, and the URI's password is never printed") {
        if (!postgres_available()) {
            return;
        }
        const std::string uri = database_uri("wafer:" + password);
        const std::string shown = database_uri("wafer"); // as the CLI names the store
        const std::string schema = wafer::testing::unique_schema();
        state_dir state;
        const std::vector<std::string> env{"XDG_STATE_HOME=" + state.dir.string()};
        served s;
        s.server.enqueue(reply::of({.tool_calls = {{"", "read_file", R"({"path":"stats.sh"})"}}}));
        s.server.enqueue(reply::text("First answer."));
        sample_workspace ws;
        const std::string url = s.server.base_url();
        const std::string wsd = ws.dir.string();
        std::vector<process_result> outputs;

        auto r = s.while_serving([&] {
            return run_wafer(
                on({"run", "--base-url", url, "--workspace", wsd, "look at stats.sh"}, uri, schema),
                env
            );
        });
        INFO("run:\n" << r.out << r.err);
        REQUIRE(r.status == 0);
        const std::string id = run_id_of(r.err);
        REQUIRE(id.size() == 16);
        outputs.push_back(r);
        CHECK(fs::is_empty(state.dir)); // no SQLite store was made

        auto list = run_wafer(on({"runs", "--workspace", wsd}, uri, schema), env);
        INFO("runs:\n" << list.out << list.err);
        CHECK(list.status == 0);
        CHECK(count(list.out, "\n") == 2); // the header and one run
        CHECK(contains(list.out, id));
        CHECK(contains(list.out, "finished"));
        outputs.push_back(list);
        auto lines = json_lines(run_wafer(on({"runs", "--all", "--json"}, uri, schema), env).out);
        REQUIRE(lines.size() == 1);
        CHECK(lines[0]["id"] == id);
        CHECK(lines[0]["scope"] == fs::canonical(ws.dir).string());

        // Another schema of the same database is another store: it has no runs.
        const std::string other = wafer::testing::unique_schema();
        auto none = run_wafer(on({"runs", "--workspace", wsd}, uri, other), env);
        INFO("none:\n" << none.out << none.err);
        CHECK(none.status == 0);
        CHECK(none.out.empty());
        CHECK(contains(none.err, "wafer: no runs of "));
        CHECK(contains(none.err, " in " + shown + " (schema " + other + ")"));
        outputs.push_back(none);

        auto show = run_wafer(on({"runs", "show", id}, uri, schema), env);
        INFO("show:\n" << show.out << show.err);
        CHECK(show.status == 0);
        CHECK(contains(show.out, "user: look at stats.sh"));
        CHECK(contains(show.out, "<- read_file ok"));
        CHECK(contains(show.out, "assistant: First answer."));
        CHECK(contains(show.out, "== completed"));
        outputs.push_back(show);

        // A finished run needs a message: the hint names the store without the password.
        auto bare = run_wafer(on({"resume", id}, uri, schema), env);
        check_one_failure_line(bare);
        CHECK(contains(bare.err, "give a message"));
        CHECK(contains(bare.err, "--store '" + shown + "' --store-schema " + schema));
        outputs.push_back(bare);

        s.server.enqueue(reply::text("Second answer."));
        auto more = s.while_serving([&] {
            return run_wafer(on({"resume", "--base-url", url, id, "And then?"}, uri, schema), env);
        });
        INFO("resume:\n" << more.out << more.err);
        CHECK(more.status == 0);
        CHECK(contains(more.out, "Second answer."));
        outputs.push_back(more);
        CHECK(
            count(run_wafer(on({"runs", "show", id}, uri, schema), env).out, "== completed") == 2
        );

        // Runs that are not there: the same lines as with SQLite, naming the store.
        auto unknown = run_wafer(on({"resume", "ffffffffffffffff", "hi"}, uri, schema), env);
        check_one_failure_line(unknown);
        CHECK(contains(unknown.err, "run ffffffffffffffff does not exist in " + shown));
        outputs.push_back(unknown);
        auto no_show = run_wafer(on({"runs", "show", "nope"}, uri, schema), env);
        check_one_failure_line(no_show);
        CHECK(contains(no_show.err, "run nope does not exist in " + shown));
        outputs.push_back(no_show);
        auto no_call = run_wafer(on({"approve", "ffffffffffffffff", "c1"}, uri, schema), env);
        check_one_failure_line(no_call);
        CHECK(contains(no_call.err, "ffffffffffffffff"));
        outputs.push_back(no_call);

        for (const auto& o : outputs) {
            check_no_password(o);
        }
        CHECK(fs::is_empty(state.dir));
    }

    TEST_CASE("a run that waits for approval on PostgreSQL: its hints name the store without the "
              "password; approve in another process, then resume finishes it") {
        if (!postgres_available()) {
            return;
        }
        const std::string uri = database_uri("wafer:" + password);
        const std::string shown = database_uri("wafer");
        const std::string schema = wafer::testing::unique_schema();
        state_dir state;
        const std::vector<std::string> env{"XDG_STATE_HOME=" + state.dir.string()};
        served s;
        s.server.enqueue(reply::of(
            {.tool_calls = {{"", "write_file", R"({"path":"notes.txt","content":"model\n"})"}}}
        ));
        s.server.enqueue(reply::text("Wrote the notes."));
        sample_workspace ws;
        const std::string url = s.server.base_url();

        auto r = s.while_serving([&] {
            return run_wafer(
                on({"run", "--base-url", url, "--workspace", ws.dir.string(), "take notes"},
                   uri,
                   schema),
                env
            );
        });
        INFO("run:\n" << r.out << r.err);
        CHECK(r.status == 4);
        check_no_password(r);
        const std::string id = run_id_of(r.err);
        REQUIRE(id.size() == 16);
        CHECK_FALSE(fs::exists(ws.dir / "notes.txt"));
        const std::string hint = " --store '" + shown + "' --store-schema " + schema;
        std::string call;
        std::istringstream err(r.err);
        for (std::string line; std::getline(err, line);) {
            if (line.starts_with("wafer: call ")) {
                call = line.substr(12, line.find(' ', 12) - 12);
                CHECK(contains(line, "wafer approve " + id + " " + call + hint + " or "));
                CHECK(contains(line, "then wafer resume " + id + hint));
            }
        }
        REQUIRE_FALSE(call.empty());
        auto list = run_wafer(on({"runs", "--json", "--all"}, uri, schema), env);
        REQUIRE(json_lines(list.out).size() == 1);
        CHECK(json_lines(list.out)[0]["status"] == "awaiting_approval");

        // The hints' own store form: the password comes from PGPASSWORD (any one is trusted).
        auto ok =
            run_wafer(on({"approve", id, call}, shown, schema), {env[0], "PGPASSWORD=" + password});
        INFO("approve:\n" << ok.out << ok.err);
        CHECK(ok.status == 0);
        CHECK(contains(ok.out, "nothing else waits; continue the run: wafer resume " + id + hint));
        check_no_password(ok);

        auto resumed = s.while_serving([&] {
            return run_wafer(on({"resume", "--base-url", url, id}, uri, schema), env);
        });
        INFO("resume:\n" << resumed.out << resumed.err);
        CHECK(resumed.status == 0);
        CHECK(contains(resumed.out, "Wrote the notes."));
        CHECK(ws.read("notes.txt") == "model\n");
        check_no_password(resumed);
        auto show = run_wafer(on({"runs", "show", id}, uri, schema), env);
        CHECK(contains(show.out, "== awaiting_approval"));
        CHECK(contains(show.out, "approved " + call));
        CHECK(contains(show.out, "== completed"));
        CHECK(fs::is_empty(state.dir));
    }

    TEST_CASE("the agent's commands get neither PGPASSWORD nor the --store password (not in their "
              "environment, not in wafer's command line)") {
        if (!postgres_available()) {
            return;
        }
        const std::string uri = database_uri("wafer:" + password);
        const std::string schema = wafer::testing::unique_schema();
        state_dir state;
        served s;
        const std::string command = "env; echo; tr '\\0' ' ' < /proc/$PPID/cmdline";
        s.server.enqueue(
            reply::of({.tool_calls = {{"", "run_command", json{{"command", command}}.dump()}}})
        );
        s.server.enqueue(reply::text("done"));
        sample_workspace ws;
        auto r = s.while_serving([&] {
            return run_wafer(
                on({"run",
                    "--base-url",
                    s.server.base_url(),
                    "--workspace",
                    ws.dir.string(),
                    "--yes",
                    "--sandbox",
                    "off", // a sandboxed command has its own /proc: it could not see wafer
                    "look around"},
                   uri,
                   schema),
                {"XDG_STATE_HOME=" + state.dir.string(), "PGPASSWORD=" + password}
            );
        });
        INFO("run:\n" << r.out << r.err);
        CHECK(r.status == 0);
        check_no_password(r);
        const auto bodies = s.chat_bodies();
        REQUIRE(bodies.size() == 2);
        std::string output;
        for (const auto& m : bodies[1]["messages"]) {
            if (m["role"] == "tool") {
                output += m.value("content", "");
            }
        }
        INFO("the command's output:\n" << output);
        CHECK(contains(output, "PATH="));          // env ran
        CHECK(contains(output, "--store-schema")); // and its parent is wafer
        CHECK_FALSE(contains(output, password));
        CHECK_FALSE(contains(output, "PGPASSWORD"));
    }

    TEST_CASE("an unreachable server, a URI libpq refuses, a newer schema, --store-schema without "
              "a database: one line, exit status 2 as for a bad SQLite store") {
        // No cluster needed: nothing listens on port 1.
        const std::string down = "postgresql://wafer:" + password + "@127.0.0.1:1/postgres";
        for (const std::vector<std::string>& args :
             {std::vector<std::string>{"runs", "--store", down},
              std::vector<std::string>{"resume", "--store", down, "0123456789abcdef"},
              std::vector<std::string>{"approve", "--store", down, "0123456789abcdef", "c1"}}) {
            const auto start = std::chrono::steady_clock::now();
            auto r = run_wafer(args, {}, 30s);
            const auto took = std::chrono::steady_clock::now() - start;
            INFO(args[0] << " stderr: " << r.err);
            check_one_failure_line(r);
            CHECK(r.status == 2);
            CHECK(contains(r.err, "127.0.0.1"));
            CHECK(took < 15s); // the CLI's connect timeout is 5 s
            check_no_password(r);
        }

        // `schema` is not a libpq parameter (the schema is --store-schema): refused at once.
        auto bad = run_wafer(
            {"runs", "--store", "postgres://wafer:" + password + "@/postgres?schema=x&port=5432"}
        );
        INFO("bad: " << bad.err);
        check_one_failure_line(bad);
        CHECK(bad.status == 2);
        CHECK(contains(bad.err, "schema"));
        check_no_password(bad);

        auto sqlite_schema = run_wafer({"runs", "--store-schema", "x"});
        check_one_failure_line(sqlite_schema);
        CHECK(sqlite_schema.status == 2);
        CHECK(contains(sqlite_schema.err, "--store-schema"));

        if (!postgres_available()) {
            return;
        }
        // A schema a newer wafer wrote.
        const std::string uri = database_uri("wafer:" + password);
        const std::string schema = wafer::testing::unique_schema();
        REQUIRE(run_wafer(on({"runs", "--all"}, uri, schema)).status == 0);
        REQUIRE(
            wafer::testing::psql(
                schema, "UPDATE wafer_meta SET value = '99' WHERE key = 'schema_version'"
            ) == 0
        );
        auto too_new = run_wafer(on({"runs", "--all"}, uri, schema));
        INFO("too new: " << too_new.err);
        check_one_failure_line(too_new);
        CHECK(too_new.status == 2);
        CHECK(contains(too_new.err, "newer wafer"));
        check_no_password(too_new);
    }

} // TEST_SUITE

#endif // WAFER_CLI_PATH
