// The run queue on PostgreSQL: runs per second through the queue with 1, 2 and 3 worker
// processes (tests/pg/queue_worker.cpp) against an in-process fake chat server, and the claim
// latency (submit returned -> a waiting worker claimed it) p50/p99.
//
// Two throughput shapes: "cpu" (the tool does one INSERT and returns: the processes, the server
// and PostgreSQL share this machine's cores, so scaling is bounded by them) and "latency" (the
// tool takes 100 ms, as a real tool or a real model does: scaling shows whether the queue
// itself serialises workers). Each pass uses a fresh schema.
//
// wafer_queue_bench --worker PATH --conninfo CONNINFO [--runs N]
#include <wafer/store/postgres_queue.hpp>
#include <wafer/store/postgres_store.hpp>
#include <wafer/testing/fake_server.hpp>
#include <wafer/worker.hpp>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_future.hpp>

#include <algorithm>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <fcntl.h>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <spawn.h>
#include <sstream>
#include <string>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>
#include <vector>

extern char** environ;

namespace {

namespace asio = boost::asio;
namespace fs = std::filesystem;
namespace store = wafer::store;
using namespace std::chrono_literals;

struct config {
    std::string worker;
    std::string conninfo;
    int runs = 300;
};

std::int64_t now_ms() {
    return std::chrono::duration_cast<std::chrono::milliseconds>(
               std::chrono::system_clock::now().time_since_epoch()
    )
        .count();
}

/// A thread running an io_context (the store's and the fake server's I/O).
struct io_thread {
    asio::io_context io;
    asio::executor_work_guard<asio::io_context::executor_type> guard{io.get_executor()};
    std::thread t{[this] {
        io.run();
    }};
    ~io_thread() {
        guard.reset();
        io.stop();
        t.join();
    }
};

/// The chat server the workers talk to: "record", then an answer.
struct chat_host {
    asio::io_context io;
    asio::executor_work_guard<asio::io_context::executor_type> guard{io.get_executor()};
    wafer::testing::fake_server server{io.get_executor()};
    std::thread thread{[this] {
        io.run();
    }};

    chat_host() {
        server.set_responder([](const wafer::api::chat_request& req) {
            if (!req.messages.empty() && req.messages.back().role == wafer::api::role::tool) {
                return wafer::testing::reply::text("done");
            }
            wafer::testing::scripted_turn t;
            t.tool_calls.push_back({"", "record", "{}"});
            return wafer::testing::reply::of(t);
        });
    }
    ~chat_host() {
        asio::post(io, [this] { server.stop(); });
        guard.reset();
        thread.join();
    }
};

template <class T>
T wait(asio::io_context& io, asio::awaitable<T> op) {
    return asio::co_spawn(io, std::move(op), asio::use_future).get();
}

asio::awaitable<bool> submit_one(store::run_queue& q, store::run_submission s) {
    co_await q.async_submit(std::move(s));
    co_return true;
}

int psql(const std::string& conninfo, const std::string& sql) {
    const std::string cmd = "psql -X -q -v ON_ERROR_STOP=1 '" + conninfo + "' >/dev/null 2>&1";
    FILE* p = ::popen(cmd.c_str(), "w");
    if (!p) {
        return -1;
    }
    std::fwrite(sql.data(), 1, sql.size(), p);
    return ::pclose(p);
}

pid_t spawn(const std::vector<std::string>& args, const fs::path& log) {
    std::vector<char*> argv;
    for (const auto& a : args) {
        argv.push_back(const_cast<char*>(a.c_str()));
    }
    argv.push_back(nullptr);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 1, log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    posix_spawn_file_actions_adddup2(&fa, 1, 2);
    pid_t pid = -1;
    if (::posix_spawn(&pid, argv[0], &fa, nullptr, argv.data(), environ) != 0) {
        throw std::runtime_error("cannot start " + args[0]);
    }
    posix_spawn_file_actions_destroy(&fa);
    return pid;
}

/// "claim RUN MS" and "end RUN OUTCOME" lines of the workers' logs.
struct seen {
    std::map<std::string, std::int64_t> claimed_ms;
    std::size_t ended = 0;
    std::size_t completed = 0;
};

seen read_logs(const std::vector<fs::path>& logs) {
    seen s;
    for (const auto& l : logs) {
        std::ifstream in(l);
        for (std::string line; std::getline(in, line);) {
            std::istringstream words(line);
            std::string what, run, third;
            words >> what >> run >> third;
            if (what == "claim") {
                s.claimed_ms.emplace(run, std::stoll(third));
            } else if (what == "end") {
                ++s.ended;
                s.completed += third == "completed" ? 1U : 0U;
            }
        }
    }
    return s;
}

struct pass {
    config cfg;
    std::string base_url;
    std::string schema;
    int workers = 1;
    int work_ms = 0;
    fs::path dir;
    std::vector<pid_t> pids;
    std::vector<fs::path> logs;
    std::unique_ptr<io_thread> pg = std::make_unique<io_thread>();
    std::unique_ptr<store::postgres_store> st;
    std::unique_ptr<store::postgres_queue> queue;

