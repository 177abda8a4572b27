// Run store benchmark: the cost of journaling one step of a durable run.
//
// One step = one async_append of 2 entries (a model reply and a tool result, ~2 KB of JSON
// together) plus a run update (turns, tokens). Measured on sqlite_store with durability FULL
// and NORMAL, and on memory_store:
//   - sequential: one run appends step after step (each append waits for the previous one);
//   - concurrent: 64 runs append at once (group commit shares commits between them).
// Reported per append: process CPU (CLOCK_PROCESS_CPUTIME_ID, so the store's thread counts),
// wall time, and fsyncs (xSync calls counted by a wrapping sqlite3_vfs).
//
// Each SQLite durability runs with both threadings ("c": sqlite_threading::caller_when_idle).
//
// usage: wafer_store_bench [--dir DIR] [--steps N] [--only NAME]
//   N sequential appends, 64 x N/50 concurrent; NAME: only the stores whose name contains it.
// DIR (default: the current directory) must be on the disk to measure, not a tmpfs.
#include <wafer/store/memory_store.hpp>
#include <wafer/store/sqlite_store.hpp>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <exception>
#include <filesystem>
#include <memory>
#include <sqlite3.h>
#include <stdexcept>
#include <string>
#include <unistd.h>
#include <vector>

#include "counting_vfs.hpp"

namespace {

namespace asio = boost::asio;
namespace fs = std::filesystem;
namespace store = wafer::store;
using nlohmann::json;

double process_cpu_us() {
    timespec ts{};
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return static_cast<double>(ts.tv_sec) * 1e6 + static_cast<double>(ts.tv_nsec) / 1e3;
}

/// A realistic step: an assistant reply with reasoning and a tool call, and the tool's output.
std::vector<store::journal_entry> step_entries(int step) {
    json reply = {
        {"message",
         {{"role", "assistant"},
          {"content", ""},
          {"reasoning",
           "The failing test expects the parser to accept a trailing comma. Looking at "
           "src/parse.cpp, the loop stops one token early, so the closing bracket is read as a "
           "value. I will read the file around the loop first, then fix the bound and rerun the "
           "tests to confirm nothing else depends on the old behaviour. Step " +
               std::to_string(step) + "."},
          {"tool_calls",
           json::array(
               {{{"id", "call_" + std::to_string(step)},
                 {"type", "function"},
                 {"function",
                  {{"name", "read_file"},
                   {"arguments", R"({"path":"src/parse.cpp","offset":120,"limit":60})"}}}}}
           )}}},
        {"finish_reason", "tool_calls"},
        {"usage",
         {{"prompt_tokens", 5120 + step},
          {"completion_tokens", 180},
          {"total_tokens", 5300 + step},
          {"prompt_tokens_details", {{"cached_tokens", 4096}}},
          {"completion_tokens_details",
           {{"reasoning_tokens", 120},
            {"accepted_prediction_tokens", 0},
            {"rejected_prediction_tokens", 0}}}}},
        {"time_info",
         {{"queue_time", 0.000412},
          {"prompt_time", 0.0131},
          {"completion_time", 0.0874},
          {"total_time", 0.1012},
          {"created", 1764630000.25}}},
        {"model_id", "zai-glm-4.7"},
        {"response_id", "chatcmpl-0b1c2d3e4f5a6b7c8d9e"}};
    std::string file;
    for (int line = 120; line < 140; ++line) {
        file += std::to_string(line) +
                "\t    if (tok.kind == token::comma && next(i) != end) { ++i; }\n";
    }
    json result = {
        {"tool_call_id", "call_" + std::to_string(step)},
        {"name", "read_file"},
        {"content", file},
        {"is_error", false},
        {"status", "ok"},
        {"truncated", false}};
    std::vector<store::journal_entry> out(2);
    out[0].kind = "model_reply";
    out[0].body = reply.dump();
    out[1].kind = "tool_result";
    out[1].body = result.dump();
    return out;
}

store::run_info make_run(std::string id) {
    store::run_info r;
    r.id = std::move(id);
    r.agent = "coder";
    r.task = "make the parser accept trailing commas";
    r.scope = "/work/project";
    r.setup = R"({"input":"make the parser accept trailing commas","limits":{"max_turns":32}})";
    return r;
}

/// The entries of a few distinct steps, built before measuring (an append copies one set, as a
/// caller hands over its entries).
const std::vector<std::vector<store::journal_entry>>& prepared_steps() {
    static const auto steps = [] {
        std::vector<std::vector<store::journal_entry>> v;
        for (int k = 0; k < 16; ++k) {
            v.push_back(step_entries(k));
        }
        return v;
    }();
    return steps;
}

asio::awaitable<void> journal_steps(store::run_store& s, std::string run, int steps) {
    const std::string anyone;
    const auto& prepared = prepared_steps();
    for (int k = 0; k < steps; ++k) {
        auto e = prepared[static_cast<std::size_t>(k) % prepared.size()];
        store::run_update u;
        u.turns = static_cast<std::size_t>(k + 1);
        u.prompt_tokens = 5120L * (k + 1);
        u.completion_tokens = 180L * (k + 1);
        co_await s.async_append(run, anyone, std::move(e), std::move(u));
    }
}

asio::awaitable<void> create_runs(store::run_store& s, std::string prefix, int n) {
    for (int i = 0; i < n; ++i) {
        auto r = make_run(prefix + std::to_string(i));
        co_await s.async_create_run(std::move(r));
    }
}

struct figures {
    int appends = 0;
    double cpu_us = 0;
    double wall_us = 0;
    long syncs = 0;
};

/// Runs `runs` coroutines of `steps` appends each, all at once; measures only the appends.
figures measure(store::run_store& s, const std::string& prefix, int runs, int steps) {
    asio::io_context ioc;
    auto rethrow = [](std::exception_ptr e) {
        if (e) {
            std::rethrow_exception(e);
        }
    };
    asio::co_spawn(ioc, create_runs(s, prefix, runs), rethrow);
    ioc.run();
    ioc.restart();
    auto& vfs = wafer::testing::counting_vfs::instance();
    const long syncs0 = vfs.syncs();
    const double cpu0 = process_cpu_us();
    const auto wall0 = std::chrono::steady_clock::now();
    for (int i = 0; i < runs; ++i) {
        asio::co_spawn(ioc, journal_steps(s, prefix + std::to_string(i), steps), rethrow);
    }
    ioc.run();
    figures f;
    f.appends = runs * steps;
    f.wall_us =
        std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - wall0).count();
    f.cpu_us = process_cpu_us() - cpu0;
    f.syncs = vfs.syncs() - syncs0;
    return f;
}

