// Agent benchmarks (not tests): the whole loop, measured in one process run each.
//
//  tools:  8 tool calls that each wait 100 ms on a timer, in one turn of a 2-turn run against the
//          scripted model. Wall time of the turn's tool phase and of the run (target <= 105 ms
//          for the batch; peer: OpenAI Agents JS 121 ms).
//  cpu:    framework + client CPU per model turn: 2-turn runs (tool call with an instant tool,
//          then the answer) against the fake server over loopback, one after another. The
//          server runs on its own thread and io_context; getrusage(RUSAGE_THREAD) is taken
//          around the client thread's work only (target <= 50 us; peers: @openai/agents JS
//          ~2,700 us, a bare Node request ~330 us).
//  tracing: the cpu mode's loop-only runs (scripted model) with tracing off and on (an OTLP
//          exporter attached): CPU per turn of each, the difference and the ratio, plus the
//          exporter thread's CPU per turn (target <= 3 us on the run's side).
//  memory: many concurrent runs, each streaming slowly from `wafer-fake` (a separate process,
//          so its memory does not count) so that all are open at once. Peak RSS (VmHWM, reset
//          through /proc/self/clear_refs) minus the RSS before the runs, per run (target <=
//          32 KB; peer: the official Cerebras TS SDK ~144 KB per open stream). RLIMIT_NOFILE is
//          raised to the hard limit; the run count is capped to fit it.
//
// usage: wafer_agent_bench [--only tools|cpu|tracing|memory] [--runs N] [--concurrent N]
//                          [--fake PATH] [--chunk-delay-ms N] [--read-buffer BYTES]
//                          [--rate-headers on|off]
// prints one line per benchmark: name=<bench> key=value ...
#include <wafer/agent.hpp>
#include <wafer/api/client.hpp>
#include <wafer/cerebras_model.hpp>
#include <wafer/scripted_model.hpp>
#include <wafer/store/memory_store.hpp>
#include <wafer/store/sqlite_store.hpp>
#include <wafer/telemetry/otlp_exporter.hpp>
#include <wafer/testing/fake_server.hpp>
#include <wafer/tools/registry.hpp>
#include <wafer/tools/tool.hpp>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <optional>
#include <signal.h>
#include <spawn.h>
#include <stdexcept>
#include <string>
#include <sys/resource.h>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>
#include <vector>

#include "counting_vfs.hpp"

extern char** environ;

