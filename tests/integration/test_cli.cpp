// The wafer program end to end: each test spawns the built binary (posix_spawn, stdout and stderr
// captured through pipes, stdin from /dev/null) against a fake server running in this process on
// its own thread, and checks what a user sees: the output, the one-line failures, the exit
// status, the requests that went over the wire and the files the agent changed.
#include "cli_harness.hpp"

#ifdef WAFER_CLI_PATH

using namespace wafer::testing::cli;

TEST_SUITE("integration/cli") {

    TEST_CASE("ask streams the answer to stdout and sends a GLM request with preserved thinking") {
        // setup
        served s;
        delivery how;
        how.chunk_chars = 3;
        s.server.enqueue(
            reply::of({.reasoning = "The user greets me.", .content = "Hello from wafer!"}, how)
        );
        // run
        auto r = s.while_serving([&] {
            return run_wafer(
                {"ask", "--base-url", s.server.base_url() + "/v1", "Say hello"},
                {"CEREBRAS_API_KEY=" + secret}
            );
        });
        // check
        CHECK(r.status == 0);
        CHECK(r.out == "Hello from wafer!\n"); // no reasoning without --reasoning
        CHECK(r.err.empty());
        const auto bodies = s.chat_bodies();
        REQUIRE(bodies.size() == 1);
        CHECK(bodies[0]["model"] == "zai-glm-4.7");
        CHECK(bodies[0]["stream"] == true);
        CHECK(bodies[0]["clear_thinking"] == false);
        CHECK(bodies[0]["messages"].back()["content"] == "Say hello");
        CHECK(s.server.requests().at(0).header("authorization") == "Bearer " + secret);
    }

    TEST_CASE("ask --reasoning shows the reasoning before the answer; a bare host works") {
        served s;
        s.server.enqueue(reply::of({.reasoning = "Thinking it over.", .content = "Done."}));
        const std::string bare = s.server.base_url().substr(std::string("http://").size());
        auto r = s.while_serving([&] {
            return run_wafer({"ask", "--reasoning", "--base-url", bare, "q"});
        });
        CHECK(r.status == 0);
        // Not a terminal: no escape codes, the reasoning labelled and separated from the answer.
        CHECK(r.out == "thinking: Thinking it over.\n\nDone.\n");
        CHECK_FALSE(contains(r.out, "\x1b["));
    }

    TEST_CASE("ask --no-stream sends a non-streaming request and prints the whole answer") {
        served s;
        s.server.enqueue(reply::of({.reasoning = "r", .content = "All at once."}));
        auto r = s.while_serving([&] {
            return run_wafer(
                {"ask", "--no-stream", "--base-url", s.server.base_url(), "q"},
                {"CEREBRAS_API_KEY=" + secret}
            );
        });
        CHECK(r.status == 0);
        CHECK(r.out == "All at once.\n");
        const auto bodies = s.chat_bodies();
        REQUIRE(bodies.size() == 1);
        CHECK(bodies[0].value("stream", false) == false);
    }

    TEST_CASE("ask --json prints every event as one JSON line") {
        served s;
        s.server.enqueue(reply::of({.reasoning = "Hmm.", .content = "one two three"}));
        auto r = s.while_serving([&] {
            return run_wafer({"ask", "--json", "--base-url", s.server.base_url(), "count"});
        });
        CHECK(r.status == 0);
        const auto lines = json_lines(r.out);
        REQUIRE(lines.size() >= 4);
        std::string text;
        std::vector<std::string> types;
        for (const auto& j : lines) {
            wafer::event e;
            from_json(j, e); // each line is a complete event
            types.push_back(j.at("type").get<std::string>());
            if (auto* c = e.get_if<wafer::events::content_delta>()) {
                text += c->text;
            }
        }
        CHECK(types.front() == "run_started");
        CHECK(types.back() == "run_finished");
        CHECK(std::count(types.begin(), types.end(), "reasoning_delta") >= 1);
        CHECK(text == "one two three");
        CHECK(lines.back()["final_text"] == "one two three");
    }

    TEST_CASE("models lists the endpoint's models") {
        served s;
        auto r = s.while_serving([&] {
            return run_wafer({"models", "--base-url", s.server.base_url()});
        });
        CHECK(r.status == 0);
        CHECK(r.out == "zai-glm-4.7\ngpt-oss-120b\n");
    }

    TEST_CASE("without a key or base URL the offline stand-in answers and says so on stderr") {
        auto r = run_wafer({"ask", "hello there"});
        CHECK(r.status == 0);
        CHECK(contains(r.err, "offline stand-in"));
        CHECK(contains(r.out, "offline stand-in"));
        CHECK(contains(r.out, "hello there"));
    }

    TEST_CASE("run: parallel reads, an edit, the tests, a security critic and a summary") {
        // setup: the offline coding session, served in-process
        offline_run o;
        sample_workspace& ws = o.ws;
        served& s = o.s;
        // run
        auto r = s.while_serving([&] {
            return run_wafer(o.args({"--critic", "security", "--yes"}));
        });
        // check: what the user sees
        INFO("stdout:\n" << r.out << "\nstderr:\n" << r.err);
        CHECK(r.status == 0);
        CHECK(count(r.out, "-> read_file ") == 2);
        CHECK(count(r.out, "-> list_dir ") == 1);
        CHECK(contains(r.out, "-> edit_file "));
        CHECK(contains(r.out, "-> run_command "));
        CHECK(contains(r.out, "6 passed, 0 failed"));
        CHECK(contains(r.out, "[critic security, before_tools] approve"));
        CHECK(contains(r.out, "== completed: 4 turns"));
        CHECK(contains(r.out, "tokens: prompt "));
        CHECK(contains(r.out, "tokens/s"));
        // the workspace: the bug is fixed
        CHECK(contains(ws.read("stats.sh"), "NR == 1 { min = $1; max = $1 }"));
        CHECK_FALSE(contains(ws.read("stats.sh"), "BEGIN { min = 0; max = 0 }"));
        // the wire: turn 2 answered all three calls of turn 1; the critic asked with a json_schema
        std::size_t critic_requests = 0;
        std::size_t agent_requests = 0;
        for (const auto& b : s.chat_bodies()) {
            if (b.contains("response_format")) {
                ++critic_requests;
                CHECK(b["response_format"]["type"] == "json_schema");
                continue;
            }
            ++agent_requests;
            if (agent_requests == 2) {
                std::size_t tool_messages = 0;
                for (const auto& m : b["messages"]) {
                    tool_messages += m["role"] == "tool" ? 1U : 0U;
                }
                CHECK(tool_messages == 3);
            }
        }
        CHECK(agent_requests == 4);
        CHECK(critic_requests == 2); // edit_file and run_command; the reads are not gated
    }

    TEST_CASE("run --json: the three reads of turn 1 all start before any finishes") {
        offline_run o;
        auto r = o.s.while_serving([&] { return run_wafer(o.args({"--json", "--yes"})); });
        CHECK(r.status == 0);
        std::vector<std::string> turn1;
        for (const auto& j : json_lines(r.out)) {
            const auto type = j.at("type").get<std::string>();
            if ((type == "tool_call_started" || type == "tool_call_finished") && j["turn"] == 1) {
                turn1.push_back(type);
            }
        }
        CHECK(
            turn1 ==
            std::vector<std::string>{
                "tool_call_started",
                "tool_call_started",
                "tool_call_started",
                "tool_call_finished",
                "tool_call_finished",
                "tool_call_finished"}
        );
    }

    TEST_CASE("run --no-store without --yes and without a terminal: changes are denied, the "
              "model is told") {
        offline_run o;
        sample_workspace& ws = o.ws;
        served& s = o.s;
        const std::string before = ws.read("stats.sh");
        auto r = s.while_serving([&] { return run_wafer(o.args({"--no-store"})); });
        INFO("stdout:\n" << r.out);
        CHECK(r.status == 0);
        CHECK(contains(r.out, "<- edit_file failed"));
        CHECK(contains(r.out, "denied: edit_file"));
        CHECK(ws.read("stats.sh") == before);
        // The model read the denial as the tool's result.
        bool denial_sent = false;
        for (const auto& b : s.chat_bodies()) {
            for (const auto& m : b["messages"]) {
                if (m["role"] == "tool" && contains(m.value("content", ""), "denied: edit_file")) {
                    denial_sent = true;
                }
            }
        }
        CHECK(denial_sent);
    }

    TEST_CASE("run without --yes on a terminal asks: y runs the edit, n refuses the command") {
        offline_run o;
        sample_workspace& ws = o.ws;
        served& s = o.s;
        auto r = s.while_serving([&] { return run_wafer_on_terminal(o.args(), {"y\n", "n\n"}); });
        INFO("terminal:\n" << r.out);
        CHECK(r.status == 0);
        CHECK_FALSE(r.timed_out);
        CHECK(count(r.out, "[y/N]") == 2); // the reads were not asked about
        CHECK(contains(r.out, "allow edit_file stats.sh: replace"));
        CHECK(contains(r.out, "allow run_command: sh tests/run_tests.sh?"));
        CHECK(contains(r.out, "<- edit_file ok"));
        CHECK(contains(r.out, "denied: the user declined this run_command call"));
        CHECK_FALSE(contains(r.out, "6 passed")); // the tests never ran
        CHECK(contains(ws.read("stats.sh"), "NR == 1 { min = $1; max = $1 }"));
    }

    TEST_CASE("without Landlock and --sandbox on: a command the user approves runs unconfined and "
              "says so; --yes does not run it") {
        sample_workspace ws;
        const std::vector<std::string> run{"run", "--no-store", "--workspace", ws.dir.string()};
        auto script = [](served& s) {
            s.server.enqueue(reply::of(
                {.tool_calls = {{"", "run_command", R"({"command":"echo hi > out.txt"})"}}}
            ));
            s.server.enqueue(reply::text("Done."));
        };
        {
            served s;
            script(s);
            auto args = run;
            args.insert(args.end(), {"--base-url", s.server.base_url(), "go"});
            auto r =
                s.while_serving([&] { return run_wafer_on_terminal(args, {"y\n"}, 60s, true); });
            INFO("terminal:\n" << r.out);
            REQUIRE(r.status != 126); // the kernel let us hide Landlock
            CHECK(r.status == 0);
            CHECK(contains(r.out, "run_command runs only when you approve each command"));
            CHECK(
                contains(r.out, "echo hi > out.txt (UNCONFINED: no sandbox on this system)? [y/N]")
            );
            CHECK(contains(r.out, "ran unconfined because the user approved it"));
            CHECK(ws.read("out.txt") == "hi\n");
        }
        fs::remove(ws.dir / "out.txt");
        {
            served s;
            script(s);
            auto args = run;
            args.insert(args.end(), {"--yes", "--base-url", s.server.base_url(), "go"});
            auto r = s.while_serving([&] { return run_wafer_on_terminal(args, {}, 60s, true); });
            INFO("terminal:\n" << r.out);
            CHECK(r.status == 0);
            CHECK(count(r.out, "[y/N]") == 0);
            CHECK(contains(r.out, "<- run_command failed"));
            CHECK_FALSE(fs::exists(ws.dir / "out.txt"));
            // The model reads why.
            const auto bodies = s.chat_bodies();
            REQUIRE(bodies.size() == 2);
            const auto& last = bodies[1]["messages"].back();
            CHECK(last["role"] == "tool");
            CHECK(contains(last["content"].get<std::string>(), "--yes does not let a command run"));
        }
    }

    TEST_CASE("failure: a real endpoint without an API key") {
        auto r = run_wafer({"ask", "--base-url", "https://api.example.invalid/v1", "hi"});
        check_one_failure_line(r);
        CHECK(contains(r.err, "no API key"));
        CHECK(contains(r.err, "CEREBRAS_API_KEY"));
    }

    TEST_CASE("failure: 401 names the problem and never prints the key") {
        fake_server_config cfg;
        cfg.api_key = "the-right-key";
        served s(cfg);
        auto r = s.while_serving([&] {
            return run_wafer(
                {"ask", "--base-url", s.server.base_url(), "hi"}, {"CEREBRAS_API_KEY=" + secret}
            );
        });
        check_one_failure_line(r);
        CHECK(contains(r.err, "authentication failed"));
        CHECK(contains(r.err, "401"));
        CHECK_FALSE(contains(r.err + r.out, secret));
    }

    TEST_CASE("failure: 429 with the retry-after") {
        served s;
        scripted_error e;
        e.status = 429;
        e.type = "too_many_requests_error";
        e.code = "request_quota_exceeded";
        e.message = "Requests per minute limit exceeded - too many requests sent.";
        e.retry_after = "7";
        e.should_retry = "false"; // the server says: do not retry now, so the CLI reports at once
        s.server.enqueue(reply::failure(e));
        auto r = s.while_serving([&] {
            return run_wafer({"run", "--base-url", s.server.base_url(), "--yes", "do it"});
        });
        r.err = without_run_line(r.err);
        check_one_failure_line(r);
        CHECK(contains(r.err, "rate limited"));
        CHECK(contains(r.err, "429"));
        CHECK(contains(r.err, "Requests per minute limit exceeded"));
        CHECK(contains(r.err, "retry after 7 s"));
    }

    TEST_CASE("failure: connection refused") {
        // A port that was free a moment ago and has no listener now.
        unsigned short port = 0;
        {
            asio::io_context ioc;
            asio::ip::tcp::acceptor a(ioc, {asio::ip::make_address("127.0.0.1"), 0});
            port = a.local_endpoint().port();
        }
        auto r = run_wafer({"models", "--base-url", "http://127.0.0.1:" + std::to_string(port)});
        check_one_failure_line(r);
        CHECK(contains(r.err, "cannot connect"));
        CHECK(contains(r.err, "refused"));
    }

    TEST_CASE("failure: TLS verification against a certificate the client does not trust") {
        fake_server_config cfg;
        cfg.tls_cert_file = std::string(WAFER_TEST_DATA_DIR) + "/tls/server.pem";
        cfg.tls_key_file = std::string(WAFER_TEST_DATA_DIR) + "/tls/server.key";
        served s(cfg);
        REQUIRE(s.server.base_url().starts_with("https://"));
        auto r = s.while_serving([&] {
            return run_wafer(
                {"ask", "--base-url", s.server.base_url(), "hi"}, {"CEREBRAS_API_KEY=" + secret}
            );
        });
        check_one_failure_line(r);
        CHECK(contains(r.err, "TLS verification failed"));
        CHECK_FALSE(contains(r.err, secret));
    }

    // ---- what reaches the terminal is shown, never interpreted (issue 10, item 1) ----

    TEST_CASE("approval prompt: a command cannot erase itself, its escapes are shown escaped") {
        // A command that, written raw, would return to the line start, erase it, move up and
        // show a harmless "echo hello" before [y/N]; and a right-to-left override.
        const std::string command = "rm -rf ~\r\x1b[2K\x1b[1Aecho hello \u202E#txt.sh";
        served s;
        s.server.enqueue(
            reply::of({.tool_calls = {{"", "run_command", json{{"command", command}}.dump()}}})
        );
        s.server.enqueue(reply::text("I did not run it."));
        sample_workspace ws;
        auto r = s.while_serving([&] {
            return run_wafer_on_terminal(
                {"run", "--base-url", s.server.base_url(), "--workspace", ws.dir.string(), "go"},
                {"n\n"}
            );
        });
        INFO("terminal:\n" << r.out);
        CHECK(r.status == 0);
        CHECK_FALSE(r.timed_out);
        r.out = without_thinking_line(r.out); // wafer's own line, drawn and erased
        CHECK(count(r.out, "[y/N]") == 1);
        CHECK(contains(
            r.out,
            "wafer: allow run_command: rm -rf ~\\r\\x1b[2K\\x1b[1Aecho hello \\u{202e}#txt.sh? "
            "[y/N]"
        ));
        // Nothing the terminal would act on: no ESC at all (no reasoning, so no dimming), no
        // carriage return except the terminal's own before a newline, no RLO.
        CHECK_FALSE(contains(r.out, "\x1b"));
        for (std::size_t i = r.out.find('\r'); i != std::string::npos;
             i = r.out.find('\r', i + 1)) {
            CHECK(r.out.substr(i, 2) == "\r\n");
        }
        CHECK_FALSE(contains(r.out, "\u202E"));
        CHECK(contains(r.out, "denied: the user declined this run_command call"));
    }

    TEST_CASE("streamed answer: escape sequences and bidi controls are shown escaped") {
        served s;
        delivery how;
        how.chunk_chars = 3; // the escapes arrive split across deltas
        s.server.enqueue(reply::of(
            {.reasoning = "plan\x1b[8m hidden",
             .content = "safe\x1b]0;pwned\x07 text\x1b[2J\rline 1\n\tline 2 \u202Eevil\u2066"},
            how
        ));
        auto r = s.while_serving([&] {
            return run_wafer({"ask", "--reasoning", "--base-url", s.server.base_url(), "q"});
        });
        CHECK(r.status == 0);
        // Newlines and tabs of the text stay; everything else a terminal interprets is escaped.
        CHECK(
            r.out ==
            "thinking: plan\\x1b[8m hidden\n\nsafe\\x1b]0;pwned\\x07 text\\x1b[2J\\rline 1\n"
            "\tline 2 \\u{202e}evil\\u{2066}\n"
        );
    }

    TEST_CASE("run: tool names, arguments and output previews are shown escaped") {
        served s;
        s.server.enqueue(reply::of(
            {.tool_calls = {{"", "run_command", R"({"command":"printf 'a\\033[2Jb\\rc\\n'"})"}}}
        ));
        s.server.enqueue(reply::text("done"));
        sample_workspace ws;
        auto r = s.while_serving([&] {
            return run_wafer(
                {"run",
                 "--yes",
                 "--base-url",
                 s.server.base_url(),
                 "--workspace",
                 ws.dir.string(),
                 "go"}
            );
        });
        INFO("stdout:\n" << r.out);
        CHECK(r.status == 0);
        CHECK(contains(r.out, "a\\x1b[2Jb\\rc")); // the command's output, escaped
        CHECK_FALSE(contains(r.out, "\x1b"));
        CHECK_FALSE(contains(r.out, "\r"));
    }

    TEST_CASE("failure: control characters in a server's error message are shown escaped") {
        served s;
        scripted_error e;
        e.status = 400;
        e.type = "invalid_request_error";
        e.message = "bad\x1b[31m red\r\nwafer: all good\x1b[0m";
        e.should_retry = "false";
        s.server.enqueue(reply::failure(e));
        auto r = s.while_serving([&] {
            return run_wafer({"ask", "--base-url", s.server.base_url(), "hi"});
        });
        check_one_failure_line(r);
        INFO("stderr: " << r.err);
        CHECK(contains(r.err, "bad\\x1b[31m red\\r\\nwafer: all good\\x1b[0m"));
        CHECK_FALSE(contains(r.err, "\x1b"));
        CHECK_FALSE(contains(r.err, "\r"));
    }

    TEST_CASE("models: a server's model ids are shown escaped") {
        fake_server_config cfg;
        cfg.models = {"zai-glm-4.7", "evil\x1b[2K\rgpt-oss-120b"};
        served s(cfg);
        auto r = s.while_serving([&] {
            return run_wafer({"models", "--base-url", s.server.base_url()});
        });
        CHECK(r.status == 0);
        CHECK(r.out == "zai-glm-4.7\nevil\\x1b[2K\\rgpt-oss-120b\n");
        auto j = s.while_serving([&] {
            return run_wafer({"models", "--json", "--base-url", s.server.base_url()});
        });
        CHECK(j.status == 0);
        CHECK_FALSE(contains(j.out, "\x1b")); // JSON escapes it as \u001b
        CHECK(json::parse(j.out).at(1).at("id") == "evil\x1b[2K\rgpt-oss-120b");
    }

    // ---- an error event inside a stream (issue 10, item 9) ----

    TEST_CASE("failure: an error inside a 200 stream without a status code names it so") {
        raw_reply raw;
        raw.content_type = "text/event-stream";
        raw.body = "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"created\":1,"
                   "\"model\":\"zai-glm-4.7\",\"choices\":[{\"index\":0,\"delta\":{\"role\":"
                   "\"assistant\"}}]}\n\n"
                   "data: {\"error\":{\"message\":\"Queue full\\u001b[2K, try later\",\"type\":"
                   "\"overloaded_error\",\"code\":\"queue_full\"}}\n\n";
        delivery how;
        how.headers = {{"x-should-retry", "false"}};
        fake_server_config cfg;
        cfg.fallback = reply::verbatim(raw, how); // the same, should the client retry
        served s(cfg);
        auto r = s.while_serving([&] {
            return run_wafer({"ask", "--base-url", s.server.base_url(), "hi"});
        });
        check_one_failure_line(r);
        INFO("stderr: " << r.err);
        CHECK(contains(
            r.err,
            "the server reported an error inside the stream: overloaded_error (queue_full): "
            "Queue full\\x1b[2K, try later"
        ));
        CHECK_FALSE(contains(r.err, "5xx"));
    }

    // ---- the API key is not in wafer's environment (issue 10, item 3) ----

    TEST_CASE("run: commands are sandboxed by default: no writes outside the workspace") {
        served s;
        const auto outside =
            fs::temp_directory_path() / ("wafer-cli-outside-" + std::to_string(::getpid()));
        fs::remove(outside);
        s.server.enqueue(reply::of(
            {.tool_calls =
                 {{"",
                   "run_command",
                   json{{"command", "touch '" + outside.string() + "'; touch inside.txt"}}.dump()}}}
        ));
        s.server.enqueue(reply::text("done"));
        sample_workspace ws;
        auto r = s.while_serving([&] {
            return run_wafer(
                {"run",
                 "--yes",
                 "--base-url",
                 s.server.base_url(),
                 "--workspace",
                 ws.dir.string(),
                 "go"},
                {}
            );
        });
        INFO("stdout:\n" << r.out << "\nstderr:\n" << r.err);
        CHECK(r.status == 0);
        CHECK(contains(r.out, "sandbox: Landlock ABI"));
        CHECK_FALSE(fs::exists(outside));
        CHECK(fs::exists(ws.dir / "inside.txt"));
        fs::remove(outside);
    }

    TEST_CASE("run: a command cannot read the API key from /proc/$PPID/environ") {
        served s;
        s.server.enqueue(reply::of(
            {.tool_calls =
                 {{"",
                   "run_command",
                   json{{"command", "cat /proc/$PPID/environ | tr '\\0' '\\n'"}}.dump()}}}
        ));
        s.server.enqueue(reply::text("done"));
        sample_workspace ws;
        const std::string other = "sk-OPENAI-TEST-SECRET-1a2b3c";
        auto r = s.while_serving([&] {
            return run_wafer(
                // Unsandboxed: the sandbox also hides wafer's /proc entries; this checks that the
                // key is gone from wafer's environment block itself.
                {"run",
                 "--yes",
                 "--sandbox=off",
                 "--base-url",
                 s.server.base_url(),
                 "--workspace",
                 ws.dir.string(),
                 "go"},
                {"CEREBRAS_API_KEY=" + secret, "OPENAI_API_KEY=" + other, "WAFER_TEST_MARK=here"}
            );
        });
        INFO("stdout:\n" << r.out << "\nstderr:\n" << r.err);
        CHECK(r.status == 0);
        // The key was read and used ...
        REQUIRE_FALSE(s.server.requests().empty());
        CHECK(s.server.requests().at(0).header("authorization") == "Bearer " + secret);
        // ... and the command read wafer's environment, but the key was no longer in it.
        const auto bodies = s.chat_bodies();
        REQUIRE(bodies.size() == 2);
        std::string tool_output;
        for (const auto& m : bodies[1]["messages"]) {
            if (m["role"] == "tool") {
                tool_output = m.value("content", "");
            }
        }
        CHECK(contains(tool_output, "WAFER_TEST_MARK=here"));
        CHECK_FALSE(contains(tool_output, secret));
        CHECK_FALSE(contains(tool_output, other));
        CHECK_FALSE(contains(tool_output, "CEREBRAS_API_KEY"));
        CHECK_FALSE(contains(tool_output, "OPENAI_API_KEY"));
        CHECK_FALSE(contains(r.out + r.err, secret));
    }

    // ---- limits and signals (issue 10, items 4 and 9) ----

    TEST_CASE("ask --timeout: a reply that trickles forever ends with one clear line") {
        // Headers, one content chunk, then a keep-alive comment every 50 ms for minutes: the
        // client's idle timeout never fires, only the overall deadline can.
        raw_reply raw;
        raw.content_type = "text/event-stream";
        raw.body = "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"created\":1,"
                   "\"model\":\"zai-glm-4.7\",\"choices\":[{\"index\":0,\"delta\":{\"role\":"
                   "\"assistant\",\"content\":\"partial\"}}]}\n\n";
        for (int i = 0; i < 4000; ++i) {
            raw.body += ": keep-alive\n\n";
        }
        delivery how;
        how.chunk_delay = 50ms;
        served s;
        s.server.enqueue(reply::verbatim(raw, how));
        const auto started = std::chrono::steady_clock::now();
        auto r = s.while_serving([&] {
            return run_wafer(
                {"ask", "--timeout", "1", "--base-url", s.server.base_url(), "q"}, {}, 30s
            );
        });
        const auto took = std::chrono::steady_clock::now() - started;
        INFO("stdout: " << r.out << "\nstderr: " << r.err);
        CHECK_FALSE(r.timed_out);
        CHECK(r.status == 3); // stopped before a final answer
        CHECK(took < 15s);
        CHECK(r.err == "wafer: timed out: no final answer within the --timeout of 1 s\n");
        CHECK(contains(r.out, "partial"));
    }

    TEST_CASE("run --timeout: a command that hangs is stopped at the run's deadline") {
        served s;
        s.server.enqueue(
            reply::of({.tool_calls = {{"", "run_command", R"({"command":"sleep 120"})"}}})
        );
        // Slow, should a model call still start at the deadline (the library floors the batch
        // deadline to milliseconds, so one may): the deadline then cuts it.
        delivery slow;
        slow.header_delay = std::chrono::hours(1);
        s.server.enqueue(reply::text("never reached", slow));
        sample_workspace ws;
        const auto started = std::chrono::steady_clock::now();
        auto r = s.while_serving([&] {
            return run_wafer(
                {"run",
                 "--yes",
                 "--timeout",
                 "2",
                 "--base-url",
                 s.server.base_url(),
                 "--workspace",
                 ws.dir.string(),
                 "go"},
                {},
                60s
            );
        });
        const auto took = std::chrono::steady_clock::now() - started;
        INFO("stdout:\n" << r.out << "\nstderr:\n" << r.err);
        CHECK_FALSE(r.timed_out);
        CHECK(r.status == 3);
        CHECK(took < 30s);
        CHECK(
            without_run_line(r.err) ==
            "wafer: timed out: no final answer within the --timeout of 2 s\n"
        );
        CHECK(contains(r.out, "== deadline"));
    }

    TEST_CASE("run: one Ctrl-C stops a run that waits for a server that never answers") {
        delivery how;
        how.header_delay = std::chrono::hours(1);
        served s;
        s.server.enqueue(reply::text("never", how));
        sample_workspace ws;
        auto r = s.while_serving([&] {
            spawned_wafer w(
                {"run", "--base-url", s.server.base_url(), "--workspace", ws.dir.string(), "go"}, {}
            );
            std::string out;
            if (!w.read_stdout_until(out, "approvals:", 20s)) {
                FAIL_CHECK("wafer did not start the run");
                return process_result{};
            }
            std::this_thread::sleep_for(300ms); // the request is on its way
            ::kill(w.pid, SIGINT);
            process_result res = w.collect(20s);
            res.out = out + res.out;
            CHECK(w.exited_normally);
            return res;
        });
        INFO("stdout:\n" << r.out << "\nstderr:\n" << r.err);
        CHECK_FALSE(r.timed_out);
        CHECK(r.status == 130);
        CHECK(contains(r.err, "interrupted"));
        CHECK(contains(r.out, "== cancelled"));
    }

    TEST_CASE("a second SIGINT exits at once, even while wafer is stuck writing its output") {
        const auto r = twice_while_stuck(SIGINT);
        CHECK_FALSE(r.timed_out);
        CHECK(r.status == 130);
    }

    TEST_CASE("a second SIGTERM exits at once, even while wafer is stuck writing its output") {
        const auto r = twice_while_stuck(SIGTERM);
        CHECK_FALSE(r.timed_out);
        CHECK(r.status == 143);
    }

    TEST_CASE("a catastrophically backtracking search pattern no longer blocks the run") {
        // With std::regex this search did not return for a very long time, and the run with it
        // (the second-signal exit that was the way out is tested above, while wafer is stuck
        // writing). On RE2 it finishes in linear time and the run goes on to its answer.
        served s;
        s.server.enqueue(reply::of(
            {.tool_calls = {{"", "search", R"({"pattern":"^(a+)+$","path":"redos.txt"})"}}}
        ));
        s.server.enqueue(reply::text("searched"));
        sample_workspace ws;
        std::ofstream(ws.dir / "redos.txt") << std::string(40, 'a') << "!\n";
        auto r = s.while_serving([&] {
            return run_wafer(
                {"run", "--base-url", s.server.base_url(), "--workspace", ws.dir.string(), "go"}, {}
            );
        });
        INFO("stdout:\n" << r.out << "\nstderr:\n" << r.err);
        CHECK_FALSE(r.timed_out);
        CHECK(r.status == 0);
        CHECK(contains(r.out, "searched"));
    }

    TEST_CASE("usage errors exit with 2") {
        auto r = run_wafer({"run", "--critic", "nonsense", "task"});
        CHECK(r.status == 2);
        auto none = run_wafer({});
        CHECK(none.status == 2);
    }

} // TEST_SUITE

#endif // WAFER_CLI_PATH
