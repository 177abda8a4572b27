// MCP elicitation in the wafer CLI, end to end: `wafer run` in a real terminal (a tmux pane of a
// private tmux server, driven with send-keys) against the fake model endpoint, whose scripted
// model calls the `elicit` tool of wafer's fault server; the form is answered on the terminal and
// the server's log shows what it got. Without a terminal the capability is not declared.
// Skipped (with a message) where tmux is missing.
#include "cli_harness.hpp"

#ifdef WAFER_CLI_PATH

#include <cstdio>

using namespace wafer::testing::cli;

namespace {

std::string sh_quoted(const std::string& s) {
    std::string out = "'";
    for (const char c : s) {
        out += c == '\'' ? std::string("'\\''") : std::string(1, c);
    }
    return out + "'";
}

bool tmux_available() {
    return std::system("tmux -V >/dev/null 2>&1") == 0;
}

/// A tmux server of its own, one pane running wafer through a shell that prints wafer's exit
/// status and stays (as in test_cli_chat.cpp).
class tmux_pane {
public:
    tmux_pane() {
        std::random_device rd;
        dir_ = fs::temp_directory_path() / ("wafer-tmux-elicit-" + std::to_string(rd()));
        fs::create_directories(dir_ / "config");
        std::ofstream(dir_ / "tmux.conf") << "set -g history-limit 50000\nset -g status off\n";
    }
    ~tmux_pane() {
        tmux("kill-server");
        std::error_code ec;
        fs::remove_all(dir_, ec);
    }
    tmux_pane(const tmux_pane&) = delete;
    tmux_pane& operator=(const tmux_pane&) = delete;

    bool start(const fs::path& cwd, const std::vector<std::string>& args) {
        std::string script = "trap : INT\n"
                             "unset CEREBRAS_API_KEY CEREBRAS_BASE_URL OPENAI_API_KEY HTTPS_PROXY "
                             "https_proxy HTTP_PROXY http_proxy\n"
                             "export XDG_STATE_HOME=" +
                             sh_quoted((dir_ / "state").string()) +
                             " XDG_CONFIG_HOME=" + sh_quoted((dir_ / "config").string()) +
                             " TERM=xterm-256color\ncd " + sh_quoted(cwd.string()) + "\n" +
                             sh_quoted(WAFER_CLI_PATH);
        for (const auto& a : args) {
            script += " " + sh_quoted(a);
        }
        script += "\necho \"wafer exited $?\"\nsleep 3600\n";
        const fs::path file = dir_ / ("run" + std::to_string(++runs_) + ".sh");
        std::ofstream(file) << script;
        if (runs_ > 1) {
            tmux("kill-server");
        }
        socket_ = (dir_ / ("socket" + std::to_string(runs_))).string();
        return tmux("new-session -d -s el -x 200 -y 50 " + sh_quoted("sh " + file.string())) == 0;
    }

    void type(const std::string& text) {
        if (!text.empty()) {
            CHECK(tmux("send-keys -t el -l -- " + sh_quoted(text)) == 0);
        }
        CHECK(tmux("send-keys -t el Enter") == 0);
    }
    void key(const std::string& name) { CHECK(tmux("send-keys -t el " + name) == 0); }

    std::string screen() {
        const std::string cmd =
            "tmux -S " + sh_quoted(socket_) + " capture-pane -p -J -S -50000 -t el 2>/dev/null";
        std::string out;
        if (FILE* p = ::popen(cmd.c_str(), "r")) {
            char buf[4096];
            for (std::size_t n; (n = std::fread(buf, 1, sizeof buf, p)) > 0;) {
                out.append(buf, n);
            }
            ::pclose(p);
        }
        return out;
    }

