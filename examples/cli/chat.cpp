#include "chat.hpp"

#include <wafer/agent.hpp>
#include <wafer/api/client.hpp>
#include <wafer/event_emitter.hpp>
#include <wafer/store/run_store.hpp>

#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>

#include <algorithm>
#include <exception>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <sstream>

#include "approval.hpp"
#include "coder.hpp"
#include "edits.hpp"
#include "endpoint.hpp"
#include "failure.hpp"
#include "line_editor.hpp"
#include "printer.hpp"
#include "session.hpp"
#include "slash.hpp"
#include "stop_signals.hpp"
#include "store.hpp"
#include "terminal.hpp"
#include "visible.hpp"

namespace asio = boost::asio;
namespace fs = std::filesystem;

namespace wafer::cli {

namespace {

/// Runs `op` on `ioc` until it completes (other work on `ioc`, such as the offline stand-in's
/// server, goes on meanwhile and stays), with `slot` as its cancellation slot.
template <class T>
T drive(asio::io_context& ioc, asio::awaitable<T> op, asio::cancellation_slot slot = {}) {
    std::optional<T> out;
    std::exception_ptr failure;
    bool done = false;
    asio::co_spawn(
        ioc,
        std::move(op),
        asio::bind_cancellation_slot(
            slot,
            [&](std::exception_ptr e, T value) {
                failure = e;
                if (!e) {
                    out = std::move(value);
                }
                done = true;
            }
        )
    );
    while (!done) {
        if (ioc.stopped()) {
            ioc.restart();
        }
        ioc.run_one();
    }
    if (failure) {
        std::rethrow_exception(failure);
    }
    return std::move(*out);
}

asio::awaitable<bool> discover(run_flags& flags, std::shared_ptr<api::client> client) {
    co_await discover_context_window(flags, *client);
    co_return true;
}

asio::awaitable<bool> stop_mcp(mcp_servers& mcp) {
    co_await async_stop_mcp(mcp);
    co_return true;
}

/// The content of a regular file (nullopt: missing, not a regular file, or over 16 MiB: not
/// tracked).
std::optional<std::string> read_whole(const fs::path& file) {
    std::error_code ec;
    if (!fs::is_regular_file(file, ec) || fs::file_size(file, ec) > 16U * 1024 * 1024) {
        return std::nullopt;
    }
    std::ifstream in(file, std::ios::binary);
    std::ostringstream ss;
    ss << in.rdbuf();
    return std::move(ss).str();
}

const char* dim(bool color) {
    return color ? "\x1b[2m" : "";
}
const char* plain(bool color) {
    return color ? "\x1b[0m" : "";
}

/// The agent flags a journal replays with: all but --yes (both approval modes gate the same
/// tools, so a journal replays whichever asked).
nlohmann::json replayed_flags(const run_flags& flags) {
    nlohmann::json j = agent_flags_json(flags);
    j.erase("yes");
    return j;
}

/// The session: its agent settings, its run in the store, what the agent changed, its figures.
class chat_session {
public:
    chat_session(
        asio::io_context& ioc,
        endpoint& ep,
        std::shared_ptr<api::client> client,
        const chat_flags& flags,
        fs::path root,
        std::shared_ptr<store::run_store> store
    )
        : ioc_(ioc), ep_(ep), client_(std::move(client)), flags_(flags), root_(std::move(root)),
          store_(std::move(store)), color_(output_color(flags.color)) {}

    /// Goes on with the journaled run `id` (finished) instead of starting a new one.
    void continue_run(std::string id, const run_flags& stored) {
        run_id_ = std::move(id);
        journal_flags_ = stored;
    }

