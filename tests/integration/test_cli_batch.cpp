// `wafer batch` end to end: the built binary against the fake server (cli_harness.hpp). Results
// for prompts and run specs, JSON output, input and finish order, resume (the fake counts the
// requests a rerun makes), bad lines with their numbers, duplicate ids, an oversized (sparse)
// line, and a rate-limited server that every run gets through.
#include "cli_harness.hpp"

#ifdef WAFER_CLI_PATH

#include <map>
#include <set>

using namespace wafer::testing::cli;

namespace {

/// A temporary directory with the batch file and the results file, removed at the end.
struct batch_dir {
    fs::path dir;
    batch_dir() {
        std::random_device rd;
        dir = fs::temp_directory_path() / ("wafer-batch-test-" + std::to_string(rd()));
        fs::create_directories(dir);
    }
    ~batch_dir() {
        std::error_code ec;
        fs::remove_all(dir, ec);
    }
    std::string write(const std::string& name, const std::string& text) const {
        std::ofstream(dir / name, std::ios::binary) << text;
        return (dir / name).string();
    }
    std::string read(const std::string& name) const {
        std::ifstream in(dir / name, std::ios::binary);
        std::stringstream ss;
        ss << in.rdbuf();
        return ss.str();
    }
};

/// The last user message of a request: what the line asked.
std::string asked(const wafer::api::chat_request& req) {
    for (auto it = req.messages.rbegin(); it != req.messages.rend(); ++it) {
        if (it->role == wafer::api::role::user) {
            return it->text();
        }
    }
    return {};
}

/// Answers "echo: <prompt>"; a prompt with "slow" waits 400 ms first, one with "fail" gets a
/// 400, one with "json" gets a JSON object.
reply answer(const wafer::api::chat_request& req) {
    const std::string q = asked(req);
    if (contains(q, "fail")) {
        scripted_error e;
        e.status = 400;
        e.type = "invalid_request_error";
        e.message = "no such thing";
        return reply::failure(e);
    }
    delivery how;
    if (contains(q, "slow")) {
        how.header_delay = 400ms;
    }
    if (contains(q, "json")) {
        return reply::text(json{{"q", q}}.dump(), how);
    }
    return reply::text("echo: " + q, how);
}

std::map<std::string, json> by_id(const std::vector<json>& lines) {
    std::map<std::string, json> m;
    for (const auto& l : lines) {
        m[l["id"].get<std::string>()] = l;
    }
    return m;
}

std::vector<std::string> ids_of(const std::vector<json>& lines) {
    std::vector<std::string> ids;
    for (const auto& l : lines) {
        ids.push_back(l["id"].get<std::string>());
    }
    return ids;
}

} // namespace

