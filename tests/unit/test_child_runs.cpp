// Durable child runs: an agent called as a tool by a journaled parent, and fan-out children with
// a store, are runs in the parent's store. A crash is simulated at every commit the stores saw
// (the store rebuilt from the first n commits of a full run, leases left to a dead owner);
// resuming the parent continues an unfinished child from its journal and never runs a finished
// one again. Also: a child awaiting approval pauses its parent, and journals written before
// child runs existed still replay.
#include <wafer/agent.hpp>
#include <wafer/approval.hpp>
#include <wafer/fan_out.hpp>
#include <wafer/scripted_model.hpp>
#include <wafer/store/memory_store.hpp>
#include <wafer/store/sqlite_store.hpp>
#include <wafer/tools/registry.hpp>
#include <wafer/tools/tool.hpp>

#include <boost/asio/io_context.hpp>

#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

#include <filesystem>
#include <functional>
#include <map>
#include <memory>
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

// A store that records every commit (run creations and appends) in order, so that the state a
// crash after any of them leaves can be rebuilt.
class recording_store final : public store::run_store {
public:
    struct commit {
        std::optional<store::run_info> created;
        std::string run_id;
        std::vector<store::journal_entry> entries;
        store::run_update update;
    };
    std::vector<commit> commits;

    asio::awaitable<void> async_create_run(store::run_info run) override {
        commits.push_back({run, run.id, {}, {}});
        co_await inner_.async_create_run(std::move(run));
    }
    asio::awaitable<std::uint64_t> async_append(
        std::string run_id,
        std::string owner,
        std::vector<store::journal_entry> entries,
        store::run_update update
    ) override {
        const std::uint64_t seq = co_await inner_.async_append(run_id, owner, entries, update);
        commits.push_back({std::nullopt, run_id, std::move(entries), update});
        co_return seq;
    }
    asio::awaitable<std::optional<store::run_info>> async_find_run(std::string id) override {
        return inner_.async_find_run(std::move(id));
    }
    asio::awaitable<std::vector<store::journal_entry>>
    async_read_journal(std::string id, std::uint64_t after = 0) override {
        return inner_.async_read_journal(std::move(id), after);
    }
    asio::awaitable<std::vector<store::run_info>> async_list_runs(store::run_filter f) override {
        return inner_.async_list_runs(std::move(f));
    }
    asio::awaitable<bool> async_acquire_lease(
        std::string id, std::string owner, std::chrono::milliseconds ttl, std::string from
    ) override {
        return inner_.async_acquire_lease(std::move(id), std::move(owner), ttl, std::move(from));
    }
    asio::awaitable<void> async_release_lease(std::string id, std::string owner) override {
        return inner_.async_release_lease(std::move(id), std::move(owner));
    }

    // The first `n` commits, applied to `target` as a crash after them leaves a store: every
    // run leased to a process that is gone (its lease expired).
    void rebuild(asio::io_context& ioc, std::size_t n, store::run_store& target) const {
        for (std::size_t i = 0; i < n; ++i) {
            const commit& c = commits[i];
            if (c.created) {
                store::run_info row = *c.created;
                row.lease_owner = "dead-process";
                row.lease_expires_ms = 1;
                run_coro(ioc, target.async_create_run(row));
                continue;
            }
            store::run_update u = c.update;
            u.release_lease = false; // an append without an owner gives up no lease
            run_coro(ioc, target.async_append(c.run_id, "", c.entries, u));
            if (c.update.release_lease) {
                run_coro(ioc, target.async_release_lease(c.run_id, "dead-process"));
            }
        }
    }

private:
    store::memory_store inner_;
};

std::size_t tool_results(const api::chat_request& req) {
    std::size_t n = 0;
    for (const auto& m : req.messages) {
        n += m.role == api::role::tool ? 1U : 0U;
    }
    return n;
}

