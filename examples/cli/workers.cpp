// `wafer worker` and `wafer submit`. A submitted run is a row in the PostgreSQL store with its
// task and the agent flags of the submitting command line (as `wafer run` stores them) and an
// entry in its queue; a worker claims it, builds the coding agent from those flags in the run's
// workspace, and drives it under the claim (wafer::worker), so that a worker that dies leaves
// the run to another one, which resumes it from its journal.
#include "workers.hpp"

#include <wafer/agent.hpp>
#include <wafer/api/client.hpp>
#include <wafer/event_emitter.hpp>
#include <wafer/store/error.hpp>
#include <wafer/store/postgres_queue.hpp>
#include <wafer/store/postgres_store.hpp>
#include <wafer/worker.hpp>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <nlohmann/json.hpp>

#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <sstream>

#include "approval.hpp"
#include "coder.hpp"
#include "conventions.hpp"
#include "endpoint.hpp"
#include "failure.hpp"
#include "json_text.hpp"
#include "mcp.hpp"
#include "stop_signals.hpp"
#include "store.hpp"
#include "visible.hpp"

namespace asio = boost::asio;
namespace fs = std::filesystem;
using nlohmann::json;

namespace wafer::cli {

namespace {

/// The PostgreSQL store and its queue, opened on `ioc` (which must outlive them).
struct queue_store {
    std::shared_ptr<store::postgres_store> st;
    std::shared_ptr<store::postgres_queue> queue;

