// The interactive session in a real terminal: the wafer binary runs in a tmux pane, driven with
// send-keys and read with capture-pane, against the fake server in this process. Every wait polls
// the pane with a generous bound; nothing asserts on time. Skipped (with a message) where tmux is
// missing; `make test` installs it (DEBIAN_PACKAGES).
#include "cli_harness.hpp"

#ifdef WAFER_CLI_PATH

#include "tmux_pane.hpp"

namespace {

using namespace wafer::testing::cli;

/// The prompts shown so far, for waiting for the next one.
std::size_t prompts_shown(tmux_pane& pane) {
    return count(pane.screen(), "wafer> ");
}

std::string last_user_text(const wafer::api::chat_request& req) {
    for (auto it = req.messages.rbegin(); it != req.messages.rend(); ++it) {
        if (it->role == wafer::api::role::user) {
            return it->text();
        }
    }
    return {};
}

/// The model of the session test: the offline coding session for "fix" tasks, a slow story for
/// "slowly", the first thing the user said for "what did I say first", else an acknowledgement.
reply session_model(const wafer::api::chat_request& req) {
    const std::string text = last_user_text(req);
    if (contains(text, "fix")) {
        return wafer::testing::offline_session_reply(req);
    }
    if (contains(text, "slowly")) {
        std::string story = "Once";
        for (int i = 0; i < 400; ++i) {
            story += " upon a time";
        }
        delivery how;
        how.chunk_delay = 100ms;
        return reply::text(story, how);
    }
    if (contains(text, "what did I say first")) {
        for (const auto& m : req.messages) {
            if (m.role == wafer::api::role::user) {
                return reply::text("You first said: " + m.text());
            }
        }
    }
    return reply::text("Noted: " + text);
}

} // namespace

