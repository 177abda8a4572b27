// wafer: the command-line program. `wafer ask`, `wafer run`, `wafer resume`, `wafer runs`,
// `wafer approve`, `wafer deny`, `wafer models`; see README.md ("The wafer CLI") and
// `wafer --help`.
#include <CLI/CLI.hpp>

#include <cstdio>
#include <exception>
#include <iostream>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "batch.hpp"
#include "chat.hpp"
#include "commands.hpp"
#include "config.hpp"
#include "conventions.hpp"
#include "failure.hpp"
#include "mcp.hpp"
#include "store.hpp"
#include "terminal.hpp"
#include "workers.hpp"

namespace {

constexpr const char* endpoint_help =
    "Key and endpoint: CEREBRAS_API_KEY and CEREBRAS_BASE_URL (or --base-url; https://host and "
    "https://host/v1 both work). With neither a key nor a base URL, wafer starts its offline "
    "stand-in model on 127.0.0.1 and says so on stderr. Exit status: 0 done, 1 failed, 2 usage, "
    "3 stopped before an answer, 4 waits for approval, 130 Ctrl-C, 143 SIGTERM.";

void add_model_flags(CLI::App& cmd, wafer::cli::model_flags& f) {
    cmd.add_option("-m,--model", f.model, "Model id")->capture_default_str();
    cmd.add_option("--base-url", f.base_url, "Endpoint, e.g. https://api.cerebras.ai/v1");
    cmd.add_flag("--json", f.json, "Print the run's events as JSON lines instead of text");
    cmd.add_option(
           "--color",
           f.color,
           "Colour: auto (on a terminal, unless NO_COLOR is set or TERM=dumb), always, never"
    )
        ->capture_default_str()
        ->check(CLI::IsMember({"auto", "always", "never"}));
    cmd.add_option(
           "--ca-file",
           f.ca_file,
           "PEM file of CA certificates to trust besides the system store (SSL_CERT_FILE adds "
           "one too)"
    )
        ->check(CLI::ExistingFile);
}

/// The prompt (or task) from its words and standard input (conventions.hpp): standard input is
/// read when it is not a terminal, or for "-".
std::string read_prompt(const std::vector<std::string>& words, std::string_view what) {
    const wafer::cli::prompt_input in{words, wafer::cli::stdin_is_tty()};
    std::optional<std::string> text;
    if (wafer::cli::reads_stdin(in)) {
        text = wafer::cli::read_all_stdin(wafer::cli::max_stdin_bytes);
    }
    return wafer::cli::compose_prompt(in, text, what);
}

constexpr const char* store_help =
    "Run store: a SQLite file (default $XDG_STATE_HOME/wafer/runs.db, else "
    "~/.local/state/wafer/runs.db) or a PostgreSQL URI postgresql://USER@HOST/DB (password from "
    "PGPASSWORD or ~/.pgpass)";

/// --store and --store-schema.
void add_store_flags(CLI::App& cmd, wafer::cli::store_flags& flags) {
    cmd.add_option("--store", flags.store, store_help);
    cmd.add_option(
        "--store-schema",
        flags.store_schema,
        "The PostgreSQL schema of a --store postgresql://... (default wafer)"
    );
}

/// The flags `wafer run` and `wafer resume` build the agent from (everything but what to run).
void add_agent_flags(CLI::App& cmd, wafer::cli::run_flags& run, const char* workspace_help) {
    add_model_flags(cmd, run);
    cmd.add_option("-C,--workspace", run.workspace, workspace_help);
    add_store_flags(cmd, run);
    cmd.add_option(
           "--critic",
           run.critics,
           "Critic reviewing the run (repeatable): security gates write_file, edit_file and "
           "run_command; code-review, qa and performance review steps and the final answer"
    )
        ->check(CLI::IsMember({"security", "code-review", "qa", "performance"}));
    cmd.add_option("--max-turns", run.max_turns, "Model turns that may call tools")
        ->capture_default_str()
        ->check(CLI::Range(1, 1000));
    cmd.add_option(
           "--context-window",
           run.context_window,
           "The model's context window in tokens, for compaction (0: the model's known window)"
    )
        ->check(CLI::Range(std::int64_t{0}, std::int64_t{100'000'000}));
    cmd.add_option("--timeout", run.timeout_s, "Seconds the whole run may take (0: no limit)")
        ->capture_default_str()
        ->check(CLI::Range(0U, 7U * 24 * 3600));
    cmd.add_option(
           "--command-timeout",
           run.command_timeout_s,
           "Seconds a run_command may take unless the model asks for more (up to 600)"
    )
        ->capture_default_str()
        ->check(CLI::Range(1U, 600U));
    cmd.add_option(
           "--sandbox",
           run.sandbox,
           "run_command's sandbox: on (write only in the workspace and a private temp dir, no "
           "network; refuse commands where the kernel lacks Landlock), auto (sandbox where "
           "possible), off"
    )
        ->capture_default_str()
        ->check(CLI::IsMember({"on", "auto", "off"}));
    cmd.add_flag(
        "--allow-network", run.allow_network, "Let sandboxed commands open TCP connections"
    );
    cmd.add_flag(
        "-y,--yes",
        run.yes,
        "Run write_file, edit_file, run_command and MCP tools without asking for approval"
    );
    cmd.add_option(
        "--mcp-config",
        run.mcp_configs,
        "MCP servers (an mcpServers JSON file, repeatable) whose tools the agent gets too; the "
        "workspace's .mcp.json is used with --yes or when you agree on the terminal"
    );
    cmd.add_option(
           "--mcp-startup-timeout",
           run.mcp_startup_timeout_s,
           "Seconds each MCP server may take to start and list its tools; one that takes longer "
           "is left out"
    )
        ->capture_default_str()
        ->check(CLI::Range(1U, 600U));
}

/// The agent flags given on `cmd`'s command line.
std::set<std::string> given_agent_flags(const CLI::App& cmd) {
    std::set<std::string> given;
    for (const char* flag :
         {"--model",
          "--critic",
          "--max-turns",
          "--timeout",
          "--command-timeout",
          "--sandbox",
          "--allow-network",
          "--yes",
          "--mcp-config",
          "--mcp-startup-timeout"}) {
        if (cmd.count(flag) > 0) {
            given.insert(flag);
        }
    }
    return given;
}

} // namespace