namespace {

namespace asio = boost::asio;
namespace api = wafer::api;
using nlohmann::json;
using clock_type = std::chrono::steady_clock;
using namespace std::chrono_literals;

double ms_between(clock_type::time_point a, clock_type::time_point b) {
    return std::chrono::duration<double, std::milli>(b - a).count();
}

double tv_us(const timeval& tv) {
    return static_cast<double>(tv.tv_sec) * 1e6 + static_cast<double>(tv.tv_usec);
}

double thread_cpu_us() {
    rusage ru{};
    getrusage(RUSAGE_THREAD, &ru);
    return tv_us(ru.ru_utime) + tv_us(ru.ru_stime);
}

// Kernel share (system calls: loopback TCP, epoll, timers) of the calling thread's CPU.
double thread_sys_us() {
    rusage ru{};
    getrusage(RUSAGE_THREAD, &ru);
    return tv_us(ru.ru_stime);
}

// A "VmRSS:" / "VmHWM:" value from /proc/self/status, in kB (0 if unreadable).
long status_kb(const char* key) {
    std::ifstream in("/proc/self/status");
    std::string line;
    const std::size_t n = std::strlen(key);
    while (std::getline(in, line)) {
        if (line.compare(0, n, key) == 0) {
            return std::strtol(line.c_str() + n, nullptr, 10);
        }
    }
    return 0;
}

// Resets VmHWM to the current RSS (Linux >= 4.0). False if the kernel refused.
bool reset_peak_rss() {
    std::ofstream out("/proc/self/clear_refs");
    out << "5";
    out.flush();
    return static_cast<bool>(out);
}

// Rethrows out of io_context::run() instead of dropping the exception like `detached`.
void rethrow(std::exception_ptr e) {
    if (e) {
        std::rethrow_exception(e);
    }
}

// Runs `ioc` until `done()` or the wall limit; false on timeout.
template <class Pred>
bool run_until(asio::io_context& ioc, Pred done, std::chrono::seconds limit) {
    // A finished run leaves no work behind, so the io_context may have stopped after the last
    // phase: new work needs it restarted.
    if (ioc.stopped()) {
        ioc.restart();
    }
    const auto end = clock_type::now() + limit;
    while (!done()) {
        const auto now = clock_type::now();
        if (now >= end) {
            return false;
        }
        ioc.run_one_for(std::min<clock_type::duration>(end - now, 100ms));
    }
    return true;
}

struct sleep_args {
    int ms = 0;
};
void from_json(const json& j, sleep_args& a) {
    j.at("ms").get_to(a.ms);
}

struct add_args {
    int a = 0;
    int b = 0;
};
void from_json(const json& j, add_args& x) {
    j.at("a").get_to(x.a);
    j.at("b").get_to(x.b);
}

asio::awaitable<std::string> async_sleep(sleep_args a) {
    asio::steady_timer t(co_await asio::this_coro::executor, std::chrono::milliseconds(a.ms));
    co_await t.async_wait(asio::use_awaitable);
    co_return "slept " + std::to_string(a.ms) + " ms";
}

std::shared_ptr<wafer::tools::registry> make_tools() {
    auto reg = std::make_shared<wafer::tools::registry>();
    const json sleep_schema = json::parse(
        R"({"type":"object","properties":{"ms":{"type":"integer","minimum":0}},"required":["ms"],"additionalProperties":false})"
    );
    const json add_schema = json::parse(
        R"({"type":"object","properties":{"a":{"type":"integer"},"b":{"type":"integer"}},"required":["a","b"],"additionalProperties":false})"
    );
    reg->add(wafer::tools::make_async_tool<sleep_args>("sleep", "Waits", sleep_schema, &async_sleep)
    );
    reg->add(wafer::tools::make_tool<add_args>(
        "add", "Adds two integers", add_schema, [](add_args x) { return std::to_string(x.a + x.b); }
    ));
    return reg;
}

wafer::agent make_agent(
    std::shared_ptr<wafer::model> m, std::shared_ptr<const wafer::telemetry::tracer> tracer = {}
) {
    wafer::agent_config cfg;
    cfg.name = "bench";
    cfg.model = std::move(m);
    cfg.system_prompt = "You are a helpful assistant. Use the tools when they help.";
    cfg.tools = make_tools();
    cfg.tracer = std::move(tracer);
    return wafer::agent(std::move(cfg));
}

// ---- tools: 8 x 100 ms in one turn ------------------------------------------------------------

struct tool_times {
    std::optional<clock_type::time_point> first_start;
    std::optional<clock_type::time_point> last_finish;
    std::optional<clock_type::time_point> turn1_done;
    std::optional<clock_type::time_point> turn2_request;
    std::size_t finished = 0;
    std::size_t errors = 0;
};

int bench_tools() {
    asio::io_context ioc;
    auto model = std::make_shared<wafer::scripted_model>("zai-glm-4.7");
    std::vector<api::tool_call> calls;
    for (int i = 0; i < 8; ++i) {
        calls.push_back({"call_" + std::to_string(i), "sleep", R"({"ms":100})"});
    }
    model->push(wafer::scripted_model::turn::calls(calls, "Eight waits, all at once."));
    model->push(wafer::scripted_model::turn::text("All eight waits are done."));
    const wafer::agent a = make_agent(model);

    tool_times tt;
    wafer::run_options opts;
    opts.on_event = [&tt](const wafer::event& e) {
        const auto now = clock_type::now();
        if (e.is<wafer::events::tool_call_started>() && !tt.first_start) {
            tt.first_start = now;
        } else if (auto* f = e.get_if<wafer::events::tool_call_finished>()) {
            tt.last_finish = now;
            ++tt.finished;
            tt.errors += f->is_error ? 1u : 0u;
        } else if (auto* t = e.get_if<wafer::events::turn_finished>(); t && t->turn == 1) {
            tt.turn1_done = now;
        } else if (auto* r = e.get_if<wafer::events::model_request>(); r && r->turn == 2) {
            tt.turn2_request = now;
        }
    };
    std::optional<wafer::run_result> result;
    const auto t0 = clock_type::now();
    asio::co_spawn(
        ioc,
        a.async_run("Wait eight times.", std::move(opts)),
        [&result](std::exception_ptr e, wafer::run_result r) {
            rethrow(e);
            result = std::move(r);
        }
    );
    ioc.run();
    const auto t1 = clock_type::now();
    const bool ok = result && result->stop_reason == wafer::stop_reason::completed &&
                    result->turn_count() == 2 && tt.finished == 8 && tt.errors == 0 &&
                    tt.first_start && tt.last_finish && tt.turn1_done && tt.turn2_request;
    if (!ok) {
        std::fprintf(stderr, "agent_bench tools: the run did not complete as scripted\n");
        return 1;
    }
    std::printf(
        "name=tool_batch tools=8 tool_ms=100 tool_batch_ms=%.1f tool_phase_ms=%.1f run_ms=%.1f "
        "turns=%zu target_batch_ms=105 peer_openai_agents_js_ms=121\n",
        ms_between(*tt.first_start, *tt.last_finish),
        ms_between(*tt.turn1_done, *tt.turn2_request),
        ms_between(t0, t1),
        result->turn_count()
    );
    return 0;
}

// ---- cpu: client + framework CPU per turn over loopback -------------------------------------

wafer::testing::reply two_turn_responder(const api::chat_request& req) {
    wafer::testing::scripted_turn t;
    if (!req.messages.empty() && req.messages.back().role == api::role::tool) {
        t.reasoning = "The tool says 5.";
        t.content = "2 + 3 = " + req.messages.back().text() + ".";
    } else {
        t.reasoning = "I should use the add tool.";
        t.tool_calls = {{"", "add", R"({"a":2,"b":3})"}};
    }
    return wafer::testing::reply::of(t);
}

struct cpu_outcome {
    int completed = 0;
    int failed = 0;
    std::size_t turns = 0;
    std::string first_error;
};

asio::awaitable<void> sequential_runs(const wafer::agent* a, int n, cpu_outcome* out) {
    for (int i = 0; i < n; ++i) {
        asio::awaitable<wafer::run_result> op = a->async_run("What is 2 + 3? Use the add tool.");
        wafer::run_result r = co_await std::move(op);
        out->turns += r.turn_count();
        if (r.stop_reason == wafer::stop_reason::completed && r.turn_count() == 2 &&
            r.final_text == "2 + 3 = 5.") {
            ++out->completed;
        } else {
            ++out->failed;
            if (out->first_error.empty()) {
                out->first_error = std::string(wafer::to_string(r.stop_reason)) +
                                   (r.error ? ": " + r.error->code.message() + " " +
                                                  r.error->diagnostics.to_string()
                                            : std::string(" final_text=") + r.final_text);
            }
        }
    }
}

// two_turn_responder's turns for the scripted model: the add tool, then the answer.
wafer::scripted_model::turn two_turn_script(const api::chat_request& req, std::size_t) {
    if (!req.messages.empty() && req.messages.back().role == api::role::tool) {
        return wafer::scripted_model::turn::text(
            "2 + 3 = " + req.messages.back().text() + ".", "The tool says 5."
        );
    }
    return wafer::scripted_model::turn::calls(
        {{"call_1", "add", R"({"a":2,"b":3})"}}, "I should use the add tool."
    );
}

// The same 2-turn runs against the scripted model (no HTTP, no JSON on the wire): the loop's own
// share of the CPU per turn, to split the figure above into framework and client.
// With `tracer`, every run is traced (the tracing-on variant). `turns` (if given) gets the count.
double loop_only_cpu_us_per_turn(
    int runs,
    std::shared_ptr<const wafer::telemetry::tracer> tracer = {},
    std::size_t* turns = nullptr
) {
    asio::io_context ioc(1);
    auto model = std::make_shared<wafer::scripted_model>("zai-glm-4.7");
    model->check_requests(false);
    model->set_responder(&two_turn_script);
    const wafer::agent a = make_agent(model, std::move(tracer));
    cpu_outcome warm;
    asio::co_spawn(ioc, sequential_runs(&a, std::min(runs, 100), &warm), &rethrow);
    ioc.run();
    ioc.restart();
    cpu_outcome out;
    const double c0 = thread_cpu_us();
    asio::co_spawn(ioc, sequential_runs(&a, runs, &out), &rethrow);
    ioc.run();
    const double cpu = thread_cpu_us() - c0;
    if (out.failed > 0 || out.turns == 0) {
        return -1;
    }
    if (turns) {
        *turns = out.turns;
    }
    return cpu / static_cast<double>(out.turns);
}

// ---- journal: what journaling a run costs per turn ---------------------------------------------

double process_cpu_us() {
    timespec ts{};
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return static_cast<double>(ts.tv_sec) * 1e6 + static_cast<double>(ts.tv_nsec) / 1e3;
}

asio::awaitable<void> journaled_runs(
    const wafer::agent* a, int n, std::shared_ptr<wafer::store::run_store> st, cpu_outcome* out
) {
    static int serial = 0;
    for (int i = 0; i < n; ++i) {
        wafer::run_options o;
        o.store = st;
        o.run_id = "bench-" + std::to_string(++serial);
        asio::awaitable<wafer::run_result> op =
            a->async_run("What is 2 + 3? Use the add tool.", std::move(o));
        wafer::run_result r = co_await std::move(op);
        out->turns += r.turn_count();
        if (r.stop_reason == wafer::stop_reason::completed && r.turn_count() == 2) {
            ++out->completed;
        } else {
            ++out->failed;
        }
    }
}

// The loop-only runs of loop_only_cpu_us_per_turn with no journal, a memory store and SQLite at
// NORMAL and FULL, each with its store's thread doing the SQLite work (sqlite_normal,
// sqlite_full: the default) and with the caller's thread doing it when the store is idle
// (*_caller: sqlite_threading::caller_when_idle): process CPU (the store's thread included) and
// syncs (xSync calls) per turn. A 2-turn run commits 5 times: the run's creation, the reply
// with its dispatch, the tool's result, the dispatch's end, the last reply with the stop.
int bench_journal(int runs) {
    namespace fs = std::filesystem;
    auto model = std::make_shared<wafer::scripted_model>("zai-glm-4.7");
    model->check_requests(false);
    model->set_responder(&two_turn_script);
    const wafer::agent a = make_agent(model);
    char tmpl[] = "/tmp/wafer-journal-bench-XXXXXX";
    if (::mkdtemp(tmpl) == nullptr) {
        return 1;
    }
    const fs::path dir = tmpl;
    auto& vfs = wafer::testing::counting_vfs::instance();
    struct mode {
        const char* name;
        std::function<std::shared_ptr<wafer::store::run_store>()> make;
        int runs;
    };
    using wafer::store::sqlite_durability;
    using wafer::store::sqlite_threading;
    auto sqlite = [&](sqlite_durability d, sqlite_threading t, const char* file) {
        return [&, d, t, file] {
            wafer::store::sqlite_options o;
            o.durability = d;
            o.threading = t;
            o.vfs = wafer::testing::counting_vfs::name;
            return std::static_pointer_cast<wafer::store::run_store>(
                std::make_shared<wafer::store::sqlite_store>(dir / file, o)
            );
        };
    };
    // WAFER_JOURNAL_MODE=memory (etc.) measures one mode alone with every run, e.g. under a
    // profiler.
    const char* only_mode = std::getenv("WAFER_JOURNAL_MODE");
    const int slow_runs = only_mode ? runs : std::max(1, runs / 10);
    std::vector<mode> modes = {
        {"none", [] { return std::shared_ptr<wafer::store::run_store>(); }, runs},
        {"memory",
         [] {
             return std::static_pointer_cast<wafer::store::run_store>(
                 std::make_shared<wafer::store::memory_store>()
             );
         },
         runs},
        {"sqlite_normal",
         sqlite(sqlite_durability::normal, sqlite_threading::store_thread, "normal.db"),
         slow_runs},
        {"sqlite_full",
         sqlite(sqlite_durability::full, sqlite_threading::store_thread, "full.db"),
         slow_runs},
        {"sqlite_normal_caller",
         sqlite(sqlite_durability::normal, sqlite_threading::caller_when_idle, "normal_c.db"),
         slow_runs},
        {"sqlite_full_caller",
         sqlite(sqlite_durability::full, sqlite_threading::caller_when_idle, "full_c.db"),
         slow_runs},
    };
    double none_us = 0;
    int rc = 0;
    for (auto& m : modes) {
        if (only_mode && std::string_view(m.name) != only_mode &&
            std::string_view(m.name) != "none") {
            continue;
        }
        for (const int parallel : {1, 64}) {
            if (parallel > 1 && std::string_view(m.name) == "none") {
                continue; // the floor is the sequential loop
            }
            asio::io_context ioc(1);
            auto st = m.make();
            cpu_outcome warm;
            asio::co_spawn(ioc, journaled_runs(&a, std::min(m.runs, 20), st, &warm), &rethrow);
            ioc.run();
            ioc.restart();
            cpu_outcome out;
            const long s0 = vfs.syncs();
            const double c0 = process_cpu_us();
            const auto t0 = clock_type::now();
            // parallel > 1: that many runs at once, so that the store's group commit shares
            // commits between them (what a service driving many runs sees).
            for (int p = 0; p < parallel; ++p) {
                asio::co_spawn(ioc, journaled_runs(&a, m.runs / parallel, st, &out), &rethrow);
            }
            ioc.run();
            const double cpu = process_cpu_us() - c0;
            const double wall_ms = ms_between(t0, clock_type::now());
            const long syncs = vfs.syncs() - s0;
            if (out.failed > 0 || out.turns == 0) {
                std::fprintf(
                    stderr, "agent_bench journal: %s: %d runs failed\n", m.name, out.failed
                );
                rc = 1;
                continue;
            }
            const double turns = static_cast<double>(out.turns);
            const double per_turn = cpu / turns;
            if (std::string_view(m.name) == "none") {
                none_us = per_turn;
            }
            std::printf(
                "name=journal_per_turn mode=%s parallel=%d runs=%d turns=%zu cpu_us_per_turn=%.1f "
                "extra_cpu_us_per_turn=%.1f syncs_per_turn=%.2f wall_us_per_turn=%.1f "
                "target_extra_us=15\n",
                m.name,
                parallel,
                out.completed,
                out.turns,
                per_turn,
                per_turn - none_us,
                static_cast<double>(syncs) / turns,
                wall_ms * 1000.0 / turns
            );
        }
    }
    fs::remove_all(dir);
    return rc;
}

int bench_cpu(int runs, bool rate_headers) {
    // The server: its own io_context on its own thread (constructed here, before that thread runs).
    // By default it sends Cerebras's x-ratelimit-* headers and x-request-id as the real API does.
    asio::io_context server_ioc(1);
    wafer::testing::fake_server_config sc;
    sc.rate_limit_headers = rate_headers;
    wafer::testing::fake_server server(server_ioc.get_executor(), sc);
    server.set_responder(&two_turn_responder);
    const std::string url = server.base_url();
    std::thread server_thread([&server_ioc] { server_ioc.run(); });

    int rc = 0;
    {
        asio::io_context ioc(1);
        api::client_config cfg;
        cfg.api_key = "bench-key";
        cfg.base_url = url;
        auto client = std::make_shared<api::client>(ioc.get_executor(), std::move(cfg));
        const wafer::agent a =
            make_agent(std::make_shared<wafer::cerebras_model>(client, "zai-glm-4.7"));

        double sys = 0;
        auto measure = [&](int n, cpu_outcome& out, double& cpu, double& wall_ms) {
            bool finished = false;
            const double s0 = thread_sys_us();
            const double c0 = thread_cpu_us();
            const auto t0 = clock_type::now();
            asio::co_spawn(ioc, sequential_runs(&a, n, &out), [&finished](std::exception_ptr e) {
                rethrow(e);
                finished = true;
            });
            const bool in_time = run_until(
                ioc, [&finished] { return finished; }, std::chrono::seconds(120)
            );
            cpu = thread_cpu_us() - c0;
            sys = thread_sys_us() - s0;
            wall_ms = ms_between(t0, clock_type::now());
            return in_time;
        };
        cpu_outcome warm;
        double cpu = 0;
        double wall = 0;
        measure(std::min(runs, 100), warm, cpu, wall); // connection, allocator, caches
        cpu_outcome out;
        const bool in_time = measure(runs, out, cpu, wall);
        if (!in_time || out.failed > 0 || warm.failed > 0) {
            std::fprintf(
                stderr,
                "agent_bench cpu: %d of %d runs failed%s (first: %s)\n",
                out.failed + warm.failed,
                runs,
                in_time ? "" : ", timed out",
                out.first_error.empty() ? warm.first_error.c_str() : out.first_error.c_str()
            );
            rc = 1;
        } else {
            std::printf(
                "name=cpu_per_turn runs=%d turns=%zu client_thread_cpu_us=%.0f "
                "cpu_us_per_turn=%.1f "
                "sys_us_per_turn=%.1f cpu_us_per_run=%.1f wall_ms=%.0f connections_opened=%zu "
                "loop_only_cpu_us_per_turn=%.1f target_us=50 peer_openai_agents_js_us=2700 "
                "peer_node_request_us=330\n",
                runs,
                out.turns,
                cpu,
                cpu / static_cast<double>(out.turns),
                sys / static_cast<double>(out.turns),
                cpu / runs,
                wall,
                client->connections_opened(),
                loop_only_cpu_us_per_turn(runs)
            );
        }
    }
    asio::post(server_ioc, [&server, &server_ioc] {
        server.stop();
        server_ioc.stop();
    });
    server_thread.join();
    return rc;
}

// ---- memory: many concurrent runs, slow streams from wafer-fake -----------------------------

struct child_server {
    pid_t pid = -1;
    std::string url;