TEST_SUITE("integration/cli_batch") {
    TEST_CASE("prompts and run specs give one result line each, JSON parsed where asked") {
        served s;
        s.server.set_responder(answer);
        batch_dir d;
        const std::string in = d.write(
            "in.jsonl",
            "\"first prompt\"\n"
            R"({"id":"spec","input":"second","system":"be brief","max_completion_tokens":33,)"
            R"("model":"llama3.1-8b"})"
            "\n"
            R"({"id":"js","input":"json please","response_format":{"type":"json_object"}})"
            "\n"
        );
        const auto r = s.while_serving([&] {
            return run_wafer({"batch", in, "--base-url", s.server.base_url()}, {});
        });
        INFO(r.err);
        CHECK(r.status == 0);
        CHECK(r.err.empty()); // no progress line off a terminal
        const auto lines = json_lines(r.out);
        REQUIRE(lines.size() == 3);
        CHECK(ids_of(lines) == std::vector<std::string>{"line-1", "spec", "js"});
        CHECK(lines[0]["text"] == "echo: first prompt");
        CHECK(lines[0]["stop_reason"] == "completed");
        CHECK(lines[0]["finish_reason"] == "stop");
        CHECK(lines[0]["usage"]["total_tokens"].get<int>() > 0);
        CHECK(lines[0].contains("queue_wait_ms"));
        CHECK_FALSE(lines[0].contains("error"));
        CHECK(lines[2]["json"]["q"] == "json please");
        const auto reqs = s.server.chat_requests();
        REQUIRE(reqs.size() == 3);
        const auto spec = std::find_if(reqs.begin(), reqs.end(), [](const auto& q) {
            return asked(q) == "second";
        });
        REQUIRE(spec != reqs.end());
        CHECK(spec->model == "llama3.1-8b");
        CHECK(spec->max_completion_tokens == 33);
        REQUIRE_FALSE(spec->messages.empty());
        CHECK(spec->messages.front().text() == "be brief");
    }

    TEST_CASE("input order waits for a slow first run; finish order does not") {
        batch_dir d;
        const std::string in =
            d.write("in.jsonl", "\"slow one\"\n\"quick two\"\n\"quick three\"\n");
        for (const std::string order : {"input", "finish"}) {
            CAPTURE(order);
            served s;
            s.server.set_responder(answer);
            const auto r = s.while_serving([&] {
                return run_wafer(
                    {"batch", in, "--base-url", s.server.base_url(), "--order", order}, {}
                );
            });
            REQUIRE(r.status == 0);
            const auto ids = ids_of(json_lines(r.out));
            REQUIRE(ids.size() == 3);
            if (order == "input") {
                CHECK(ids == std::vector<std::string>{"line-1", "line-2", "line-3"});
            } else {
                CHECK(ids.back() == "line-1");
            }
        }
    }

    TEST_CASE("a rerun with the same --out makes only the missing and failed requests") {
        batch_dir d;
        const std::string in = d.write(
            "in.jsonl",
            R"({"id":"a","input":"one"})"
            "\n"
            R"({"id":"b","input":"two"})"
            "\n"
            R"({"id":"c","input":"please fail"})"
            "\n"
        );
        const std::string out = (d.dir / "out.jsonl").string();
        {
            served s;
            s.server.set_responder(answer);
            const auto r = s.while_serving([&] {
                return run_wafer(
                    {"batch", in, "--base-url", s.server.base_url(), "--out", out},
                    {"CEREBRAS_API_KEY=" + secret}
                );
            });
            CHECK(r.status == 1); // a run failed
            CHECK(r.out.empty());
            const auto results = by_id(json_lines(d.read("out.jsonl")));
            REQUIRE(results.size() == 3);
            CHECK(results.at("c")["error"]["http_status"] == 400);
            CHECK(contains(results.at("c")["error"]["message"].get<std::string>(), "no such thing")
            );
            CHECK_FALSE(contains(d.read("out.jsonl"), secret));
        }
        // A crash mid-write left half a line, and d is new in the file.
        std::string file = d.read("out.jsonl");
        file += R"({"id":"d","te)";
        d.write("out.jsonl", file);
        d.write(
            "in.jsonl",
            d.read("in.jsonl") + R"({"id":"d","input":"four"})"
                                 "\n"
        );
        served s;
        s.server.set_responder([](const wafer::api::chat_request& q) {
            return reply::text("echo: " + asked(q)); // c works now
        });
        const auto r = s.while_serving([&] {
            return run_wafer({"batch", in, "--base-url", s.server.base_url(), "--out", out}, {});
        });
        INFO(r.err);
        CHECK(r.status == 0);
        std::set<std::string> sent;
        for (const auto& q : s.server.chat_requests()) {
            sent.insert(asked(q));
        }
        CHECK(sent == std::set<std::string>{"please fail", "four"});
        CHECK(contains(r.err, "2 ids already finished"));
        const auto lines = json_lines(d.read("out.jsonl")); // every line whole again
        CHECK(lines.size() == 4);
        const auto results = by_id(lines);
        REQUIRE(results.size() == 4);
        CHECK_FALSE(results.at("c").contains("error"));
        CHECK(results.at("d")["text"] == "echo: four");
    }

    TEST_CASE("bad lines are reported with their numbers and skipped; the rest run") {
        served s;
        s.server.set_responder(answer);
        batch_dir d;
        const std::string in = d.write(
            "in.jsonl",
            "\"ok one\"\n" // 1
            "{not json\n"  // 2
            "17\n"         // 3
            R"({"id":"x","input":"ok two"})"
            "\n" // 4
            R"({"id":"x","input":"again"})"
            "\n" // 5: duplicate
            R"({"id":"y"})"
            "\n" // 6: no input
            R"({"id":"z","input":"q","temperature":1})"
            "\n" // 7: unknown key
            "\n" // 8: blank, ignored
            R"({"input":"ok three","max_completion_tokens":"ten"})"
            "\n"                // 9: wrong type
            "\"\x1b[31mred\"\n" // 10: JSON can't hold raw ESC
            "\"ok four\""       // 11, no final newline
        );
        const auto r = s.while_serving([&] {
            return run_wafer({"batch", in, "--base-url", s.server.base_url()}, {});
        });
        INFO(r.err);
        CHECK(r.status == 1);
        for (const char* line :
             {"line 2: not valid JSON",
              "line 3: a line is a JSON string",
              "line 5: duplicate id \"x\" (first on line 4)",
              "line 6: no \"input\"",
              "line 7: unknown key \"temperature\"",
              "line 9: \"max_completion_tokens\" must be an integer",
              "line 10: not valid JSON"}) {
            CHECK_MESSAGE(contains(r.err, line), line);
        }
        CHECK_FALSE(contains(r.err, "line 8"));
        CHECK_FALSE(contains(r.err, "\x1b"));
        CHECK(contains(r.err, "7 bad lines"));
        const auto ids = ids_of(json_lines(r.out));
        CHECK(ids == std::vector<std::string>{"line-1", "x", "line-11"});
    }

    TEST_CASE("a multi-GB line is skipped without being read into memory") {
        served s;
        s.server.set_responder(answer);
        batch_dir d;
        const std::string in = d.write("in.jsonl", "\"before\"\n\"");
        // A sparse hole of 3 GiB inside one line, then the line's end and one more line.
        fs::resize_file(in, fs::file_size(in) + (std::uintmax_t{3} << 30));
        {
            std::ofstream app(in, std::ios::binary | std::ios::app);
            app << "\"\n\"after\"\n";
        }
        std::uint64_t rss_kb = 0;
        spawned_wafer w({"batch", in, "--base-url", s.server.base_url()}, {});
        const auto r = s.while_serving([&] {
            return w.collect(60s, [&](pid_t pid) {
                std::ifstream status("/proc/" + std::to_string(pid) + "/status");
                for (std::string l; std::getline(status, l);) {
                    if (l.starts_with("VmHWM:")) {
                        rss_kb = std::stoull(l.substr(6));
                    }
                }
            });
        });
        INFO(r.err);
        CHECK(r.status == 1);
        CHECK(contains(r.err, "line 2: longer than 8388608 bytes (3221225474), skipped"));
        CHECK(ids_of(json_lines(r.out)) == std::vector<std::string>{"line-1", "line-3"});
        if (rss_kb > 0) {
            CHECK(rss_kb < 200 * 1024); // far below the line's size
        }
    }

    TEST_CASE("Ctrl-C stops the runs in flight and keeps what finished") {
        served s;
        s.server.set_responder([](const wafer::api::chat_request& q) {
            delivery how;
            if (contains(asked(q), "stuck")) {
                how.header_delay = 20s;
            }
            return reply::text("echo: " + asked(q), how);
        });
        batch_dir d;
        const std::string in = d.write("in.jsonl", "\"stuck a\"\n\"quick\"\n\"stuck b\"\n");
        const std::string out = (d.dir / "out.jsonl").string();
        const auto started = std::chrono::steady_clock::now();
        const auto r = s.while_serving([&] {
            spawned_wafer w(
                {"batch", in, "--base-url", s.server.base_url(), "--out", out, "--order", "finish"},
                {}
            );
            // (The out file, not the server's request list: that belongs to the server thread.)
            const auto end = std::chrono::steady_clock::now() + 20s;
            while (!contains(d.read("out.jsonl"), "line-2") &&
                   std::chrono::steady_clock::now() < end) {
                std::this_thread::sleep_for(20ms);
            }
            ::kill(w.pid, SIGINT);
            return w.collect(20s);
        });
        INFO(r.err);
        CHECK(r.status == 130);
        CHECK(std::chrono::steady_clock::now() - started < 15s); // not the 20 s the server stalls
        CHECK(contains(r.err, "interrupted"));
        // The finished run is kept; the cancelled ones are not results (a rerun does them).
        CHECK(ids_of(json_lines(d.read("out.jsonl"))) == std::vector<std::string>{"line-2"});
    }

    TEST_CASE("\"tools\": \"builtin\" reads the workspace; writing is denied without --yes") {
        served s;
        s.server.set_responder([](const wafer::api::chat_request& q) {
            const auto& last = q.messages.back();
            if (last.role == wafer::api::role::tool) {
                return reply::text("tool said: " + last.text());
            }
            if (contains(asked(q), "write")) {
                return reply::of(
                    {.tool_calls = {{"", "write_file", R"({"path":"new.txt","content":"x"})"}}}
                );
            }
            return reply::of({.tool_calls = {{"", "read_file", R"({"path":"note.txt"})"}}});
        });
        batch_dir d;
        const fs::path ws = d.dir / "ws";
        fs::create_directories(ws);
        std::ofstream(ws / "note.txt") << "the secret word is plum\n";
        const std::string in = d.write(
            "in.jsonl",
            R"({"id":"read","input":"read it","tools":"builtin"})"
            "\n"
            R"({"id":"write","input":"write it","tools":"builtin"})"
            "\n"
        );
        const auto r = s.while_serving([&] {
            return run_wafer(
                {"batch", in, "--base-url", s.server.base_url(), "-C", ws.string()}, {}
            );
        });
        INFO(r.err);
        CHECK(r.status == 0);
        const auto results = by_id(json_lines(r.out));
        REQUIRE(results.size() == 2);
        CHECK(contains(results.at("read")["text"].get<std::string>(), "plum"));
        CHECK_FALSE(fs::exists(ws / "new.txt"));
        const std::string denied = results.at("write")["text"].get<std::string>();
        INFO(denied);
        CHECK(contains(denied, "tool said: "));
        CHECK(contains(denied, "denied"));
        // The runs offered the built-in tools.
        bool offered = false;
        for (const auto& body : s.chat_bodies()) {
            offered =
                offered || (body.contains("tools") && contains(body["tools"].dump(), "read_file"));
        }
        CHECK(offered);
    }

    TEST_CASE("a terminal's stderr shows the progress line, never the answers") {
        served s;
        s.server.set_responder([](const wafer::api::chat_request&) {
            return reply::text("ANSWER-TEXT \x1b[2J");
        });
        batch_dir d;
        const std::string in = d.write("in.jsonl", "\"a\"\n\"b\"\n\"c\"\n");
        const std::string out = (d.dir / "out.jsonl").string();
        const auto r = s.while_serving([&] {
            return run_wafer_on_terminal(
                {"batch", in, "--base-url", s.server.base_url(), "--out", out}, {}
            );
        });
        INFO(r.out);
        CHECK(r.status == 0);
        CHECK(contains(r.out, "batch: "));
        CHECK(contains(r.out, " done, 0 failed, "));
        CHECK_FALSE(contains(r.out, "ANSWER-TEXT"));
        CHECK(json_lines(d.read("out.jsonl")).size() == 3);
    }

    TEST_CASE("against a rate-limited server every run finishes, none fails") {
        fake_server_config cfg;
        cfg.limits.tokens_per_minute = 300;
        cfg.limits.minute = 200ms;
        served s(cfg);
        // 20 completion tokens (the fake counts 4 characters a token), as many as each request
        // reserves: 40 runs need about three windows.
        s.server.set_responder([](const wafer::api::chat_request&) {
            return reply::text(std::string(80, 'x'));
        });
        batch_dir d;
        std::string text;
        for (int i = 0; i < 40; ++i) {
            text += R"({"id":"r)" + std::to_string(i) +
                    R"(","input":"task","max_completion_tokens":20})" + "\n";
        }
        const std::string in = d.write("in.jsonl", text);
        const auto r = s.while_serving([&] {
            return run_wafer(
                {"batch",
                 in,
                 "--base-url",
                 s.server.base_url(),
                 "--concurrency",
                 "16",
                 "--admission",
                 "on",
                 "--tokens-per-minute",
                 "300"},
                {},
                120s
            );
        });
        INFO(r.err);
        CHECK(r.status == 0);
        const auto lines = json_lines(r.out);
        CHECK(lines.size() == 40);
        std::size_t queued = 0;
        for (const auto& l : lines) {
            CHECK_FALSE(l.contains("error"));
            queued += l["queue_wait_ms"].get<double>() > 0 ? 1U : 0U;
        }
        CHECK(queued > 0); // 40 runs need several windows: admission held some back
        CHECK(s.server.rate_limited_count() <= 1);
        CHECK(s.server.tokens_counted() > 2 * 300);
    }
}

#endif // WAFER_CLI_PATH