int main(int argc, char** argv) {
    if (!wafer::cli::stdout_is_tty()) {
        // A pipe or a file: streamed text goes out in large writes (the printer flushes it every
        // few milliseconds), not in stdio's 4 KiB ones.
        static char stdout_buffer[64 * 1024];
        std::setvbuf(stdout, stdout_buffer, _IOFBF, sizeof stdout_buffer);
    }
    CLI::App app{"wafer: agent loops on Cerebras Inference and OpenAI-compatible endpoints"};
    app.footer(endpoint_help);
    // No command: the interactive session on a terminal (chat.hpp), else the help.
    app.require_subcommand(0, 1);
    wafer::cli::chat_command chat;
    wafer::cli::add_chat_command(app, chat, [](CLI::App& cmd, wafer::cli::run_flags& flags) {
        add_agent_flags(cmd, flags, "Directory the tools work in (default: the current one)");
    });
    app.set_version_flag("--version", std::string("wafer ") + WAFER_VERSION_STRING);

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
    ask_cmd->add_option("--system", ask.system, "The system message");
    ask_cmd->add_option("--temperature", ask.temperature, "Sampling temperature, 0 to 2")
        ->check(CLI::Range(0.0, 2.0));
    ask_cmd
        ->add_option(
            "--max-tokens", ask.max_tokens, "Most tokens the answer may have (reasoning included)"
        )
        ->check(CLI::Range(std::int64_t{1}, std::int64_t{10'000'000}));
    ask_cmd->add_option(
        "prompt",
        ask.words,
        "What to ask: the words, joined; standard input too when it is not a terminal (the "
        "piped text after the words), or for -"
    );

    wafer::cli::run_flags run;
    CLI::App* run_cmd = app.add_subcommand(
        "run", "The coding agent: built-in file and shell tools confined to a workspace"
    );
    add_agent_flags(*run_cmd, run, "Directory the tools work in (default: the current one)");
    CLI::Option* no_store = run_cmd->add_flag(
        "--no-store", run.no_store, "Do not journal the run (it cannot be resumed)"
    );
    run_cmd
        ->add_flag(
            "--continue",
            run.continue_last,
            "TASK is a follow-up message to the last run of this workspace"
        )
        ->excludes(no_store);
    run_cmd->add_option(
        "task",
        run.task_words,
        "What the agent should do: the words, joined; standard input too when it is not a "
        "terminal (the piped text after the words), or for -"
    );

    wafer::cli::resume_flags resume;
    resume.workspace.clear();
    CLI::App* resume_cmd = app.add_subcommand(
        "resume",
        "Continue a journaled run: an interrupted one where it stopped, a finished one with a "
        "follow-up MESSAGE (same agent flags as run)"
    );
    add_agent_flags(*resume_cmd, resume, "Directory the tools work in (default: the run's own)");
    resume_cmd->add_option("id", resume.id, "The run (wafer runs lists them)")->required();
    std::string resume_message;
    CLI::Option* message_opt =
        resume_cmd->add_option("message", resume_message, "A follow-up message for a finished run");

    wafer::cli::runs_flags runs;
    CLI::App* runs_cmd = app.add_subcommand(
        "runs", "List the journaled runs of this workspace, newest first; `runs show ID`: a history"
    );
    add_store_flags(*runs_cmd, runs);
    runs_cmd->add_option("-C,--workspace", runs.workspace, "List the runs of this directory")
        ->capture_default_str();
    runs_cmd->add_flag("--all", runs.all, "List the runs of every workspace");
    runs_cmd->add_flag("--json", runs.json, "One JSON object per run and line");
    CLI::App* show_cmd =
        runs_cmd->add_subcommand("show", "A run's history as its journal holds it");
    add_store_flags(*show_cmd, runs);
    show_cmd->add_flag("--json", runs.json, "The run, then each journal entry, as JSON lines");
    show_cmd->add_flag(
        "--full", runs.full, "Every tool result and argument whole, and the compaction summaries"
    );
    show_cmd->add_option("id", runs.show_id, "The run")->required();

    wafer::cli::decide_flags approve;
    CLI::App* approve_cmd = app.add_subcommand(
        "approve", "Approve a call a stopped run waits for (then: wafer resume ID)"
    );
    add_store_flags(*approve_cmd, approve);
    approve_cmd->add_option("id", approve.id, "The run")->required();
    approve_cmd->add_option("call", approve.call, "The call id (as the stop line names it)")
        ->required();
    std::string edited_args;
    CLI::Option* args_opt = approve_cmd->add_option(
        "--args", edited_args, "Run the call with these arguments (a JSON object) instead"
    );
    wafer::cli::decide_flags deny;
    deny.approve = false;
    CLI::App* deny_cmd = app.add_subcommand(
        "deny", "Deny a call a stopped run waits for: it never runs (then: wafer resume ID)"
    );
    add_store_flags(*deny_cmd, deny);
    deny_cmd->add_option("id", deny.id, "The run")->required();
    deny_cmd->add_option("call", deny.call, "The call id (as the stop line names it)")->required();
    deny_cmd->add_option("--message", deny.message, "Why, for the model");

    wafer::cli::batch_flags batch;
    CLI::App* batch_cmd = app.add_subcommand(
        "batch",
        "Many runs from a JSONL file (a prompt string or a run spec object per line), results as "
        "JSONL; a rerun with the same --out skips the finished ids"
    );
    batch_cmd->add_option("file", batch.input, "The JSONL file (- for standard input)")->required();
    batch_cmd->add_option("-m,--model", batch.model, "Model id of lines that name none")
        ->capture_default_str();
    batch_cmd->add_option(
        "--base-url", batch.base_url, "Endpoint, e.g. https://api.cerebras.ai/v1"
    );
    batch_cmd->add_option("--ca-file", batch.ca_file, "PEM file of CA certificates to trust too")
        ->check(CLI::ExistingFile);
    batch_cmd->add_option(
        "-o,--out",
        batch.out,
        "Results file (appended; a rerun skips the ids finished there, retries the failed "
        "ones); default standard output"
    );
    batch_cmd->add_option("-j,--concurrency", batch.concurrency, "Runs at once")
        ->capture_default_str()
        ->check(CLI::Range(std::size_t{1}, std::size_t{1024}));
    batch_cmd
        ->add_option(
            "--order",
            batch.order,
            "Results in input order (held back until their predecessors finish, at most "
            "4 x concurrency runs ahead) or as they finish"
        )
        ->capture_default_str()
        ->check(CLI::IsMember({"input", "finish"}));
    batch_cmd
        ->add_option(
            "--admission",
            batch.admission,
            "Rate-limit admission control shared by all runs: auto (on for Cerebras), on, off"
        )
        ->capture_default_str()
        ->check(CLI::IsMember({"auto", "on", "off"}));
    batch_cmd
        ->add_option(
            "--tokens-per-minute",
            batch.tokens_per_minute,
            "The account's token limit, known before the first reply (the headers then say it)"
        )
        ->check(CLI::Range(std::int64_t{1}, std::int64_t{1'000'000'000}));
    batch_cmd->add_option("--timeout", batch.timeout_s, "Seconds each run may take (0: no limit)")
        ->capture_default_str()
        ->check(CLI::Range(0U, 7U * 24 * 3600));
    batch_cmd->add_option(
        "-C,--workspace",
        batch.workspace,
        "Directory the built-in tools of \"tools\": \"builtin\" lines work in"
    );
    batch_cmd->add_option("--max-turns", batch.max_turns, "Model turns of a run with tools")
        ->capture_default_str()
        ->check(CLI::Range(1, 1000));
    batch_cmd->add_option("--sandbox", batch.sandbox, "run_command's sandbox: on, auto, off")
        ->capture_default_str()
        ->check(CLI::IsMember({"on", "auto", "off"}));
    batch_cmd->add_flag(
        "-y,--yes",
        batch.yes,
        "Let runs with tools write files and run commands (without it only the read-only tools "
        "run: nobody is asked in a batch)"
    );

    wafer::cli::models_flags models;
    CLI::App* models_cmd = app.add_subcommand("models", "List the endpoint's models");
    models_cmd->add_option(
        "--base-url", models.base_url, "Endpoint, e.g. https://api.cerebras.ai/v1"
    );
    models_cmd->add_flag("--json", models.json, "Print the list as JSON");
    models_cmd
        ->add_option(
            "--ca-file",
            models.ca_file,
            "PEM file of CA certificates to trust besides the system store"
        )
        ->check(CLI::ExistingFile);

    wafer::cli::mcp_flags mcp;
    CLI::App* mcp_cmd =
        app.add_subcommand("mcp", "MCP servers: list them and their tools, call one tool, log in");
    mcp_cmd->require_subcommand(1);
    auto add_mcp_flags = [&mcp](CLI::App& cmd) {
        cmd.add_option("--mcp-config", mcp.configs, "An mcpServers JSON file (repeatable)");
        cmd.add_option("-C,--workspace", mcp.workspace, "Directory whose .mcp.json is read")
            ->capture_default_str();
        cmd.add_flag("-y,--yes", mcp.yes, "Use the workspace's .mcp.json without asking");
        cmd.add_flag("--json", mcp.json, "Print JSON");
        cmd.add_flag("--verbose", mcp.verbose, "Show the servers' stderr and logging");
        cmd.add_option(
               "--mcp-startup-timeout",
               mcp.startup_timeout_s,
               "Seconds each server may take to start (and list its tools)"
        )
            ->capture_default_str()
            ->check(CLI::Range(1U, 600U));
    };
    CLI::App* mcp_list_cmd =
        mcp_cmd->add_subcommand("list", "Each server, its protocol version, and its tools");
    add_mcp_flags(*mcp_list_cmd);
    CLI::App* mcp_call_cmd = mcp_cmd->add_subcommand("call", "Call one tool of one server");
    add_mcp_flags(*mcp_call_cmd);
    mcp_call_cmd->add_option("server", mcp.server, "The server's name in the configuration")
        ->required();
    mcp_call_cmd->add_option("tool", mcp.tool, "The tool's name")->required();
    mcp_call_cmd->add_option("arguments", mcp.arguments, "The arguments, a JSON object")
        ->capture_default_str();
    CLI::App* mcp_login_cmd = mcp_cmd->add_subcommand(
        "login",
        "Authorize wafer to an HTTP server with OAuth (a browser step); the tokens are kept"
    );
    add_mcp_flags(*mcp_login_cmd);
    mcp_login_cmd->add_option("server", mcp.server, "The server's name in the configuration")
        ->required();

    wafer::cli::worker_flags worker;
    CLI::App* worker_cmd = app.add_subcommand(
        "worker",
        "Claim runs queued in a PostgreSQL store (wafer submit) and drive them, on this machine "
        "beside workers on others; SIGTERM or Ctrl-C drains"
    );
    add_model_flags(*worker_cmd, worker);
    worker_cmd
        ->add_option(
            "--store", worker.store, "The PostgreSQL store: postgresql://USER@HOST[:PORT]/DATABASE"
        )
        ->required();
    worker_cmd->add_option(
        "--store-schema", worker.store_schema, "The PostgreSQL schema of the store (default wafer)"
    );
    worker_cmd->add_option("-j,--concurrency", worker.concurrency, "Runs driven at once")
        ->capture_default_str()
        ->check(CLI::Range(std::size_t{1}, std::size_t{256}));
    worker_cmd
        ->add_option(
            "--lease-ttl",
            worker.lease_ttl_s,
            "Seconds a claim lasts unless renewed (every third of it): how soon another worker "
            "takes over the runs of one that died"
        )
        ->capture_default_str()
        ->check(CLI::Range(1U, 3600U));
    worker_cmd
        ->add_option(
            "--drain-timeout",
            worker.drain_timeout_s,
            "Seconds running runs may go on after SIGTERM before they are given back to the queue"
        )
        ->capture_default_str()
        ->check(CLI::Range(0U, 24U * 3600));
    worker_cmd->add_option("--name", worker.name, "The worker's name in its claims");
    worker_cmd->add_option(
        "--max-runs", worker.max_runs, "Drain after this many runs (0: no limit)"
    );

    wafer::cli::submit_flags submit;
    CLI::App* submit_cmd = app.add_subcommand(
        "submit",
        "Queue runs in a PostgreSQL store for wafer worker: a TASK, or --file FILE.jsonl (same "
        "agent flags as run)"
    );
    add_agent_flags(*submit_cmd, submit, "Directory the run works in, on the workers' machines");
    submit_cmd->add_option(
        "--file",
        submit.file,
        "Runs as JSONL: a task string or {\"id\", \"input\", \"model\", \"workspace\", "
        "\"max_turns\"} per line (- for standard input)"
    );
    submit_cmd->add_option("--id", submit.id, "The run id of a single TASK (default: a new one)");
    submit_cmd
        ->add_option(
            "--max-attempts",
            submit.max_attempts,
            "Claims that may lapse (its worker died) before the run fails as poison"
        )
        ->capture_default_str()
        ->check(CLI::Range(1, 100));
    submit_cmd->add_flag(
        "--wait", submit.wait, "Wait until the runs finish and print how each ended"
    );
    submit_cmd->add_option("task", submit.task_words, "What the agent should do");

    try {
        app.parse(argc, argv);
    } catch (const CLI::ParseError& e) {
        // --help is a "parse error" with status 0; real usage errors exit with 2.
        return app.exit(e) == 0 ? 0 : wafer::cli::exit_usage;
    }
    // Parsed (copied): the commands the agent runs must not read a --store password in
    // /proc/PID/cmdline.
    wafer::cli::hide_passwords_in_argv(argc, argv);

    try {
        // The configuration file, read by the commands it gives defaults to (a broken one is
        // an error there, not in `wafer runs`).
        const auto user_config = [] {
            return wafer::cli::load_user_config(wafer::cli::user_config_path());
        };
        const auto base_url_given = [](const CLI::App* cmd) {
            return cmd->count("--base-url") > 0;
        };
        if (CLI::App* session = chat.selected(app)) {
            if (session == &app && !wafer::cli::stdin_is_tty()) {
                std::cout << app.help();
                return wafer::cli::exit_usage;
            }
            chat.flags.given = given_agent_flags(*session);
            wafer::cli::apply_user_config(
                user_config(), chat.flags, chat.flags.given, base_url_given(session)
            );
            return wafer::cli::chat(chat.flags);
        }
        if (*ask_cmd) {
            wafer::cli::apply_user_config(
                user_config(), ask, ask_cmd->count("--model") > 0, base_url_given(ask_cmd)
            );
            wafer::cli::check_model_name(ask.model);
            ask.prompt = read_prompt(ask.words, "prompt");
            return wafer::cli::ask(ask);
        }
        if (*run_cmd) {
            run.given = given_agent_flags(*run_cmd);
            wafer::cli::apply_user_config(user_config(), run, run.given, base_url_given(run_cmd));
            wafer::cli::check_model_name(run.model);
            run.task = read_prompt(run.task_words, run.continue_last ? "message" : "task");
            return wafer::cli::run(run);
        }
        if (*resume_cmd) {
            if (*message_opt) {
                resume.message = resume_message;
            }
            resume.given = given_agent_flags(*resume_cmd);
            wafer::cli::apply_user_config(
                user_config(), resume, resume.given, base_url_given(resume_cmd)
            );
            wafer::cli::check_model_name(resume.model);
            return wafer::cli::resume(resume);
        }
        if (*batch_cmd) {
            wafer::cli::model_flags& endpoint_flags = batch;
            wafer::cli::apply_user_config(
                user_config(),
                endpoint_flags,
                batch_cmd->count("--model") > 0,
                base_url_given(batch_cmd)
            );
            wafer::cli::check_model_name(batch.model);
            return wafer::cli::batch(batch);
        }
        if (*worker_cmd) {
            wafer::cli::model_flags& endpoint_flags = worker;
            wafer::cli::apply_user_config(
                user_config(), endpoint_flags, false, base_url_given(worker_cmd)
            );
            return wafer::cli::worker(worker);
        }
        if (*submit_cmd) {
            submit.given = given_agent_flags(*submit_cmd);
            wafer::cli::apply_user_config(
                user_config(), submit, submit.given, base_url_given(submit_cmd)
            );
            wafer::cli::check_model_name(submit.model);
            if (!submit.file.empty() && !submit.task_words.empty()) {
                throw wafer::cli::cli_error(
                    "give a TASK or --file, not both", wafer::cli::exit_usage
                );
            }
            if (submit.file.empty()) {
                submit.task = read_prompt(submit.task_words, "task");
            }
            return wafer::cli::submit(submit);
        }
        if (*approve_cmd) {
            if (*args_opt) {
                approve.arguments = edited_args;
            }
            return wafer::cli::decide(approve);
        }
        if (*deny_cmd) {
            return wafer::cli::decide(deny);
        }
        if (*show_cmd) {
            return wafer::cli::show_run(runs);
        }
        if (*runs_cmd) {
            return wafer::cli::runs(runs);
        }
        if (*mcp_list_cmd) {
            wafer::cli::apply_user_config(user_config(), mcp);
            return wafer::cli::mcp_list(mcp);
        }
        if (*mcp_call_cmd) {
            wafer::cli::apply_user_config(user_config(), mcp);
            return wafer::cli::mcp_call(mcp);
        }
        if (*mcp_login_cmd) {
            wafer::cli::apply_user_config(user_config(), mcp);
            return wafer::cli::mcp_login(mcp);
        }
        wafer::cli::apply_user_config(user_config(), models, base_url_given(models_cmd));
        return wafer::cli::models(models);
    } catch (const wafer::cli::cli_error& e) {
        wafer::cli::print_failure(e.what());
        return e.status();
    } catch (const std::exception& e) {
        wafer::cli::print_failure(e.what());
        return wafer::cli::exit_failure;
    }
}