    child_server(const std::string& path, int chunk_delay_ms) {
        int fds[2];
        if (pipe(fds) != 0) {
            throw std::runtime_error("pipe failed");
        }
        posix_spawn_file_actions_t fa;
        posix_spawn_file_actions_init(&fa);
        posix_spawn_file_actions_adddup2(&fa, fds[1], STDOUT_FILENO);
        posix_spawn_file_actions_addclose(&fa, fds[0]);
        posix_spawn_file_actions_addclose(&fa, fds[1]);
        std::string delay = std::to_string(chunk_delay_ms);
        std::vector<char*> argv{
            const_cast<char*>(path.c_str()),
            const_cast<char*>("--chunk-delay-ms"),
            delay.data(),
            nullptr};
        const int err = posix_spawn(&pid, path.c_str(), &fa, nullptr, argv.data(), environ);
        posix_spawn_file_actions_destroy(&fa);
        close(fds[1]);
        if (err != 0) {
            close(fds[0]);
            pid = -1;
            throw std::runtime_error("cannot start " + path + ": " + std::strerror(err));
        }
        // One line: "listening on http://127.0.0.1:PORT".
        std::string line;
        char c = 0;
        while (read(fds[0], &c, 1) == 1 && c != '\n') {
            line += c;
        }
        close(fds[0]);
        const std::string prefix = "listening on ";
        if (line.compare(0, prefix.size(), prefix) != 0) {
            throw std::runtime_error(path + " did not report its port: '" + line + "'");
        }
        url = line.substr(prefix.size());
    }
    ~child_server() {
        if (pid > 0) {
            kill(pid, SIGTERM);
            int status = 0;
            waitpid(pid, &status, 0);
        }
    }
    child_server(const child_server&) = delete;
    child_server& operator=(const child_server&) = delete;
};

struct memory_counters {
    std::size_t open = 0;
    std::size_t peak_open = 0;
    std::size_t done = 0;
    std::size_t completed = 0;
    std::size_t failed = 0;
    std::string first_error;
};

// The stand-in echoes the user's message word by word: a long message makes a long stream.
std::string long_input() {
    std::string s = "Please repeat this sentence back to me slowly, one word at a time, so that "
                    "the stream stays open for a while and every run is in flight at once.";
    return s;
}

void spawn_runs(asio::io_context& ioc, const wafer::agent& a, std::size_t n, memory_counters& mc) {
    for (std::size_t i = 0; i < n; ++i) {
        wafer::run_options opts;
        opts.on_event = [&mc, streaming = false](const wafer::event& e) mutable {
            if (!streaming &&
                (e.is<wafer::events::content_delta>() || e.is<wafer::events::reasoning_delta>())) {
                streaming = true;
                mc.peak_open = std::max(mc.peak_open, ++mc.open);
            } else if (e.is<wafer::events::run_finished>() && streaming) {
                --mc.open;
            }
        };
        asio::co_spawn(
            ioc,
            a.async_run(long_input(), std::move(opts)),
            [&mc](std::exception_ptr e, wafer::run_result r) {
                ++mc.done;
                if (!e && r.stop_reason == wafer::stop_reason::completed) {
                    ++mc.completed;
                    return;
                }
                ++mc.failed;
                if (mc.first_error.empty()) {
                    mc.first_error = e ? "exception"
                                       : std::string(wafer::to_string(r.stop_reason)) +
                                             (r.error ? ": " + r.error->code.message() + " " +
                                                            r.error->diagnostics.to_string()
                                                      : std::string());
                }
            }
        );
    }
}

int bench_memory(
    std::size_t wanted, const std::string& fake_path, int chunk_delay_ms, std::size_t read_buffer
) {
    rlimit rl{};
    getrlimit(RLIMIT_NOFILE, &rl);
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl); // inherited by wafer-fake, which needs as many
    getrlimit(RLIMIT_NOFILE, &rl);
    const std::size_t headroom = 64; // stdio, the io_context, the warm-up's pooled connections
    const std::size_t fd_cap =
        rl.rlim_cur > headroom ? static_cast<std::size_t>(rl.rlim_cur) - headroom : 0;
    const std::size_t runs = std::min(wanted, fd_cap);

