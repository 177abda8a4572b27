// The CLI's durable runs end to end: `wafer run` journals to its store, `wafer runs` and
// `runs show` read it, `wafer resume` and `run --continue` go on, Ctrl-C leaves a resumable run.
#include "cli_harness.hpp"

#ifdef WAFER_CLI_PATH

using namespace wafer::testing::cli;

// ---- durable runs in the CLI (issue 11, item 5) ----

namespace {

/// A temporary directory, removed at the end (an XDG_STATE_HOME, a HOME, a store's place).
struct temp_dir {
    fs::path dir;
    explicit temp_dir(const std::string& what) {
        std::random_device rd;
        dir = fs::temp_directory_path() / ("wafer-cli-" + what + "-" + std::to_string(rd()));
        fs::create_directories(dir);
    }
    ~temp_dir() {
        std::error_code ec;
        fs::remove_all(dir, ec);
    }
    temp_dir(const temp_dir&) = delete;
    temp_dir& operator=(const temp_dir&) = delete;
};

/// The id a journaled run names in its "run <id>" line on stderr (empty if none).
std::string run_id_of(const std::string& err) {
    std::istringstream in(err);
    for (std::string line; std::getline(in, line);) {
        if (line.starts_with("run ") && line.size() == 4 + 16 &&
            line.find_first_not_of("0123456789abcdef", 4) == std::string::npos) {
            return line.substr(4);
        }
    }
    return {};
}

/// The user and assistant texts a chat request carried, in order.
std::vector<std::string> texts_of(const json& body) {
    std::vector<std::string> out;
    for (const auto& m : body.at("messages")) {
        if ((m["role"] == "user" || m["role"] == "assistant") && m.contains("content") &&
            m["content"].is_string() && !m["content"].get<std::string>().empty()) {
            out.push_back(m["role"].get<std::string>() + ": " + m["content"].get<std::string>());
        }
    }
    return out;
}

} // namespace

