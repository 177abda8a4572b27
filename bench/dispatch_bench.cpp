// Tool dispatch benchmarks (wafer::tools only, no network):
//  1. parallel:  8 async tools of 100 ms each in one dispatch; wall time (target <= 105 ms).
//  2. blocking:  8 blocking tools of 100 ms each on an 8-thread pool; wall time.
//  3. overhead:  one instant inline tool per dispatch (parse + schema validation + dispatch
//                machinery), CPU per dispatch; the tool layer's share of "CPU per agent turn".
//
// usage: wafer_dispatch_bench [--rounds N] [--calls N]
// prints one line per benchmark: name=<bench> key=value ...
#include <wafer/tools/registry.hpp>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <string>
#include <sys/resource.h>
#include <thread>
#include <vector>

namespace {

namespace asio = boost::asio;
namespace tools = wafer::tools;
using nlohmann::json;
using clock_type = std::chrono::steady_clock;

double cpu_us() {
    rusage ru{};
    getrusage(RUSAGE_SELF, &ru);
    auto us = [](const timeval& tv) {
        return static_cast<double>(tv.tv_sec) * 1e6 + static_cast<double>(tv.tv_usec);
    };
    return us(ru.ru_utime) + us(ru.ru_stime);
}

double ms_since(clock_type::time_point t0) {
    return std::chrono::duration<double, std::milli>(clock_type::now() - t0).count();
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

asio::awaitable<tools::tool_output> async_sleep(sleep_args a) {
    asio::steady_timer t(co_await asio::this_coro::executor, std::chrono::milliseconds(a.ms));
    co_await t.async_wait(asio::as_tuple(asio::use_awaitable));
    co_return tools::tool_output{"slept", false};
}

tools::registry make_registry() {
    const json sleep_schema = json::parse(
        R"({"type":"object","properties":{"ms":{"type":"integer","minimum":0}},"required":["ms"],"additionalProperties":false})"
    );
    const json add_schema = json::parse(
        R"({"type":"object","properties":{"a":{"type":"integer"},"b":{"type":"integer"}},"required":["a","b"],"additionalProperties":false})"
    );
    tools::registry reg(tools::registry_params{8, nullptr});
    reg.add(tools::make_async_tool<sleep_args>("sleep", "Sleeps", sleep_schema, &async_sleep));
    reg.add(tools::make_blocking_tool<sleep_args>(
        "block",
        "Sleeps on a thread",
        sleep_schema,
        [](sleep_args a) {
            std::this_thread::sleep_for(std::chrono::milliseconds(a.ms));
            return std::string("slept");
        }
    ));
    reg.add(tools::make_tool<add_args>("add", "Adds", add_schema, [](add_args x) {
        return std::to_string(x.a + x.b);
    }));
    return reg;
}

struct stats {
    std::vector<double> samples;
    double min() const { return *std::min_element(samples.begin(), samples.end()); }
    double median() {
        std::sort(samples.begin(), samples.end());
        return samples[samples.size() / 2];
    }
};

asio::awaitable<void>
parallel_rounds(const tools::registry& reg, std::string tool, int rounds, stats& st, bool& ok) {
    std::vector<tools::tool_call_request> calls;
    for (int i = 0; i < 8; ++i) {
        calls.push_back({"call_" + std::to_string(i), tool, R"({"ms":100})"});
    }
    for (int r = 0; r < rounds; ++r) {
        const auto t0 = clock_type::now();
        auto res = co_await reg.async_dispatch(calls, {});
        st.samples.push_back(ms_since(t0));
        for (const auto& x : res.results) {
            ok = ok && !x.is_error;
        }
    }
}

asio::awaitable<void>
overhead_rounds(const tools::registry& reg, int calls, double& cpu_total, bool& ok) {
    std::vector<tools::tool_call_request> one{{"call_0", "add", R"({"a": 2, "b": 3})"}};
    const double c0 = cpu_us();
    for (int i = 0; i < calls; ++i) {
        auto res = co_await reg.async_dispatch(one, {});
        ok = ok && res.results[0].content == "5";
    }
    cpu_total = cpu_us() - c0;
}

// Rethrows out of io_context::run() instead of dropping the exception like `detached`.
void rethrow(std::exception_ptr e) {
    if (e) {
        std::rethrow_exception(e);
    }
}

} // namespace

int main(int argc, char** argv) {
    int rounds = 5;
    int calls = 100000;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (std::strcmp(argv[i], "--rounds") == 0) {
            rounds = std::max(1, std::atoi(argv[i + 1]));
        } else if (std::strcmp(argv[i], "--calls") == 0) {
            calls = std::max(1, std::atoi(argv[i + 1]));
        }
    }
    try {
        const tools::registry reg = make_registry();
        for (const char* tool : {"sleep", "block"}) {
            asio::io_context ioc;
            stats st;
            bool ok = true;
            asio::co_spawn(ioc, parallel_rounds(reg, tool, rounds, st, ok), &rethrow);
            ioc.run();
            std::printf(
                "name=%s tools=8 tool_ms=100 rounds=%d wall_ms_min=%.1f wall_ms_median=%.1f "
                "ok=%d\n",
                std::strcmp(tool, "sleep") == 0 ? "parallel_async" : "parallel_blocking",
                rounds,
                st.min(),
                st.median(),
                ok ? 1 : 0
            );
        }
        asio::io_context ioc;
        double cpu = 0;
        bool ok = true;
        const auto t0 = clock_type::now();
        asio::co_spawn(ioc, overhead_rounds(reg, calls, cpu, ok), &rethrow);
        ioc.run();
        std::printf(
            "name=dispatch_overhead dispatches=%d cpu_us_per_dispatch=%.2f wall_ms=%.1f ok=%d\n",
            calls,
            cpu / calls,
            ms_since(t0),
            ok ? 1 : 0
        );
    } catch (const std::exception& e) {
        std::fprintf(stderr, "wafer_dispatch_bench: %s\n", e.what());
        return 1;
    }
    return 0;
}