std::string last_tool_text(const api::chat_request& req) {
    for (auto it = req.messages.rbegin(); it != req.messages.rend(); ++it) {
        if (it->role == api::role::tool) {
            return it->text();
        }
    }
    return {};
}

std::string first_user_text(const api::chat_request& req) {
    for (const auto& m : req.messages) {
        if (m.role == api::role::user) {
            return m.text();
        }
    }
    return {};
}

// Counts the runs of its calls by idempotency key (the world's view of a side effect).
using counts = std::map<std::string, int>;

tools::tool counting_tool(std::shared_ptr<counts> c, bool needs_approval = false) {
    tools::tool_options o;
    o.needs_approval = needs_approval;
    return tools::make_tool<json>(
        "count",
        "counts",
        json{{"type", "object"}},
        [c](json, const tools::call_context& ctx) {
            ++(*c)[ctx.idempotency_key];
            return std::string("counted");
        },
        o
    );
}

// One process's agents: a parent whose only tool is the child agent ("helper"), the child
// calling "count" once, then answering.
struct pipeline {
    std::shared_ptr<counts> runs = std::make_shared<counts>();
    std::shared_ptr<scripted_model> parent_model = std::make_shared<scripted_model>("zai-glm-4.7");
    std::shared_ptr<scripted_model> child_model = std::make_shared<scripted_model>("zai-glm-4.7");
    std::optional<agent> parent;

    explicit pipeline(bool child_needs_approval = false) {
        child_model->set_responder([](const api::chat_request& req, std::size_t) {
            if (tool_results(req) == 0) {
                return turn::calls({{"c1", "count", "{}"}}, "count first");
            }
            return turn::text("child done: " + first_user_text(req) + " " + last_tool_text(req));
        });
        parent_model->set_responder([](const api::chat_request& req, std::size_t) {
            if (tool_results(req) == 0) {
                return turn::calls({{"h1", "helper", R"({"input":"sub"})"}}, "delegate");
            }
            return turn::text("parent done: " + last_tool_text(req));
        });
        agent_config cc;
        cc.name = "child";
        cc.model = child_model;
        auto creg = std::make_shared<tools::registry>();
        creg->add(counting_tool(runs, child_needs_approval));
        cc.tools = creg;
        agent child(std::move(cc));
        agent_config pc;
        pc.name = "parent";
        pc.model = parent_model;
        auto preg = std::make_shared<tools::registry>();
        preg->add(child.as_tool("helper", "delegates"));
        pc.tools = preg;
        parent.emplace(std::move(pc));
    }
};

std::size_t count_kind(const std::vector<store::journal_entry>& j, const std::string& kind) {
    std::size_t n = 0;
    for (const auto& e : j) {
        n += e.kind == kind ? 1U : 0U;
    }
    return n;
}

bool dispatched(const std::vector<store::journal_entry>& j, const std::string& call) {
    for (const auto& e : j) {
        if (e.kind == "dispatch") {
            const json body = json::parse(e.body);
            for (const auto& id : body.at("calls")) {
                if (id == call) {
                    return true;
                }
            }
        }
    }
    return false;
}

std::vector<store::journal_entry>
journal_or_empty(asio::io_context& ioc, store::run_store& st, const std::string& id) {
    if (!run_coro(ioc, st.async_find_run(id))) {
        return {};
    }
    return run_coro(ioc, st.async_read_journal(id));
}

