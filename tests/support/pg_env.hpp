// The PostgreSQL test server: tests/pg/cluster.sh starts a throwaway cluster (ctest: the
// postgres_cluster fixture) and passes it in WAFER_TEST_POSTGRES (conninfo) and
// WAFER_TEST_POSTGRES_CTL (a command prefix: "$WAFER_TEST_POSTGRES_CTL restart").
#pragma once

#include <wafer/store/postgres_store.hpp>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_future.hpp>

#include <doctest/doctest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <thread>
#include <unistd.h>

namespace wafer::testing {

inline std::string postgres_conninfo() {
    const char* v = std::getenv("WAFER_TEST_POSTGRES");
    return v ? v : "";
}

/// The test server's conninfo (`host=/tmp/... port=5432 dbname=postgres user=wafer`) as the URI
/// the CLI takes, with `user_part` ("wafer" or "wafer:secret") before the '@'.
inline std::string postgres_uri(const std::string& user_part) {
    std::string host;
    std::string port;
    std::string dbname;
    const std::string info = postgres_conninfo();
    std::size_t at = 0;
    while (at < info.size()) {
        const std::size_t end = std::min(info.find(' ', at), info.size());
        const std::string pair = info.substr(at, end - at);
        at = end + 1;
        const auto eq = pair.find('=');
        if (eq == std::string::npos) {
            continue;
        }
        const std::string key = pair.substr(0, eq);
        const std::string value = pair.substr(eq + 1);
        if (key == "host") {
            host = value;
        } else if (key == "port") {
            port = value;
        } else if (key == "dbname") {
            dbname = value;
        }
    }
    return "postgresql://" + user_part + "@/" + dbname + "?host=" + host + "&port=" + port;
}

/// Whether the PostgreSQL cases can run. Without WAFER_TEST_POSTGRES they are skipped (with a
/// note on stderr) when run by hand, and fail under ctest (which sets
/// WAFER_TEST_POSTGRES_REQUIRED): there they must run.
inline bool postgres_available() {
    if (!postgres_conninfo().empty()) {
        return true;
    }
    if (std::getenv("WAFER_TEST_POSTGRES_REQUIRED")) {
        FAIL("WAFER_TEST_POSTGRES is not set, but ctest requires the PostgreSQL cases");
    }
    static std::atomic<bool> told{false};
    if (!told.exchange(true)) {
        std::fprintf(
            stderr,
            "note: skipping the PostgreSQL cases: WAFER_TEST_POSTGRES is not set (eval "
            "\"$(tests/pg/cluster.sh start >/dev/null && tests/pg/cluster.sh env)\")\n"
        );
    }
    return false;
}

/// Runs `$WAFER_TEST_POSTGRES_CTL action` (restart, kill, resume); false if it is not set.
inline bool postgres_ctl(const std::string& action) {
    const char* ctl = std::getenv("WAFER_TEST_POSTGRES_CTL");
    if (!ctl || !*ctl) {
        return false;
    }
    const std::string cmd = std::string(ctl) + " " + action;
    return std::system(cmd.c_str()) == 0;
}

/// A schema no other test uses (each case gets empty tables).
inline std::string unique_schema() {
    static std::atomic<int> n{0};
    const auto t = std::chrono::steady_clock::now().time_since_epoch().count();
    return "t" + std::to_string(::getpid()) + "_" + std::to_string(t % 1'000'000) + "_" +
           std::to_string(n++);
}

/// Runs SQL through psql (search_path set to `schema`); returns psql's exit status.
inline int psql(const std::string& schema, const std::string& sql) {
    const std::string cmd =
        "psql -X -q -v ON_ERROR_STOP=1 '" + postgres_conninfo() + "' >/dev/null";
    FILE* p = ::popen(cmd.c_str(), "w");
    if (!p) {
        return -1;
    }
    const std::string script = "SET search_path TO \"" + schema + "\";\n" + sql + ";\n";
    std::fwrite(script.data(), 1, script.size(), p);
    return ::pclose(p);
}

/// A thread running the io_context the stores do their I/O on (a test's own io_context runs
/// the test's coroutines; operations hop between them).
struct pg_thread {
    boost::asio::io_context io;
    boost::asio::executor_work_guard<boost::asio::io_context::executor_type> work{
        io.get_executor()};
    std::thread thread{[this] {
        io.run();
    }};

    pg_thread() = default;
    pg_thread(const pg_thread&) = delete;
    pg_thread& operator=(const pg_thread&) = delete;
    ~pg_thread() {
        work.reset();
        thread.join();
    }
};

/// Opens a postgres_store on `io` (waiting for it here).
inline std::unique_ptr<wafer::store::postgres_store> open_postgres(
    boost::asio::io_context& io,
    const std::string& schema,
    wafer::store::postgres_options opts = {},
    std::string conninfo = postgres_conninfo()
) {
    opts.schema = schema;
    auto f = boost::asio::co_spawn(
        io,
        wafer::store::postgres_store::async_open(io.get_executor(), conninfo, opts),
        boost::asio::use_future
    );
    return f.get();
}

} // namespace wafer::testing