    int loop() {
        const approval_mode mode = flags_.yes ? approval_mode::allow : approval_mode::ask;
        mcp_ = drive(ioc_, start_mcp_servers(flags_, root_, mode));
        try {
            drive(ioc_, discover(flags_, client_));
            if (journal_flags_) {
                drive(ioc_, discover(*journal_flags_, client_));
            }
            print_header(std::cout, flags_, root_, mode, mcp_);
            if (!run_id_.empty()) {
                std::cout << "session " << run_id_ << " continued\n";
            }
            std::cout << "Type a task, /help for the commands, Ctrl-D or /exit to end.\n\n"
                      << std::flush;
            const int status = read_loop();
            drive(ioc_, stop_mcp(mcp_));
            return status;
        } catch (...) {
            drive(ioc_, stop_mcp(mcp_));
            throw;
        }
    }

private:
    int read_loop() {
        // Beside the SQLite store, or in the default place when the runs are in a database.
        line_editor editor(
            store_path(is_database_url(flags_.store) ? std::string() : flags_.store).parent_path() /
            "history"
        );
        while (true) {
            std::optional<std::string> line = editor.read("wafer> ");
            if (!line) {
                std::cout << "\n";
                break;
            }
            const slash_parse parsed = parse_slash(*line);
            if (!parsed.is_command) {
                if (!parsed.message.empty()) {
                    turn(parsed.message);
                }
                continue;
            }
            if (!parsed.command) {
                print_failure(parsed.error);
                continue;
            }
            if (parsed.command->kind == slash_kind::exit) {
                break;
            }
            command(*parsed.command);
        }
        if (!run_id_.empty()) {
            std::cout << "session " << run_id_ << ": wafer -c continues it (or wafer --resume "
                      << run_id_ << ")\n";
        }
        return exit_ok;
    }

    /// How the next turn goes on: the journaled run with a message, or a new run that carries
    /// the conversation (after a cancelled or failed turn, /compact, or a changed model or
    /// critics, which the journal could not replay).
    bool resumes() const {
        if (run_id_.empty() || carry_) {
            return false;
        }
        // Settings changed: a new run with the conversation, when there is one here.
        const bool changed =
            journal_flags_ && replayed_flags(*journal_flags_) != replayed_flags(flags_);
        return !changed || !conversation_;
    }

    agent make_agent(const run_flags& flags) {
        // Both modes gate the same tools, so a journal replays whichever asked.
        const approval_mode mode = flags_.yes ? approval_mode::allow : approval_mode::ask;
        return agent(make_config(flags, root_, client_, mode, mcp_, {}, [this](tools::tool& t) {
            snapshot_before_edit(t);
        }));
    }

    asio::awaitable<run_result> async_turn(
        std::string input,
        std::function<void(const event&)> on_event,
        std::shared_ptr<approval_channel> channel
    ) {
        if (resumes()) {
            const agent coder = make_agent(journal_flags_ ? *journal_flags_ : flags_);
            resume_options options;
            options.store = store_;
            options.message = std::move(input);
            options.on_event = std::move(on_event);
            options.approvals = std::move(channel);
            std::string id = run_id_;
            auto op = coder.async_resume(std::move(id), std::move(options));
            co_return co_await std::move(op);
        }
        const agent coder = make_agent(flags_);
        run_options options;
        options.on_event = std::move(on_event);
        options.run_id = make_run_id();
        options.store = store_;
        options.scope = root_.string();
        options.approvals = std::move(channel);
        options.metadata = {{"agent_flags", agent_flags_json(flags_)}, {"session", true}};
        if (conversation_) {
            options.history = *conversation_;
        }
        if (!run_id_.empty()) {
            std::cout << "(session goes on as a new run, with the conversation so far)\n";
        }
        run_id_ = options.run_id;
        journal_flags_ = flags_;
        carry_ = false;
        std::cerr << "session " << run_id_ << "\n" << std::flush;
        auto op = coder.async_run(std::move(input), std::move(options));
        co_return co_await std::move(op);
    }

    /// The file a write_file / edit_file call's (validated) arguments name, inside the
    /// workspace; nullopt otherwise.
    std::optional<fs::path> edited_file(const nlohmann::json& args) const {
        if (!args.is_object() || !args.contains("path") || !args["path"].is_string()) {
            return std::nullopt;
        }
        const fs::path file = (root_ / args["path"].get<std::string>()).lexically_normal();
        const fs::path inside = file.lexically_relative(root_);
        if (inside.empty() || *inside.begin() == "..") {
            return std::nullopt; // the tool refuses it anyway
        }
        return file;
    }

    // The file tools run on the blocking pool, and tool_call_started may reach the session
    // after the edit is made: the file as it was is read in the handler, before the edit.
    void snapshot_before_edit(tools::tool& t) {
        auto* blocking = std::get_if<tools::blocking_handler>(&t.fn);
        if (!blocking || (t.name != "write_file" && t.name != "edit_file")) {
            return;
        }
        t.fn =
            tools::blocking_handler{[this, inner = std::move(blocking->fn)](
                                        const nlohmann::json& args, const tools::call_context& ctx
                                    ) {
                if (auto file = edited_file(args)) {
                    std::optional<std::string> before = read_whole(*file);
                    const std::lock_guard lock(before_mutex_);
                    before_edit_[ctx.call_id] = {*file, std::move(before)};
                }
                return inner(args, ctx);
            }};
    }