/// The floor under any append: SQLite alone (no store, no codec, no thread), one transaction
/// per step that inserts the step's bytes as one row of a one-table file, in WAL mode with the
/// store's synchronous setting and the same counting VFS. What an append costs above it is the
/// store's own work (two tables, the run's row, the journal's key, the lease check).
figures sqlite_floor(const fs::path& file, bool full, int steps) {
    sqlite3* db = nullptr;
    const auto vfs = wafer::testing::counting_vfs::name;
    if (sqlite3_open_v2(file.c_str(), &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, vfs) !=
        SQLITE_OK) {
        throw std::runtime_error("cannot open " + file.string());
    }
    const auto exec = [&](const char* sql) {
        if (sqlite3_exec(db, sql, nullptr, nullptr, nullptr) != SQLITE_OK) {
            throw std::runtime_error(std::string(sql) + ": " + sqlite3_errmsg(db));
        }
    };
    exec("PRAGMA journal_mode=WAL");
    exec(full ? "PRAGMA synchronous=FULL" : "PRAGMA synchronous=NORMAL");
    exec("CREATE TABLE steps (k INTEGER PRIMARY KEY, body TEXT NOT NULL)");
    sqlite3_stmt *begin = nullptr, *insert = nullptr, *commit = nullptr;
    sqlite3_prepare_v2(db, "BEGIN IMMEDIATE", -1, &begin, nullptr);
    sqlite3_prepare_v2(db, "INSERT INTO steps (body) VALUES (?1)", -1, &insert, nullptr);
    sqlite3_prepare_v2(db, "COMMIT", -1, &commit, nullptr);
    const auto& prepared = prepared_steps();
    std::vector<std::string> bodies;
    for (const auto& step : prepared) {
        bodies.push_back(step[0].body + step[1].body);
    }
    auto& counter = wafer::testing::counting_vfs::instance();
    const long syncs0 = counter.syncs();
    const double cpu0 = process_cpu_us();
    const auto wall0 = std::chrono::steady_clock::now();
    for (int k = 0; k < steps; ++k) {
        const auto& body = bodies[static_cast<std::size_t>(k) % bodies.size()];
        sqlite3_step(begin);
        sqlite3_reset(begin);
        sqlite3_bind_text(insert, 1, body.data(), static_cast<int>(body.size()), SQLITE_STATIC);
        if (sqlite3_step(insert) != SQLITE_DONE) {
            throw std::runtime_error(std::string("insert: ") + sqlite3_errmsg(db));
        }
        sqlite3_reset(insert);
        if (sqlite3_step(commit) != SQLITE_DONE) {
            throw std::runtime_error(std::string("commit: ") + sqlite3_errmsg(db));
        }
        sqlite3_reset(commit);
    }
    figures f;
    f.appends = steps;
    f.wall_us =
        std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - wall0).count();
    f.cpu_us = process_cpu_us() - cpu0;
    f.syncs = counter.syncs() - syncs0;
    sqlite3_finalize(begin);
    sqlite3_finalize(insert);
    sqlite3_finalize(commit);
    sqlite3_close_v2(db);
    return f;
}

