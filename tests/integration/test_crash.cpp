// The crash test of durable runs, on real processes: a child process drives journaled runs whose
// tools append to a log file, and is killed with SIGKILL at random moments (mid-stream, mid-tool,
// between steps); another child resumes. Every run completes, no call of the tool that changes
// the world ever runs twice, every such call whose result was journaled ran exactly once, and
// the final history is valid for the API.
#include <wafer/agent.hpp>
#include <wafer/scripted_model.hpp>
#include <wafer/store/sqlite_store.hpp>
#include <wafer/tools/registry.hpp>
#include <wafer/tools/tool.hpp>

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <fcntl.h>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <signal.h>
#include <stdlib.h>
#include <string>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>
#include <vector>

#include "child_process.hpp"
#include "run_coro.hpp"

namespace asio = boost::asio;
namespace fs = std::filesystem;
using namespace wafer;
using namespace std::chrono_literals;
using nlohmann::json;
using turn = scripted_model::turn;
using wafer::testing::run_coro;

namespace {

constexpr const char* child_test_name = "crash test child process";
constexpr std::size_t steps_per_run = 6;

// Appends one line per call to the log: what ran, as the outside world saw it.
void log_call(const std::string& log, const std::string& line) {
    const int fd = ::open(log.c_str(), O_WRONLY | O_APPEND | O_CREAT, 0644);
    if (fd >= 0) {
        const std::string l = line + "\n";
        (void)!::write(fd, l.data(), l.size());
        ::close(fd);
    }
}

asio::awaitable<void> pause(std::chrono::milliseconds d) {
    asio::steady_timer t(co_await asio::this_coro::executor, d);
    co_await t.async_wait(asio::use_awaitable);
}

// The agent both processes build: a read-only "look" and a "apply" that changes the world (the
// log), each taking a few milliseconds; the model answers by where the conversation is.
agent make_agent(const std::string& log) {
    auto reg = std::make_shared<tools::registry>();
    json any = {{"type", "object"}};
    tools::tool_options ro;
    ro.read_only = true;
    reg->add(tools::make_async_tool<json>(
        "look",
        "looks",
        any,
        [log](json, const tools::call_context& ctx) -> asio::awaitable<std::string> {
            co_await pause(7ms);
            log_call(log, "look " + ctx.idempotency_key);
            co_return "seen";
        },
        ro
    ));
    reg->add(tools::make_async_tool<json>(
        "apply",
        "applies",
        any,
        [log](json, const tools::call_context& ctx) -> asio::awaitable<std::string> {
            co_await pause(5ms);
            log_call(log, "apply " + ctx.idempotency_key);
            co_await pause(5ms);
            co_return "applied";
        }
    ));
    auto model = std::make_shared<scripted_model>("zai-glm-4.7");
    model->set_responder([](const api::chat_request& req, std::size_t) {
        std::size_t results = 0;
        for (const auto& m : req.messages) {
            results += m.role == api::role::tool ? 1U : 0U;
        }
        const std::size_t step = results / 2;
        turn t = step < steps_per_run
                     ? turn::calls(
                           {{"l" + std::to_string(step), "look", "{}"},
                            {"a" + std::to_string(step), "apply", "{}"}},
                           "step " + std::to_string(step) + " of the plan, thinking it over"
                       )
                     : turn::text("all steps applied", "done thinking");
        t.delay = 4ms;
        t.delta_chars = 6; // streamed in pieces: kills land mid-stream too
        t.delta_delay = 1ms;
        return t;
    });
    agent_config cfg;
    cfg.model = model;
    cfg.system_prompt = "Apply the plan.";
    cfg.tools = reg;
    return agent(std::move(cfg));
}

// A pipeline: the parent's every step calls a sub-agent ("worker", agent::as_tool), a durable
// child run "<run>/w<step>" that applies once (its call "a0") and answers.
agent make_pipeline(const std::string& log) {
    auto reg = std::make_shared<tools::registry>();
    reg->add(tools::make_async_tool<json>(
        "apply",
        "applies",
        json{{"type", "object"}},
        [log](json, const tools::call_context& ctx) -> asio::awaitable<std::string> {
            co_await pause(5ms);
            log_call(log, "apply " + ctx.idempotency_key);
            co_await pause(5ms);
            co_return "applied";
        }
    ));
    auto child_model = std::make_shared<scripted_model>("zai-glm-4.7");
    child_model->set_responder([](const api::chat_request& req, std::size_t) {
        const bool applied = std::any_of(req.messages.begin(), req.messages.end(), [](auto& m) {
            return m.role == api::role::tool;
        });
        turn t = applied ? turn::text("worker done", "checked")
                         : turn::calls({{"a0", "apply", "{}"}}, "apply it");
        t.delay = 3ms;
        t.delta_chars = 6;
        t.delta_delay = 1ms;
        return t;
    });
    agent_config wc;
    wc.name = "worker";
    wc.model = child_model;
    wc.tools = reg;
    agent worker(std::move(wc));
    auto preg = std::make_shared<tools::registry>();
    preg->add(worker.as_tool("worker", "does one step"));
    auto model = std::make_shared<scripted_model>("zai-glm-4.7");
    model->set_responder([](const api::chat_request& req, std::size_t) {
        std::size_t results = 0;
        for (const auto& m : req.messages) {
            results += m.role == api::role::tool ? 1U : 0U;
        }
        turn t =
            results < steps_per_run
                ? turn::calls(
                      {{"w" + std::to_string(results), "worker", R"({"input":"go"})"}}, "next step"
                  )
                : turn::text("pipeline done", "done");
        t.delay = 3ms;
        return t;
    });
    agent_config cfg;
    cfg.name = "pipeline";
    cfg.model = model;
    cfg.tools = preg;
    return agent(std::move(cfg));
}

// The child's whole job: drive run `id` to its end (start it, or resume it).
int child_main(const std::string& db, const std::string& log, const std::string& id) {
    asio::io_context ioc;
    auto st = std::make_shared<store::sqlite_store>(db);
    agent a = std::getenv("WAFER_CRASH_PIPELINE") != nullptr ? make_pipeline(log) : make_agent(log);
    // Observed, so that events (and deltas) flow as they would in the CLI.
    auto on_event = [](const event&) {
    };
    std::optional<store::run_info> row = run_coro(ioc, st->async_find_run(id), 60s);
    run_result r;
    if (!row) {
        run_options o;
        o.store = st;
        o.run_id = id;
        o.on_event = on_event;
        r = run_coro(ioc, a.async_run("apply the plan", std::move(o)), 60s);
    } else {
        resume_options o;
        o.store = st;
        o.on_event = on_event;
        r = run_coro(ioc, a.async_resume(id, std::move(o)), 60s);
    }
    return r.stop_reason == stop_reason::completed ? 0 : 2;
}

// Starts the child on run `id`; returns its pid.
pid_t spawn_child(
    const fs::path& db, const fs::path& log, const std::string& id, bool pipeline = false
) {
    std::vector<std::string> env{
        "WAFER_CRASH_DB=" + db.string(),
        "WAFER_CRASH_LOG=" + log.string(),
        "WAFER_CRASH_RUN=" + id};
    if (pipeline) {
        env.emplace_back("WAFER_CRASH_PIPELINE=1");
    }
    return wafer::testing::spawn_test_case(child_test_name, env);
}

std::map<std::string, int> count_lines(const fs::path& log, const std::string& prefix) {
    std::map<std::string, int> out;
    std::ifstream in(log);
    std::string line;
    while (std::getline(in, line)) {
        if (line.rfind(prefix, 0) == 0) {
            ++out[line.substr(prefix.size())];
        }
    }
    return out;
}

} // namespace

