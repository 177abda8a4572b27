// wafer: the command-line program. `wafer ask`, `wafer run`, `wafer models`; see README.md
// ("The wafer CLI") and `wafer --help`.
#include <CLI/CLI.hpp>

#include <exception>
#include <iostream>

#include "commands.hpp"
#include "failure.hpp"

namespace {

constexpr const char* endpoint_help =
    "Key and endpoint: CEREBRAS_API_KEY and CEREBRAS_BASE_URL (or --base-url; https://host and "
    "https://host/v1 both work). With neither a key nor a base URL, wafer starts its offline "
    "stand-in model on 127.0.0.1 and says so on stderr.";

void add_model_flags(CLI::App& cmd, wafer::cli::model_flags& f) {
    cmd.add_option("--model", f.model, "Model id")->capture_default_str();
    cmd.add_option("--base-url", f.base_url, "Endpoint, e.g. https://api.cerebras.ai/v1");
    cmd.add_flag("--json", f.json, "Print the run's events as JSON lines instead of text");
}

} // namespace

int main(int argc, char** argv) {
    CLI::App app{"wafer: agent loops on Cerebras Inference and OpenAI-compatible endpoints"};
    app.footer(endpoint_help);
    app.require_subcommand(1);

    wafer::cli::ask_flags ask;
    CLI::App* ask_cmd = app.add_subcommand("ask", "One chat completion, printed as it streams");
    add_model_flags(*ask_cmd, ask);
    ask_cmd->add_flag("--no-stream", ask.no_stream, "Wait for the whole reply");
    ask_cmd
        ->add_option("--timeout", ask.timeout_s, "Seconds the whole answer may take (0: no limit)")
        ->capture_default_str()
        ->check(CLI::Range(0U, 7U * 24 * 3600));
    ask_cmd->add_flag(
        "--reasoning", ask.reasoning, "Also show the reasoning (dimmed on a terminal)"
    );
    ask_cmd->add_option("prompt", ask.prompt, "What to ask")->required();

    wafer::cli::run_flags run;
    CLI::App* run_cmd = app.add_subcommand(
        "run", "The coding agent: built-in file and shell tools confined to a workspace"
    );
    add_model_flags(*run_cmd, run);
    run_cmd->add_option("--workspace", run.workspace, "Directory the tools work in")
        ->capture_default_str();
    run_cmd
        ->add_option(
            "--critic",
            run.critics,
            "Critic reviewing the run (repeatable): security gates write_file, edit_file and "
            "run_command; code-review, qa and performance review steps and the final answer"
        )
        ->check(CLI::IsMember({"security", "code-review", "qa", "performance"}));
    run_cmd->add_option("--max-turns", run.max_turns, "Model turns that may call tools")
        ->capture_default_str()
        ->check(CLI::Range(1, 1000));
    run_cmd->add_option("--timeout", run.timeout_s, "Seconds the whole run may take (0: no limit)")
        ->capture_default_str()
        ->check(CLI::Range(0U, 7U * 24 * 3600));
    run_cmd
        ->add_option(
            "--command-timeout",
            run.command_timeout_s,
            "Seconds a run_command may take unless the model asks for more (up to 600)"
        )
        ->capture_default_str()
        ->check(CLI::Range(1U, 600U));
    run_cmd
        ->add_option(
            "--sandbox",
            run.sandbox,
            "run_command's sandbox: on (write only in the workspace and a private temp dir, no "
            "network; refuse commands where the kernel lacks Landlock), auto (sandbox where "
            "possible), off"
        )
        ->capture_default_str()
        ->check(CLI::IsMember({"on", "auto", "off"}));
    run_cmd->add_flag(
        "--allow-network", run.allow_network, "Let sandboxed commands open TCP connections"
    );
    run_cmd->add_flag(
        "--yes", run.yes, "Run write_file, edit_file and run_command without asking for approval"
    );
    run_cmd->add_option("task", run.task, "What the agent should do")->required();

    wafer::cli::models_flags models;
    CLI::App* models_cmd = app.add_subcommand("models", "List the endpoint's models");
    models_cmd->add_option(
        "--base-url", models.base_url, "Endpoint, e.g. https://api.cerebras.ai/v1"
    );
    models_cmd->add_flag("--json", models.json, "Print the list as JSON");

    try {
        app.parse(argc, argv);
    } catch (const CLI::ParseError& e) {
        // --help is a "parse error" with status 0; real usage errors exit with 2.
        return app.exit(e) == 0 ? 0 : wafer::cli::exit_usage;
    }

    try {
        if (*ask_cmd) {
            return wafer::cli::ask(ask);
        }
        if (*run_cmd) {
            return wafer::cli::run(run);
        }
        return wafer::cli::models(models);
    } catch (const wafer::cli::cli_error& e) {
        wafer::cli::print_failure(e.what());
        return e.status();
    } catch (const std::exception& e) {
        wafer::cli::print_failure(e.what());
        return wafer::cli::exit_failure;
    }
}