    void track(const event& e, turn_figures& figures) {
        if (const auto* finished = e.get_if<events::tool_call_finished>()) {
            std::optional<std::pair<fs::path, std::optional<std::string>>> before;
            {
                const std::lock_guard lock(before_mutex_);
                if (auto it = before_edit_.find(finished->call_id); it != before_edit_.end()) {
                    before = std::move(it->second);
                    before_edit_.erase(it);
                }
            }
            if (before) {
                edits_.call_started(finished->call_id, before->first, std::move(before->second));
                edits_.call_finished(
                    finished->call_id, finished->is_error, read_whole(before->first)
                );
            }
        } else if (const auto* request = e.get_if<events::model_request>()) {
            figures.context_tokens = request->context_tokens;
            figures.context_window = request->context_window;
        } else if (const auto* turn = e.get_if<events::turn_finished>()) {
            ++figures.model_calls;
            if (turn->usage) {
                figures.prompt_tokens += turn->usage->prompt_tokens;
                figures.completion_tokens += turn->usage->completion_tokens;
                figures.cached_tokens += turn->usage->cached_tokens;
                figures.reasoning_tokens += turn->usage->reasoning_tokens;
            }
            figures.generation_s += turn->time_info && turn->time_info->completion_time > 0
                                        ? turn->time_info->completion_time
                                        : static_cast<double>(turn->duration.count()) / 1e6;
        }
    }

    void turn(const std::string& input) {
        std::optional<live_approver> approver;
        approver.emplace(
            flags_.yes ? approval_mode::allow : approval_mode::ask, unconfined_reason(flags_)
        );
        event_printer printer(
            std::cout,
            {.json = false,
             .reasoning = true,
             .color = color_,
             .steps = true,
             .approvals = !flags_.yes,
             .thinking = thinking_line_allowed()},
            &std::cerr
        );
        turn_figures figures;
        auto on_event = [this, &printer, &approver, &figures](const event& e) {
            track(e, figures);
            printer.on_event(e);
            approver->on_event(e); // after the printer: the question comes below the step
        };

        asio::cancellation_signal cancel;
        // The first Ctrl-C cancels the turn (the session goes on); a second one, before the
        // turn has stopped, ends the process (stop_signals: 130).
        stop_signals signals(ioc_.get_executor(), [&cancel](int) {
            std::cerr << "\nwafer: cancelling the turn (Ctrl-C again quits)\n" << std::flush;
            cancel.emit(asio::cancellation_type::terminal);
        });
        std::optional<run_result> result;
        try {
            result = drive(ioc_, async_turn(input, on_event, approver->channel()), cancel.slot());
        } catch (const wafer::error& e) {
            print_failure(store_failure_line(e));
        } catch (const cli_error& e) {
            print_failure(e.what());
        }
        signals.cancel();
        ioc_.poll(); // the signal wait's cancelled completion, before `signals` goes
        if (!result) {
            return;
        }
        printer.finish(*result);
        conversation_ = result->conversation;
        if (result->stop_reason == stop_reason::cancelled) {
            std::cout << "(turn cancelled)\n";
            carry_ = true;
        } else if (result->stop_reason != stop_reason::completed) {
            run_status(*result, ep_.display_url, std::chrono::seconds(flags_.timeout_s));
            carry_ = true;
        }
        session_ += figures;
        std::cout << dim(color_) << "[" << visible(status_line(flags_.model, figures)) << "]"
                  << plain(color_) << "\n\n"
                  << std::flush;
    }

    void command(const slash_command& c) {
        switch (c.kind) {
        case slash_kind::help:
            std::cout << slash_help();
            break;
        case slash_kind::model:
            set_model(c.argument);
            break;
        case slash_kind::critic:
            set_critic(c.argument);
            break;
        case slash_kind::compact:
            compact();
            break;
        case slash_kind::approve:
            if (c.argument == "on") {
                flags_.yes = true;
            } else if (c.argument == "off") {
                flags_.yes = false;
            }
            std::cout << "approvals: "
                      << (flags_.yes ? "file edits and commands run without asking"
                                     : "file edits and commands ask first")
                      << "\n";
            break;
        case slash_kind::diff: {
            const std::string diff = edits_.diff(root_);
            std::cout
                << (diff.empty() ? "no changes by the agent in this session\n"
                                 : visible(diff, layout::text));
            break;
        }
        case slash_kind::undo:
            undo();
            break;
        case slash_kind::usage:
            usage();
            break;
        case slash_kind::exit:
            break;
        }
        std::cout << std::flush;
    }

