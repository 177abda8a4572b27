// Durable runs: the journal a run writes, and resuming it from every step boundary, with the
// in-doubt policy, the reconcile hook, idempotency keys and the errors resume gives.
#include <wafer/agent.hpp>
#include <wafer/scripted_model.hpp>
#include <wafer/store/error.hpp>
#include <wafer/store/memory_store.hpp>
#include <wafer/store/sqlite_store.hpp>
#include <wafer/tools/registry.hpp>
#include <wafer/tools/tool.hpp>

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

#include <filesystem>
#include <map>
#include <memory>
#include <set>
#include <stdlib.h>
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

// Which calls ran, how often, and with which idempotency keys.
struct tool_log {
    std::map<std::string, int> runs;
    std::map<std::string, std::string> keys;
};

// A handler that records its call in `log` and answers `text`.
auto logging_handler(std::shared_ptr<tool_log> log, std::string text) {
    return [log = std::move(log), text = std::move(text)](json, const tools::call_context& ctx) {
        ++log->runs[ctx.call_id];
        log->keys[ctx.call_id] = ctx.idempotency_key;
        return text;
    };
}

std::shared_ptr<tools::registry> make_tools(std::shared_ptr<tool_log> log) {
    auto reg = std::make_shared<tools::registry>();
    json any = {{"type", "object"}};
    tools::tool_options ro;
    ro.read_only = true;
    reg->add(tools::make_tool<json>("read", "reads", any, logging_handler(log, "read ok"), ro));
    reg->add(tools::make_tool<json>("write", "writes", any, logging_handler(log, "written")));
    return reg;
}