void print(const char* store_name, const char* pattern, const figures& f) {
    std::printf(
        "%-14s %-22s %8d %14.1f %15.1f %14.3f\n",
        store_name,
        pattern,
        f.appends,
        f.cpu_us / f.appends,
        f.wall_us / f.appends,
        static_cast<double>(f.syncs) / f.appends
    );
}

} // namespace

int main(int argc, char** argv) {
    fs::path dir = fs::current_path();
    int steps = 1000;
    const char* only = nullptr;
    for (int i = 1; i < argc; ++i) {
        if (std::strcmp(argv[i], "--dir") == 0 && i + 1 < argc) {
            dir = argv[++i];
        } else if (std::strcmp(argv[i], "--steps") == 0 && i + 1 < argc) {
            steps = std::max(1, std::atoi(argv[++i]));
        } else if (std::strcmp(argv[i], "--only") == 0 && i + 1 < argc) {
            only = argv[++i];
        } else {
            std::fprintf(
                stderr, "usage: wafer_store_bench [--dir DIR] [--steps N] [--only NAME]\n"
            );
            return 2;
        }
    }
    constexpr int concurrent_runs = 64;
    const int concurrent_steps = std::max(1, steps / 50);
    const fs::path work = dir / ("wafer-store-bench-" + std::to_string(::getpid()));
    try {
        fs::create_directories(work);
        const auto entry_bytes = step_entries(0)[0].body.size() + step_entries(0)[1].body.size();
        std::printf(
            "store bench: one append = 2 entries (%zu bytes of JSON) + a run update; files in %s\n",
            entry_bytes,
            work.c_str()
        );
        std::printf(
            "%-14s %-22s %8s %14s %15s %14s\n",
            "store",
            "pattern",
            "appends",
            "cpu_us/append",
            "wall_us/append",
            "fsync/append"
        );
        const auto& vfs_name = wafer::testing::counting_vfs::name;
        wafer::testing::counting_vfs::instance();
        prepared_steps();
        struct config {
            const char* name;
            const char* file;
            store::sqlite_durability durability;
            store::sqlite_threading threading;
        };
        using store::sqlite_durability;
        using store::sqlite_threading;
        const config configs[] = {
            {"sqlite FULL", "full.db", sqlite_durability::full, sqlite_threading::store_thread},
            {"sqlite FULL c",
             "full-c.db",
             sqlite_durability::full,
             sqlite_threading::caller_when_idle},
            {"sqlite NORMAL",
             "normal.db",
             sqlite_durability::normal,
             sqlite_threading::store_thread},
            {"sqlite NORMAL c",
             "normal-c.db",
             sqlite_durability::normal,
             sqlite_threading::caller_when_idle},
        };
        for (const auto& c : configs) {
            if (only && std::strstr(c.name, only) == nullptr) {
                continue;
            }
            store::sqlite_store s(
                work / c.file,
                {.durability = c.durability, .threading = c.threading, .vfs = vfs_name}
            );
            const figures seq = measure(s, "seq-", 1, steps);
            print(c.name, "sequential (1 run)", seq);
            print(
                c.name,
                "concurrent (64 runs)",
                measure(s, "par-", concurrent_runs, concurrent_steps)
            );
            if (c.threading == sqlite_threading::store_thread) {
                const bool full = c.durability == sqlite_durability::full;
                const figures floor =
                    sqlite_floor(work / (std::string("floor-") + c.file), full, steps);
                print(full ? "sqlite3 FULL" : "sqlite3 NORMAL", "floor: 1 row per commit", floor);
                std::printf(
                    "name=sqlite_append_over_floor durability=%s cpu_ratio=%.2f "
                    "floor_cpu_us=%.1f\n",
                    full ? "full" : "normal",
                    (seq.cpu_us / seq.appends) / (floor.cpu_us / floor.appends),
                    floor.cpu_us / floor.appends
                );
            }
        }
        if (!only || std::strstr("memory", only) != nullptr) {
            store::memory_store m;
            print("memory", "sequential (1 run)", measure(m, "seq-", 1, steps));
            print(
                "memory",
                "concurrent (64 runs)",
                measure(m, "par-", concurrent_runs, concurrent_steps)
            );
        }
    } catch (const std::exception& e) {
        std::fprintf(stderr, "store bench: %s\n", e.what());
        std::error_code ec;
        fs::remove_all(work, ec);
        return 1;
    }
    std::error_code ec;
    fs::remove_all(work, ec);
    return 0;
}
