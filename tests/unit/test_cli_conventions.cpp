// The wafer CLI's conventions as rules: where a prompt comes from, when output is coloured, what
// is refused before any request. The CLI's sources are not a library, so the translation unit
// under test is compiled into the tests here.
#include <doctest/doctest.h>

#include <optional>
#include <string>

#include "../../examples/cli/conventions.cpp"

using namespace wafer::cli;

namespace {

int usage_status(const prompt_input& in, const std::optional<std::string>& text) {
    try {
        compose_prompt(in, text, "prompt");
    } catch (const cli_error& e) {
        return e.status();
    }
    return 0;
}

} // namespace

TEST_SUITE("unit/cli_conventions") {

    TEST_CASE("unquoted words are joined with spaces") {
        CHECK(compose_prompt({{"fix", "the", "bug"}, true}, std::nullopt, "task") == "fix the bug");
        CHECK(compose_prompt({{"hello world"}, true}, std::nullopt, "prompt") == "hello world");
    }

    TEST_CASE("standard input is read when it is not a terminal, or for -") {
        CHECK_FALSE(reads_stdin({{"hi"}, true}));
        CHECK(reads_stdin({{"hi"}, false}));
        CHECK(reads_stdin({{}, false}));
        CHECK(reads_stdin({{"-"}, true})); // typed on the terminal, ended by Ctrl-D
        CHECK(reads_stdin({{"explain", "-"}, true}));
    }

    TEST_CASE("piped text alone is the prompt; after words it is their context") {
        CHECK(compose_prompt({{}, false}, "the task\n", "task") == "the task");
        CHECK(compose_prompt({{"-"}, true}, "typed\r\n", "prompt") == "typed");
        CHECK(
            compose_prompt({{"explain", "this"}, false}, "int main() {}\n", "prompt") ==
            "explain this\n\nint main() {}"
        );
        // "-" among the words: the same, wherever it stands.
        CHECK(compose_prompt({{"-", "review"}, true}, "diff\n", "prompt") == "review\n\ndiff");
        // An empty pipe (</dev/null) leaves the words alone.
        CHECK(compose_prompt({{"hi"}, false}, "", "prompt") == "hi");
        CHECK(compose_prompt({{"hi"}, false}, " \n", "prompt") == "hi");
    }

    TEST_CASE("an empty prompt is refused with exit status 2") {
        CHECK(usage_status({{}, true}, std::nullopt) == exit_usage);
        CHECK(usage_status({{""}, true}, std::nullopt) == exit_usage);
        CHECK(usage_status({{"  ", "\t"}, true}, std::nullopt) == exit_usage);
        CHECK(usage_status({{}, false}, "\n\n") == exit_usage);
        CHECK(usage_status({{"-"}, true}, "") == exit_usage);
        try {
            compose_prompt({{}, true}, std::nullopt, "task");
            FAIL("no error");
        } catch (const cli_error& e) {
            CHECK(std::string(e.what()).starts_with("no task: "));
        }
    }

    TEST_CASE("colour: --color wins; auto means a terminal without NO_COLOR and TERM=dumb") {
        CHECK(color_enabled("always", false, "1", "dumb"));
        CHECK_FALSE(color_enabled("never", true, nullptr, "xterm"));
        CHECK(color_enabled("auto", true, nullptr, "xterm-256color"));
        CHECK_FALSE(color_enabled("auto", false, nullptr, "xterm"));
        CHECK_FALSE(color_enabled("auto", true, "1", "xterm"));
        CHECK(color_enabled("auto", true, "", "xterm")); // NO_COLOR set but empty: no effect
        CHECK_FALSE(color_enabled("auto", true, nullptr, "dumb"));
        CHECK(color_enabled("auto", true, nullptr, nullptr));
    }

    TEST_CASE("the thinking line needs a terminal that can erase it") {
        CHECK(can_draw_status(true, "xterm"));
        CHECK(can_draw_status(true, nullptr));
        CHECK_FALSE(can_draw_status(false, "xterm"));
        CHECK_FALSE(can_draw_status(true, "dumb"));
    }

    TEST_CASE("an empty model name is refused with exit status 2") {
        CHECK_THROWS_AS(check_model_name(""), cli_error);
        CHECK_THROWS_AS(check_model_name(" "), cli_error);
        CHECK_NOTHROW(check_model_name("llama3.1-8b"));
    }
}