TEST_SUITE("integration/crash") {
    // Not a test: the child process of the crash test.
    TEST_CASE("crash test child process" * doctest::skip()) {
        const char* db = std::getenv("WAFER_CRASH_DB");
        const char* log = std::getenv("WAFER_CRASH_LOG");
        const char* run = std::getenv("WAFER_CRASH_RUN");
        if (db && log && run) {
            std::_Exit(child_main(db, log, run));
        }
    }

    TEST_CASE("SIGKILL at 50 random moments: every run completes, no apply runs twice") {
        char tmpl[] = "/tmp/wafer-crash-XXXXXX";
        REQUIRE(::mkdtemp(tmpl) != nullptr);
        const fs::path dir = tmpl;
        const fs::path db = dir / "runs.db";
        const fs::path log = dir / "world.log";
        std::mt19937 rng(20261201);
        std::uniform_int_distribution<int> delay_ms(0, 120);

        int run_no = 1;
        int kills = 0;
        int finished_on_their_own = 0;
        std::vector<std::string> runs{"crash-1"};
        asio::io_context ioc;
        auto st = std::make_shared<store::sqlite_store>(db);
        while (kills < 50) {
            const std::string id = runs.back();
            const pid_t pid = spawn_child(db, log, id);
            REQUIRE(pid > 0);
            std::this_thread::sleep_for(std::chrono::milliseconds(delay_ms(rng)));
            ::kill(pid, SIGKILL);
            int status = 0;
            REQUIRE(::waitpid(pid, &status, 0) == pid);
            if (WIFSIGNALED(status)) {
                ++kills;
            } else {
                REQUIRE(WIFEXITED(status));
                CHECK(WEXITSTATUS(status) == 0);
                ++finished_on_their_own;
            }
            auto row = run_coro(ioc, st->async_find_run(id));
            if (row && row->status == store::run_status::finished) {
                runs.push_back("crash-" + std::to_string(++run_no));
            }
        }
        // Drive what is left to its end, undisturbed.
        for (const auto& id : runs) {
            auto row = run_coro(ioc, st->async_find_run(id));
            if (row && row->status == store::run_status::finished) {
                continue;
            }
            const pid_t pid = spawn_child(db, log, id);
            int status = 0;
            REQUIRE(::waitpid(pid, &status, 0) == pid);
            REQUIRE(WIFEXITED(status));
            CHECK(WEXITSTATUS(status) == 0);
        }
        MESSAGE(
            kills << " kills, " << runs.size() << " runs, " << finished_on_their_own
                  << " children finished before their kill"
        );

        const auto applied = count_lines(log, "apply ");
        int in_doubt = 0;
        int journaled = 0;
        for (const auto& id : runs) {
            CAPTURE(id);
            auto row = run_coro(ioc, st->async_find_run(id));
            REQUIRE(row);
            CHECK(row->status == store::run_status::finished);
            CHECK(row->stop_reason == "completed");
            // Which apply calls have a real result in the journal, and which are in doubt.
            std::map<std::string, std::string> status_of;
            for (const auto& e : run_coro(ioc, st->async_read_journal(id))) {
                if (e.kind == "tool_result") {
                    const json r = json::parse(e.body).at("result");
                    status_of[r.at("tool_call_id").get<std::string>()] =
                        r.at("status").get<std::string>();
                }
            }
            for (std::size_t s = 0; s < steps_per_run; ++s) {
                const std::string call = "a" + std::to_string(s);
                CAPTURE(call);
                const auto it = applied.find(id + "/" + call);
                const int ran = it == applied.end() ? 0 : it->second;
                CHECK(ran <= 1); // never twice
                REQUIRE(status_of.contains(call));
                if (status_of[call] == "ok") {
                    CHECK(ran == 1); // a journaled result: it ran, once
                    ++journaled;
                } else {
                    CHECK(status_of[call] == "in_doubt");
                    ++in_doubt;
                }
            }
            // The final history is valid for the API: a follow-up request on it passes the
            // scripted model's request validation.
            agent a = make_agent((dir / "followup.log").string());
            resume_options o;
            o.store = st;
            o.message = "anything else?";
            run_result r = run_coro(ioc, a.async_resume(id, o), 60s);
            CHECK(r.stop_reason == stop_reason::completed);
            wafer::conversation c = r.conversation;
            CHECK(c.repair().empty());
        }
        MESSAGE(
            journaled << " apply calls ran once with their result journaled, " << in_doubt
                      << " were in doubt after a kill and were not repeated"
        );
        fs::remove_all(dir);
    }

    TEST_CASE("SIGKILL at 30 random moments in a pipeline of child runs: every child's apply "
              "runs at most once, exactly once when its result was journaled") {
        char tmpl[] = "/tmp/wafer-crash-pipe-XXXXXX";
        REQUIRE(::mkdtemp(tmpl) != nullptr);
        const fs::path dir = tmpl;
        const fs::path db = dir / "runs.db";
        const fs::path log = dir / "world.log";
        std::mt19937 rng(20261204);
        std::uniform_int_distribution<int> delay_ms(0, 150);

        int run_no = 1;
        int kills = 0;
        std::vector<std::string> runs{"pipe-1"};
        asio::io_context ioc;
        auto st = std::make_shared<store::sqlite_store>(db);
        while (kills < 30) {
            const std::string id = runs.back();
            const pid_t pid = spawn_child(db, log, id, true);
            REQUIRE(pid > 0);
            std::this_thread::sleep_for(std::chrono::milliseconds(delay_ms(rng)));
            ::kill(pid, SIGKILL);
            int status = 0;
            REQUIRE(::waitpid(pid, &status, 0) == pid);
            if (WIFSIGNALED(status)) {
                ++kills;
            } else {
                REQUIRE(WIFEXITED(status));
                CHECK(WEXITSTATUS(status) == 0);
            }
            auto row = run_coro(ioc, st->async_find_run(id));
            if (row && row->status == store::run_status::finished) {
                runs.push_back("pipe-" + std::to_string(++run_no));
            }
        }
        for (const auto& id : runs) {
            auto row = run_coro(ioc, st->async_find_run(id));
            if (row && row->status == store::run_status::finished) {
                continue;
            }
            const pid_t pid = spawn_child(db, log, id, true);
            int status = 0;
            REQUIRE(::waitpid(pid, &status, 0) == pid);
            REQUIRE(WIFEXITED(status));
            CHECK(WEXITSTATUS(status) == 0);
        }

        const auto applied = count_lines(log, "apply ");
        int in_doubt = 0;
        int journaled = 0;
        for (const auto& id : runs) {
            CAPTURE(id);
            auto row = run_coro(ioc, st->async_find_run(id));
            REQUIRE(row);
            CHECK(row->status == store::run_status::finished);
            CHECK(row->stop_reason == "completed");
            for (std::size_t s = 0; s < steps_per_run; ++s) {
                // Every step's child is a run of its own, finished, with its parent's id.
                const std::string child = id + "/w" + std::to_string(s);
                CAPTURE(child);
                auto crow = run_coro(ioc, st->async_find_run(child));
                REQUIRE(crow);
                CHECK(crow->parent_id == id);
                CHECK(crow->status == store::run_status::finished);
                CHECK(crow->lease_owner.empty());
                std::string status;
                for (const auto& e : run_coro(ioc, st->async_read_journal(child))) {
                    if (e.kind == "tool_result") {
                        status = json::parse(e.body).at("result").at("status").get<std::string>();
                    }
                }
                const auto it = applied.find(child + "/a0");
                const int ran = it == applied.end() ? 0 : it->second;
                CHECK(ran <= 1); // never twice, whichever process ran it
                if (status == "ok") {
                    CHECK(ran == 1);
                    ++journaled;
                } else {
                    CHECK(status == "in_doubt");
                    ++in_doubt;
                }
            }
            // The parent recorded each child's end, once.
            int ends = 0;
            for (const auto& e : run_coro(ioc, st->async_read_journal(id))) {
                ends += e.kind == "child_finished" ? 1 : 0;
            }
            CHECK(ends == static_cast<int>(steps_per_run));
        }
        MESSAGE(
            kills << " kills, " << runs.size() << " pipelines; " << journaled
                  << " child applies ran once with their result journaled, " << in_doubt
                  << " were in doubt after a kill and were not repeated"
        );
        fs::remove_all(dir);
    }
}