    void set_model(const std::string& id) {
        if (id.empty()) {
            std::cout << "model: " << visible(flags_.model) << "\n";
            return;
        }
        if (id.size() >= 200) {
            print_failure("a model id is shorter than 200 bytes");
            return;
        }
        flags_.model = id;
        flags_.context_window = 0;
        drive(ioc_, discover(flags_, client_));
        std::cout << "model: " << visible(flags_.model) << " (from the next turn)\n";
    }

    void set_critic(const std::string& name) {
        static const std::vector<std::string> known{"security", "code-review", "qa", "performance"};
        if (name == "off") {
            flags_.critics.clear();
        } else if (!name.empty()) {
            if (std::find(known.begin(), known.end(), name) == known.end()) {
                print_failure(
                    "unknown critic " + visible(name) + "; security, code-review, qa or performance"
                );
                return;
            }
            const auto it = std::find(flags_.critics.begin(), flags_.critics.end(), name);
            if (it == flags_.critics.end()) {
                flags_.critics.push_back(name);
            } else {
                flags_.critics.erase(it);
            }
        }
        std::cout << "critics: ";
        for (std::size_t i = 0; i < flags_.critics.size(); ++i) {
            std::cout << (i ? ", " : "") << flags_.critics[i];
        }
        std::cout << (flags_.critics.empty() ? "none" : "") << "\n";
    }

    void compact() {
        if (!conversation_) {
            std::cout << "nothing to compact yet (no turn in this process)\n";
            return;
        }
        const agent coder = make_agent(flags_);
        try {
            const compaction_result r = drive(ioc_, coder.async_compact(*conversation_));
            std::cout << "compacted: " << short_count(r.tokens_before) << " -> "
                      << short_count(r.tokens_after) << " tokens (estimated)";
            if (r.summary_error) {
                std::cout << "; the summary failed: " << visible(*r.summary_error);
            }
            std::cout << "\n";
            conversation_ = r.conversation;
            carry_ = true;
        } catch (const wafer::error& e) {
            print_failure(store_failure_line(e));
        }
    }

    void undo() {
        if (edits_.edits().empty()) {
            std::cout << "nothing to undo: the agent has not changed a file in this session\n";
            return;
        }
        const fs::path file = edits_.edits().back().path;
        const undo_plan plan = edits_.plan_undo(read_whole(file));
        if (!plan.error.empty()) {
            print_failure(visible(plan.error));
            return;
        }
        std::error_code ec;
        if (plan.restore) {
            std::ofstream out(plan.path, std::ios::binary | std::ios::trunc);
            out << *plan.restore;
            if (!out) {
                print_failure("cannot write " + visible(plan.path.string()));
                return;
            }
        } else {
            fs::remove(plan.path, ec);
        }
        edits_.pop_last();
        std::cout << "undone: " << visible(plan.path.lexically_relative(root_).string())
                  << (plan.restore ? " restored" : " removed (the agent created it)") << "\n";
    }

    void usage() {
        const turn_figures& f = session_;
        std::cout << "session: " << (run_id_.empty() ? std::string("not started") : run_id_)
                  << "\nmodel: " << visible(flags_.model) << "\nmodel calls: " << f.model_calls
                  << "\ntokens: prompt " << f.prompt_tokens << " (cached " << f.cached_tokens
                  << "), completion " << f.completion_tokens << " (reasoning " << f.reasoning_tokens
                  << ")\n";
        std::cout << "status: " << visible(status_line(flags_.model, f)) << "\n";
    }