    pass(config c, std::string url, int n_workers, int work, const std::string& tag)
        : cfg(std::move(c)), base_url(std::move(url)), workers(n_workers), work_ms(work) {
        schema = "bench_" + tag + "_" + std::to_string(::getpid());
        dir = fs::temp_directory_path() / ("wafer-queue-bench-" + schema);
        fs::create_directories(dir);
        store::postgres_options o;
        o.schema = schema;
        st =
            wait(pg->io, store::postgres_store::async_open(pg->io.get_executor(), cfg.conninfo, o));
        queue = std::make_unique<store::postgres_queue>(*st);
        psql(
            cfg.conninfo,
            "CREATE TABLE \"" + schema + "\".side (call_key text NOT NULL, worker text NOT NULL);"
        );
        for (int i = 0; i < workers; ++i) {
            const std::string name = "w" + std::to_string(i);
            logs.push_back(dir / (name + ".log"));
            pids.push_back(spawn(
                {cfg.worker,
                 "--store",
                 cfg.conninfo,
                 "--schema",
                 schema,
                 "--base-url",
                 base_url,
                 "--name",
                 name,
                 "--concurrency",
                 "4",
                 "--ttl-ms",
                 "30000",
                 "--work-ms",
                 std::to_string(work_ms)},
                logs.back()
            ));
        }
        std::this_thread::sleep_for(1500ms); // connected and waiting for claims
    }

    ~pass() {
        for (pid_t p : pids) {
            ::kill(p, SIGTERM);
        }
        for (pid_t p : pids) {
            int status = 0;
            ::waitpid(p, &status, 0);
        }
        queue.reset();
        st.reset();
        pg.reset();
        psql(cfg.conninfo, "DROP SCHEMA \"" + schema + "\" CASCADE;");
        std::error_code ec;
        fs::remove_all(dir, ec);
    }

    void submit(const std::string& id) {
        wafer::queued_run r;
        r.run_id = id;
        r.input = "task " + id;
        r.agent = "single";
        wait(pg->io, submit_one(*queue, wafer::make_submission(std::move(r))));
    }
};

/// Runs/s of `n` runs submitted at once through `workers` worker processes.
double throughput(const config& cfg, const std::string& url, int workers, int work_ms) {
    pass p(
        cfg, url, workers, work_ms, "t" + std::to_string(workers) + "_" + std::to_string(work_ms)
    );
    const auto began = std::chrono::steady_clock::now();
    for (int i = 0; i < cfg.runs; ++i) {
        p.submit("r" + std::to_string(i));
    }
    const auto limit = began + 300s;
    seen s;
    while (std::chrono::steady_clock::now() < limit) {
        s = read_logs(p.logs);
        if (s.ended >= static_cast<std::size_t>(cfg.runs)) {
            break;
        }
        std::this_thread::sleep_for(20ms);
    }
    const double secs =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - began).count();
    if (s.completed != static_cast<std::size_t>(cfg.runs)) {
        std::fprintf(stderr, "queue bench: only %zu of %d runs completed\n", s.completed, cfg.runs);
    }
    return static_cast<double>(s.completed) / secs;
}

/// Submit -> claim of one run at a time into one idle worker (NOTIFY wakes it).
std::vector<double> claim_latencies(const config& cfg, const std::string& url, int samples) {
    pass p(cfg, url, 1, 0, "lat");
    std::map<std::string, std::int64_t> submitted;
    for (int i = 0; i < samples; ++i) {
        const std::string id = "l" + std::to_string(i);
        const std::int64_t before = now_ms();
        p.submit(id);
        submitted[id] = before;
        // Wait until it is done, so that the worker is idle (waiting) for the next one.
        for (int k = 0; k < 500 && read_logs(p.logs).ended <= static_cast<std::size_t>(i); ++k) {
            std::this_thread::sleep_for(5ms);
        }
    }
    const seen s = read_logs(p.logs);
    std::vector<double> out;
    for (const auto& [id, at] : submitted) {
        if (auto it = s.claimed_ms.find(id); it != s.claimed_ms.end()) {
            out.push_back(static_cast<double>(it->second - at));
        }
    }
    std::sort(out.begin(), out.end());
    return out;
}

double percentile(const std::vector<double>& v, double q) {
    if (v.empty()) {
        return 0;
    }
    const auto i = static_cast<std::size_t>(q * static_cast<double>(v.size() - 1) + 0.5);
    return v[std::min(i, v.size() - 1)];
}

} // namespace

int main(int argc, char** argv) try {
    config cfg;
    for (int i = 1; i + 1 < argc; i += 2) {
        const std::string k = argv[i];
        if (k == "--worker") {
            cfg.worker = argv[i + 1];
        } else if (k == "--conninfo") {
            cfg.conninfo = argv[i + 1];
        } else if (k == "--runs") {
            cfg.runs = std::stoi(argv[i + 1]);
        }
    }
    if (cfg.worker.empty() || cfg.conninfo.empty()) {
        std::fprintf(stderr, "usage: wafer_queue_bench --worker PATH --conninfo CONNINFO\n");
        return 2;
    }
    chat_host chat;
    const std::string url = chat.server.base_url();
    const unsigned cores = std::thread::hardware_concurrency();

    for (const int work_ms : {0, 100}) {
        double one = 0;
        for (int workers = 1; workers <= 3; ++workers) {
            const double rate = throughput(cfg, url, workers, work_ms);
            if (workers == 1) {
                one = rate;
            }
            std::printf(
                "queue (%s, tool %d ms): workers=%d concurrency=4 runs=%d runs_per_s=%.1f "
                "ratio_to_1=%.2f cores=%u\n",
                work_ms == 0 ? "cpu" : "latency",
                work_ms,
                workers,
                cfg.runs,
                rate,
                one > 0 ? rate / one : 0.0,
                cores
            );
            std::fflush(stdout);
        }
    }
    const auto lat = claim_latencies(cfg, url, 100);
    std::printf(
        "queue claim latency (submit -> claim, idle worker): samples=%zu p50_ms=%.0f p99_ms=%.0f "
        "max_ms=%.0f\n",
        lat.size(),
        percentile(lat, 0.5),
        percentile(lat, 0.99),
        lat.empty() ? 0.0 : lat.back()
    );
    return 0;
} catch (const std::exception& e) {
    std::fprintf(stderr, "queue bench: %s\n", e.what());
    return 1;
}