    /// Waits until the pane shows `text` at least `times` times (60 s at most).
    bool wait_for(const std::string& text, std::size_t times = 1) {
        const auto end = std::chrono::steady_clock::now() + 60s;
        while (std::chrono::steady_clock::now() < end) {
            if (count(screen(), text) >= times) {
                return true;
            }
            std::this_thread::sleep_for(100ms);
        }
        return false;
    }

private:
    int tmux(const std::string& args) {
        const std::string cmd = "tmux -S " + sh_quoted(socket_) + " -f " +
                                sh_quoted((dir_ / "tmux.conf").string()) + " " + args +
                                " >/dev/null 2>&1";
        return std::system(cmd.c_str());
    }

    fs::path dir_;
    std::string socket_;
    int runs_ = 0;
};

// A config with one server, "asker": the fault server with its elicit tool, logging to `log`.
fs::path write_config(const sample_workspace& ws, const fs::path& log) {
    const fs::path config = ws.dir / "servers.json";
    std::ofstream out(config);
    out << json{{"mcpServers",
                 {{"asker",
                   {{"command", WAFER_MCP_FAULT_SERVER},
                    {"args", {"--fault", "elicit", "--log", log.string()}}}}}}}
               .dump();
    return config;
}

std::vector<std::string> log_lines(const fs::path& log) {
    std::vector<std::string> out;
    std::ifstream in(log);
    for (std::string line; std::getline(in, line);) {
        out.push_back(line);
    }
    return out;
}

// The client's answer to the form, as the server's log has it (null if none).
json elicitation_answer(const fs::path& log) {
    for (const auto& line : log_lines(log)) {
        const json m = json::parse(line, nullptr, false);
        if (m.is_object() && m.value("id", json()) == json("elicit-1") && !m.contains("method")) {
            return m;
        }
    }
    return nullptr;
}

// What the model read of the last call: the last message of the last request (the server's
// requests add up over the runs).
std::string tool_text(const served& s) {
    const auto bodies = s.chat_bodies();
    if (bodies.size() < 2) {
        return {};
    }
    return bodies.back()["messages"].back().value("content", "");
}

} // namespace

