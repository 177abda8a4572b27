// Approvals: calls that wait for a person. A run without a live channel stops at them and is
// continued through the store (from any process); a run with one waits and goes on. Every
// approved call runs once, with the arguments the person approved; a denied one never runs.
#include <wafer/agent.hpp>
#include <wafer/approval.hpp>
#include <wafer/approval_channel.hpp>
#include <wafer/scripted_model.hpp>
#include <wafer/store/error.hpp>
#include <wafer/store/memory_store.hpp>
#include <wafer/store/sqlite_store.hpp>
#include <wafer/tools/registry.hpp>
#include <wafer/tools/tool.hpp>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>

#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "run_coro.hpp"

namespace asio = boost::asio;
namespace fs = std::filesystem;
using namespace wafer;
using namespace std::chrono_literals;
using nlohmann::json;
using turn = scripted_model::turn;
using wafer::testing::run_coro;

namespace {

struct tool_log {
    std::map<std::string, int> runs;
    std::map<std::string, std::string> args;
};

// "read" is free; "write" always needs approval.
std::shared_ptr<tools::registry> make_tools(std::shared_ptr<tool_log> log) {
    auto reg = std::make_shared<tools::registry>();
    const json any = {{"type", "object"}};
    auto handler = [log](std::string text) {
        return [log, text](json args, const tools::call_context& ctx) {
            ++log->runs[ctx.call_id];
            log->args[ctx.call_id] = args.dump();
            return text;
        };
    };
    tools::tool_options ro;
    ro.read_only = true;
    reg->add(tools::make_tool<json>("read", "reads", any, handler("read ok"), ro));
    tools::tool_options gated;
    gated.needs_approval = true;
    reg->add(tools::make_tool<json>("write", "writes", any, handler("written"), gated));
    return reg;
}

// One step of a read and two writes, then an answer naming what the tools said.
std::shared_ptr<scripted_model> make_model() {
    auto m = std::make_shared<scripted_model>("zai-glm-4.7");
    m->set_responder([](const api::chat_request& req, std::size_t) {
        std::string results;
        for (const auto& msg : req.messages) {
            if (msg.role == api::role::tool) {
                results += "[" + msg.text() + "]";
            }
        }
        if (results.empty()) {
            return turn::calls(
                {{"a", "read", "{}"},
                 {"b", "write", R"({"path":"x"})"},
                 {"c", "write", R"({"path":"y"})"}},
                "plan"
            );
        }
        return turn::text("done: " + results);
    });
    return m;
}

struct fixture {
    asio::io_context ioc;
    std::shared_ptr<tool_log> log = std::make_shared<tool_log>();
    std::shared_ptr<scripted_model> model = make_model();

    agent make_agent() {
        agent_config cfg;
        cfg.model = model;
        cfg.system_prompt = "sys";
        cfg.tools = make_tools(log);
        return agent(std::move(cfg));
    }
};

std::vector<std::string> ids_of(const std::vector<pending_approval>& p) {
    std::vector<std::string> out;
    for (const auto& x : p) {
        out.push_back(x.call_id);
    }
    return out;
}

const api::tool_call* call_in(const run_result& r, const std::string& id) {
    for (const auto& m : r.conversation.messages()) {
        for (const auto& c : m.tool_calls) {
            if (c.id == id) {
                return &c;
            }
        }
    }
    return nullptr;
}

std::string result_of(const run_result& r, const std::string& call_id) {
    for (const auto& m : r.conversation.messages()) {
        if (m.role == api::role::tool && m.tool_call_id == call_id) {
            return m.text();
        }
    }
    return "<none>";
}

bool has(const std::string& s, const std::string& part) {
    return s.find(part) != std::string::npos;
}

// The error code an awaitable throws (a default code if it throws none).
template <class T>
boost::system::error_code
code_of(asio::io_context& ioc, asio::awaitable<T> op, std::string* detail) {
    try {
        run_coro(ioc, std::move(op));
    } catch (const wafer::error& e) {
        if (detail) {
            *detail = e.diag().detail;
        }
        return e.code();
    }
    return {};
}

run_result paused_run(fixture& f, std::shared_ptr<store::run_store> st) {
    agent a = f.make_agent();
    run_options opts;
    opts.store = std::move(st);
    opts.run_id = "r";
    return run_coro(f.ioc, a.async_run("task", std::move(opts)));
}

} // namespace

