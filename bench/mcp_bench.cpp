// MCP client benchmark (not a test): CPU and wall time per tools/call over stdio, wafer's client
// calling server-everything's `echo` tool (bench/mcp/run.sh runs the official TypeScript SDK's
// client, bench/mcp/ts_client.mjs, against the same server command in the same run).
//
//  sequential: N calls one after another (each waits for its answer), after a warm-up.
//  parallel:   N calls with K in flight (K workers, each calling one after another).
//
// CPU is this process's own (getrusage RUSAGE_SELF: every thread of the client, not the server,
// which is a child and only in RUSAGE_CHILDREN once reaped). The handshake is not measured.
//
// usage: wafer_mcp_bench --server PATH/server-everything/dist/index.js [--node PATH]
//                        [--calls N] [--warmup N] [--parallel K] [--only sequential|parallel]
// prints one line per mode: name=mcp_echo client=wafer mode=<sequential|parallel> key=value ...
#include <wafer/tools/mcp/client.hpp>
#include <wafer/tools/mcp/server_tools.hpp>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <nlohmann/json.hpp>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <memory>
#include <string>
#include <string_view>
#include <sys/resource.h>

namespace {

namespace asio = boost::asio;
namespace mcp = wafer::tools::mcp;
using nlohmann::json;
using clock_type = std::chrono::steady_clock;

struct cpu_sample {
    double user_us = 0;
    double sys_us = 0;
};

cpu_sample cpu_now() {
    rusage ru{};
    getrusage(RUSAGE_SELF, &ru);
    auto us = [](const timeval& tv) {
        return static_cast<double>(tv.tv_sec) * 1e6 + static_cast<double>(tv.tv_usec);
    };
    return cpu_sample{us(ru.ru_utime), us(ru.ru_stime)};
}

struct options {
    std::string node = "node";
    std::string server;
    int calls = 2000;
    int warmup = 500;
    int parallel = 16;
    /// Empty: both modes; else "sequential" or "parallel" (for profiling one).
    std::string only;
};

// Calls shared by the workers of one run.
struct batch {
    int next = 0;
    int total = 0;
    int failures = 0;
};

// One echo call; a wrong answer counts as a failure (a thrown mcp::error ends the benchmark).
asio::awaitable<void> echo(mcp::client& c, int i, batch& b) {
    const std::string message = "hello " + std::to_string(i);
    json args = json::object();
    args["message"] = message;
    std::string tool = "echo";
    const mcp::call_result r = co_await mcp::async_call_tool(c, std::move(tool), std::move(args));
    if (r.is_error || r.text.find(message) == std::string::npos) {
        ++b.failures;
    }
}

asio::awaitable<void> worker(mcp::client& c, batch& b) {
    while (b.next < b.total) {
        co_await echo(c, b.next++, b);
    }
}

// `n` calls, `in_flight` at a time; the number of wrong answers.
asio::awaitable<int> run_calls(mcp::client& c, int n, int in_flight) {
    const auto ex = co_await asio::this_coro::executor;
    batch b;
    b.total = n;
    int running = in_flight;
    std::exception_ptr first_error;
    // Cancelled by the last worker to finish: the wait for all of them.
    asio::steady_timer all_done(ex, clock_type::time_point::max());
    for (int k = 0; k < in_flight; ++k) {
        asio::co_spawn(ex, worker(c, b), [&](std::exception_ptr e) {
            if (e && !first_error) {
                first_error = e;
            }
            if (--running == 0) {
                all_done.cancel();
            }
        });
    }
    co_await all_done.async_wait(asio::as_tuple(asio::use_awaitable));
    if (first_error) {
        std::rethrow_exception(first_error);
    }
    co_return b.failures;
}

asio::awaitable<int> measure(mcp::client& c, const options& o, const char* mode, int in_flight) {
    int failures = co_await run_calls(c, o.warmup, in_flight);
    const cpu_sample cpu0 = cpu_now();
    const auto t0 = clock_type::now();
    failures += co_await run_calls(c, o.calls, in_flight);
    const double wall_us =
        std::chrono::duration<double, std::micro>(clock_type::now() - t0).count();
    const cpu_sample cpu1 = cpu_now();
    const double n = o.calls;
    const double user = (cpu1.user_us - cpu0.user_us) / n;
    const double sys = (cpu1.sys_us - cpu0.sys_us) / n;
    std::printf(
        "name=mcp_echo client=wafer mode=%s calls=%d in_flight=%d cpu_us_per_call=%.1f "
        "user_us_per_call=%.1f sys_us_per_call=%.1f wall_us_per_call=%.1f failures=%d\n",
        mode,
        o.calls,
        in_flight,
        user + sys,
        user,
        sys,
        wall_us / n,
        failures
    );
    std::fflush(stdout);
    co_return failures;
}

asio::awaitable<int> bench_main(const options& o) {
    mcp::stdio_server server;
    server.name = "everything";
    server.command = o.node;
    server.args = {o.server, "stdio"};
    mcp::client_options copts;
    copts.on_stderr = [](std::string_view) {
    };
    auto c = co_await mcp::client::async_connect(std::move(server), std::move(copts));
    int failures = 0;
    if (o.only.empty() || o.only == "sequential") {
        failures += co_await measure(*c, o, "sequential", 1);
    }
    if (o.parallel > 1 && (o.only.empty() || o.only == "parallel")) {
        failures += co_await measure(*c, o, "parallel", o.parallel);
    }
    co_await c->async_close();
    co_return failures;
}

} // namespace

int main(int argc, char** argv) {
    options o;
    for (int i = 1; i < argc; ++i) {
        const std::string flag = argv[i];
        const char* value = i + 1 < argc ? argv[i + 1] : nullptr;
        if (value == nullptr) {
            std::fprintf(stderr, "mcp_bench: %s needs a value\n", flag.c_str());
            return 2;
        }
        ++i;
        if (flag == "--server") {
            o.server = value;
        } else if (flag == "--node") {
            o.node = value;
        } else if (flag == "--calls") {
            o.calls = std::atoi(value);
        } else if (flag == "--warmup") {
            o.warmup = std::atoi(value);
        } else if (flag == "--parallel") {
            o.parallel = std::atoi(value);
        } else if (flag == "--only") {
            o.only = value;
        } else {
            std::fprintf(stderr, "mcp_bench: unknown option %s\n", flag.c_str());
            return 2;
        }
    }
    if (o.server.empty() || o.calls <= 0 || o.warmup < 0 || o.parallel <= 0 ||
        (!o.only.empty() && o.only != "sequential" && o.only != "parallel")) {
        std::fprintf(
            stderr,
            "usage: wafer_mcp_bench --server PATH [--node PATH] [--calls N] "
            "[--warmup N] [--parallel K]\n"
        );
        return 2;
    }
    asio::io_context ioc;
    int failures = -1;
    std::exception_ptr error;
    asio::co_spawn(ioc, bench_main(o), [&](std::exception_ptr e, int f) {
        error = e;
        failures = f;
        ioc.stop();
    });
    ioc.run();
    if (error) {
        try {
            std::rethrow_exception(error);
        } catch (const std::exception& e) {
            std::fprintf(stderr, "wafer_mcp_bench: %s\n", e.what());
        }
        return 1;
    }
    if (failures != 0) {
        std::fprintf(stderr, "wafer_mcp_bench: %d wrong answers\n", failures);
        return 1;
    }
    return 0;
}
