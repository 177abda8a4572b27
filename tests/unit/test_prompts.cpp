// The prompts library: embedded templates, overrides, {{variable}} substitution.
#include <wafer/critic.hpp>
#include <wafer/prompts.hpp>

#include <doctest/doctest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

using namespace wafer;
namespace fs = std::filesystem;

TEST_SUITE("unit/prompts") {
    TEST_CASE("render substitutes every variable and fails loudly on a missing one") {
        CHECK(render_prompt("Hi {{name}}, {{ name }}!", {{"name", "Ada"}}) == "Hi Ada, Ada!");
        CHECK(render_prompt("no variables", {}) == "no variables");
        // Values are not scanned again.
        CHECK(render_prompt("{{a}}", {{"a", "{{b}}"}}) == "{{b}}");
        CHECK_THROWS_WITH_AS(
            render_prompt("Hello {{who}}", {}, "greeting"), doctest::Contains("'who'"), prompt_error
        );
        CHECK_THROWS_WITH_AS(
            render_prompt("Hello {{who", {{"who", "x"}}),
            doctest::Contains("not closed"),
            prompt_error
        );
        CHECK_THROWS_AS(render_prompt("{{ }}", {}), prompt_error);
        CHECK(prompt_variables("{{a}} {{b}} {{a}}") == std::vector<std::string>{"a", "b"});
    }

    TEST_CASE("the built-in templates are embedded, named by file, and render with their variables"
    ) {
        const auto& lib = prompt_library::builtin();
        const auto names = lib.names();
        for (const char* n :
             {"coding-agent", "planner", "code-review", "qa", "security", "performance"}) {
            CAPTURE(n);
            CHECK(std::find(names.begin(), names.end(), n) != names.end());
            const std::string text = lib.text(n);
            // Written for GLM 4.7: hard rules first, the response language named.
            CHECK(text.rfind("# Hard rules", 0) == 0);
            CHECK(text.find("MUST") != std::string::npos);
            CHECK(text.find("{{language}}") != std::string::npos);
            prompt_vars vars{{"language", "English"}, {"workspace", "/w"}, {"max_steps", "5"}};
            const std::string out = lib.render(n, vars);
            CHECK(out.find("{{") == std::string::npos);
            CHECK(out.find("respond in English") != std::string::npos);
        }
        CHECK_THROWS_WITH_AS(lib.text("nope"), doctest::Contains("security"), prompt_error);
        CHECK_THROWS_AS(lib.render("coding-agent", {{"language", "English"}}), prompt_error);
    }

    TEST_CASE("a directory overrides built-in templates and adds new ones") {
        const fs::path dir =
            fs::temp_directory_path() / ("wafer-prompts-" + std::to_string(::getpid()));
        fs::create_directories(dir);
        std::ofstream(dir / "security.md") << "Custom security for {{team}}.";
        std::ofstream(dir / "triage.md") << "Triage.";
        const prompt_library lib(dir);
        CHECK(lib.render("security", {{"team", "red"}}) == "Custom security for red.");
        CHECK(lib.text("triage") == "Triage.");
        CHECK(lib.text("qa") == prompt_library::builtin().text("qa"));
        const auto names = lib.names();
        CHECK(std::find(names.begin(), names.end(), "triage") != names.end());
        CHECK(std::count(names.begin(), names.end(), "security") == 1);
        // Names are one path component: no reading outside the directory.
        CHECK_THROWS_AS(lib.text("../etc/passwd"), prompt_error);
        // Built-in critics take their prompt from the library given.
        builtin_critic_options opts;
        opts.prompts = &lib;
        opts.vars = {{"team", "blue"}};
        const critic c = builtin_critic("security", nullptr, opts);
        CHECK(c.instructions == "Custom security for blue.");
        CHECK(c.gates.contains(gate::before_tools));
        CHECK(c.covers("run_command", false));
        CHECK_FALSE(c.covers("read_file", true));
        fs::remove_all(dir);
    }
}