TEST_SUITE("integration/cli/chat") {

    TEST_CASE("without a terminal: bare wafer prints the help, wafer chat says what to use") {
        const process_result bare = run_wafer({});
        CHECK(bare.status == 2);
        CHECK(contains(bare.out, "Subcommands:"));
        CHECK(contains(bare.out, "chat"));
        const process_result chat = run_wafer({"chat"});
        check_one_failure_line(chat);
        CHECK(chat.status == 2);
        CHECK(contains(chat.err, "needs a terminal"));
        // -c in a workspace without a session, and --resume of a run that does not exist.
        sample_workspace ws;
        const process_result none =
            run_wafer_on_terminal({"-c", "--workspace", ws.dir.string()}, {});
        CHECK(none.status == 1);
        CHECK(contains(none.out + none.err, "no session of"));
    }

    TEST_CASE("the interactive session in a terminal: turns, approvals, slash commands, Ctrl-C, "
              "-c") {
        if (!tmux_available()) {
            MESSAGE("tmux is not installed: the interactive session test is skipped");
            return;
        }
        sample_workspace ws;
        const fs::path state = ws.dir.string() + "-state";
        fs::create_directories(state);
        served s;
        s.server.set_responder(session_model);
        tmux_pane pane;
        std::string first_id;
        // (No REQUIRE in while_serving's function: an exception would leave the server thread
        // unjoined. Each step checks and stops the test body when it fails.)
        s.while_serving([&] {
            if (!pane.start(ws.dir, state, {"chat", "--base-url", s.server.base_url()}) ||
                !pane.wait_for("wafer> ")) {
                FAIL_CHECK("no prompt:\n" << pane.screen());
                return process_result{};
            }
            CHECK(contains(pane.screen(), "/help"));

            // Two turns: the second one sees the first.
            pane.type("remember the word pelican");
            CHECK(pane.wait_for("Noted: remember the word pelican"));
            CHECK(pane.wait_for(" out · ")); // the status line: tokens in and out
            CHECK(pane.wait_for("context "));
            pane.type("what did I say first?");
            if (!pane.wait_for("You first said: remember the word pelican")) {
                FAIL_CHECK("the second turn did not see the first:\n" << pane.screen());
                return process_result{};
            }

            // A task with edits: approvals are asked inline.
            pane.type("fix the failing test");
            if (!pane.wait_for("[y/N]")) {
                FAIL_CHECK("no approval question:\n" << pane.screen());
                return process_result{};
            }
            CHECK(contains(pane.screen(), "edit_file stats.sh"));
            pane.type("y");
            if (!pane.wait_for("[y/N]", 2)) {
                FAIL_CHECK("no question for the test command:\n" << pane.screen());
                return process_result{};
            }
            const std::size_t prompts = prompts_shown(pane);
            pane.type("y");
            CHECK(pane.wait_for("6 passed, 0 failed", 2)); // the command's output, the answer
            CHECK(pane.wait_for("wafer> ", prompts + 1));
            CHECK(contains(ws.read("stats.sh"), "NR == 1 { min = $1; max = $1 }"));

            pane.type("/diff");
            CHECK(pane.wait_for("-BEGIN { min = 0; max = 0 }"));
            CHECK(pane.wait_for("+NR == 1 { min = $1; max = $1 }"));
            CHECK(pane.wait_for("--- a/stats.sh"));
            pane.type("/undo");
            CHECK(pane.wait_for("undone: stats.sh restored"));
            CHECK(contains(ws.read("stats.sh"), "BEGIN { min = 0; max = 0 }"));
            CHECK_FALSE(contains(ws.read("stats.sh"), "NR == 1"));
            pane.type("/undo");
            CHECK(pane.wait_for("nothing to undo"));

            pane.type("/usage");
            CHECK(pane.wait_for("model calls: "));
            CHECK(pane.wait_for("tokens: prompt "));
            pane.type("/frob");
            CHECK(pane.wait_for("unknown command /frob"));
            // Ctrl-C at an approval question cancels the turn; the next line is the prompt's.
            pane.type("fix the failing test");
            CHECK(pane.wait_for("[y/N]", 3));
            const std::size_t at_question = prompts_shown(pane);
            pane.key("C-c");
            CHECK(pane.wait_for("(turn cancelled)"));
            CHECK(pane.wait_for("wafer> ", at_question + 1));
            pane.type("/usage");
            CHECK(pane.wait_for("model calls: ", 2));
            CHECK(contains(ws.read("stats.sh"), "BEGIN { min = 0; max = 0 }"));
            pane.type("/critic security");
            CHECK(pane.wait_for("critics: security"));
            pane.type("/critic off");
            CHECK(pane.wait_for("critics: none"));
            pane.type("/approve on");
            CHECK(pane.wait_for("approvals: file edits and commands run without asking"));
            // Another model from the next turn on, with the conversation so far.
            pane.type("/model other-model");
            CHECK(pane.wait_for("model: other-model (from the next turn)"));
            pane.type("hello");
            CHECK(pane.wait_for("Noted: hello"));
            CHECK(pane.wait_for("[other-model · "));

            // Ctrl-C during a turn cancels it and keeps the session.
            pane.type("tell me a story slowly");
            CHECK(pane.wait_for("Once upon a time"));
            const std::size_t before_cancel = prompts_shown(pane);
            pane.key("C-c");
            CHECK(pane.wait_for("(turn cancelled)", 2));
            CHECK(pane.wait_for("wafer> ", before_cancel + 1));
            pane.type("what did I say first?");
            CHECK(pane.wait_for("You first said: remember the word pelican", 2));

            pane.type("/exit");
            if (!pane.wait_for("wafer exited 0")) {
                FAIL_CHECK("/exit did not end the session:\n" << pane.screen());
                return process_result{};
            }
            const std::string before = pane.screen();
            const auto at = before.rfind("session ");
            CHECK_FALSE(at == std::string::npos);
            const std::string id = at == std::string::npos ? "" : before.substr(at + 8, 16);
            // The first run of the session was cancelled (at the approval question): the
            // session went on as a new run, and the first one cannot be continued as it is.
            const auto first_at = before.find("session ");
            first_id = first_at == std::string::npos ? "" : before.substr(first_at + 8, 16);
            CHECK(first_id != id);

            // -c goes on with the same conversation; Ctrl-C at the prompt ends the process.
            CHECK(pane.start(ws.dir, state, {"-c", "--base-url", s.server.base_url()}));
            CHECK(pane.wait_for("session " + id + " continued"));
            CHECK(pane.wait_for("wafer> ", 1));
            pane.type("what did I say first?");
            CHECK(pane.wait_for("You first said: remember the word pelican"));
            CHECK(pane.wait_for(" out · "));
            CHECK(pane.wait_for("wafer> ", 2));
            pane.type("/compact");
            CHECK(pane.wait_for("compacted: "));
            CHECK(pane.wait_for("wafer> ", 3));
            pane.key("C-c");
            CHECK(pane.wait_for("wafer exited 130"));

            // --resume ID: that session.
            CHECK(pane.start(ws.dir, state, {"--resume", id, "--base-url", s.server.base_url()}));
            CHECK(pane.wait_for("session " + id + " continued"));
            CHECK(pane.wait_for("wafer> "));
            // Ctrl-C twice ends the session. (Sent one by one: two signals that arrive
            // together are one.)
            pane.type("another story, slowly");
            CHECK(pane.wait_for("Once upon a time"));
            pane.key("C-c");
            CHECK(pane.wait_for("Ctrl-C again quits"));
            pane.key("C-c");
            CHECK_MESSAGE(pane.wait_for("wafer exited 130"), pane.screen());
            return process_result{};
        });
        const process_result refused = run_wafer_on_terminal(
            {"--resume",
             first_id,
             "--store",
             (state / "wafer" / "runs.db").string(),
             "--base-url",
             s.server.base_url()},
            {},
            60s
        );
        CHECK(refused.status == 1);
        CHECK(contains(refused.out, "has not finished"));
        CHECK(contains(refused.out, "wafer resume " + first_id));
        // The switched model reached the server.
        const std::vector<json> bodies = s.chat_bodies();
        CHECK(std::any_of(bodies.begin(), bodies.end(), [](const json& b) {
            return b.value("model", "") == "other-model";
        }));
        // The session is a journaled run of the workspace.
        const process_result runs = run_wafer(
            {"runs", "--workspace", ws.dir.string()}, {"XDG_STATE_HOME=" + state.string()}
        );
        CHECK(runs.status == 0);
        CHECK(contains(runs.out, "what did I say first?"));
        std::error_code ec;
        fs::remove_all(state, ec);
    }
}

#endif // WAFER_CLI_PATH
