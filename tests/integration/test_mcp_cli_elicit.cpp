// MCP elicitation in the wafer CLI, end to end: `wafer run` in a real terminal (a tmux pane of a
// private tmux server, driven with send-keys) against the fake model endpoint, whose scripted
// model calls the `elicit` tool of wafer's fault server; the form is answered on the terminal and
// the server's log shows what it got; `wafer mcp call` answers it the same way. Without a
// terminal the capability is not declared.
// Skipped (with a message) where tmux is missing.
#include "cli_harness.hpp"

#ifdef WAFER_CLI_PATH

#include "tmux_pane.hpp"

using namespace wafer::testing::cli;

namespace {

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

// Waits for `wait` on the pane and types `answer`; a failed check (with the screen) if it
// never shows.
bool answer_when_shown(tmux_pane& pane, const std::string& wait, const std::string& answer) {
    if (!pane.wait_for(wait)) {
        FAIL_CHECK("never shown: " << wait << "\n" << pane.screen());
        return false;
    }
    pane.type(answer);
    return true;
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
            const auto step = [&pane](const std::string& wait, const std::string& answer) {
                return answer_when_shown(pane, wait, answer);
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

    TEST_CASE("wafer mcp call on a terminal answers the server's form; without one the "
              "capability is not declared") {
        sample_workspace ws;
        const fs::path log = ws.dir / "asker.log";
        const fs::path config = write_config(ws, log);
        const std::vector<std::string> args{
            "mcp", "call", "asker", "elicit", "{}", "--mcp-config", config.string()};
        if (tmux_available()) {
            tmux_pane pane;
            const auto step = [&pane](const std::string& wait, const std::string& answer) {
                return answer_when_shown(pane, wait, answer);
            };
            REQUIRE(pane.start(ws.dir, args));
            const bool asked = step("age (integer, required): ", "41") &&
                               step("color (one of 1 red, 2 green, 3 blue) [green]: ", "3") &&
                               step("email (email): ", "") && step("(text, required): ", "Bo") &&
                               step("subscribe (yes/no) [yes]: ", "no") &&
                               step("[a]ccept, [d]ecline, [c]ancel", "a");
            CHECK(asked);
            CHECK(pane.wait_for("wafer exited 0"));
            const std::string shown = pane.screen();
            INFO("terminal:\n" << shown);
            CHECK(contains(shown, R"(elicited: {"action":"accept","content":{"age":41,)"));
            CHECK(
                elicitation_answer(log)["result"] ==
                json::parse(R"({"action":"accept","content":{"age":41,"color":"blue",
                    "name":"Bo","subscribe":false}})")
            );
        } else {
            MESSAGE("tmux is not installed: the terminal part is skipped");
        }
        // No terminal: not declared; the server says it cannot ask (a failed tool: status 1).
        fs::remove(log);
        const auto r = run_wafer(args);
        INFO("stdout:\n" << r.out << "\nstderr:\n" << r.err);
        CHECK(r.status == 1);
        CHECK(contains(r.out, "no elicitation: the client did not declare it"));
        const auto lines = log_lines(log);
        REQUIRE_FALSE(lines.empty());
        CHECK_FALSE(contains(lines[0], "elicitation"));
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
            // The handshake (after the era probe, which the fault server refuses) declared no
            // elicitation.
            const auto lines = log_lines(log);
            REQUIRE(lines.size() >= 2);
            CHECK(contains(lines[0], R"("method":"server/discover")"));
            CHECK(contains(lines[1], R"("method":"initialize")"));
            CHECK_FALSE(contains(lines[0], "elicitation"));
            CHECK_FALSE(contains(lines[1], "elicitation"));
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