TEST_SUITE("integration/cli_runs") {

    TEST_CASE("a run is journaled in the XDG state directory; runs lists it, runs show prints "
              "its history, resume and run --continue add follow-ups") {
        temp_dir state("state");
        const std::vector<std::string> env{"XDG_STATE_HOME=" + state.dir.string()};
        served s;
        s.server.enqueue(reply::of({.tool_calls = {{"", "read_file", R"({"path":"stats.sh"})"}}}));
        s.server.enqueue(reply::text("First answer: stats.sh starts min at 0."));
        sample_workspace ws;
        const std::string url = s.server.base_url();
        const std::string wsd = ws.dir.string();
        const std::string task = "Look at stats.sh\nand tell me what is wrong";

        auto r = s.while_serving([&] {
            return run_wafer({"run", "--base-url", url, "--workspace", wsd, task}, env);
        });
        INFO("stdout:\n" << r.out << "\nstderr:\n" << r.err);
        REQUIRE(r.status == 0);
        const std::string id = run_id_of(r.err);
        REQUIRE(id.size() == 16);
        CHECK(r.err == "run " + id + "\n"); // the run's id, and nothing else
        CHECK(fs::exists(state.dir / "wafer" / "runs.db"));

        // runs: this workspace's runs, the task's first line made visible.
        auto list = run_wafer({"runs", "--workspace", wsd}, env);
        INFO("runs:\n" << list.out << list.err);
        CHECK(list.status == 0);
        CHECK(count(list.out, "\n") == 2); // the header and one run
        CHECK(contains(list.out, id));
        CHECK(contains(list.out, "finished"));
        CHECK(contains(list.out, "completed"));
        CHECK(contains(list.out, "Look at stats.sh ..."));
        CHECK_FALSE(contains(list.out, "tell me"));

        auto lines = json_lines(run_wafer({"runs", "--json", "--workspace", wsd}, env).out);
        REQUIRE(lines.size() == 1);
        CHECK(lines[0]["id"] == id);
        CHECK(lines[0]["status"] == "finished");
        CHECK(lines[0]["stop_reason"] == "completed");
        CHECK(lines[0]["turns"] == 2);
        CHECK(lines[0]["task"] == task);
        CHECK(lines[0]["scope"] == fs::canonical(ws.dir).string());
        CHECK(lines[0]["updated_ms"].get<std::int64_t>() > 0);
        // Another workspace has no runs; --all lists every one.
        temp_dir other("other");
        auto none = run_wafer({"runs", "--json", "--workspace", other.dir.string()}, env);
        CHECK(none.status == 0);
        CHECK(none.out.empty());
        CHECK(json_lines(run_wafer({"runs", "--all", "--json"}, env).out).size() == 1);

        // runs show: the history as the journal has it.
        auto show = run_wafer({"runs", "show", id}, env);
        INFO("show:\n" << show.out << show.err);
        CHECK(show.status == 0);
        CHECK(contains(show.out, "user: Look at stats.sh\n  and tell me what is wrong\n"));
        CHECK(contains(show.out, "-> read_file {\"path\":\"stats.sh\"}"));
        CHECK(contains(show.out, "<- read_file ok"));
        CHECK(contains(show.out, "assistant: First answer: stats.sh starts min at 0."));
        CHECK(contains(show.out, "== completed"));
        auto show_json = json_lines(run_wafer({"runs", "show", "--json", id}, env).out);
        REQUIRE(show_json.size() >= 4);
        CHECK(show_json[0]["type"] == "run");
        CHECK(show_json[0]["id"] == id);
        std::vector<std::string> kinds;
        for (std::size_t i = 1; i < show_json.size(); ++i) {
            kinds.push_back(show_json[i]["kind"].get<std::string>());
        }
        CHECK(std::count(kinds.begin(), kinds.end(), "model_reply") == 2);
        CHECK(std::count(kinds.begin(), kinds.end(), "tool_result") == 1);
        CHECK(kinds.back() == "stopped");

        // A finished run needs a message: one line.
        auto bare = run_wafer({"resume", id}, env);
        check_one_failure_line(bare);
        CHECK(contains(bare.err, "finished (completed)"));
        CHECK(contains(bare.err, "give a message"));

        // resume with a message: the model sees the whole history, then the follow-up.
        s.server.enqueue(reply::text("Second answer."));
        auto more = s.while_serving([&] {
            return run_wafer({"resume", "--base-url", url, id, "And how to fix it?"}, env);
        });
        INFO("resume:\n" << more.out << more.err);
        CHECK(more.status == 0);
        CHECK(contains(more.out, "Second answer."));
        CHECK(contains(more.out, "workspace: " + fs::canonical(ws.dir).string()));
        CHECK(run_id_of(more.err) == id);
        auto bodies = s.chat_bodies();
        REQUIRE(bodies.size() == 3);
        CHECK(
            texts_of(bodies[2]) ==
            std::vector<std::string>{
                "user: " + task,
                "assistant: First answer: stats.sh starts min at 0.",
                "user: And how to fix it?"}
        );
        CHECK(contains(run_wafer({"runs", "show", id}, env).out, "user: And how to fix it?"));

        // run --continue: the last run of this workspace, with a message.
        s.server.enqueue(reply::text("Third answer."));
        auto cont = s.while_serving([&] {
            return run_wafer(
                {"run", "--base-url", url, "--workspace", wsd, "--continue", "Thanks"}, env
            );
        });
        INFO("continue:\n" << cont.out << cont.err);
        CHECK(cont.status == 0);
        CHECK(contains(cont.out, "Third answer."));
        CHECK(run_id_of(cont.err) == id);
        bodies = s.chat_bodies();
        REQUIRE(bodies.size() == 4);
        CHECK(texts_of(bodies[3]).size() == 5);
        CHECK(texts_of(bodies[3]).back() == "user: Thanks");
        lines = json_lines(run_wafer({"runs", "--json", "--workspace", wsd}, env).out);
        REQUIRE(lines.size() == 1); // still one run, grown
        const auto history = run_wafer({"runs", "show", id}, env).out;
        CHECK(count(history, "assistant: ") == 3);
        CHECK(count(history, "== completed") == 3);

        // --continue in a workspace without runs: one line.
        auto nothing = run_wafer(
            {"run", "--base-url", url, "--workspace", other.dir.string(), "--continue", "x"}, env
        );
        check_one_failure_line(nothing);
        CHECK(contains(nothing.err, "no run of"));
    }

    TEST_CASE("runs and runs show show tasks, answers and tool output escaped, never raw") {
        temp_dir state("state");
        const std::vector<std::string> env{"XDG_STATE_HOME=" + state.dir.string()};
        served s;
        s.server.enqueue(reply::of(
            {.tool_calls = {{"", "run_command", R"({"command":"printf 'out\\033[2Jput'"})"}}}
        ));
        s.server.enqueue(reply::text("answer\x1b]0;pwned\x07 \u202Etxt"));
        sample_workspace ws;
        const std::string task = "clear\x1b[2J \u202Eevil\rthe screen";
        auto r = s.while_serving([&] {
            return run_wafer(
                {"run",
                 "--yes",
                 "--base-url",
                 s.server.base_url(),
                 "--workspace",
                 ws.dir.string(),
                 task},
                env
            );
        });
        REQUIRE(r.status == 0);
        const std::string id = run_id_of(r.err);
        auto list = run_wafer({"runs", "--workspace", ws.dir.string()}, env);
        INFO("runs:\n" << list.out);
        // The first line only (a CR ends it too).
        CHECK(contains(list.out, "clear\\x1b[2J \\u{202e}evil ...\n"));
        auto show = run_wafer({"runs", "show", id}, env);
        INFO("show:\n" << show.out);
        CHECK(contains(show.out, "user: clear\\x1b[2J \\u{202e}evil\\rthe screen\n"));
        CHECK(contains(show.out, "out\\x1b[2Jput"));
        CHECK(contains(show.out, "answer\\x1b]0;pwned\\x07 \\u{202e}txt"));
        for (const auto* out : {&list.out, &show.out}) {
            CHECK_FALSE(contains(*out, "\x1b"));
            CHECK_FALSE(contains(*out, "\r"));
            CHECK_FALSE(contains(*out, "\u202E"));
        }
        // JSON keeps the text as it is, escaped by the encoder.
        auto lines =
            json_lines(run_wafer({"runs", "--json", "--workspace", ws.dir.string()}, env).out);
        REQUIRE(lines.size() == 1);
        CHECK(lines[0]["task"] == task);
    }

    TEST_CASE("resume and runs show of an unknown run: one line, and no store is created") {
        temp_dir state("state");
        const std::vector<std::string> env{"XDG_STATE_HOME=" + state.dir.string()};
        auto r = run_wafer({"resume", "0123456789abcdef"}, env);
        check_one_failure_line(r);
        CHECK(contains(r.err, "run 0123456789abcdef does not exist"));
        CHECK_FALSE(fs::exists(state.dir / "wafer"));
        auto show = run_wafer({"runs", "show", "nope"}, env);
        check_one_failure_line(show);
        CHECK(contains(show.err, "run nope does not exist"));
        auto list = run_wafer({"runs"}, env);
        CHECK(list.status == 0);
        CHECK(list.out.empty());
        CHECK_FALSE(fs::exists(state.dir / "wafer"));

        // With a store that exists but does not have the run.
        served s;
        s.server.enqueue(reply::text("ok"));
        sample_workspace ws;
        auto made = s.while_serving([&] {
            return run_wafer(
                {"run", "--base-url", s.server.base_url(), "--workspace", ws.dir.string(), "t"}, env
            );
        });
        REQUIRE(made.status == 0);
        auto unknown = run_wafer({"resume", "ffffffffffffffff", "hi"}, env);
        check_one_failure_line(unknown);
        CHECK(contains(unknown.err, "run ffffffffffffffff does not exist"));
    }

    TEST_CASE("--no-store journals nothing; without XDG_STATE_HOME the store is under HOME") {
        temp_dir state("state");
        temp_dir home("home");
        served s;
        s.server.enqueue(reply::text("not journaled"));
        s.server.enqueue(reply::text("journaled under HOME"));
        sample_workspace ws;
        const std::string url = s.server.base_url();
        auto r = s.while_serving([&] {
            return run_wafer(
                {"run", "--no-store", "--base-url", url, "--workspace", ws.dir.string(), "t"},
                {"XDG_STATE_HOME=" + state.dir.string()}
            );
        });
        CHECK(r.status == 0);
        CHECK(r.err.empty()); // no run id: there is nothing to resume
        CHECK(fs::is_empty(state.dir));

        auto h = s.while_serving([&] {
            return run_wafer(
                {"run", "--base-url", url, "--workspace", ws.dir.string(), "t"},
                {"XDG_STATE_HOME=", "HOME=" + home.dir.string()}
            );
        });
        CHECK(h.status == 0);
        CHECK(run_id_of(h.err).size() == 16);
        CHECK(fs::exists(home.dir / ".local" / "state" / "wafer" / "runs.db"));

        // --continue needs the store.
        auto both = run_wafer({"run", "--no-store", "--continue", "x"});
        CHECK(both.status == 2);
    }

    TEST_CASE("a store that cannot be opened is one line and exit status 2, never a crash") {
        temp_dir place("store");
        sample_workspace ws;
        // Its directory would have to be made inside a regular file.
        std::ofstream(place.dir / "file") << "x";
        auto r = run_wafer(
            {"run",
             "--store",
             (place.dir / "file" / "runs.db").string(),
             "--workspace",
             ws.dir.string(),
             "t"}
        );
        INFO("stderr: " << r.err);
        check_one_failure_line(r);
        CHECK(r.status == 2);
        CHECK(contains(r.err, (place.dir / "file").string()));

        // A file that is not a run store is refused and left as it was.
        const std::string garbage(3000, 'g');
        std::ofstream(place.dir / "junk.db") << garbage;
        for (const std::vector<std::string>& args :
             {std::vector<std::string>{
                  "run",
                  "--store",
                  (place.dir / "junk.db").string(),
                  "--workspace",
                  ws.dir.string(),
                  "t"},
              std::vector<std::string>{"runs", "--store", (place.dir / "junk.db").string()},
              std::vector<std::string>{
                  "resume", "--store", (place.dir / "junk.db").string(), "0123456789abcdef"}}) {
            auto bad = run_wafer(args);
            INFO(args[0] << " stderr: " << bad.err);
            check_one_failure_line(bad);
            CHECK(bad.status == 2);
            CHECK(contains(bad.err, "junk.db"));
        }
        std::ifstream in(place.dir / "junk.db");
        std::stringstream ss;
        ss << in.rdbuf();
        CHECK(ss.str() == garbage);

        // A store a newer wafer wrote.
        const fs::path newer = place.dir / "newer.db";
        { wafer::store::sqlite_store made(newer); }
        sqlite3* db = nullptr;
        REQUIRE(sqlite3_open(newer.c_str(), &db) == SQLITE_OK);
        CHECK(sqlite3_exec(db, "PRAGMA user_version=99", nullptr, nullptr, nullptr) == SQLITE_OK);
        sqlite3_close(db);
        auto too_new = run_wafer({"runs", "--store", newer.string()});
        check_one_failure_line(too_new);
        CHECK(too_new.status == 2);
        CHECK(contains(too_new.err, "newer wafer"));
    }

    TEST_CASE("Ctrl-C during a slow model turn leaves a run that wafer resume completes; a "
              "second process cannot resume it while it runs") {
        temp_dir state("state");
        const std::vector<std::string> env{"XDG_STATE_HOME=" + state.dir.string()};
        delivery slow;
        slow.header_delay = std::chrono::hours(1);
        served s;
        s.server.enqueue(reply::text("never", slow));
        s.server.enqueue(reply::text("Answered after the resume."));
        sample_workspace ws;
        const std::string url = s.server.base_url();
        std::string id;
        process_result busy;
        auto r = s.while_serving([&] {
            spawned_wafer w({"run", "--base-url", url, "--workspace", ws.dir.string(), "go"}, env);
            std::string err;
            if (!w.read_stderr_until(err, "\n", 20s)) {
                FAIL_CHECK("wafer did not start the run");
                return process_result{};
            }
            id = run_id_of(err);
            std::this_thread::sleep_for(500ms); // the request is on its way
            busy = run_wafer({"resume", id}, env);
            ::kill(w.pid, SIGINT);
            process_result res = w.collect(20s);
            res.err = err + res.err;
            CHECK(w.exited_normally);
            return res;
        });
        INFO("stdout:\n" << r.out << "\nstderr:\n" << r.err);
        REQUIRE(id.size() == 16);
        // While it ran, another process was refused.
        check_one_failure_line(busy);
        CHECK(contains(busy.err, "another process"));
        CHECK_FALSE(r.timed_out);
        CHECK(r.status == 130);
        CHECK(contains(r.err, "wafer resume " + id));
        auto lines =
            json_lines(run_wafer({"runs", "--json", "--workspace", ws.dir.string()}, env).out);
        REQUIRE(lines.size() == 1);
        CHECK(lines[0]["status"] == "running");
        CHECK(lines[0]["stop_reason"] == "cancelled");
        CHECK(lines[0]["live"] == false);
        CHECK(contains(run_wafer({"runs", "--workspace", ws.dir.string()}, env).out, "interrupted")
        );

        auto resumed = s.while_serving([&] {
            return run_wafer({"resume", "--base-url", url, id}, env);
        });
        INFO("resume:\n" << resumed.out << resumed.err);
        CHECK(resumed.status == 0);
        CHECK(contains(resumed.out, "Answered after the resume."));
        // The abandoned request was asked again, as it was.
        const auto bodies = s.chat_bodies();
        REQUIRE(bodies.size() == 2);
        CHECK(bodies[0]["messages"] == bodies[1]["messages"]);
        lines = json_lines(run_wafer({"runs", "--json", "--workspace", ws.dir.string()}, env).out);
        REQUIRE(lines.size() == 1);
        CHECK(lines[0]["status"] == "finished");
        CHECK(lines[0]["stop_reason"] == "completed");
    }

    TEST_CASE("Ctrl-C during a tool: on resume the call is in doubt and does not run again") {
        temp_dir state("state");
        const std::vector<std::string> env{"XDG_STATE_HOME=" + state.dir.string()};
        served s;
        s.server.enqueue(reply::of(
            {.tool_calls = {{"", "run_command", R"({"command":"echo ran >> log.txt; sleep 60"})"}}}
        ));
        s.server.enqueue(reply::text("I will check log.txt first."));
        sample_workspace ws;
        const std::string url = s.server.base_url();
        const std::vector<std::string> flags{
            "--yes", "--sandbox=auto", "--base-url", url, "--workspace", ws.dir.string()};
        std::vector<std::string> run_args{"run"};
        run_args.insert(run_args.end(), flags.begin(), flags.end());
        run_args.emplace_back("log it");
        auto r = s.while_serving([&] {
            spawned_wafer w(run_args, env);
            std::string out;
            if (!w.read_stdout_until(out, "-> run_command", 20s)) {
                FAIL_CHECK("wafer did not start the command");
                return process_result{};
            }
            // The command has written its line and sleeps.
            for (int i = 0; i < 100 && !fs::exists(ws.dir / "log.txt"); ++i) {
                std::this_thread::sleep_for(50ms);
            }
            std::this_thread::sleep_for(200ms);
            ::kill(w.pid, SIGINT);
            process_result res = w.collect(30s);
            res.out = out + res.out;
            return res;
        });
        INFO("stdout:\n" << r.out << "\nstderr:\n" << r.err);
        CHECK(r.status == 130);
        const std::string id = run_id_of(r.err);
        REQUIRE(id.size() == 16);
        CHECK(ws.read("log.txt") == "ran\n");

        std::vector<std::string> resume_args{"resume"};
        resume_args.insert(resume_args.end(), flags.begin(), flags.end());
        resume_args.push_back(id);
        auto resumed = s.while_serving([&] { return run_wafer(resume_args, env); });
        INFO("resume:\n" << resumed.out << resumed.err);
        CHECK(resumed.status == 0);
        CHECK(contains(resumed.out, "I will check log.txt first."));
        CHECK(ws.read("log.txt") == "ran\n"); // never silently repeated
        const auto bodies = s.chat_bodies();
        REQUIRE(bodies.size() == 2);
        std::string tool_output;
        for (const auto& m : bodies[1]["messages"]) {
            if (m["role"] == "tool") {
                tool_output = m.value("content", "");
            }
        }
        CHECK(contains(tool_output, "unknown"));
    }

    TEST_CASE("without a terminal a call that needs approval stops the run with one line per "
              "call; approve and deny in other processes, resume in a third: the approved call "
              "runs once with the approved arguments, the denied one never") {
        temp_dir state("state");
        const std::vector<std::string> env{"XDG_STATE_HOME=" + state.dir.string()};
        served s;
        s.server.enqueue(reply::of(
            {.tool_calls =
                 {{"", "read_file", R"({"path":"stats.sh"})"},
                  {"", "write_file", R"({"path":"notes.txt","content":"model text\n"})"},
                  {"", "write_file", R"({"path":"other.txt","content":"x\n"})"}}}
        ));
        s.server.enqueue(reply::text("Wrote the notes."));
        sample_workspace ws;
        const std::string url = s.server.base_url();
        const std::string wsd = ws.dir.string();

        // --max-turns 1: the resume below, given no agent flags, must keep it (the flags are
        // stored with the run).
        auto r = s.while_serving([&] {
            return run_wafer(
                {"run", "--base-url", url, "--workspace", wsd, "--max-turns", "1", "take notes"},
                env
            );
        });
        INFO("stdout:\n" << r.out << "\nstderr:\n" << r.err);
        CHECK(r.status == 4);
        const std::string id = run_id_of(r.err);
        REQUIRE(id.size() == 16);
        CHECK(contains(r.out, "approvals: write_file, edit_file and run_command stop the run"));
        CHECK(contains(r.out, "<- read_file ok")); // the free call ran
        CHECK_FALSE(fs::exists(ws.dir / "notes.txt"));
        // One line per waiting call, naming the commands that answer it.
        std::vector<std::string> calls;
        std::istringstream err(r.err);
        for (std::string line; std::getline(err, line);) {
            if (line.starts_with("run ")) {
                continue;
            }
            CHECK(line.starts_with("wafer: call "));
            const std::string call = line.substr(12, line.find(' ', 12) - 12);
            CHECK(contains(line, "wafer approve " + id + " " + call));
            CHECK(contains(line, "wafer deny " + id + " " + call));
            CHECK(contains(line, "then wafer resume " + id));
            calls.push_back(call);
        }
        REQUIRE(calls.size() == 2);
        CHECK(contains(r.err, "(write_file notes.txt (11 bytes))"));
        auto list = run_wafer({"runs", "--json", "--workspace", wsd}, env);
        REQUIRE(json_lines(list.out).size() == 1);
        CHECK(json_lines(list.out)[0]["status"] == "awaiting_approval");

        // Another process approves the first with other arguments; a bad call id is one line.
        auto bad = run_wafer({"approve", id, "no-such-call"}, env);
        check_one_failure_line(bad);
        CHECK(contains(bad.err, "no pending call no-such-call"));
        auto ok = run_wafer(
            {"approve", id, calls[0], "--args", R"({"path":"notes.txt","content":"approved\n"})"},
            env
        );
        INFO("approve:\n" << ok.out << ok.err);
        CHECK(ok.status == 0);
        CHECK(contains(ok.out, "approved " + calls[0] + " of run " + id));
        CHECK(contains(ok.out, "still waiting: " + calls[1] + " (write_file)"));
        auto no = run_wafer({"deny", id, calls[1], "--message", "only the notes"}, env);
        CHECK(no.status == 0);
        CHECK(contains(no.out, "nothing else waits; continue the run: wafer resume " + id));
        auto twice = run_wafer({"deny", id, calls[0]}, env);
        check_one_failure_line(twice);

        // A third process resumes: the approved call runs, with the approved arguments.
        auto resumed = s.while_serving([&] {
            return run_wafer({"resume", "--base-url", url, id}, env);
        });
        INFO("resume:\n" << resumed.out << resumed.err);
        // The answer came on the final-answer turn of --max-turns 1: stop reason max_turns (3).
        CHECK(resumed.status == 3);
        CHECK(contains(resumed.err, "(max_turns)"));
        CHECK(contains(resumed.out, "Wrote the notes."));
        CHECK(ws.read("notes.txt") == "approved\n");
        CHECK_FALSE(fs::exists(ws.dir / "other.txt"));
        const auto bodies = s.chat_bodies();
        REQUIRE(bodies.size() == 2);
        bool denial_sent = false;
        bool edited_sent = false;
        for (const auto& m : bodies[1]["messages"]) {
            if (m["role"] == "tool" && contains(m.value("content", ""), "only the notes")) {
                denial_sent = true;
            }
            for (const auto& c : m.value("tool_calls", json::array())) {
                if (c["id"] == calls[0]) {
                    edited_sent =
                        contains(c["function"]["arguments"].get<std::string>(), "approved");
                }
            }
        }
        CHECK(denial_sent);
        CHECK(edited_sent);
        // The stored --max-turns 1: the second request is the final-answer turn, without tools.
        CHECK_FALSE(bodies[1].contains("tools"));
        auto show = run_wafer({"runs", "show", id}, env);
        CHECK(contains(show.out, "== awaiting_approval"));
        CHECK(contains(show.out, "approved " + calls[0] + " with arguments"));
        CHECK(contains(show.out, "denied " + calls[1] + ": only the notes"));
        CHECK(contains(show.out, "== max_turns"));
    }

} // TEST_SUITE

#endif // WAFER_CLI_PATH