    asio::io_context& ioc_;
    endpoint& ep_;
    std::shared_ptr<api::client> client_;
    run_flags flags_;
    fs::path root_;
    std::shared_ptr<store::run_store> store_;
    bool color_;
    mcp_servers mcp_;
    /// The journaled run of the session (empty before the first turn) and the flags it was
    /// made with.
    std::string run_id_;
    std::optional<run_flags> journal_flags_;
    /// The conversation after the last turn (none before the first turn of this process).
    std::optional<conversation> conversation_;
    /// The next turn starts a new run with conversation_.
    bool carry_ = false;
    edit_log edits_;
    /// The files as they were before each edit call, by call id (written on the pool).
    std::mutex before_mutex_;
    std::map<std::string, std::pair<fs::path, std::optional<std::string>>> before_edit_;
    turn_figures session_;
};

} // namespace

CLI::App* chat_command::selected(CLI::App& app) {
    CLI::App* which = nullptr;
    if (subcommand != nullptr && subcommand->parsed()) {
        which = subcommand;
    } else if (app.get_subcommands().empty()) {
        which = &app;
    }
    if (which != nullptr) {
        flags.workspace_given = which->count("--workspace") > 0;
    }
    return which;
}

void add_chat_command(
    CLI::App& app,
    chat_command& cmd,
    const std::function<void(CLI::App&, run_flags&)>& add_agent_flags
) {
    cmd.subcommand = app.add_subcommand(
        "chat",
        "The interactive session (also bare `wafer` on a terminal): /help lists its commands"
    );
    for (CLI::App* c : {&app, cmd.subcommand}) {
        add_agent_flags(*c, cmd.flags);
        CLI::Option* cont = c->add_flag(
            "-c,--continue", cmd.flags.continue_last, "Continue the last session of this workspace"
        );
        c->add_option(
             "--resume", cmd.flags.resume_id, "Continue session ID (wafer runs lists them)"
        )
            ->excludes(cont);
    }
}

int chat(const chat_flags& flags) {
    if (!stdin_is_tty()) {
        throw cli_error(
            "the interactive session needs a terminal; use wafer run TASK (or echo TASK | wafer "
            "run)",
            exit_usage
        );
    }
    asio::io_context ioc(1); // outlives the store: its last completions go here
    std::shared_ptr<store::run_store> st;
    run_flags agent_flags = flags;
    fs::path root;
    std::optional<store::run_info> found;
    if (!flags.resume_id.empty()) {
        st = store_of_run(ioc, flags, flags.resume_id);
        try {
            found = wait_for(ioc, st->async_find_run(flags.resume_id));
        } catch (const wafer::error& e) {
            throw cli_error(store_failure_line(e), exit_failure);
        }
        if (!found) {
            throw cli_error(
                "session " + flags.resume_id + " does not exist in " + store_name(flags)
            );
        }
    } else {
        root = workspace_root(flags.workspace);
        st = open_store(ioc, flags);
        if (flags.continue_last) {
            const auto last = runs_of(ioc, *st, root, 1);
            if (last.empty()) {
                throw cli_error(
                    "no session of " + root.string() + " to continue; start one with wafer"
                );
            }
            found = last.front();
        }
    }
    run_flags stored = flags;
    if (found) {
        const std::string hint = store_flag_hint(flags);
        if (found->status != store::run_status::finished) {
            throw cli_error(
                "run " + found->id + " has not finished (" +
                (found->stop_reason.empty() ? std::string(store::to_string(found->status))
                                            : found->stop_reason) +
                "); finish it first: wafer resume " + found->id + hint +
                ", then continue the session"
            );
        }
        if (lease_is_live(*found)) {
            throw cli_error(
                "run " + found->id + " is being driven by another process (" +
                visible(found->lease_owner) + ")"
            );
        }
        // The journal replays with the settings it was made with; flags given here apply to
        // the next turns.
        apply_stored_flags(stored, stored_agent_flags(*found), {});
        apply_stored_flags(agent_flags, stored_agent_flags(*found), flags.given);
        if (root.empty() || !flags.workspace_given) {
            root = !flags.workspace_given && !found->scope.empty()
                       ? workspace_root(found->scope, "the session's workspace")
                       : workspace_root(flags.workspace);
        }
    }
    endpoint ep = open_endpoint(
        ioc.get_executor(), endpoint_request::from_env(flags.base_url, flags.ca_file)
    );
    auto client = std::make_shared<api::client>(ioc.get_executor(), ep.config);
    chat_flags session_flags = flags;
    static_cast<run_flags&>(session_flags) = agent_flags;
    chat_session session(ioc, ep, client, session_flags, root, st);
    if (found) {
        session.continue_run(found->id, stored);
    }
    const int status = session.loop();
    if (ep.offline) {
        ep.offline->stop();
    }
    return status;
}

} // namespace wafer::cli