TEST_SUITE("unit/approvals") {
    TEST_CASE("a journaled run stops at calls that need approval; decisions through the store "
              "and resumes continue it, a partial answer leaves the rest pending") {
        fixture f;
        auto st = std::make_shared<store::memory_store>();
        run_result r = paused_run(f, st);
        CHECK(r.stop_reason == stop_reason::awaiting_approval);
        CHECK(ids_of(r.pending_approvals) == std::vector<std::string>{"b", "c"});
        CHECK(r.pending_approvals[0].tool == "write");
        CHECK(r.pending_approvals[0].arguments == R"({"path":"x"})");
        CHECK(f.log->runs == std::map<std::string, int>{{"a", 1}}); // the free call ran
        auto row = run_coro(f.ioc, st->async_find_run("r"));
        REQUIRE(row);
        CHECK(row->status == store::run_status::awaiting_approval);
        CHECK(row->stop_reason == "awaiting_approval");
        CHECK(row->lease_owner.empty());
        auto pending = run_coro(f.ioc, async_pending_approvals(*st, "r"));
        CHECK(ids_of(pending) == std::vector<std::string>{"b", "c"});

        // b approved with other arguments; c not yet.
        run_coro(f.ioc, async_approve(*st, "r", "b", std::string(R"({"path":"edited"})")));
        CHECK(
            ids_of(run_coro(f.ioc, async_pending_approvals(*st, "r"))) ==
            std::vector<std::string>{"c"}
        );

        fixture g; // another process: its own agent and tools
        agent b = g.make_agent();
        resume_options ro;
        ro.store = st;
        run_result r2 = run_coro(g.ioc, b.async_resume("r", ro));
        CHECK(r2.stop_reason == stop_reason::awaiting_approval);
        CHECK(ids_of(r2.pending_approvals) == std::vector<std::string>{"c"});
        CHECK(g.log->runs == std::map<std::string, int>{{"b", 1}}); // a did not run again
        CHECK(g.log->args["b"] == R"({"path":"edited"})");
        CHECK(g.model->request_count() == 0); // nothing asked of the model again

        run_coro(g.ioc, async_deny(*st, "r", "c", "not that file"));
        CHECK(run_coro(g.ioc, async_pending_approvals(*st, "r")).empty());
        fixture h;
        agent c = h.make_agent();
        run_result r3 = run_coro(h.ioc, c.async_resume("r", ro));
        CHECK(r3.stop_reason == stop_reason::completed);
        CHECK(r3.pending_approvals.empty());
        CHECK(h.log->runs.empty()); // b ran once, in g; c never
        CHECK(has(r3.final_text, "[read ok][written][denied: the user declined"));
        CHECK(has(result_of(r3, "c"), "not that file"));
        // The history says what ran: b with the approved arguments.
        REQUIRE(call_in(r3, "b"));
        CHECK(call_in(r3, "b")->arguments == R"({"path":"edited"})");
        CHECK(call_in(r3, "c")->arguments == R"({"path":"y"})");
        CHECK(run_coro(h.ioc, st->async_find_run("r"))->status == store::run_status::finished);
    }

    TEST_CASE("bad decisions are refused with a clear error and change nothing") {
        fixture f;
        auto st = std::make_shared<store::memory_store>();
        paused_run(f, st);
        const auto before = run_coro(f.ioc, st->async_read_journal("r")).size();
        std::string detail;

        CHECK(
            code_of(f.ioc, async_approve(*st, "r", "zz"), &detail) ==
            make_error_code(errc::invalid_request)
        );
        CHECK(has(detail, "no pending call zz"));
        CHECK(has(detail, "b (write), c (write)"));

        CHECK(
            code_of(f.ioc, async_approve(*st, "r", "b", std::string("[1]")), &detail) ==
            make_error_code(errc::invalid_request)
        );
        CHECK(has(detail, "not a JSON object"));

        CHECK(
            code_of(f.ioc, async_approve(*st, "nope", "b"), &detail) ==
            make_error_code(store::errc::run_not_found)
        );

        // While a process drives the run (holds its lease), nobody else writes to it.
        REQUIRE(run_coro(f.ioc, st->async_acquire_lease("r", "host:1:x:1", 30s)));
        CHECK(
            code_of(f.ioc, async_deny(*st, "r", "b"), &detail) ==
            make_error_code(store::errc::lease_held)
        );
        run_coro(f.ioc, st->async_release_lease("r", "host:1:x:1"));

        // A second decision on a call is refused; a message resume of a waiting run too.
        run_coro(f.ioc, async_approve(*st, "r", "b"));
        CHECK(
            code_of(f.ioc, async_deny(*st, "r", "b"), &detail) ==
            make_error_code(errc::invalid_request)
        );
        CHECK(has(detail, "pending: c (write)"));
        agent a = f.make_agent();
        resume_options ro;
        ro.store = st;
        ro.message = "hello";
        CHECK(
            code_of(f.ioc, a.async_resume("r", ro), &detail) ==
            make_error_code(errc::invalid_request)
        );
        CHECK(run_coro(f.ioc, st->async_read_journal("r")).size() == before + 1);

        // An agent that would not have held the calls (no needs_approval) does not reproduce
        // the journal: refused, as any other configuration mismatch.
        {
            fixture g;
            agent_config cfg;
            cfg.model = g.model;
            auto reg = std::make_shared<tools::registry>();
            for (const auto& name : make_tools(g.log)->names()) {
                tools::tool t = *make_tools(g.log)->find(name);
                t.options.needs_approval = false;
                reg->add(std::move(t));
            }
            cfg.tools = reg;
            agent ungated(std::move(cfg));
            resume_options plain;
            plain.store = st;
            CHECK(
                code_of(g.ioc, ungated.async_resume("r", plain), &detail) ==
                make_error_code(errc::invalid_request)
            );
            CHECK(has(detail, "configured differently"));
            CHECK(g.log->runs.empty());
        }

        // A finished run waits for nothing.
        fixture g;
        auto done = std::make_shared<store::memory_store>();
        agent yes = [&] {
            agent_config cfg;
            cfg.model = g.model;
            cfg.tools = std::make_shared<tools::registry>(); // no gated tool at all
            return agent(std::move(cfg));
        }();
        run_options o;
        o.store = done;
        o.run_id = "f";
        CHECK(run_coro(g.ioc, yes.async_run("t", o)).stop_reason == stop_reason::completed);
        CHECK(
            code_of(g.ioc, async_approve(*done, "f", "b"), &detail) ==
            make_error_code(errc::invalid_request)
        );
        CHECK(has(detail, "not waiting for approval (completed)"));
        CHECK(run_coro(g.ioc, async_pending_approvals(*done, "f")).empty());
    }

    TEST_CASE("a live channel: the run asks over the event stream and goes on; the decisions "
              "are journaled, and a resume from any point never runs a call twice") {
        fixture f;
        auto st = std::make_shared<store::memory_store>();
        auto channel = std::make_shared<approval_channel>();
        agent a = f.make_agent();
        run_options opts;
        opts.store = st;
        opts.run_id = "r";
        opts.approvals = channel;
        std::vector<std::string> asked;
        opts.on_event = [&](const event& e) {
            if (const auto* q = e.get_if<events::approval_requested>()) {
                asked.push_back(q->call_id);
                if (q->call_id == "b") {
                    channel->approve("b", std::string(R"({"path":"z"})"));
                } else {
                    channel->deny(q->call_id, "no");
                }
            }
        };
        run_result r = run_coro(f.ioc, a.async_run("task", std::move(opts)));
        CHECK(r.stop_reason == stop_reason::completed);
        CHECK(asked == std::vector<std::string>{"b", "c"});
        CHECK(f.log->runs == std::map<std::string, int>{{"a", 1}, {"b", 1}});
        CHECK(f.log->args["b"] == R"({"path":"z"})");
        CHECK(has(result_of(r, "c"), "denied"));
        const auto journal = run_coro(f.ioc, st->async_read_journal("r"));
        std::size_t approvals = 0;
        for (const auto& e : journal) {
            approvals += e.kind == "approval" ? 1U : 0U;
        }
        CHECK(approvals == 2);
        const auto info = *run_coro(f.ioc, st->async_find_run("r"));

        // A crash after any prefix: the resumed run (no channel) never runs a finished or an
        // in-doubt write again, and stops for what has no decision in the prefix.
        for (std::size_t cut = 0; cut + 1 < journal.size(); ++cut) {
            CAPTURE(cut);
            auto crashed = std::make_shared<store::memory_store>();
            store::run_info row = info;
            row.status = store::run_status::running;
            row.stop_reason.clear();
            row.lease_owner = "dead-process";
            row.lease_expires_ms = 1;
            run_coro(f.ioc, crashed->async_create_run(row));
            std::vector<store::journal_entry> prefix(
                journal.begin(), journal.begin() + static_cast<std::ptrdiff_t>(cut)
            );
            run_coro(f.ioc, crashed->async_append("r", "", prefix, {}));
            bool b_decided = false;
            bool b_dispatched = false;
            for (const auto& e : prefix) {
                const json body = json::parse(e.body);
                b_decided |= e.kind == "approval" && body.at("call_id") == "b";
                if (e.kind == "dispatch") {
                    for (const auto& id : body.at("calls")) {
                        b_dispatched |= id == "b";
                    }
                }
            }
            fixture g;
            agent b = g.make_agent();
            resume_options ro;
            ro.store = crashed;
            run_result rr = run_coro(g.ioc, b.async_resume("r", ro));
            if (b_dispatched) {
                CHECK(g.log->runs["b"] == 0); // finished or in doubt: not run again
            } else if (b_decided) {
                CHECK(g.log->runs["b"] == 1);
                CHECK(g.log->args["b"] == R"({"path":"z"})");
            } else {
                CHECK(g.log->runs["b"] == 0);
            }
            CHECK(g.log->runs["c"] == 0);
            if (rr.stop_reason == stop_reason::awaiting_approval) {
                CHECK_FALSE(rr.pending_approvals.empty());
            } else {
                CHECK(rr.stop_reason == stop_reason::completed);
            }
        }
    }

    TEST_CASE("a live channel: decisions sent before the run asks count; the run's deadline "
              "ends a wait nobody answers; one run per channel") {
        SUBCASE("decided in advance") {
            fixture f;
            auto channel = std::make_shared<approval_channel>();
            channel->approve("b");
            channel->approve("c");
            agent a = f.make_agent();
            run_options opts;
            opts.approvals = channel;
            run_result r = run_coro(f.ioc, a.async_run("task", std::move(opts)));
            CHECK(r.stop_reason == stop_reason::completed);
            CHECK(f.log->runs == std::map<std::string, int>{{"a", 1}, {"b", 1}, {"c", 1}});
        }
        SUBCASE("nobody answers") {
            fixture f;
            agent_config cfg;
            cfg.model = f.model;
            cfg.tools = make_tools(f.log);
            cfg.limits.run_timeout = 150ms;
            agent a(std::move(cfg));
            auto channel = std::make_shared<approval_channel>();
            run_options opts;
            opts.approvals = channel;
            bool second_refused = false;
            opts.on_event = [&](const event& e) {
                if (e.is<events::approval_requested>() && !second_refused) {
                    // The channel is in use: another run cannot take it.
                    run_options other;
                    other.approvals = channel;
                    try {
                        auto op = a.async_run("other", std::move(other));
                        asio::co_spawn(
                            f.ioc,
                            std::move(op),
                            [&](std::exception_ptr ep, run_result) {
                                try {
                                    if (ep) {
                                        std::rethrow_exception(ep);
                                    }
                                } catch (const std::invalid_argument&) {
                                    second_refused = true;
                                }
                            }
                        );
                    } catch (const std::invalid_argument&) {
                        second_refused = true;
                    }
                }
            };
            const auto t0 = std::chrono::steady_clock::now();
            run_result r = run_coro(f.ioc, a.async_run("task", std::move(opts)));
            CHECK(r.stop_reason == stop_reason::deadline);
            CHECK(std::chrono::steady_clock::now() - t0 < 10s);
            CHECK(has(result_of(r, "b"), "deadline passed"));
            CHECK(f.log->runs == std::map<std::string, int>{{"a", 1}});
            CHECK(second_refused);
        }
    }

    TEST_CASE("across store handles on one SQLite file: pause, decide, resume") {
        const fs::path dir =
            fs::temp_directory_path() / ("wafer-approvals-" + std::to_string(::getpid()));
        fs::remove_all(dir);
        const fs::path file = dir / "runs.db";
        fixture f;
        {
            auto st = std::make_shared<store::sqlite_store>(file);
            CHECK(paused_run(f, st).stop_reason == stop_reason::awaiting_approval);
        }
        {
            store::sqlite_store st(file);
            run_coro(f.ioc, async_approve(st, "r", "b"));
            run_coro(f.ioc, async_approve(st, "r", "c"));
        }
        fixture g;
        auto st = std::make_shared<store::sqlite_store>(file);
        agent b = g.make_agent();
        resume_options ro;
        ro.store = st;
        run_result r = run_coro(g.ioc, b.async_resume("r", ro));
        CHECK(r.stop_reason == stop_reason::completed);
        CHECK(g.log->runs == std::map<std::string, int>{{"b", 1}, {"c", 1}});
        st.reset();
        fs::remove_all(dir);
    }
}