// Resumes parent "r" from the state a crash after each commit of a full run leaves, in stores
// `make` builds; checks what ran again.
void check_every_crash_point(const std::function<std::shared_ptr<store::run_store>()>& make) {
    asio::io_context ioc;
    auto rec = std::make_shared<recording_store>();
    {
        pipeline p;
        run_options o;
        o.store = rec;
        o.run_id = "r";
        run_result full = run_coro(ioc, p.parent->async_run("task", std::move(o)));
        REQUIRE(full.stop_reason == stop_reason::completed);
        REQUIRE(full.final_text == "parent done: child done: sub counted");
        REQUIRE((*p.runs)["r/h1/c1"] == 1);
        REQUIRE(full.children.size() == 1);
        CHECK(full.children[0].run_id == "r/h1");
        // The parent journals the child's start with its dispatch, and its end.
        auto pj = run_coro(ioc, rec->async_read_journal("r"));
        REQUIRE(count_kind(pj, "dispatch") == 1);
        for (const auto& e : pj) {
            if (e.kind == "dispatch") {
                CHECK(json::parse(e.body).at("children") == json{{"h1", "r/h1"}});
            }
        }
        CHECK(count_kind(pj, "child_finished") == 1);
        CHECK(count_kind(pj, "tool_result") == 0);
        auto row = *run_coro(ioc, rec->async_find_run("r/h1"));
        CHECK(row.parent_id == "r");
        CHECK(row.status == store::run_status::finished);
    }
    const std::size_t n = rec->commits.size();
    REQUIRE(n >= 8);
    for (std::size_t cut = 1; cut < n; ++cut) { // commit 0 creates the parent's row
        CAPTURE(cut);
        auto st = make();
        rec->rebuild(ioc, cut, *st);
        const auto pj = journal_or_empty(ioc, *st, "r");
        const auto cj = journal_or_empty(ioc, *st, "r/h1");
        auto child_row = run_coro(ioc, st->async_find_run("r/h1"));
        const bool child_finished = child_row && child_row->status == store::run_status::finished;

        pipeline p; // another process
        run_result r = run_coro(ioc, p.parent->async_resume("r", {st}));
        CHECK(r.stop_reason == stop_reason::completed);
        CHECK(r.final_text.rfind("parent done: child done: sub ", 0) == 0);
        // Nothing journaled is asked again: each model sees only the turns it has not answered.
        CHECK(p.parent_model->request_count() == 2 - count_kind(pj, "model_reply"));
        CHECK(p.child_model->request_count() == 2 - count_kind(cj, "model_reply"));
        if (child_finished) {
            CHECK(p.child_model->request_count() == 0); // a finished child never runs again
        }
        // The child's side effect: in doubt once dispatched (never repeated), else run once.
        CHECK((*p.runs)["r/h1/c1"] == (dispatched(cj, "c1") ? 0 : 1));
        auto after = *run_coro(ioc, st->async_find_run("r/h1"));
        CHECK(after.status == store::run_status::finished);
        CHECK(after.lease_owner.empty());
        CHECK(count_kind(run_coro(ioc, st->async_read_journal("r")), "child_finished") == 1);
        wafer::conversation c = r.conversation;
        CHECK(c.repair().empty());
    }
}

} // namespace