    ~queue_store() {
        queue.reset(); // before the store it uses
    }
};

queue_store open_queue(
    asio::io_context& ioc, const store_flags& where, std::size_t connections, const char* command
) {
    if (!is_database_url(where.store)) {
        throw cli_error(
            std::string("wafer ") + command +
                " needs a PostgreSQL store: --store postgresql://USER@HOST/DATABASE (the queue "
                "workers share lives there)",
            exit_usage
        );
    }
    queue_store out;
    out.st = open_database(ioc, where, connections);
    out.queue = std::make_shared<store::postgres_queue>(*out.st);
    return out;
}

/// Where a run works: the directory itself when it exists here, else the path as given (a
/// workspace of the machines the workers run on).
std::string workspace_of(const std::string& dir) {
    std::error_code ec;
    fs::path p = fs::canonical(dir, ec);
    if (ec) {
        p = fs::absolute(dir).lexically_normal();
    }
    return p.string();
}

// ---- wafer worker ----------------------------------------------------------------------------

json report_json(const worker_report& r) {
    json j = {
        {"type", "run"},
        {"id", r.run_id},
        {"outcome", std::string(to_string(r.outcome))},
        {"attempt", r.attempt},
        {"recorded", r.recorded}};
    if (!r.reason.empty()) {
        j["reason"] = r.reason;
    }
    if (r.result) {
        j["stop_reason"] = std::string(to_string(r.result->stop_reason));
        j["turns"] = r.result->turns.size();
        j["tokens"] =
            r.result->total_usage().prompt_tokens + r.result->total_usage().completion_tokens;
    }
    return j;
}

/// Drives one claimed run: the coding agent as the run's stored flags describe it, in its
/// workspace, with the MCP servers they name; approvals pause the run unless it was submitted
/// with --yes (a worker never asks anyone).
asio::awaitable<run_result> drive_claim(
    std::shared_ptr<store::run_store> st,
    std::shared_ptr<api::client> client,
    model_flags endpoint_flags,
    store::run_claim claim,
    resume_options options
) {
    const std::optional<store::run_info> info = co_await st->async_find_run(claim.run_id);
    if (!info) {
        throw std::runtime_error("run " + claim.run_id + " is not in the store");
    }
    run_flags flags;
    static_cast<model_flags&>(flags) = endpoint_flags;
    apply_stored_flags(flags, stored_agent_flags(*info), {});
    const fs::path root = workspace_root(info->scope, "the run's workspace");
    const approval_mode mode = flags.yes ? approval_mode::allow : approval_mode::pause;
    mcp_servers mcp = co_await start_mcp_servers(flags, root, mode);
    std::exception_ptr failure;
    run_result result;
    try {
        co_await discover_context_window(flags, *client);
        const agent coder(make_config(flags, root, client, mode, mcp));
        // --yes: the gated tools are approved as their calls come (as `wafer run --yes`).
        std::optional<live_approver> approver;
        if (mode == approval_mode::allow) {
            approver.emplace(mode, unconfined_reason(flags));
            options.approvals = approver->channel();
            options.on_event = [&approver](const event& e) {
                approver->on_event(e);
            };
        }
        auto op = coder.async_resume(claim.run_id, std::move(options));
        result = co_await std::move(op);
    } catch (...) {
        failure = std::current_exception();
    }
    co_await async_stop_mcp(mcp);
    if (failure) {
        std::rethrow_exception(failure);
    }
    co_return result;
}

asio::awaitable<int> work(
    const worker_flags& flags,
    std::shared_ptr<store::run_store> st,
    std::shared_ptr<store::run_queue> queue,
    std::shared_ptr<api::client> client,
    std::string where
) {
    worker_options o;
    o.name = flags.name;
    o.concurrency = flags.concurrency;
    o.lease_ttl = std::chrono::seconds(flags.lease_ttl_s);
    o.drain_timeout = std::chrono::seconds(flags.drain_timeout_s);
    std::size_t left_worker = 0;
    std::optional<wafer::worker> w;
    o.on_claim = [&flags](const store::run_claim& c) {
        if (flags.json) {
            std::cout << json_text(
                             {{"type", "claim"},
                              {"id", c.run_id},
                              {"owner", c.owner},
                              {"attempt", c.attempt}}
                         )
                      << "\n"
                      << std::flush;
        } else {
            std::cout << "claimed " << visible(c.run_id) << " (attempt " << c.attempt << ")\n"
                      << std::flush;
        }
    };
    o.on_report = [&flags, &left_worker, &w](const worker_report& r) {
        if (flags.json) {
            std::cout << json_text(report_json(r)) << "\n" << std::flush;
        } else {
            std::cout << visible(r.run_id) << " " << to_string(r.outcome);
            if (r.result) {
                std::cout << " (" << to_string(r.result->stop_reason) << ", "
                          << r.result->turns.size() << " turns)";
            }
            if (!r.reason.empty()) {
                std::cout << ": " << visible(r.reason);
            }
            std::cout << "\n" << std::flush;
        }
        if (flags.max_runs > 0 && ++left_worker == flags.max_runs) {
            w->drain();
        }
    };
    model_flags endpoint_flags = flags;
    run_driver driver =
        [st, client, endpoint_flags](const store::run_claim& c, resume_options opts) {
            return drive_claim(st, client, endpoint_flags, c, std::move(opts));
        };
    w.emplace(st, queue, std::move(driver), std::move(o));
    std::cerr << "wafer worker " << visible(w->name()) << ": runs from " << visible(where) << ", "
              << flags.concurrency << " at a time (SIGTERM or Ctrl-C drains)\n"
              << std::flush;
    stop_signals signals(co_await asio::this_coro::executor, [&w](int) {
        std::cerr << "wafer worker: draining (no new runs; a second signal exits at once)\n"
                  << std::flush;
        w->drain();
    });
    const worker_stats s = co_await w->async_run();
    signals.cancel();
    std::cerr << "wafer worker: " << s.claimed << " claimed, " << s.completed << " completed, "
              << s.paused << " paused, " << s.failed << " failed, " << s.released << " given back, "
              << s.lost << " lost\n"
              << std::flush;
    co_return exit_ok;
}

// ---- wafer submit ----------------------------------------------------------------------------

struct planned_run {
    std::size_t line = 0; // 0: the command line's task
    queued_run run;
};

/// The runs of a JSONL file: a task string or {"id"?, "input", "model"?, "workspace"?,
/// "max_turns"?} per line. A bad line is one message naming it, and is skipped.
std::vector<planned_run> read_runs(std::istream& in, const submit_flags& flags, int& bad) {
    std::vector<planned_run> out;
    std::string text;
    for (std::size_t n = 1; std::getline(in, text); ++n) {
        if (text.find_first_not_of(" \t\r") == std::string::npos) {
            continue;
        }
        run_flags line_flags = flags;
        planned_run p;
        p.line = n;
        std::string workspace = flags.workspace;
        try {
            const json j = json::parse(text);
            if (j.is_string()) {
                p.run.input = j.get<std::string>();
            } else if (j.is_object()) {
                static const std::set<std::string> known{
                    "id", "input", "model", "workspace", "max_turns"};
                for (const auto& [k, v] : j.items()) {
                    if (!known.contains(k)) {
                        throw std::invalid_argument("unknown key \"" + k + "\"");
                    }
                }
                p.run.input = j.at("input").get<std::string>();
                p.run.run_id = j.value("id", std::string());
                line_flags.model = j.value("model", line_flags.model);
                workspace = j.value("workspace", workspace);
                line_flags.max_turns = j.value("max_turns", line_flags.max_turns);
                if (line_flags.max_turns < 1 || line_flags.max_turns > 1000) {
                    throw std::invalid_argument("max_turns must be 1 to 1000");
                }
                check_model_name(line_flags.model);
            } else {
                throw std::invalid_argument("a line is a task string or a run object");
            }
            if (p.run.input.empty()) {
                throw std::invalid_argument("the input is empty");
            }
        } catch (const std::exception& e) {
            print_failure("line " + std::to_string(n) + ": " + visible(e.what()) + " (skipped)");
            ++bad;
            continue;
        }
        p.run.scope = workspace_of(workspace);
        p.run.metadata = {{"agent_flags", agent_flags_json(line_flags)}};
        out.push_back(std::move(p));
    }
    return out;
}

asio::awaitable<bool> submit_one(store::run_queue& q, store::run_submission sub) {
    co_await q.async_submit(std::move(sub));
    co_return true;
}

asio::awaitable<void> sleep_ms(int ms) {
    asio::steady_timer t(co_await asio::this_coro::executor);
    t.expires_after(std::chrono::milliseconds(ms));
    co_await t.async_wait(asio::use_awaitable);
}

/// Waits until every run in `ids` has left the queue; prints each as it does. The exit status:
/// 0 when all completed, else 1 (3 when one stopped for approval and none failed).
asio::awaitable<int> await_runs(
    store::run_queue& queue, store::run_store& st, std::vector<std::string> ids, bool as_json
) {
    std::set<std::string> open(ids.begin(), ids.end());
    bool failed = false;
    bool paused = false;
    while (!open.empty()) {
        for (auto it = open.begin(); it != open.end();) {
            const auto e = co_await queue.async_find(*it);
            if (!e || e->state == store::queue_state::queued ||
                e->state == store::queue_state::claimed) {
                ++it;
                continue;
            }
            const auto info = co_await st.async_find_run(*it);
            const std::string stop = info ? info->stop_reason : std::string();
            const bool ok = e->state == store::queue_state::done && stop == "completed";
            failed = failed || e->state == store::queue_state::failed;
            paused = paused || stop == "awaiting_approval";
            if (as_json) {
                json j = {
                    {"type", "finished"},
                    {"id", *it},
                    {"state", e->state == store::queue_state::done ? "done" : "failed"},
                    {"stop_reason", stop},
                    {"attempts", e->attempts}};
                if (!e->reason.empty()) {
                    j["reason"] = e->reason;
                }
                std::cout << json_text(j) << "\n" << std::flush;
            } else {
                std::cout << visible(*it) << " " << (ok ? "completed" : visible(stop))
                          << (e->reason.empty() ? "" : ": " + visible(e->reason)) << "\n"
                          << std::flush;
            }
            it = open.erase(it);
        }
        if (!open.empty()) {
            co_await sleep_ms(200);
        }
    }
    co_return failed ? exit_failure : (paused ? exit_awaiting_approval : exit_ok);
}

} // namespace

int worker(const worker_flags& flags) {
    asio::io_context ioc(1);
    // A connection per run at most, and one for claims and heartbeats.
    queue_store qs = open_queue(ioc, flags, flags.concurrency + 1, "worker");
    endpoint ep = open_endpoint(
        ioc.get_executor(), endpoint_request::from_env(flags.base_url, flags.ca_file)
    );
    auto client = std::make_shared<api::client>(ioc.get_executor(), ep.config);
    int status = exit_failure;
    std::exception_ptr failure;
    asio::co_spawn(
        ioc,
        work(flags, qs.st, qs.queue, client, store_name(flags)),
        [&](std::exception_ptr e, int s) {
            failure = e;
            status = s;
            // The offline stand-in and the queue's listening connection would keep the
            // io_context busy forever.
            if (ep.offline) {
                ep.offline->stop();
            }
            ioc.stop();
        }
    );
    ioc.run();
    if (failure) {
        std::rethrow_exception(failure);
    }
    return status;
}

int submit(const submit_flags& flags) {
    std::vector<planned_run> plan;
    int bad = 0;
    if (!flags.file.empty()) {
        if (!flags.task.empty()) {
            throw cli_error("give a TASK or --file, not both", exit_usage);
        }
        if (flags.file == "-") {
            plan = read_runs(std::cin, flags, bad);
        } else {
            std::ifstream in(flags.file);
            if (!in) {
                throw cli_error("cannot read " + flags.file, exit_usage);
            }
            plan = read_runs(in, flags, bad);
        }
    } else {
        if (flags.task.empty()) {
            throw cli_error("nothing to submit: give a TASK or --file FILE.jsonl", exit_usage);
        }
        planned_run p;
        p.run.input = flags.task;
        p.run.run_id = flags.id;
        p.run.scope = workspace_of(flags.workspace);
        p.run.metadata = {{"agent_flags", agent_flags_json(flags)}};
        plan.push_back(std::move(p));
    }
    asio::io_context ioc(1);
    queue_store qs = open_queue(ioc, flags, 2, "submit");
    std::vector<std::string> ids;
    for (auto& p : plan) {
        if (p.run.run_id.empty()) {
            p.run.run_id = make_run_id();
        }
        p.run.agent = "coder";
        p.run.max_attempts = flags.max_attempts;
        const std::string id = p.run.run_id;
        const std::string where = p.line ? "line " + std::to_string(p.line) + ": " : "";
        try {
            wait_for(ioc, submit_one(*qs.queue, make_submission(std::move(p.run))));
        } catch (const wafer::error& e) {
            if (e.code() == store::errc::run_exists) {
                print_failure(where + "run " + visible(id) + " already exists (skipped)");
                ++bad;
                continue;
            }
            throw cli_error(where + store_failure_line(e), exit_failure);
        }
        ids.push_back(id);
        if (flags.json) {
            std::cout << json_text({{"type", "submitted"}, {"id", id}}) << "\n";
        } else {
            std::cout << id << "\n";
        }
    }
    std::cout << std::flush;
    if (flags.wait && !ids.empty()) {
        const int status = wait_for(ioc, await_runs(*qs.queue, *qs.st, ids, flags.json));
        return bad > 0 && status == exit_ok ? exit_failure : status;
    }
    return bad > 0 ? exit_failure : exit_ok;
}

} // namespace wafer::cli
