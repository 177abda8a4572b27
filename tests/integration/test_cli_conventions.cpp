// The habits people bring to a CLI (issue 14, item 2), end to end: the prompt from standard
// input and from unquoted words, --version, short flags, colours (--color, NO_COLOR, TERM=dumb),
// the "thinking…" line on a terminal only, a private CA (--ca-file, SSL_CERT_FILE), ask's
// sampling flags, SIGTERM's exit status, and empty prompts and model names refused before any
// request.
#include "cli_harness.hpp"

#ifdef WAFER_CLI_PATH

using namespace wafer::testing::cli;

namespace {

/// A file holding `text`, removed at the end (a pipe's contents for standard input).
struct stdin_file {
    fs::path path;
    explicit stdin_file(const std::string& text) {
        std::random_device rd;
        path = fs::temp_directory_path() / ("wafer-cli-stdin-" + std::to_string(rd()));
        std::ofstream(path, std::ios::binary) << text;
    }
    ~stdin_file() {
        std::error_code ec;
        fs::remove(path, ec);
    }
};

process_result run_with_stdin(
    std::vector<std::string> args,
    const std::string& input,
    const std::vector<std::string>& env = {}
) {
    stdin_file in(input);
    spawned_wafer w(std::move(args), env, in.path.string());
    return w.collect(60s);
}

std::string last_user_message(const served& s) {
    const auto bodies = s.chat_bodies();
    REQUIRE(bodies.size() == 1);
    return bodies[0]["messages"].back()["content"].get<std::string>();
}

const std::string tls_dir = std::string(WAFER_TEST_DATA_DIR) + "/tls";

fake_server_config tls_server() {
    fake_server_config cfg;
    cfg.tls_cert_file = tls_dir + "/server.pem";
    cfg.tls_key_file = tls_dir + "/server.key";
    return cfg;
}

} // namespace

