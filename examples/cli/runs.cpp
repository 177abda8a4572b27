// `wafer runs` and `wafer runs show ID`: the journaled runs of a workspace, and one run's history
// as its journal holds it. Everything that came from a user, the model or a tool (tasks, answers,
// arguments, results) is shown through visible(); JSON lines are JSON, escaped by the encoder.
#include <wafer/api/message.hpp>
#include <wafer/store/run_store.hpp>

#include <boost/asio/io_context.hpp>

#include <nlohmann/json.hpp>

#include <cstdint>
#include <ctime>
#include <filesystem>
#include <iostream>
#include <memory>
#include <string>
#include <string_view>
#include <sys/ioctl.h>
#include <unistd.h>
#include <vector>

#include "commands.hpp"
#include "failure.hpp"
#include "json_text.hpp"
#include "printer.hpp"
#include "store.hpp"
#include "terminal.hpp"
#include "visible.hpp"

namespace asio = boost::asio;
namespace fs = std::filesystem;
using nlohmann::json;

namespace wafer::cli {

namespace {

/// The first line of `s`, at most `width` code points of it, with "..." when cut.
std::string first_line(std::string_view s, std::size_t width) {
    const std::size_t nl = s.find_first_of("\r\n");
    const bool more_lines = nl != std::string_view::npos;
    s = s.substr(0, nl);
    std::size_t points = 0;
    std::size_t i = 0;
    for (; i < s.size(); ++i) {
        if ((static_cast<unsigned char>(s[i]) & 0xC0U) != 0x80U && ++points > width) {
            break;
        }
    }
    if (i < s.size()) {
        return std::string(s.substr(0, i)) + "...";
    }
    return std::string(s) + (more_lines ? " ..." : "");
}

std::string local_time(std::int64_t ms) {
    const std::time_t t = static_cast<std::time_t>(ms / 1000);
    std::tm tm{};
    if (::localtime_r(&t, &tm) == nullptr) {
        return "?";
    }
    char buf[32];
    std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M:%S", &tm);
    return buf;
}

/// What `wafer runs` shows as the state: the stored status, except that a run nobody drives
/// although it has not finished (cancelled, or its process died) is "interrupted".
std::string shown_status(const store::run_info& r) {
    if (r.status == store::run_status::running && !lease_is_live(r)) {
        return "interrupted";
    }
    return std::string(store::to_string(r.status));
}

json run_json(const store::run_info& r) {
    return {
        {"id", r.id},
        {"status", std::string(store::to_string(r.status))},
        {"stop_reason", r.stop_reason},
        {"live", lease_is_live(r)},
        {"turns", r.turns},
        {"prompt_tokens", r.prompt_tokens},
        {"completion_tokens", r.completion_tokens},
        {"task", r.task},
        {"scope", r.scope},
        {"agent", r.agent},
        {"created_ms", r.created_ms},
        {"updated_ms", r.updated_ms}};
}

std::size_t terminal_columns() {
    winsize ws{};
    if (stdout_is_tty() && ::ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0) {
        return ws.ws_col;
    }
    return 0;
}

std::string pad(std::string s, std::size_t width) {
    if (s.size() < width) {
        s.append(width - s.size(), ' ');
    }
    return s;
}

std::string pad_left(const std::string& s, std::size_t width) {
    return s.size() < width ? std::string(width - s.size(), ' ') + s : s;
}

template <class T>
T store_call(asio::io_context& ioc, asio::awaitable<T> op) {
    try {
        return wait_for(ioc, std::move(op));
    } catch (const wafer::error& e) {
        throw cli_error(store_failure_line(e), exit_failure);
    }
}

// ---- runs show -------------------------------------------------------------------------------

/// `text` with every non-empty line after the first indented by `indent`, without a final
/// newline.
std::string hanging(const std::string& text, const std::string& indent) {
    std::string out;
    for (std::size_t i = 0; i < text.size(); ++i) {
        out += text[i];
        if (text[i] == '\n' && i + 1 < text.size() && text[i + 1] != '\n') {
            out += indent;
        }
    }
    while (!out.empty() && (out.back() == ' ' || out.back() == '\n')) {
        out.pop_back();
    }
    return out;
}

void print_message(std::ostream& out, const api::message& m, bool full = false) {
    const std::string text = m.text();
    if (m.role == api::role::tool) {
        return; // results are printed from the tool_result entries
    }
    const std::string who(api::to_string(m.role));
    if (!text.empty()) {
        out << who << ": " << hanging(visible(text, layout::text), "  ") << "\n";
    } else if (m.tool_calls.empty()) {
        out << who << ": (empty)\n";
    }
    for (const auto& c : m.tool_calls) {
        std::string args = c.arguments;
        if (!full && args.size() > 300) {
            args = first_line(args, 300);
        }
        out << "  -> " << visible(c.name) << " " << visible(args) << "\n";
    }
}

void print_entry(std::ostream& out, const store::journal_entry& e, bool full) {
    const json body = json::parse(e.body);
    if (e.kind == "model_reply" && body.value("purpose", "") == "summary") {
        // What context compaction put in place of older messages (they are above, whole).
        const std::string text = body.at("reply").at("message").get<api::message>().text();
        out << "  (context compacted: the model summarised earlier messages"
            << (full ? ":\n" + hanging(visible(text, layout::text), "   ") : std::string(")"))
            << "\n";
    } else if (e.kind == "model_reply") {
        print_message(out, body.at("reply").at("message").get<api::message>(), full);
    } else if (e.kind == "tool_result") {
        const json& r = body.at("result");
        const bool failed = r.value("is_error", false);
        const std::string status = r.value("status", "ok");
        out << "  <- " << visible(r.value("name", "?")) << (failed ? " failed" : " ok")
            << (status == "ok" ? "" : " (" + visible(status) + ")") << "\n";
        if (full) {
            out << "       " << hanging(visible(r.value("content", ""), layout::text), "       ")
                << "\n";
        } else {
            out << preview(r.value("content", ""), "       ", failed ? 6 : 5, 120);
        }
    } else if (e.kind == "follow_up") {
        out << "\nuser: " << hanging(visible(body.value("message", ""), layout::text), "  ")
            << "\n";
    } else if (e.kind == "review") {
        const json& r = body.at("review");
        const json& v = r.at("verdict");
        out << "  [critic " << visible(r.value("critic", "?")) << ", "
            << visible(r.value("gate", "?")) << "] " << visible(v.value("decision", "?"));
        const json reasons = v.value("reasons", json::array());
        for (std::size_t i = 0; i < reasons.size(); ++i) {
            out << (i == 0 ? ": " : "; ")
                << visible(
                       reasons[i].is_string() ? reasons[i].get<std::string>()
                                              : json_text(reasons[i])
                   );
        }
        out << "\n";
    } else if (e.kind == "model_failed") {
        std::string why = body.value("why", "error");
        if (body.contains("error")) {
            why += ": " + body["error"].value("diagnostics", json::object()).value("detail", "");
        }
        out << "  (the model call failed: " << visible(why) << ")\n";
    } else if (e.kind == "stopped") {
        out << "== " << visible(body.value("stop_reason", "?")) << "\n";
        for (const auto& p : body.value("pending", json::array())) {
            out << "  ? " << visible(p.value("call_id", "?"))
                << " waits for approval: " << visible(p.value("tool", "?")) << "\n";
        }
    } else if (e.kind == "approval") {
        const bool yes = body.value("approved", false);
        out << "  " << (yes ? "approved " : "denied ") << visible(body.value("call_id", "?"));
        if (body.contains("arguments")) {
            out << " with arguments " << visible(first_line(body.value("arguments", ""), 300));
        }
        if (const std::string m = body.value("message", ""); !m.empty()) {
            out << ": " << visible(first_line(m, 300));
        }
        out << "\n";
    }
    // dispatch and dispatch_done mark where tool calls started and ended: nothing to show.
}

} // namespace

int runs(const runs_flags& flags) {
    const std::string store_shown = store_name(flags);
    fs::path root;
    if (!flags.all) {
        std::error_code ec;
        root = fs::canonical(flags.workspace, ec);
        if (ec) {
            throw cli_error("--workspace " + flags.workspace + " is not a directory", exit_usage);
        }
    }
    asio::io_context ioc(1); // outlives the store: its last completions go here
    std::shared_ptr<store::run_store> st = existing_store(ioc, flags);
    std::vector<store::run_info> list;
    if (st) {
        store::run_filter filter;
        filter.scope = flags.all ? std::string() : root.string();
        filter.top_level_only = true;
        list = store_call(ioc, st->async_list_runs(std::move(filter)));
    }
    if (flags.json) {
        for (const auto& r : list) {
            std::cout << json_text(run_json(r)) << "\n";
        }
        std::cout << std::flush;
        return exit_ok;
    }
    if (list.empty()) {
        std::cerr << "wafer: no runs" << (flags.all ? "" : " of " + visible(root.string()))
                  << " in " << visible(store_shown)
                  << (flags.all ? "" : " (--all: every workspace)") << "\n";
        return exit_ok;
    }
    const std::size_t status_w = 12;
    const std::size_t stop_w = 20;
    std::string head = pad("ID", 17) + pad("STATUS", status_w) + pad("STOP", stop_w) +
                       pad_left("TURNS", 5) + pad_left("TOKENS", 9) + "  " + pad("UPDATED", 21);
    const std::size_t used = head.size() + (flags.all ? 30 : 0);
    const std::size_t cols = terminal_columns();
    const std::size_t task_w = cols > used + 20 ? cols - used - 3 : (cols > 0 ? 20 : 60);
    std::cout << head << (flags.all ? pad("WORKSPACE", 30) : "") << "TASK\n";
    for (const auto& r : list) {
        std::string line = pad(visible(r.id), 17) + pad(shown_status(r), status_w) +
                           pad(visible(r.stop_reason.empty() ? "-" : r.stop_reason), stop_w) +
                           pad_left(std::to_string(r.turns), 5) +
                           pad_left(std::to_string(r.prompt_tokens + r.completion_tokens), 9) +
                           "  " + pad(local_time(r.updated_ms), 21);
        if (flags.all) {
            std::string where = r.scope;
            if (where.size() > 28) {
                where = "..." + where.substr(where.size() - 25);
            }
            line += pad(visible(where), 30);
        }
        std::cout << line << visible(first_line(r.task, task_w)) << "\n";
    }
    std::cout << std::flush;
    return exit_ok;
}

int show_run(const runs_flags& flags) {
    asio::io_context ioc(1); // outlives the store: its last completions go here
    std::shared_ptr<store::run_store> st = existing_store(ioc, flags);
    if (!st) {
        throw cli_error(
            "run " + flags.show_id + " does not exist (there is no run store at " +
            store_name(flags) + ")"
        );
    }
    const std::optional<store::run_info> info = store_call(ioc, st->async_find_run(flags.show_id));
    if (!info) {
        throw cli_error("run " + flags.show_id + " does not exist in " + store_name(flags));
    }
    const std::vector<store::journal_entry> journal =
        store_call(ioc, st->async_read_journal(info->id));

    if (flags.json) {
        json head = run_json(*info);
        head["type"] = "run";
        std::cout << json_text(head) << "\n";
        for (const auto& e : journal) {
            json line = {{"type", "entry"}, {"seq", e.seq}, {"kind", e.kind}, {"at_ms", e.at_ms}};
            try {
                line["body"] = json::parse(e.body);
            } catch (const json::exception&) {
                line["body_text"] = e.body; // shown as stored: the entry does not parse
            }
            std::cout << json_text(line) << "\n";
        }
        std::cout << std::flush;
        return exit_ok;
    }

    std::ostream& out = std::cout;
    out << "run " << visible(info->id) << ": " << shown_status(*info)
        << (info->stop_reason.empty() ? "" : " (" + visible(info->stop_reason) + ")") << ", "
        << info->turns << " turns, " << (info->prompt_tokens + info->completion_tokens)
        << " tokens\nworkspace: " << visible(info->scope)
        << "\ncreated: " << local_time(info->created_ms)
        << "\nupdated: " << local_time(info->updated_ms) << "\n\n";
    // The starting history, if the run was given one, then the task.
    try {
        const json setup = json::parse(info->setup);
        if (setup.contains("history") && setup["history"].is_object() &&
            setup["history"].contains("messages")) {
            for (const auto& m : setup["history"]["messages"]) {
                const auto msg = m.get<api::message>();
                if (msg.role != api::role::system) {
                    print_message(out, msg);
                }
            }
        }
    } catch (const json::exception&) { // NOLINT(bugprone-empty-catch)
        // The task below is the row's own copy.
    }
    out << "user: " << hanging(visible(info->task, layout::text), "  ") << "\n";
    for (const auto& e : journal) {
        try {
            print_entry(out, e, flags.full);
        } catch (const json::exception&) {
            out << "  (journal entry " << e.seq << ", " << visible(e.kind) << ", does not parse)\n";
        }
    }
    if (info->status != store::run_status::finished) {
        out
            << (lease_is_live(*info) ? "(running in another process)\n"
                                     : "(interrupted: wafer resume " + visible(info->id) +
                                           store_flag_hint(flags) + " continues it)\n");
    }
    out << std::flush;
    return exit_ok;
}

} // namespace wafer::cli
