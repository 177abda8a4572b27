// The sans-io decisions behind run_command: which environment a command gets, how secrets are
// redacted from a stream that arrives in pieces, and how the sandbox policy meets the kernel.
#include <wafer/tools/command_environment.hpp>
#include <wafer/tools/sandbox.hpp>
#include <wafer/tools/secret_redactor.hpp>

#include <doctest/doctest.h>

#include <algorithm>
#include <cstddef>
#include <string>
#include <vector>

namespace {

namespace tools = wafer::tools;

bool has(const std::vector<std::string>& v, const std::string& s) {
    return std::find(v.begin(), v.end(), s) != v.end();
}

// Feeds `text` to a redactor in pieces of `step` bytes.
std::string redact_in_pieces(
    const std::string& text, const std::vector<std::string>& secrets, std::size_t step
) {
    tools::secret_redactor r(secrets);
    std::string out;
    for (std::size_t i = 0; i < text.size(); i += step) {
        r.feed(std::string_view(text).substr(i, step), out);
    }
    r.finish(out);
    return out;
}

} // namespace

TEST_SUITE("unit/command_environment") {

    TEST_CASE("only allow-listed names pass; credentials never do") {
        const char* parent[] = {
            "PATH=/usr/bin",
            "HOME=/home/u",
            "LANG=C.UTF-8",
            "LC_ALL=C",
            "GITHUB_TOKEN=ghp_x",
            "AWS_SECRET_ACCESS_KEY=aws",
            "CEREBRAS_API_KEY=csk",
            "OPENAI_API_KEY=sk",
            "PWD=/elsewhere",
            "NOEQUALS",
            "=nameless",
            nullptr};
        tools::command_environment env;
        auto out = tools::build_command_environment(env, parent, {{"PWD", "/ws"}});
        CHECK(has(out, "PATH=/usr/bin"));
        CHECK(has(out, "HOME=/home/u"));
        CHECK(has(out, "LANG=C.UTF-8"));
        CHECK(has(out, "LC_ALL=C"));
        CHECK(has(out, "PWD=/ws"));
        CHECK(out.size() == 5);

        // Whole environment on request: still without the listed keys.
        env.inherit_all = true;
        out = tools::build_command_environment(env, parent);
        CHECK(has(out, "GITHUB_TOKEN=ghp_x"));
        CHECK(has(out, "PWD=/elsewhere"));
        CHECK_FALSE(has(out, "CEREBRAS_API_KEY=csk"));
        CHECK_FALSE(has(out, "OPENAI_API_KEY=sk"));
        CHECK_FALSE(has(out, "NOEQUALS"));
    }

    TEST_CASE("extra names, prefixes and set variables") {
        const char* parent[] = {"PATH=/usr/bin", "MY_TOOL_HOME=/opt", "CI=1", nullptr};
        tools::command_environment env;
        env.pass_extra = {"MY_TOOL_*", "CI"};
        env.set = {{"PATH", "/sandbox/bin"}, {"FOO", "bar"}, {"BAD=NAME", "x"}};
        const auto out = tools::build_command_environment(env, parent);
        CHECK(
            out ==
            std::vector<std::string>{"PATH=/sandbox/bin", "MY_TOOL_HOME=/opt", "CI=1", "FOO=bar"}
        );
        CHECK(tools::env_name_matches("LC_*", "LC_CTYPE"));
        CHECK_FALSE(tools::env_name_matches("LC_*", "LANG"));
        CHECK_FALSE(tools::env_name_matches("PATH", "PATHX"));
    }
}

TEST_SUITE("unit/secret_redactor") {

    TEST_CASE("every occurrence is replaced, however the stream is split") {
        const std::vector<std::string> secrets{"csk-0123456789abcdef", "hunter2"};
        const std::string text =
            "key=csk-0123456789abcdef and csk-0123456789abcdef; pw hunter2 csk-0123 end";
        const std::string want = "key=[redacted] and [redacted]; pw [redacted] csk-0123 end";
        for (std::size_t step = 1; step <= text.size(); ++step) {
            CAPTURE(step);
            CHECK(redact_in_pieces(text, secrets, step) == want);
        }
        CHECK(tools::secret_redactor::redact(text, secrets) == want);
    }

    TEST_CASE("overlaps, prefixes at the end, empty secrets") {
        CHECK(tools::secret_redactor::redact("abcabc", {"abc", "bcab"}) == "[redacted][redacted]");
        CHECK(tools::secret_redactor::redact("xabcd", {"abc", "abcd"}) == "x[redacted]");
        CHECK(redact_in_pieces("tail csk-01", {"csk-0123"}, 3) == "tail csk-01");
        CHECK(tools::secret_redactor::redact("plain", {""}) == "plain");
        tools::secret_redactor none(std::vector<std::string>{""});
        CHECK_FALSE(none.active());
    }
}

TEST_SUITE("unit/sandbox_plan") {

    TEST_CASE("mode on refuses without Landlock; auto runs unconfined and says so") {
        tools::sandbox_policy p;
        tools::sandbox_support none;
        none.reason = "this kernel has no Landlock support";
        p.mode = tools::sandbox_mode::on;
        CHECK_THROWS_WITH_AS(
            (void)tools::plan_sandbox(p, none),
            doctest::Contains("this kernel has no Landlock support"),
            tools::sandbox_unavailable
        );
        p.mode = tools::sandbox_mode::automatic;
        auto plan = tools::plan_sandbox(p, none);
        CHECK_FALSE(plan.confine);
        CHECK(plan.note.find("unconfined") != std::string::npos);
        p.mode = tools::sandbox_mode::off;
        plan = tools::plan_sandbox(p, none);
        CHECK_FALSE(plan.confine);
        CHECK(plan.note.empty());
    }

    TEST_CASE("the network is denied by Landlock where it can, by a namespace where it cannot") {
        tools::sandbox_policy p;
        p.mode = tools::sandbox_mode::on;
        tools::sandbox_support abi7;
        abi7.landlock_abi = 7;
        auto plan = tools::plan_sandbox(p, abi7);
        CHECK(plan.confine);
        CHECK(plan.deny_tcp);
        CHECK(plan.network_namespace);
        CHECK_FALSE(plan.network_namespace_required);

        tools::sandbox_support abi3;
        abi3.landlock_abi = 3;
        p.network_namespace = false;
        plan = tools::plan_sandbox(p, abi3);
        CHECK_FALSE(plan.deny_tcp);
        CHECK(plan.network_namespace);
        CHECK(plan.network_namespace_required);

        p.allow_network = true;
        plan = tools::plan_sandbox(p, abi7);
        CHECK(plan.confine);
        CHECK_FALSE(plan.deny_tcp);
        CHECK_FALSE(plan.network_namespace);
    }

    TEST_CASE("mode names") {
        CHECK(tools::parse_sandbox_mode("auto") == tools::sandbox_mode::automatic);
        CHECK(tools::parse_sandbox_mode("on") == tools::sandbox_mode::on);
        CHECK(tools::parse_sandbox_mode("off") == tools::sandbox_mode::off);
        CHECK_FALSE(tools::parse_sandbox_mode("yes").has_value());
        CHECK(tools::to_string(tools::sandbox_mode::automatic) == "auto");
    }
}