TEST_SUITE("integration/cli_conventions") {

    TEST_CASE("the prompt from a pipe, alone and after the words; - reads standard input") {
        served s;
        s.server.enqueue(reply::text("one"));
        s.server.enqueue(reply::text("two"));
        s.server.enqueue(reply::text("three"));
        auto r = s.while_serving([&] {
            return run_with_stdin({"ask", "--base-url", s.server.base_url()}, "piped question\n");
        });
        CHECK(r.status == 0);
        CHECK(r.out == "one\n");
        CHECK(s.chat_bodies().back()["messages"].back()["content"] == "piped question");

        r = s.while_serving([&] {
            return run_with_stdin(
                {"ask", "--base-url", s.server.base_url(), "explain", "this"}, "int main() {}\n"
            );
        });
        CHECK(r.status == 0);
        CHECK(
            s.chat_bodies().back()["messages"].back()["content"] == "explain this\n\nint main() {}"
        );

        r = s.while_serving([&] {
            return run_with_stdin({"ask", "--base-url", s.server.base_url(), "-"}, "dash\n");
        });
        CHECK(r.status == 0);
        CHECK(s.chat_bodies().back()["messages"].back()["content"] == "dash");
    }

    TEST_CASE("unquoted words are joined, for ask and for run's task") {
        served s;
        s.server.enqueue(reply::text("hi"));
        auto r = s.while_serving([&] {
            return run_wafer({"ask", "--base-url", s.server.base_url(), "hello", "world"});
        });
        CHECK(r.status == 0);
        CHECK(last_user_message(s) == "hello world");

        offline_run o;
        auto args = o.args({"--no-store", "-y"});
        args.back() = "Fix";
        args.emplace_back("the");
        args.emplace_back("failing");
        args.emplace_back("test");
        r = o.s.while_serving([&] { return run_wafer(args); });
        INFO("stdout:\n" << r.out << "\nstderr:\n" << r.err);
        CHECK(r.status == 0);
        const auto bodies = o.s.chat_bodies();
        REQUIRE_FALSE(bodies.empty());
        CHECK(bodies[0]["messages"].back()["content"] == "Fix the failing test");
    }

    TEST_CASE("run: the task from a pipe, -y and -C") {
        offline_run o;
        auto r = o.s.while_serving([&] {
            return run_with_stdin(
                {"run",
                 "--base-url",
                 o.s.server.base_url(),
                 "-C",
                 o.ws.dir.string(),
                 "-y",
                 "--no-store"},
                "Fix the failing test\n"
            );
        });
        INFO("stdout:\n" << r.out << "\nstderr:\n" << r.err);
        CHECK(r.status == 0);
        CHECK(contains(r.out, "workspace: " + fs::canonical(o.ws.dir).string()));
        CHECK(contains(r.out, "approvals: every tool call runs (--yes)"));
        const auto bodies = o.s.chat_bodies();
        REQUIRE_FALSE(bodies.empty());
        CHECK(bodies[0]["messages"].back()["content"] == "Fix the failing test");
    }

    TEST_CASE("an empty prompt, task or model name is refused before any request") {
        served s;
        s.server.enqueue(reply::text("never sent"));
        std::vector<process_result> results;
        s.while_serving([&] {
            const std::string url = s.server.base_url();
            results.push_back(run_wafer({"ask", "--base-url", url, ""}));
            results.push_back(run_wafer({"ask", "--base-url", url})); // </dev/null: empty
            results.push_back(run_with_stdin({"ask", "--base-url", url, "-"}, "\n  \n"));
            results.push_back(run_wafer({"ask", "--base-url", url, "-m", "", "hi"}));
            results.push_back(run_wafer({"ask", "--base-url", url, "--model", " ", "hi"}));
            results.push_back(run_wafer({"run", "--base-url", url, "--no-store", " "}));
            return process_result{};
        });
        for (const auto& r : results) {
            INFO("stderr: " << r.err);
            CHECK(r.status == 2);
            check_one_failure_line(r);
        }
        CHECK(contains(results[0].err, "the prompt is empty"));
        CHECK(contains(results[3].err, "the model name is empty"));
        CHECK(contains(results[5].err, "the task is empty"));
        CHECK(s.server.requests().empty());
    }

    TEST_CASE("--version prints the project's version") {
        auto r = run_wafer({"--version"});
        CHECK(r.status == 0);
        CHECK(r.out.starts_with("wafer "));
        CHECK(contains(r.out, "."));
        CHECK(r.out.ends_with("\n"));
    }

    TEST_CASE("ask -m, --system, --temperature and --max-tokens go into the request") {
        served s;
        s.server.enqueue(reply::text("ok"));
        auto r = s.while_serving([&] {
            return run_wafer(
                {"ask",
                 "--base-url",
                 s.server.base_url(),
                 "-m",
                 "llama3.1-8b",
                 "--system",
                 "Answer in French.",
                 "--temperature",
                 "0.2",
                 "--max-tokens",
                 "64",
                 "hi"}
            );
        });
        CHECK(r.status == 0);
        const auto bodies = s.chat_bodies();
        REQUIRE(bodies.size() == 1);
        CHECK(bodies[0]["model"] == "llama3.1-8b");
        CHECK(bodies[0]["messages"][0]["role"] == "system");
        CHECK(bodies[0]["messages"][0]["content"] == "Answer in French.");
        CHECK(bodies[0]["temperature"] == doctest::Approx(0.2));
        CHECK(bodies[0]["max_completion_tokens"] == 64);
    }

    TEST_CASE("ask: out-of-range sampling flags are usage errors naming the flag") {
        for (const auto& bad : std::vector<std::vector<std::string>>{
                 {"--temperature", "2.5"},
                 {"--temperature", "-1"},
                 {"--max-tokens", "0"},
                 {"--max-tokens", "many"}}) {
            std::vector<std::string> args{"ask", "--base-url", "http://127.0.0.1:9"};
            args.insert(args.end(), bad.begin(), bad.end());
            args.emplace_back("hi");
            auto r = run_wafer(args);
            INFO(bad[0] << " " << bad[1] << ": " << r.err);
            CHECK(r.status == 2);
            CHECK(contains(r.err, bad[0]));
        }
    }

    TEST_CASE("colour: --color=always on a pipe, never on a terminal, NO_COLOR and TERM=dumb") {
        served s;
        for (int i = 0; i < 4; ++i) {
            s.server.enqueue(reply::of({.reasoning = "Pondering.", .content = "Answer."}));
        }
        const std::string url = s.server.base_url();
        auto piped = s.while_serving([&] {
            return run_wafer({"ask", "--reasoning", "--color=always", "--base-url", url, "q"});
        });
        CHECK(piped.status == 0);
        CHECK(contains(piped.out, "\x1b[2mPondering."));

        auto tty = s.while_serving([&] {
            return run_wafer_on_terminal({"ask", "--reasoning", "--base-url", url, "q"}, {});
        });
        CHECK(tty.status == 0);
        CHECK(contains(tty.out, "\x1b[2mPondering."));

        auto never = s.while_serving([&] {
            return run_wafer_on_terminal(
                {"ask", "--reasoning", "--color=never", "--base-url", url, "q"}, {}
            );
        });
        CHECK(never.status == 0);
        CHECK(contains(never.out, "thinking: Pondering."));
        CHECK_FALSE(contains(never.out, "\x1b[2m"));

        auto no_color = s.while_serving([&] {
            return run_wafer_on_terminal(
                {"ask", "--reasoning", "--base-url", url, "q"}, {}, 60s, false, {"NO_COLOR=1"}
            );
        });
        CHECK(no_color.status == 0);
        CHECK(contains(no_color.out, "thinking: Pondering."));
        CHECK_FALSE(contains(no_color.out, "\x1b[2m"));
    }

    TEST_CASE("the thinking line: drawn on a terminal and erased before the answer; never on a "
              "pipe or with TERM=dumb") {
        served s;
        delivery slow;
        slow.chunk_chars = 4;
        slow.chunk_delay = 20ms;
        for (int i = 0; i < 3; ++i) {
            s.server.enqueue(
                reply::of({.reasoning = "Reasoning a while.", .content = "Answer."}, slow)
            );
        }
        const std::string url = s.server.base_url();
        auto tty = s.while_serving([&] {
            return run_wafer_on_terminal({"ask", "--base-url", url, "q"}, {});
        });
        INFO("terminal: " << json(tty.out).dump());
        CHECK(tty.status == 0);
        const auto drawn = tty.out.find("thinking\xe2\x80\xa6");
        const auto erased = tty.out.rfind("\r\x1b[K");
        const auto answer = tty.out.find("Answer.");
        REQUIRE(drawn != std::string::npos);
        REQUIRE(erased != std::string::npos);
        CHECK(drawn < erased);
        CHECK(erased < answer);
        CHECK_FALSE(contains(tty.out, "Reasoning a while")); // not without --reasoning

        auto dumb = s.while_serving([&] {
            return run_wafer_on_terminal(
                {"ask", "--base-url", url, "q"}, {}, 60s, false, {"TERM=dumb"}
            );
        });
        CHECK(dumb.status == 0);
        CHECK_FALSE(contains(dumb.out, "thinking"));
        CHECK(contains(dumb.out, "Answer."));

        auto piped = s.while_serving([&] { return run_wafer({"ask", "--base-url", url, "q"}); });
        CHECK(piped.status == 0);
        CHECK(piped.out == "Answer.\n");
        CHECK(piped.err.empty());
    }

    TEST_CASE("a private CA: --ca-file and SSL_CERT_FILE are trusted, each besides the other") {
        served s(tls_server());
        REQUIRE(s.server.base_url().starts_with("https://"));
        for (int i = 0; i < 3; ++i) {
            s.server.enqueue(reply::text("trusted"));
        }
        const std::string key = "CEREBRAS_API_KEY=" + secret;
        std::vector<process_result> results;
        s.while_serving([&] {
            const std::string url = s.server.base_url();
            results.push_back(
                run_wafer({"ask", "--ca-file", tls_dir + "/ca.pem", "--base-url", url, "hi"}, {key})
            );
            results.push_back(run_wafer(
                {"ask", "--base-url", url, "hi"}, {key, "SSL_CERT_FILE=" + tls_dir + "/ca.pem"}
            ));
            // --ca-file adds to SSL_CERT_FILE rather than replacing it (and the other way round).
            results.push_back(run_wafer(
                {"ask", "--ca-file", tls_dir + "/server.pem", "--base-url", url, "hi"},
                {key, "SSL_CERT_FILE=" + tls_dir + "/ca.pem"}
            ));
            return process_result{};
        });
        for (const auto& r : results) {
            INFO("stderr: " << r.err);
            CHECK(r.status == 0);
            CHECK(r.out == "trusted\n");
        }
        auto missing = run_wafer({"ask", "--ca-file", tls_dir + "/absent.pem", "hi"});
        CHECK(missing.status == 2);
        CHECK(contains(missing.err, "--ca-file"));
    }

    TEST_CASE("endpoints: the path given is where the routes are, /v1 only without one; the "
              "query is kept") {
        served s;
        s.server.enqueue(reply::text("with query"));
        const std::string url = s.server.base_url();
        std::vector<process_result> results;
        s.while_serving([&] {
            results.push_back(run_wafer({"ask", "--base-url", url + "/v1?api-version=2", "q"}));
            results.push_back(run_wafer({"ask", "--base-url", url + "/api", "q"}));
            results.push_back(run_wafer({"models", "--base-url", url + "/api/"}));
            return process_result{};
        });
        const auto& reqs = s.server.requests();
        REQUIRE(reqs.size() == 3);
        CHECK(results[0].status == 0);
        CHECK(results[0].out == "with query\n");
        CHECK(reqs[0].target == "/v1/chat/completions?api-version=2");
        // No /v1 grows onto an explicit prefix (the fake serves only /v1, hence the 404s).
        CHECK(reqs[1].target == "/api/chat/completions");
        CHECK(reqs[2].target == "/api/models");
        CHECK(results[1].status == 1);
        CHECK(contains(results[1].err, "404"));

        auto bad = run_wafer({"ask", "--base-url", "http://127.0.0.1:9/v1#x", "q"});
        CHECK(bad.status == 2);
        CHECK(contains(bad.err, "expected http(s)://host[:port][/path][?query]"));
        CHECK(contains(bad.err, "under /v1 when no path is given"));
    }

    TEST_CASE("endpoints: an https:// proxy is refused with a line that says why") {
        auto r = run_wafer(
            {"ask", "--base-url", "https://api.example.invalid", "q"},
            {"CEREBRAS_API_KEY=" + secret, "HTTPS_PROXY=https://proxy.example.invalid:3128"}
        );
        check_one_failure_line(r);
        CHECK(r.status == 2);
        CHECK(contains(r.err, "HTTPS_PROXY is an https:// URL"));
        CHECK(contains(r.err, "http://host:port"));
        CHECK_FALSE(contains(r.err, secret));
    }

    TEST_CASE("SIGTERM stops a run with exit status 143") {
        delivery how;
        how.header_delay = std::chrono::hours(1);
        served s;
        s.server.enqueue(reply::text("never", how));
        auto r = s.while_serving([&] {
            spawned_wafer w({"ask", "--base-url", s.server.base_url(), "q"}, {});
            std::this_thread::sleep_for(500ms); // the request is on its way
            ::kill(w.pid, SIGTERM);
            process_result res = w.collect(20s);
            CHECK(w.exited_normally);
            return res;
        });
        INFO("stderr: " << r.err);
        CHECK_FALSE(r.timed_out);
        CHECK(r.status == 143);
    }
}

#endif // WAFER_CLI_PATH