TEST_SUITE("mcp/cli/elicitation") {
    TEST_CASE("wafer run on a terminal asks a server's form: escaped, validated, defaults, "
              "accept; Ctrl-C cancels it") {
        if (!tmux_available()) {
            MESSAGE("tmux is not installed: the terminal elicitation test is skipped");
            return;
        }
        sample_workspace ws;
        const fs::path log = ws.dir / "asker.log";
        const fs::path config = write_config(ws, log);
        served s;
        s.server.enqueue(reply::of({.tool_calls = {{"", "asker__elicit", "{}"}}}));
        s.server.enqueue(reply::text("done"));
        tmux_pane pane;
        const std::vector<std::string> args{
            "run",
            "--no-store",
            "--mcp-config",
            config.string(),
            "--base-url",
            s.server.base_url(),
            "--workspace",
            ws.dir.string(),
            "go"};
        std::string shown;
        // (No REQUIRE in while_serving's function: an exception would leave the server thread
        // unjoined.)
        s.while_serving([&] {
            const auto step = [&](const std::string& wait, const std::string& answer) {
                if (!pane.wait_for(wait)) {
                    FAIL_CHECK("never shown: " << wait << "\n" << pane.screen());
                    return false;
                }
                pane.type(answer);
                return true;
            };
            if (!pane.start(ws.dir, args)) {
                FAIL_CHECK("tmux did not start");
                return process_result{};
            }
            // The tool itself may be destructive: approved first, on the same terminal.
            if (!step("[y/N]", "y") || !step("age (integer, required): ", "abc") ||
                !step("not an integer", "200") || !step("must be <= 150, got 200", "36") ||
                !step("color (one of 1 red, 2 green, 3 blue) [green]: ", "") ||
                !step("email (email): ", "nope") ||
                !step("not an email address", "ada@example.com") ||
                !step("(text, required): ", "") || !step("required: type a value", "Ada") ||
                !step("subscribe (yes/no) [yes]: ", "") ||
                !step("[a]ccept, [d]ecline, [c]ancel", "a")) {
                return process_result{};
            }
            CHECK(pane.wait_for("wafer exited 0"));
            shown = pane.screen();
            return process_result{};
        });
        INFO("terminal:\n" << shown);
        // The server's name and message, its escape sequences shown escaped.
        CHECK(contains(shown, "wafer: MCP server \"asker\" asks: Who are you? \\x1b[31mred\\x1b[0m")
        );
        CHECK(contains(shown, "  Your \\x1b[2Jname (text, required): "));
        CHECK(contains(
            shown,
            "wafer: send age=36, color=\"green\", email=\"ada@example.com\", name=\"Ada\", "
            "subscribe=yes to \"asker\"?"
        ));
        const json answer = elicitation_answer(log);
        CHECK(
            answer["result"] ==
            json::parse(R"({"action":"accept","content":{"age":36,"color":"green",
                "email":"ada@example.com","name":"Ada","subscribe":true}})")
        );
        const std::string text = tool_text(s);
        CHECK(contains(text, R"(elicited: {"action":"accept","content":{"age":36,)"));
        // The capability was declared.
        const auto lines = log_lines(log);
        REQUIRE_FALSE(lines.empty());
        CHECK(contains(lines[0], R"("elicitation":{"form":{}})"));

        // Ctrl-C at a question cancels the form (not the run).
        fs::remove(log);
        s.server.enqueue(reply::of({.tool_calls = {{"", "asker__elicit", "{}"}}}));
        s.server.enqueue(reply::text("done"));
        s.while_serving([&] {
            if (!pane.start(ws.dir, args) || !pane.wait_for("[y/N]")) {
                FAIL_CHECK("no approval question:\n" << pane.screen());
                return process_result{};
            }
            pane.type("y");
            if (!pane.wait_for("age (integer, required): ")) {
                FAIL_CHECK("no form:\n" << pane.screen());
                return process_result{};
            }
            pane.key("C-c");
            CHECK(pane.wait_for("wafer exited 0"));
            shown = pane.screen();
            return process_result{};
        });
        INFO("terminal:\n" << shown);
        CHECK(contains(shown, "wafer: cancelled; \"asker\" is told so"));
        CHECK(elicitation_answer(log)["result"] == json::parse(R"({"action":"cancel"})"));
        CHECK(contains(tool_text(s), R"(elicited: {"action":"cancel"})"));
    }

    TEST_CASE("without a terminal elicitation is not declared, so the server cannot ask") {
        sample_workspace ws;
        const fs::path log = ws.dir / "asker.log";
        const fs::path config = write_config(ws, log);
        for (const bool yes : {false, true}) {
            CAPTURE(yes);
            fs::remove(log);
            served s;
            s.server.enqueue(reply::of({.tool_calls = {{"", "asker__elicit", "{}"}}}));
            s.server.enqueue(reply::text("done"));
            // Standard input from /dev/null and no controlling terminal (run_wafer). The tool
            // may be destructive (no readOnlyHint): without --yes and a journal nobody can
            // approve it, so its call is denied; with --yes it runs and cannot ask.
            std::vector<std::string> args{"run", "--no-store", "--mcp-config", config.string()};
            if (yes) {
                args.emplace_back("--yes");
            }
            for (const std::string& a :
                 {std::string("--base-url"),
                  s.server.base_url(),
                  std::string("--workspace"),
                  ws.dir.string(),
                  std::string("go")}) {
                args.push_back(a);
            }
            const auto r = s.while_serving([&] { return run_wafer(args); });
            INFO("stdout:\n" << r.out << "\nstderr:\n" << r.err);
            CHECK(r.status == 0);
            const auto lines = log_lines(log);
            REQUIRE_FALSE(lines.empty());
            CHECK(contains(lines[0], R"("method":"initialize")"));
            CHECK_FALSE(contains(lines[0], "elicitation"));
            CHECK(elicitation_answer(log).is_null());
            if (yes) {
                CHECK(contains(tool_text(s), "no elicitation: the client did not declare it"));
            } else {
                CHECK(contains(tool_text(s), "denied: asker__elicit"));
            }
        }
    }
}

#endif