    child_server server(fake_path, chunk_delay_ms);
    asio::io_context ioc(1);
    api::client_config cfg;
    cfg.api_key = "bench-key";
    cfg.base_url = server.url;
    cfg.timeouts.connect = 30s; // 10k connects queue up in the listen backlog
    if (read_buffer > 0) {
        cfg.read_buffer_bytes = read_buffer;
    }
    const std::size_t buffer_used = read_buffer > 0 ? std::max<std::size_t>(read_buffer, 4096)
                                                    : api::client_config{}.read_buffer_bytes;
    auto client = std::make_shared<api::client>(ioc.get_executor(), std::move(cfg));
    const wafer::agent a =
        make_agent(std::make_shared<wafer::cerebras_model>(client, "zai-glm-4.7"));

    // Warm-up: code pages, allocator arenas, the TLS-free connection path.
    memory_counters warm;
    spawn_runs(ioc, a, 8, warm);
    run_until(
        ioc, [&warm] { return warm.done == 8; }, std::chrono::seconds(60)
    );
    if (warm.failed > 0) {
        std::fprintf(stderr, "agent_bench memory: warm-up failed: %s\n", warm.first_error.c_str());
        return 1;
    }

    const bool reset = reset_peak_rss();
    const long baseline_kb = status_kb("VmRSS:");
    const long hwm_before_kb = status_kb("VmHWM:");
    memory_counters mc;
    const auto t0 = clock_type::now();
    spawn_runs(ioc, a, runs, mc);
    const bool in_time = run_until(
        ioc, [&mc, runs] { return mc.done == runs; }, std::chrono::seconds(300)
    );
    const double wall_ms = ms_between(t0, clock_type::now());
    const long peak_kb = status_kb("VmHWM:");
    // Without a reset, VmHWM may still hold an earlier peak; then the figure is an upper bound.
    const long base_kb = reset ? baseline_kb : std::max(baseline_kb, hwm_before_kb);
    const double per_run =
        runs > 0 ? static_cast<double>(peak_kb - base_kb) / static_cast<double>(runs) : 0.0;
    std::printf(
        "name=memory_per_run runs=%zu requested=%zu fd_limit=%llu peak_open=%zu completed=%zu "
        "failed=%zu baseline_kb=%ld peak_kb=%ld rss_kb_per_run=%.1f read_buffer_bytes=%zu "
        "chunk_delay_ms=%d wall_ms=%.0f hwm_reset=%d target_kb=32 peer_cerebras_ts_sdk_kb=144\n",
        runs,
        wanted,
        static_cast<unsigned long long>(rl.rlim_cur),
        mc.peak_open,
        mc.completed,
        mc.failed,
        base_kb,
        peak_kb,
        per_run,
        buffer_used,
        chunk_delay_ms,
        wall_ms,
        reset ? 1 : 0
    );
    if (!in_time || mc.failed > 0) {
        std::fprintf(
            stderr,
            "agent_bench memory: %zu of %zu runs failed%s (first: %s)\n",
            mc.failed,
            runs,
            in_time ? "" : ", timed out",
            mc.first_error.c_str()
        );
        return 1;
    }
    return 0;
}