// Answers by where the conversation is, so that a resumed run gets the same replies: two reads
// and a write, then a write, then the answer.
std::shared_ptr<scripted_model> make_model() {
    auto m = std::make_shared<scripted_model>("zai-glm-4.7");
    m->set_responder([](const api::chat_request& req, std::size_t) {
        std::size_t results = 0;
        for (const auto& msg : req.messages) {
            results += msg.role == api::role::tool ? 1U : 0U;
        }
        if (results == 0) {
            return turn::calls(
                {{"a", "read", "{}"}, {"b", "write", "{}"}, {"c", "read", "{}"}}, "plan"
            );
        }
        if (results == 3) {
            return turn::calls({{"d", "write", "{}"}}, "more");
        }
        return turn::text("done after " + std::to_string(results) + " results");
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

std::vector<std::string> kinds(const std::vector<store::journal_entry>& j) {
    std::vector<std::string> out;
    for (const auto& e : j) {
        out.push_back(e.kind);
    }
    return out;
}

// The calls a journal prefix has a result for, and the calls it dispatched.
struct prefix_facts {
    std::set<std::string> finished;
    std::set<std::string> dispatched;
    std::size_t replies = 0;
};

prefix_facts facts_of(const std::vector<store::journal_entry>& j, std::size_t n) {
    prefix_facts f;
    for (std::size_t i = 0; i < n; ++i) {
        const json body = json::parse(j[i].body);
        if (j[i].kind == "tool_result") {
            f.finished.insert(body.at("result").at("tool_call_id").get<std::string>());
        } else if (j[i].kind == "dispatch") {
            for (const auto& id : body.at("calls")) {
                f.dispatched.insert(id.get<std::string>());
            }
        } else if (j[i].kind == "model_reply") {
            ++f.replies;
        }
    }
    return f;
}

std::string result_of(const run_result& r, const std::string& call_id) {
    for (const auto& m : r.conversation.messages()) {
        if (m.role == api::role::tool && m.tool_call_id == call_id) {
            return m.text();
        }
    }
    return "<none>";
}

// The row of a run with task "t" that has journaled nothing yet.
store::run_info row_of(const std::string& id) {
    store::run_info row;
    row.id = id;
    row.setup = json{{"version", 1}, {"run_id", id}, {"input", "t"}, {"history", nullptr}}.dump();
    return row;
}

// A registry with a read-only "read" tool, for tests that add their own "write".
std::shared_ptr<tools::registry> registry_with_read() {
    auto reg = std::make_shared<tools::registry>();
    tools::tool_options ro;
    ro.read_only = true;
    reg->add(tools::make_tool<json>(
        "read", "reads", json{{"type", "object"}}, [](json) { return std::string("r"); }, ro
    ));
    return reg;
}

// Run "r" journaled to its end in a memory store: its journal and its row.
std::pair<std::vector<store::journal_entry>, store::run_info> journal_of_full_run(fixture& f) {
    auto full = std::make_shared<store::memory_store>();
    agent a = f.make_agent();
    run_options opts;
    opts.store = full;
    opts.run_id = "r";
    run_coro(f.ioc, a.async_run("task", std::move(opts)));
    return {
        run_coro(f.ioc, full->async_read_journal("r")),
        *run_coro(f.ioc, full->async_find_run("r"))};
}

} // namespace

TEST_SUITE("unit/durable") {
    TEST_CASE("a journaled run: its row, its journal, and a follow-up in another agent") {
        fixture f;
        auto st = std::make_shared<store::memory_store>();
        agent a = f.make_agent();
        run_options opts;
        opts.store = st;
        opts.run_id = "r1";
        opts.scope = "/work/x";
        run_result r = run_coro(f.ioc, a.async_run("the task", std::move(opts)));
        CHECK(r.stop_reason == stop_reason::completed);
        CHECK(r.final_text == "done after 4 results");

        auto info = run_coro(f.ioc, st->async_find_run("r1"));
        REQUIRE(info);
        CHECK(info->status == store::run_status::finished);
        CHECK(info->stop_reason == "completed");
        CHECK(info->task == "the task");
        CHECK(info->scope == "/work/x");
        CHECK(info->turns == 3);
        CHECK(info->lease_owner.empty()); // released
        auto journal = run_coro(f.ioc, st->async_read_journal("r1"));
        CHECK(
            kinds(journal) ==
            std::vector<std::string>{
                "model_reply",
                "dispatch",
                "tool_result",
                "tool_result",
                "tool_result",
                "dispatch_done",
                "model_reply",
                "dispatch",
                "tool_result",
                "dispatch_done",
                "model_reply",
                "stopped"}
        );
        // Every handler saw a key made of the run id and its call id.
        CHECK(f.log->keys["b"] == "r1/b");

        // A finished run needs a message; with one, it goes on with its whole history.
        CHECK_THROWS_AS(run_coro(f.ioc, a.async_resume("r1", {st})), wafer::error);
        resume_options ro;
        ro.store = st;
        ro.message = "and now?";
        fixture g; // another agent, as another process would build it
        g.model->set_responder([](const api::chat_request& req, std::size_t) {
            return turn::text("follow-up on " + std::to_string(req.messages.size()) + " messages");
        });
        agent b = g.make_agent();
        run_result r2 = run_coro(g.ioc, b.async_resume("r1", ro));
        CHECK(r2.stop_reason == stop_reason::completed);
        // system, task, 3 calls + results, 1 call + result, the answer, the follow-up
        CHECK(r2.final_text == "follow-up on 10 messages");
        CHECK(g.log->runs.empty()); // nothing of the first exchange ran again
        CHECK(g.model->request_count() == 1);
        auto after = run_coro(f.ioc, st->async_read_journal("r1"));
        CHECK(after.size() == journal.size() + 3); // follow_up, model_reply, stopped
        // The row counts both exchanges; the result, this one.
        CHECK(r2.turns.size() == 1);
        auto row2 = run_coro(f.ioc, st->async_find_run("r1"));
        CHECK(row2->turns == 4);
        CHECK(row2->prompt_tokens == info->prompt_tokens + r2.usage.prompt_tokens);
    }

    TEST_CASE("resume from every step boundary: no finished call runs again, in-doubt calls "
              "follow the policy, the history stays valid") {
        fixture f;
        auto [journal, info] = journal_of_full_run(f);
        REQUIRE(journal.size() == 12);

        for (std::size_t cut = 0; cut + 1 < journal.size(); ++cut) {
            CAPTURE(cut);
            // The store as a crash after `cut` entries leaves it: running, its lease expired.
            auto st = std::make_shared<store::memory_store>();
            store::run_info row = info;
            row.status = store::run_status::running;
            row.stop_reason.clear();
            row.lease_owner = "dead-process";
            row.lease_expires_ms = 1;
            run_coro(f.ioc, st->async_create_run(row));
            std::vector<store::journal_entry> prefix(
                journal.begin(), journal.begin() + static_cast<std::ptrdiff_t>(cut)
            );
            run_coro(f.ioc, st->async_append("r", "", prefix, {}));

            fixture g;
            agent b = g.make_agent();
            run_result r = run_coro(g.ioc, b.async_resume("r", {st}));
            const prefix_facts pf = facts_of(journal, cut);
            CHECK(r.stop_reason == stop_reason::completed);
            CHECK(g.model->request_count() == 3 - pf.replies);
            for (std::string id : {"a", "b", "c", "d"}) {
                CAPTURE(id);
                const bool read_only = id == "a" || id == "c";
                if (pf.finished.contains(id)) {
                    CHECK(g.log->runs[id] == 0);
                } else if (pf.dispatched.contains(id) && !read_only) {
                    CHECK(g.log->runs[id] == 0); // never silently repeated
                    CHECK(
                        result_of(r, id).find("outcome of this call is unknown") !=
                        std::string::npos
                    );
                } else {
                    CHECK(g.log->runs[id] == 1);
                    CHECK(g.log->keys[id] == "r/" + id);
                }
            }
            wafer::conversation c = r.conversation;
            CHECK(c.repair().empty());
            auto row_after = *run_coro(g.ioc, st->async_find_run("r"));
            CHECK(row_after.status == store::run_status::finished);
        }
    }

    TEST_CASE("the reconcile hook decides in-doubt calls of tools that are not read_only") {
        fixture f;
        auto [journal, info] = journal_of_full_run(f);
        // Cut right after the first dispatch record: a, b and c are all in doubt.
        journal.resize(2);
        REQUIRE(journal[1].kind == "dispatch");

        auto resume_with = [&](reconcile_decision d, std::vector<in_doubt_call>* seen) {
            auto st = std::make_shared<store::memory_store>();
            info.status = store::run_status::running;
            info.lease_owner.clear();
            run_coro(f.ioc, st->async_create_run(info));
            run_coro(f.ioc, st->async_append("r", "", journal, {}));
            fixture g;
            agent b = g.make_agent();
            resume_options ro;
            ro.store = st;
            ro.reconcile = [d, seen](const in_doubt_call& c) {
                seen->push_back(c);
                return d;
            };
            run_result r = run_coro(g.ioc, b.async_resume("r", ro));
            return std::make_pair(r, g.log->runs);
        };
        std::vector<in_doubt_call> seen;
        SUBCASE("run_again") {
            auto [r, runs] = resume_with(reconcile_decision::run_again(), &seen);
            CHECK(runs["b"] == 1);
            CHECK(runs["a"] == 1); // read_only: run again without asking
            REQUIRE(seen.size() == 1);
            CHECK(seen[0].call_id == "b");
            CHECK(seen[0].tool == "write");
            CHECK_FALSE(seen[0].read_only);
            CHECK(seen[0].idempotency_key == "r/b");
        }
        SUBCASE("use_result") {
            auto [r, runs] = resume_with(reconcile_decision::result("it was written"), &seen);
            CHECK(runs["b"] == 0);
            CHECK(result_of(r, "b") == "it was written");
        }
        SUBCASE("a hook that throws leaves the outcome unknown") {
            auto st = std::make_shared<store::memory_store>();
            info.status = store::run_status::running;
            run_coro(f.ioc, st->async_create_run(info));
            run_coro(f.ioc, st->async_append("r", "", journal, {}));
            fixture g;
            agent b = g.make_agent();
            resume_options ro;
            ro.store = st;
            ro.reconcile = [](const in_doubt_call&) -> reconcile_decision {
                throw std::runtime_error("lookup failed");
            };
            run_result r = run_coro(g.ioc, b.async_resume("r", ro));
            CHECK(g.log->runs["b"] == 0);
            CHECK(result_of(r, "b").find("unknown") != std::string::npos);
        }
    }

    TEST_CASE("resume errors are one clear error and change nothing in the store") {
        fixture f;
        auto st = std::make_shared<store::memory_store>();
        agent a = f.make_agent();
        auto code_of = [&](auto&& op) {
            try {
                run_coro(f.ioc, op());
            } catch (const wafer::error& e) {
                return std::make_pair(e.code(), e.diag().detail);
            }
            return std::make_pair(boost::system::error_code{}, std::string());
        };
        SUBCASE("a run that does not exist") {
            auto [ec, why] = code_of([&] { return a.async_resume("nope", {st}); });
            CHECK(ec == store::make_error_code(store::errc::run_not_found));
            CHECK(why.find("nope") != std::string::npos);
        }
        SUBCASE("another process holds the lease") {
            store::run_info row = row_of("busy");
            row.lease_owner = "other";
            row.lease_expires_ms = 99'999'999'999'999;
            run_coro(f.ioc, st->async_create_run(row));
            auto [ec, why] = code_of([&] { return a.async_resume("busy", {st}); });
            CHECK(ec == store::make_error_code(store::errc::lease_held));
            CHECK(run_coro(f.ioc, st->async_read_journal("busy")).empty());
            CHECK(run_coro(f.ioc, st->async_find_run("busy"))->lease_owner == "other");
        }
        SUBCASE("a journal entry that does not parse") {
            run_coro(f.ioc, st->async_create_run(row_of("bad")));
            store::journal_entry e;
            e.kind = "model_reply";
            e.body = R"({"op":1,"reply":{"message":5}})";
            run_coro(f.ioc, st->async_append("bad", "", {e}, {}));
            auto [ec, why] = code_of([&] { return a.async_resume("bad", {st}); });
            CHECK(ec == store::make_error_code(store::errc::corrupt));
            CHECK(why.find("journal entry 1") != std::string::npos);
            auto row_after = *run_coro(f.ioc, st->async_find_run("bad"));
            CHECK(row_after.lease_owner.empty());
            CHECK(run_coro(f.ioc, st->async_read_journal("bad")).size() == 1);
        }
        SUBCASE("a journal another agent configuration wrote") {
            run_coro(f.ioc, st->async_create_run(row_of("other")));
            store::journal_entry e;
            // A tool result where this agent's run starts with a model call.
            e.kind = "tool_result";
            e.body = R"({"op":1,"k":0,"took_us":0,"result":{"tool_call_id":"x","name":"read",)"
                     R"("content":"c","is_error":false,"status":"ok","truncated":false}})";
            run_coro(f.ioc, st->async_append("other", "", {e}, {}));
            auto [ec, why] = code_of([&] { return a.async_resume("other", {st}); });
            CHECK(ec == make_error_code(errc::invalid_request));
            CHECK(why.find("configured differently") != std::string::npos);
        }
        SUBCASE("a message for a run that did not finish") {
            run_coro(f.ioc, st->async_create_run(row_of("live")));
            resume_options ro;
            ro.store = st;
            ro.message = "hi";
            auto [ec, why] = code_of([&] { return a.async_resume("live", ro); });
            CHECK(ec == make_error_code(errc::invalid_request));
            CHECK(why.find("has not finished") != std::string::npos);
        }
    }

    TEST_CASE("a cancelled journaled run stays resumable, and resuming finishes it") {
        fixture f;
        auto st = std::make_shared<store::memory_store>();
        // The write tool waits until cancelled, the first time only.
        agent_config cfg;
        cfg.model = f.model;
        auto reg = registry_with_read();
        json any = {{"type", "object"}};
        auto first = std::make_shared<bool>(true);
        reg->add(tools::make_async_tool<json>(
            "write",
            "writes",
            any,
            [first](json) -> asio::awaitable<std::string> {
                if (*first) {
                    *first = false;
                    asio::steady_timer t(co_await asio::this_coro::executor, 10s);
                    co_await t.async_wait(asio::use_awaitable);
                }
                co_return "written";
            }
        ));
        cfg.tools = reg;
        agent a(std::move(cfg));
        asio::cancellation_signal cancel;
        run_options opts;
        opts.store = st;
        opts.run_id = "c";
        std::optional<run_result> out;
        asio::co_spawn(
            f.ioc,
            a.async_run("task", std::move(opts)),
            asio::bind_cancellation_slot(
                cancel.slot(),
                [&](std::exception_ptr e, run_result r) {
                    REQUIRE_FALSE(e);
                    out = std::move(r);
                }
            )
        );
        asio::steady_timer later(f.ioc, 200ms);
        later.async_wait([&](auto) { cancel.emit(asio::cancellation_type::terminal); });
        f.ioc.run_for(5s);
        REQUIRE(out);
        CHECK(out->stop_reason == stop_reason::cancelled);
        f.ioc.restart();
        auto row = *run_coro(f.ioc, st->async_find_run("c"));
        CHECK(row.status == store::run_status::running);
        CHECK(row.stop_reason == "cancelled");
        CHECK(row.lease_owner.empty());
        // The cancelled write is in doubt (it had started); the reads ran and are journaled.
        run_result r = run_coro(f.ioc, a.async_resume("c", {st}));
        CHECK(r.stop_reason == stop_reason::completed);
        CHECK(result_of(r, "b").find("unknown") != std::string::npos);
        CHECK(result_of(r, "d") == "written");
    }

    TEST_CASE("a running journaled run renews its lease: another owner cannot take it, even "
              "long after one lease would have expired") {
        fixture f;
        auto st = std::make_shared<store::memory_store>();
        agent_config cfg;
        cfg.model = f.model;
        auto reg = registry_with_read();
        json any = {{"type", "object"}};
        // The write takes 1 s, ten lease lifetimes; meanwhile another owner keeps trying.
        auto refused = std::make_shared<int>(0);
        auto tried = std::make_shared<int>(0);
        reg->add(tools::make_async_tool<json>(
            "write",
            "writes",
            any,
            [st, refused, tried](json) -> asio::awaitable<std::string> {
                auto ex = co_await asio::this_coro::executor;
                for (int i = 0; i < 10; ++i) {
                    asio::steady_timer t(ex, 100ms);
                    co_await t.async_wait(asio::use_awaitable);
                    ++*tried;
                    const bool got = co_await st->async_acquire_lease("lease", "intruder", 100ms);
                    *refused += got ? 0 : 1;
                }
                co_return "written";
            }
        ));
        cfg.tools = reg;
        agent a(std::move(cfg));
        run_options opts;
        opts.store = st;
        opts.run_id = "lease";
        opts.lease_ttl = 100ms;
        run_result r = run_coro(f.ioc, a.async_run("task", std::move(opts)));
        CHECK(r.stop_reason == stop_reason::completed);
        CHECK(*tried >= 10);
        CHECK(*refused == *tried);
        CHECK(run_coro(f.ioc, st->async_find_run("lease"))->lease_owner.empty());
    }

    TEST_CASE("sqlite: a run journaled in a file resumes from another store object") {
        char tmpl[] = "/tmp/wafer-durable-XXXXXX";
        REQUIRE(::mkdtemp(tmpl) != nullptr);
        const fs::path dir = tmpl;
        fixture f;
        std::vector<store::journal_entry> journal;
        store::run_info info;
        {
            auto st = std::make_shared<store::sqlite_store>(dir / "runs.db");
            agent a = f.make_agent();
            run_options opts;
            opts.store = st;
            opts.run_id = "s";
            run_coro(f.ioc, a.async_run("task", std::move(opts)));
            journal = run_coro(f.ioc, st->async_read_journal("s"));
            info = *run_coro(f.ioc, st->async_find_run("s"));
        }
        {
            // A second file holds the journal as a crash after the second model reply left it.
            auto st = std::make_shared<store::sqlite_store>(dir / "crashed.db");
            info.status = store::run_status::running;
            info.lease_owner.clear();
            run_coro(f.ioc, st->async_create_run(info));
            std::vector<store::journal_entry> prefix(journal.begin(), journal.begin() + 7);
            REQUIRE(prefix.back().kind == "model_reply");
            run_coro(f.ioc, st->async_append("s", "", prefix, {}));
        }
        auto st = std::make_shared<store::sqlite_store>(dir / "crashed.db");
        fixture g;
        agent b = g.make_agent();
        run_result r = run_coro(g.ioc, b.async_resume("s", {st}));
        CHECK(r.final_text == "done after 4 results");
        CHECK(g.log->runs["d"] == 1);
        CHECK(g.log->runs.count("a") == 0);
        CHECK(g.model->request_count() == 1);
        fs::remove_all(dir);
    }
}
