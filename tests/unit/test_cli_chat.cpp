// The sans-io parts of the interactive session: slash command parsing, the status line, and
// the record of the agent's edits behind /diff and /undo. The CLI's sources are not a library,
// so the translation units under test are compiled into the tests here.
#include <doctest/doctest.h>

#include <optional>
#include <string>

#include "../../examples/cli/edits.cpp"
#include "../../examples/cli/slash.cpp"

using wafer::cli::edit_log;
using wafer::cli::parse_slash;
using wafer::cli::slash_kind;
using wafer::cli::status_line;
using wafer::cli::turn_figures;
using wafer::cli::unified_diff;

namespace {

std::size_t count_hunks(const std::string& diff) {
    std::size_t n = 0;
    for (std::size_t at = diff.find("\n@@ "); at != std::string::npos;
         at = diff.find("\n@@ ", at + 1)) {
        ++n;
    }
    return n;
}

} // namespace

TEST_SUITE("unit/cli_chat") {

    TEST_CASE("a line is a message unless it starts with one slash") {
        const auto msg = parse_slash("  fix the failing test  ");
        CHECK_FALSE(msg.is_command);
        CHECK(msg.message == "fix the failing test");
        const auto escaped = parse_slash("//etc/passwd is missing");
        CHECK_FALSE(escaped.is_command);
        CHECK(escaped.message == "/etc/passwd is missing");
    }

    TEST_CASE("every command parses, with its argument trimmed") {
        CHECK(parse_slash("/help").command->kind == slash_kind::help);
        CHECK(parse_slash("/diff").command->kind == slash_kind::diff);
        CHECK(parse_slash("/undo").command->kind == slash_kind::undo);
        CHECK(parse_slash("/usage").command->kind == slash_kind::usage);
        CHECK(parse_slash("/compact").command->kind == slash_kind::compact);
        CHECK(parse_slash("/exit").command->kind == slash_kind::exit);
        CHECK(parse_slash("/quit").command->kind == slash_kind::exit);
        const auto model = parse_slash("/model   llama-3.3-70b ");
        REQUIRE(model.command);
        CHECK(model.command->kind == slash_kind::model);
        CHECK(model.command->argument == "llama-3.3-70b");
        CHECK(parse_slash("/model").command->argument.empty());
        CHECK(parse_slash("/critic security").command->argument == "security");
        CHECK(parse_slash("/approve on").command->argument == "on");
    }

    TEST_CASE("a unique prefix is enough; an ambiguous one names the candidates") {
        CHECK(parse_slash("/he").command->kind == slash_kind::help);
        CHECK(parse_slash("/d").command->kind == slash_kind::diff);
        CHECK(parse_slash("/m gpt-oss-120b").command->argument == "gpt-oss-120b");
        const auto u = parse_slash("/u");
        CHECK(u.is_command);
        CHECK_FALSE(u.command);
        CHECK(u.error == "/u is ambiguous: /undo or /usage");
        const auto c = parse_slash("/c");
        CHECK_FALSE(c.command);
        CHECK(c.error.find("/critic or /compact") != std::string::npos);
    }

    TEST_CASE("wrong commands and arguments are one line saying why") {
        CHECK(parse_slash("/frobnicate").error == "unknown command /frobnicate; /help lists them");
        CHECK(parse_slash("/diff stats.sh").error == "/diff takes no argument");
        CHECK(parse_slash("/approve maybe").error == "/approve takes on or off");
        CHECK(parse_slash("/").error == "an empty command; /help lists them");
    }

    TEST_CASE("the help names every command") {
        const std::string help = wafer::cli::slash_help();
        for (const char* c :
             {"/help",
              "/model",
              "/critic",
              "/compact",
              "/approve",
              "/diff",
              "/undo",
              "/usage",
              "/exit"}) {
            CHECK(help.find(c) != std::string::npos);
        }
    }

    TEST_CASE("the status line: model, context of the window, tokens in and out, speed") {
        turn_figures f;
        f.prompt_tokens = 3456;
        f.completion_tokens = 789;
        f.generation_s = 0.5;
        f.model_calls = 2;
        f.context_tokens = 1200;
        f.context_window = 131072;
        CHECK(
            status_line("zai-glm-4.7", f) ==
            "zai-glm-4.7 · context 1.2k/131k (1%) · 3.5k in / 789 out · 1578 tokens/s"
        );
        f.context_window = 0;
        f.generation_s = 0;
        CHECK(status_line("m", f) == "m · context 1.2k · 3.5k in / 789 out");
        turn_figures total;
        total += f;
        total += f;
        CHECK(total.prompt_tokens == 6912);
        CHECK(total.model_calls == 4);
        CHECK(wafer::cli::short_count(1'250'000) == "1.2M");
        CHECK(wafer::cli::short_count(12'345) == "12k");
    }

    TEST_CASE("unified_diff: hunks with three lines of context, removals before additions") {
        const std::string before = "1\n2\n3\n4\n5\n6\n7\n8\n9\n10\n";
        const std::string after = "1\n2\n3\n4\nfive\n6\n7\n8\n9\n10\n";
        CHECK(
            unified_diff("f.txt", before, after) ==
            "--- a/f.txt\n+++ b/f.txt\n@@ -2,7 +2,7 @@\n 2\n 3\n 4\n-5\n+five\n 6\n 7\n 8\n"
        );
        CHECK(unified_diff("f.txt", before, before).empty());
    }

    TEST_CASE("unified_diff: distant changes are separate hunks, close ones one") {
        std::string before;
        for (int i = 1; i <= 30; ++i) {
            before += std::to_string(i) + "\n";
        }
        std::string far = before;
        far.replace(far.find("2\n"), 2, "two\n");
        far.replace(far.find("\n25\n"), 4, "\ntwenty-five\n");
        const std::string d = unified_diff("n", before, far);
        CHECK(d.find("@@ -1,5 +1,5 @@\n 1\n-2\n+two\n 3\n 4\n 5\n") != std::string::npos);
        CHECK(
            d.find("@@ -22,7 +22,7 @@\n 22\n 23\n 24\n-25\n+twenty-five\n 26\n") !=
            std::string::npos
        );
        std::string close = before;
        close.replace(close.find("\n5\n"), 3, "\nfive\n");
        close.replace(close.find("\n9\n"), 3, "\nnine\n");
        CHECK(count_hunks(unified_diff("n", before, close)) == 1);
    }

    TEST_CASE("unified_diff: a created file, a removed one, a missing final newline") {
        CHECK(
            unified_diff("new.txt", std::nullopt, std::string("a\nb\n")) ==
            "--- /dev/null\n+++ b/new.txt\n@@ -0,0 +1,2 @@\n+a\n+b\n"
        );
        CHECK(
            unified_diff("old.txt", std::string("a\n"), std::nullopt) ==
            "--- a/old.txt\n+++ /dev/null\n@@ -1 +0,0 @@\n-a\n"
        );
        CHECK(
            unified_diff("t", std::string("a\nb"), std::string("a\nc")) ==
            "--- a/t\n+++ b/t\n@@ -1,2 +1,2 @@\n a\n-b\n\\ No newline at end of file\n+c\n\\ No "
            "newline at end of file\n"
        );
    }

    TEST_CASE("edit_log: a successful call that changed the file is an edit; others are not") {
        edit_log log;
        log.call_started("c1", "/ws/a.txt", std::string("old\n"));
        log.call_finished("c1", false, std::string("new\n"));
        log.call_started("c2", "/ws/a.txt", std::string("new\n"));
        log.call_finished("c2", true, std::string("new\n")); // failed
        log.call_started("c3", "/ws/b.txt", std::string("same\n"));
        log.call_finished("c3", false, std::string("same\n")); // changed nothing
        log.call_finished("c4", false, std::string("x\n"));    // never started
        REQUIRE(log.edits().size() == 1);
        CHECK(log.edits()[0].call_id == "c1");
        CHECK(log.diff("/ws") == "--- a/a.txt\n+++ b/a.txt\n@@ -1 +1 @@\n-old\n+new\n");
    }

    TEST_CASE("edit_log: the diff spans the session; undo goes back one edit at a time") {
        edit_log log;
        log.call_started("c1", "/ws/a.txt", std::string("v1\n"));
        log.call_finished("c1", false, std::string("v2\n"));
        log.call_started("c2", "/ws/new.txt", std::nullopt);
        log.call_finished("c2", false, std::string("hello\n"));
        log.call_started("c3", "/ws/a.txt", std::string("v2\n"));
        log.call_finished("c3", false, std::string("v3\n"));
        // Each file once: before the first edit, after the last.
        CHECK(
            log.diff("/ws") == "--- a/a.txt\n+++ b/a.txt\n@@ -1 +1 @@\n-v1\n+v3\n"
                               "--- /dev/null\n+++ b/new.txt\n@@ -0,0 +1 @@\n+hello\n"
        );
        auto plan = log.plan_undo(std::string("v3\n"));
        CHECK(plan.error.empty());
        CHECK(plan.path == "/ws/a.txt");
        CHECK(plan.restore == std::optional<std::string>("v2\n"));
        log.pop_last();
        plan = log.plan_undo(std::string("hello\n"));
        CHECK(plan.path == "/ws/new.txt");
        CHECK_FALSE(plan.restore); // created by the agent: undo removes it
        log.pop_last();
        // Changed by someone else since: refused, nothing to write.
        plan = log.plan_undo(std::string("edited by hand\n"));
        CHECK(plan.error.find("changed since") != std::string::npos);
        log.pop_last();
        CHECK(log.plan_undo(std::nullopt).error.find("nothing to undo") == 0);
        CHECK(log.diff("/ws").empty());
    }
}