// ---- tracing: what OpenTelemetry spans cost per turn ----------------------------------------

// The loop-only runs with tracing off, then on with an OTLP exporter attached. The run thread's
// CPU is what a run pays (span building, the queue); the exporter thread's (process CPU minus the
// run thread's) is the JSON encoding and the POSTs, sent here to a closed port of 127.0.0.1 so
// that no collector's work is counted (each batch is encoded, then its connect is refused).
// Tracing's cost per turn: the loop-only runs with and without a tracer whose exporter sends
// to a closed port (spans are built, batched and encoded; sending fails fast). The untraced
// loop's own CPU per turn varies from one measurement to the next by more than the target, so
// untraced and traced runs alternate for `rounds` rounds and the medians are compared (the
// smallest paired difference is printed too).
// A sink that drops every span on the thread that ended it: what building spans costs alone.
struct dropping_sink final : wafer::telemetry::span_sink {
    void on_span(wafer::telemetry::span_data&& span) noexcept override {
        const wafer::telemetry::span_data gone = std::move(span);
        ++spans;
    }
    void on_chat(const wafer::telemetry::chat_measurement&) noexcept override {}
    std::size_t spans = 0;
};

int bench_tracing(int runs) {
    constexpr int rounds = 7;
    wafer::telemetry::otlp_config oc;
    oc.traces_endpoint = "http://127.0.0.1:9/v1/traces";
    oc.metrics_endpoint = "http://127.0.0.1:9/v1/metrics";
    oc.schedule_delay = std::chrono::milliseconds(100);
    oc.max_queue_size = 1u << 16;
    auto exporter = std::make_shared<wafer::telemetry::otlp_exporter>(oc);
    wafer::telemetry::tracer_config tc;
    tc.provider = "cerebras";
    tc.server_address = "api.cerebras.ai";
    tc.server_port = 443;
    auto tracer = std::make_shared<const wafer::telemetry::tracer>(tc, exporter);
    std::vector<double> off, on, diff;
    std::size_t turns = 0;
    double exporter_cpu = 0;
    for (int r = 0; r < rounds; ++r) {
        off.push_back(loop_only_cpu_us_per_turn(runs));
        const double p0 = process_cpu_us();
        const double t0 = thread_cpu_us();
        std::size_t n = 0;
        on.push_back(loop_only_cpu_us_per_turn(runs, tracer, &n));
        exporter->flush(std::chrono::seconds(30));
        const double run_thread = thread_cpu_us() - t0;
        exporter_cpu += (process_cpu_us() - p0) - run_thread;
        turns += n;
        if (off.back() < 0 || on.back() < 0 || n == 0) {
            std::fprintf(stderr, "agent_bench tracing: runs failed\n");
            return 1;
        }
        diff.push_back(on.back() - off.back());
    }
    exporter->shutdown();
    const auto st = exporter->stats();
    // The same rounds with spans built and dropped on the run thread (no exporter).
    auto dropping = std::make_shared<dropping_sink>();
    auto drop_tracer = std::make_shared<const wafer::telemetry::tracer>(tc, dropping);
    std::vector<double> built;
    for (int r = 0; r < rounds; ++r) {
        const double base = loop_only_cpu_us_per_turn(runs);
        built.push_back(loop_only_cpu_us_per_turn(runs, drop_tracer) - base);
    }
    const auto median = [](std::vector<double> v) {
        std::sort(v.begin(), v.end());
        return v[v.size() / 2];
    };
    // The exporter's share is per traced turn, the loop-only warm-up runs included.
    // 4 spans per 2-turn run (agent, 2 chats, 1 tool): 2 per turn.
    const double traced_turns = static_cast<double>(st.spans_queued + st.spans_dropped_full) / 2;
    const double off_median = median(off);
    const double on_median = median(on);
    std::printf(
        "name=tracing_per_turn runs=%d rounds=%d turns=%zu tracing_off_cpu_us_per_turn=%.2f "
        "tracing_on_cpu_us_per_turn=%.2f run_thread_extra_us_per_turn=%.2f "
        "smallest_paired_extra_us=%.2f ratio=%.2f exporter_thread_cpu_us_per_turn=%.2f "
        "spans=%llu dropped_full=%llu building_spans_only_extra_us=%.2f target_us=3\n",
        runs,
        rounds,
        turns,
        off_median,
        on_median,
        on_median - off_median,
        *std::min_element(diff.begin(), diff.end()),
        on_median / off_median,
        exporter_cpu / traced_turns,
        static_cast<unsigned long long>(st.spans_queued),
        static_cast<unsigned long long>(st.spans_dropped_full),
        median(built)
    );
    return 0;
}