TEST_SUITE("unit/child_runs") {
    TEST_CASE("as_tool child on a memory store: a crash at every commit, then resume") {
        check_every_crash_point([] { return std::make_shared<store::memory_store>(); });
    }

    TEST_CASE("as_tool child on a sqlite store: a crash at every commit, then resume") {
        char tmpl[] = "/tmp/wafer-child-runs-XXXXXX";
        REQUIRE(::mkdtemp(tmpl) != nullptr);
        const fs::path dir = tmpl;
        int k = 0;
        check_every_crash_point([&] {
            return std::make_shared<store::sqlite_store>(dir / ("c" + std::to_string(k++) + ".db"));
        });
        fs::remove_all(dir);
    }

    TEST_CASE("a child awaiting approval pauses its parent; approve via the parent, resume") {
        asio::io_context ioc;
        auto st = std::make_shared<store::memory_store>();
        pipeline p(true);
        run_options o;
        o.store = st;
        o.run_id = "p";
        run_result r = run_coro(ioc, p.parent->async_run("task", std::move(o)));
        CHECK(r.stop_reason == stop_reason::awaiting_approval);
        REQUIRE(r.pending_approvals.size() == 1);
        CHECK(r.pending_approvals[0].call_id == "c1");
        CHECK(r.pending_approvals[0].run_id == "p/h1");
        CHECK(r.pending_approvals[0].tool == "count");
        CHECK(
            run_coro(ioc, st->async_find_run("p"))->status == store::run_status::awaiting_approval
        );
        CHECK(
            run_coro(ioc, st->async_find_run("p/h1"))->status ==
            store::run_status::awaiting_approval
        );
        CHECK((*p.runs).empty());
        auto pending = run_coro(ioc, async_pending_approvals(*st, "p"));
        REQUIRE(pending.size() == 1);
        CHECK(pending[0].run_id == "p/h1");

        // Resumed before a decision: the child stops again, and so does the parent.
        {
            pipeline q(true);
            run_result again = run_coro(ioc, q.parent->async_resume("p", {st}));
            CHECK(again.stop_reason == stop_reason::awaiting_approval);
            REQUIRE(again.pending_approvals.size() == 1);
            CHECK(again.pending_approvals[0].run_id == "p/h1");
            CHECK(q.parent_model->request_count() == 0);
            CHECK(q.child_model->request_count() == 0);
        }

        run_coro(ioc, async_approve(*st, "p", "c1"));
        CHECK(run_coro(ioc, async_pending_approvals(*st, "p")).empty());
        CHECK(run_coro(ioc, async_pending_approvals(*st, "p/h1")).empty());
        pipeline q(true); // another process
        run_result done = run_coro(ioc, q.parent->async_resume("p", {st}));
        CHECK(done.stop_reason == stop_reason::completed);
        CHECK(done.final_text == "parent done: child done: sub counted");
        CHECK((*q.runs)["p/h1/c1"] == 1);
        CHECK(q.parent_model->request_count() == 1); // only the turn after the child
        CHECK(q.child_model->request_count() == 1);
        auto pj = run_coro(ioc, st->async_read_journal("p"));
        CHECK(count_kind(pj, "child_paused") == 2);
        CHECK(count_kind(pj, "child_resumed") == 2);
        CHECK(count_kind(pj, "child_finished") == 1);
        CHECK(run_coro(ioc, st->async_find_run("p/h1"))->status == store::run_status::finished);
        wafer::conversation c = done.conversation;
        CHECK(c.repair().empty());

        // Denying a call that is not pending is refused, as for the parent's own calls.
        CHECK_THROWS_AS(run_coro(ioc, async_approve(*st, "p", "c1")), wafer::error);
    }

    TEST_CASE("fan-out with a store: 5 children, a crash after 2 finished, resume runs 3") {
        asio::io_context ioc;
        struct world {
            std::shared_ptr<counts> runs = std::make_shared<counts>();
            std::shared_ptr<scripted_model> model = std::make_shared<scripted_model>("zai-glm-4.7");
            std::optional<agent> a;
            world() {
                model->set_responder([](const api::chat_request& req, std::size_t) {
                    if (tool_results(req) == 0) {
                        return turn::calls({{"c", "count", "{}"}});
                    }
                    return turn::text("answer to " + first_user_text(req));
                });
                agent_config cfg;
                cfg.model = model;
                auto reg = std::make_shared<tools::registry>();
                reg->add(counting_tool(runs));
                cfg.tools = reg;
                a.emplace(std::move(cfg));
            }
            std::vector<fan_out_job> jobs() const {
                std::vector<fan_out_job> out;
                for (int i = 0; i < 5; ++i) {
                    out.push_back({&*a, "job " + std::to_string(i), {}});
                }
                return out;
            }
        };
        auto rec = std::make_shared<recording_store>();
        fan_out_options fo;
        fo.store = rec;
        fo.run_id = "fan";
        fo.max_concurrency = 1; // one at a time: "2 finished" is one commit
        {
            world w;
            fan_out_result full = run_coro(ioc, async_fan_out(w.jobs(), fo));
            REQUIRE(full.succeeded == 5);
            for (int i = 0; i < 5; ++i) {
                CHECK((*w.runs)["fan/" + std::to_string(i) + "/c"] == 1);
            }
            auto row = *run_coro(ioc, rec->async_find_run("fan/3"));
            CHECK(row.parent_id == "fan");
        }
        // The commit that finished the second child.
        std::size_t cut = 0;
        int finished = 0;
        for (std::size_t i = 0; i < rec->commits.size() && finished < 2; ++i) {
            if (rec->commits[i].update.status == store::run_status::finished) {
                ++finished;
                cut = i + 1;
            }
        }
        REQUIRE(finished == 2);
        auto st = std::make_shared<store::memory_store>();
        rec->rebuild(ioc, cut, *st);
        CHECK_FALSE(run_coro(ioc, st->async_find_run("fan/2")));

        world w; // another process
        fo.store = st;
        fan_out_result r = run_coro(ioc, async_fan_out(w.jobs(), fo));
        CHECK(r.succeeded == 5);
        CHECK(w.model->request_count() == 3 * 2); // two turns for each of the other three
        for (int i = 0; i < 5; ++i) {
            CAPTURE(i);
            REQUIRE(r.children[static_cast<std::size_t>(i)].result);
            CHECK(
                r.children[static_cast<std::size_t>(i)].result->final_text ==
                "answer to job " + std::to_string(i)
            );
            CHECK((*w.runs)["fan/" + std::to_string(i) + "/c"] == (i < 2 ? 0 : 1));
        }
        // A fan-out with a store needs its id.
        fan_out_options no_id;
        no_id.store = st;
        CHECK_THROWS_AS(run_coro(ioc, async_fan_out(w.jobs(), no_id)), std::invalid_argument);
    }

    TEST_CASE("a journal from before child runs (no children, no child_finished) replays") {
        asio::io_context ioc;
        auto rec = std::make_shared<recording_store>();
        {
            pipeline p;
            run_options o;
            o.store = rec;
            o.run_id = "old";
            run_coro(ioc, p.parent->async_run("task", std::move(o)));
        }
        // The parent's journal as an older wafer wrote it.
        auto journal = run_coro(ioc, rec->async_read_journal("old"));
        auto row = *run_coro(ioc, rec->async_find_run("old"));
        for (auto& e : journal) {
            json b = json::parse(e.body);
            if (e.kind == "dispatch") {
                b.erase("children");
            } else if (e.kind == "child_finished") {
                e.kind = "tool_result";
                b.erase("child");
            }
            e.body = b.dump();
        }
        SUBCASE("a finished run goes on with a follow-up") {
            auto st = std::make_shared<store::memory_store>();
            run_coro(ioc, st->async_create_run(row));
            run_coro(ioc, st->async_append("old", "", journal, {}));
            pipeline p;
            resume_options ro;
            ro.store = st;
            ro.message = "and?";
            run_result r = run_coro(ioc, p.parent->async_resume("old", ro));
            CHECK(r.stop_reason == stop_reason::completed);
            CHECK(p.parent_model->request_count() == 1);
            CHECK(p.child_model->request_count() == 0);
        }
        SUBCASE("cut after the dispatch: the call is in doubt, as before child runs") {
            std::size_t n = 0;
            while (journal[n].kind != "dispatch") {
                ++n;
            }
            journal.resize(n + 1);
            row.status = store::run_status::running;
            row.lease_owner.clear();
            auto st = std::make_shared<store::memory_store>();
            run_coro(ioc, st->async_create_run(row));
            run_coro(ioc, st->async_append("old", "", journal, {}));
            pipeline p;
            run_result r = run_coro(ioc, p.parent->async_resume("old", {st}));
            CHECK(r.stop_reason == stop_reason::completed);
            CHECK(r.final_text.find("outcome of this call is unknown") != std::string::npos);
            CHECK(p.child_model->request_count() == 0);
        }
    }
}