std::string default_fake_path(const char* argv0) {
    std::string self = argv0;
    const auto slash = self.rfind('/');
    const std::string dir = slash == std::string::npos ? "." : self.substr(0, slash);
    return dir + "/../tests/support/wafer-fake";
}

} // namespace

int main(int argc, char** argv) {
    std::string only;
    int runs = 2000;
    bool runs_given = false;
    std::size_t concurrent = 10000;
    std::string fake = default_fake_path(argv[0]);
    int chunk_delay_ms = 100;
    std::size_t read_buffer = 0;
    bool rate_headers = true;
    for (int i = 1; i + 1 < argc; i += 2) {
        const std::string flag = argv[i];
        const char* v = argv[i + 1];
        if (flag == "--only") {
            only = v;
        } else if (flag == "--runs") {
            runs = std::max(1, std::atoi(v));
            runs_given = true;
        } else if (flag == "--concurrent") {
            concurrent = static_cast<std::size_t>(std::max(1L, std::atol(v)));
        } else if (flag == "--fake") {
            fake = v;
        } else if (flag == "--chunk-delay-ms") {
            chunk_delay_ms = std::max(1, std::atoi(v));
        } else if (flag == "--read-buffer") {
            read_buffer = static_cast<std::size_t>(std::max(0L, std::atol(v)));
        } else if (flag == "--rate-headers") {
            rate_headers = std::string(v) != "off";
        } else {
            std::fprintf(stderr, "agent_bench: unknown option %s\n", flag.c_str());
            return 2;
        }
    }
    int rc = 0;
    try {
        if (only.empty() || only == "tools") {
            rc |= bench_tools();
        }
        if (only.empty() || only == "cpu" || only == "tracing") {
            // 2000 runs are 4000 turns, about 25 ms of CPU at 6 µs a turn: too short a
            // measurement for a difference of 3 µs a turn.
            rc |= bench_tracing(runs_given ? runs : 10000);
        }
        if (only.empty() || only == "cpu") {
            rc |= bench_cpu(runs, rate_headers);
        }
        if (only.empty() || only == "journal") {
            rc |= bench_journal(std::min(runs, 2000));
        }
        if (only.empty() || only == "memory") {
            rc |= bench_memory(concurrent, fake, chunk_delay_ms, read_buffer);
        }
    } catch (const std::exception& e) {
        std::fprintf(stderr, "wafer_agent_bench: %s\n", e.what());
        return 1;
    }
    return rc;
}
