// run_command: real processes under /bin/sh, dispatched through the registry as the agent does.
// Exit codes, output capture and caps, deadlines, SIGTERM-ignoring commands, background children
// holding the pipe, cancellation through the dispatch, and that nothing is left running or
// unreaped afterwards. Time bounds are generous (they catch hangs, not slowness).
#include <wafer/tools/builtin_tools.hpp>
#include <wafer/tools/registry.hpp>
#include <wafer/tools/run_command.hpp>

#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>

#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <optional>
#include <stop_token>
#include <string>
#include <sys/types.h>
#include <sys/wait.h>
#include <thread>
#include <utility>
#include <vector>

#include "run_coro.hpp"

namespace {

namespace asio = boost::asio;
namespace tools = wafer::tools;
namespace fs = std::filesystem;
using nlohmann::json;
using namespace std::chrono_literals;
using clock_type = std::chrono::steady_clock;

bool contains(const std::string& hay, const std::string& needle) {
    return hay.find(needle) != std::string::npos;
}

// Gone, or a zombie waiting for someone else's reaper (reparented grandchildren).
bool process_gone(pid_t pid) {
    std::ifstream f("/proc/" + std::to_string(pid) + "/stat");
    std::string s;
    if (!f || !std::getline(f, s)) {
        return true;
    }
    const auto p = s.rfind(')');
    return p != std::string::npos && p + 2 < s.size() && (s[p + 2] == 'Z' || s[p + 2] == 'X');
}

bool wait_gone(pid_t pid, std::chrono::milliseconds limit = 5s) {
    const auto until = clock_type::now() + limit;
    while (!process_gone(pid)) {
        if (clock_type::now() > until) {
            return false;
        }
        std::this_thread::sleep_for(10ms);
    }
    return true;
}

// Our own child was reaped (not a zombie, not running).
bool reaped(pid_t pid) {
    int st = 0;
    return ::waitpid(pid, &st, WNOHANG) < 0 && errno == ECHILD;
}

// Ends a leftover process a failing test found alive, so it does not outlive the suite.
void kill_if_alive(pid_t pid) {
    if (!process_gone(pid)) {
        ::kill(pid, SIGKILL);
    }
}

template <class D>
long long ms(D d) {
    return std::chrono::duration_cast<std::chrono::milliseconds>(d).count();
}

struct fixture {
    fs::path root;
    asio::io_context ioc; // outlives the registry, whose pool may still hand results back
    tools::registry reg;

    explicit fixture(tools::run_command_options opts = quick()) {
        std::string tmpl = (fs::temp_directory_path() / "wafer-cmd-XXXXXX").string();
        REQUIRE(::mkdtemp(tmpl.data()) != nullptr);
        root = fs::canonical(tmpl);
        tools::builtin_tools_options o;
        o.workspace_root = root;
        o.only = {"run_command"};
        o.command = opts;
        tools::add_builtin_tools(reg, o);
    }
    ~fixture() {
        std::error_code ec;
        fs::remove_all(root, ec);
    }
    fixture(const fixture&) = delete;
    fixture& operator=(const fixture&) = delete;

    static tools::run_command_options quick() {
        tools::run_command_options o;
        o.run.kill_grace = 500ms;
        o.run.drain_timeout = 200ms;
        o.max_timeout = 20s;
        return o;
    }

    // Arguments as raw JSON text (numbers nlohmann would not produce, like 1e30).
    tools::tool_result run_raw(const std::string& args) {
        tools::tool_call_request req{"c1", "run_command", args};
        return wafer::testing::run_coro(ioc, reg.async_call(std::move(req)), 20s);
    }

    tools::tool_result run(const std::string& command, std::optional<int> timeout_ms = {}) {
        json args{{"command", command}};
        if (timeout_ms) {
            args["timeout_ms"] = *timeout_ms;
        }
        tools::tool_call_request req{"c1", "run_command", args.dump()};
        return wafer::testing::run_coro(ioc, reg.async_call(std::move(req)), 20s);
    }

    pid_t read_pid(const char* file) {
        std::ifstream in(root / file);
        long v = 0;
        in >> v;
        REQUIRE_MESSAGE(v > 0, "no pid in " << file);
        return static_cast<pid_t>(v);
    }

    // Runs leftover work (a cancelled run finishing its kill sequence); true if none is left.
    bool drain(std::chrono::milliseconds limit = 5s) {
        if (ioc.stopped()) {
            ioc.restart();
        }
        ioc.run_for(limit);
        return ioc.stopped();
    }
};

struct dispatch_done {
    std::shared_ptr<std::optional<tools::dispatch_result>> out;
    void operator()(std::exception_ptr e, tools::dispatch_result r) {
        REQUIRE_FALSE(e);
        out->emplace(std::move(r));
    }
};

} // namespace

TEST_SUITE("integration/run_command") {

    TEST_CASE("exit code and merged stdout/stderr") {
        fixture f;
        auto r = f.run("echo hello; echo oops >&2; exit 3");
        CHECK(r.status == tools::result_status::tool_error);
        CHECK(r.content == "exit code: 3\nhello\noops\n");

        r = f.run("printf ok");
        CHECK(r.status == tools::result_status::ok);
        CHECK_FALSE(r.is_error);
        CHECK(r.content == "exit code: 0\nok");

        r = f.run("true");
        CHECK(r.content == "exit code: 0\n(no output)");

        r = f.run("kill -9 $$");
        CHECK(r.status == tools::result_status::tool_error);
        CHECK(contains(r.content, "killed by signal 9 (SIGKILL)"));
    }

    TEST_CASE("runs in the workspace root with stdin at /dev/null") {
        fixture f;
        auto r = f.run("pwd");
        CHECK(r.content == "exit code: 0\n" + f.root.string() + "\n");

        const auto t0 = clock_type::now();
        r = f.run("cat; echo after-cat");
        CHECK(r.content == "exit code: 0\nafter-cat\n");
        CHECK(clock_type::now() - t0 < 5s);

        r = f.run("echo data > made.txt && cat made.txt");
        CHECK(r.content == "exit code: 0\ndata\n");
        CHECK(fs::exists(f.root / "made.txt"));
    }

    TEST_CASE("wafer's API keys are not passed to the command") {
        auto o = fixture::quick();
        o.run.env.pass_extra = {"WAFER_TEST_VISIBLE"};
        o.run.env.inherit_all = true; // even then, the keys stay out
        fixture f(o);
        ::setenv("CEREBRAS_API_KEY", "sk-must-not-leak", 1);
        ::setenv("WAFER_TEST_VISIBLE", "visible", 1);
        auto r = f.run("echo \"k=$CEREBRAS_API_KEY v=$WAFER_TEST_VISIBLE\"");
        ::unsetenv("CEREBRAS_API_KEY");
        ::unsetenv("WAFER_TEST_VISIBLE");
        CHECK(r.content == "exit code: 0\nk= v=visible\n");
    }

    TEST_CASE("invalid arguments are reported, not run") {
        fixture f;
        tools::tool_call_request req{"c1", "run_command", R"({"command":"true","shell":"bash"})"};
        auto r = wafer::testing::run_coro(f.ioc, f.reg.async_call(req));
        CHECK(r.status == tools::result_status::invalid_arguments);
        r = f.run("   ");
        CHECK(r.status == tools::result_status::invalid_arguments);
        r = f.run("true", 0);
        CHECK(r.status == tools::result_status::invalid_arguments);
    }

    TEST_CASE("timeout kills the command and reports it") {
        fixture f;
        const auto t0 = clock_type::now();
        auto r = f.run("echo $$ > pid; echo before; sleep 30", 300);
        const auto took = clock_type::now() - t0;
        CHECK(r.status == tools::result_status::tool_error);
        CHECK(contains(r.content, "timed out after 300 ms"));
        CHECK(contains(r.content, "before"));
        CHECK(took >= 250ms);
        CHECK(ms(took) < 5000);
        CHECK(reaped(f.read_pid("pid")));
        CHECK(wait_gone(f.read_pid("pid")));
    }

    TEST_CASE("timeout_ms above the maximum is clamped and said so") {
        auto o = fixture::quick();
        o.max_timeout = 200ms;
        fixture f(o);
        const auto t0 = clock_type::now();
        auto r = f.run("sleep 30", 60000);
        CHECK(contains(r.content, "lowered to the maximum of 200 ms"));
        CHECK(contains(r.content, "timed out after 200 ms"));
        CHECK(clock_type::now() - t0 < 5s);
    }

    TEST_CASE("a command that ignores SIGTERM is killed after the grace period") {
        fixture f; // grace 500 ms
        const auto t0 = clock_type::now();
        auto r = f.run("trap '' TERM; echo $$ > pid; sleep 30 & echo $! > bg; wait", 200);
        const auto took = clock_type::now() - t0;
        CHECK(contains(r.content, "timed out after 200 ms"));
        CHECK(took >= 600ms); // it did need the SIGKILL
        CHECK(ms(took) < 5000);
        CHECK(reaped(f.read_pid("pid")));
        CHECK(wait_gone(f.read_pid("pid")));
        CHECK(wait_gone(f.read_pid("bg")));
    }

    TEST_CASE("a background child holding the pipe does not hang the call, and is killed") {
        fixture f; // drain 200 ms
        const auto t0 = clock_type::now();
        auto r = f.run("sleep 30 & echo $! > bg; echo started");
        const auto took = clock_type::now() - t0;
        CHECK(r.status == tools::result_status::ok);
        CHECK(r.content == "exit code: 0\nstarted\n");
        CHECK(ms(took) < 5000);
        CHECK(wait_gone(f.read_pid("bg")));

        // Redirected away from the pipe: the call ends at once, the job still does not outlive it.
        r = f.run("sleep 30 > /dev/null 2>&1 & echo $! > bg2; echo quick");
        CHECK(r.content == "exit code: 0\nquick\n");
        CHECK(wait_gone(f.read_pid("bg2")));
    }

    TEST_CASE("a process that leaves the group and keeps the pipe is cut off after the drain time"
    ) {
        fixture f;
        const auto t0 = clock_type::now();
        auto r = f.run("setsid sleep 3 & echo detached");
        CHECK(r.content == "exit code: 0\ndetached\n");
        CHECK(clock_type::now() - t0 < 2500ms);
    }

    TEST_CASE("an output flood is capped, fully drained, and the call ends") {
        auto o = fixture::quick();
        o.run.output_cap = 4096;
        fixture f(o);
        auto r = f.run("yes | head -c 50000000; echo; echo tail-marker");
        CHECK(r.status == tools::result_status::ok);
        CHECK(contains(r.content, "exit code: 0\ny\ny\n"));
        CHECK(contains(r.content, "bytes of output omitted"));
        CHECK(contains(r.content, " of 50000013 bytes"));
        CHECK(contains(r.content, "tail-marker\n"));
        CHECK(r.content.size() < 4096 + 200);
        CHECK_FALSE(r.truncated); // our own cap, not the dispatcher's

        const auto t0 = clock_type::now();
        r = f.run("yes", 500);
        CHECK(contains(r.content, "timed out after 500 ms"));
        CHECK(contains(r.content, "bytes of output omitted"));
        CHECK(r.content.size() < 4096 + 300);
        CHECK(clock_type::now() - t0 < 5s);
    }

    TEST_CASE("cancelling the dispatch kills the whole group promptly") {
        fixture f;
        auto out = std::make_shared<std::optional<tools::dispatch_result>>();
        asio::cancellation_signal sig;
        std::vector<tools::tool_call_request> calls{
            {"c1",
             "run_command",
             json{{"command", "echo $$ > pid; sleep 30 & echo $! > bg; wait"}}.dump()}};
        const auto t0 = clock_type::now();
        asio::co_spawn(
            f.ioc,
            f.reg.async_dispatch(std::move(calls)),
            asio::bind_cancellation_slot(sig.slot(), dispatch_done{out})
        );
        asio::steady_timer t(f.ioc, 300ms);
        t.async_wait([&](boost::system::error_code) { sig.emit(asio::cancellation_type::terminal); }
        );
        while (!*out && clock_type::now() - t0 < 10s) {
            f.ioc.run_one_for(50ms);
        }
        REQUIRE(out->has_value());
        CHECK(ms(clock_type::now() - t0) < 2000);
        CHECK((*out)->cancelled);
        CHECK((*out)->results.at(0).status == tools::result_status::cancelled);

        // The straggler finishes its kill sequence and reaps the shell.
        CHECK(f.drain());
        CHECK(ms(clock_type::now() - t0) < 5000);
        CHECK(reaped(f.read_pid("pid")));
        CHECK(wait_gone(f.read_pid("pid")));
        CHECK(wait_gone(f.read_pid("bg")));
    }

    TEST_CASE("a dispatch call_timeout kills a SIGTERM-ignoring group") {
        fixture f;
        tools::dispatch_options opts;
        opts.call_timeout = 300ms;
        tools::tool_call_request req{
            "c1", "run_command", json{{"command", "trap '' TERM; echo $$ > pid; sleep 30"}}.dump()};
        const auto t0 = clock_type::now();
        auto r = wafer::testing::run_coro(f.ioc, f.reg.async_call(std::move(req), opts));
        CHECK(r.status == tools::result_status::timeout);
        CHECK(ms(clock_type::now() - t0) < 2000);
        CHECK(f.drain());
        CHECK(ms(clock_type::now() - t0) < 5000);
        CHECK(reaped(f.read_pid("pid")));
        CHECK(wait_gone(f.read_pid("pid")));
    }

    TEST_CASE("many commands run concurrently without a thread each") {
        fixture f;
        std::vector<tools::tool_call_request> calls;
        for (int i = 0; i < 64; ++i) {
            calls.push_back(
                {"c" + std::to_string(i),
                 "run_command",
                 json{{"command", "sleep 1; echo " + std::to_string(i)}}.dump()}
            );
        }
        const auto t0 = clock_type::now();
        tools::dispatch_options all_at_once;
        all_at_once.max_concurrency = 64; // above the default cap of 16
        auto r = wafer::testing::run_coro(
            f.ioc, f.reg.async_dispatch(std::move(calls), all_at_once), 60s
        );
        const auto took = clock_type::now() - t0;
        for (int i = 0; i < 64; ++i) {
            CAPTURE(i);
            CHECK(
                r.results[static_cast<std::size_t>(i)].content ==
                "exit code: 0\n" + std::to_string(i) + "\n"
            );
        }
        // 64 x 1 s in sequence would be 64 s; the bound leaves room for starting 64 supervised
        // commands on a loaded machine under ASan (fork of a sanitised process is slow).
        CHECK(ms(took) < 32000);
    }

    TEST_CASE("credentials in wafer's environment never reach the command") {
        fixture f;
        const std::vector<std::pair<std::string, std::string>> secrets{
            {"GITHUB_TOKEN", "ghp-secret-value-1"},
            {"AWS_SECRET_ACCESS_KEY", "aws-secret-value-2"},
            {"AWS_ACCESS_KEY_ID", "aws-secret-value-3"},
            {"MY_SERVICE_TOKEN", "svc-secret-value-4"},
            {"ANTHROPIC_API_KEY", "sk-secret-value-5"},
            {"CEREBRAS_API_KEY", "csk-secret-value-6"},
            {"DATABASE_PASSWORD", "db-secret-value-7"}};
        for (const auto& [name, value] : secrets) {
            ::setenv(name.c_str(), value.c_str(), 1);
        }
        auto r = f.run("env; echo ---; tr '\\0' '\\n' < /proc/$PPID/environ; echo; echo done");
        for (const auto& [name, value] : secrets) {
            ::unsetenv(name.c_str());
        }
        CHECK(contains(r.content, "done"));
        CHECK(contains(r.content, "PATH="));
        for (const auto& [name, value] : secrets) {
            CAPTURE(name);
            CHECK_FALSE(contains(r.content, value));
            CHECK_FALSE(contains(r.content, name + "="));
        }
    }

    TEST_CASE("timeout_ms out of the integer range is clamped or refused, never converted blindly"
    ) {
        auto o = fixture::quick();
        o.max_timeout = 5s;
        fixture f(o);
        // Integers beyond any timeout: clamped, and the command runs.
        for (const char* huge : {"18446744073709551615", "9223372036854775807", "86400000000"}) {
            CAPTURE(huge);
            auto r = f.run_raw(std::string(R"({"command":"echo ran","timeout_ms":)") + huge + "}");
            CHECK(r.status == tools::result_status::ok);
            CHECK(contains(r.content, "lowered to the maximum of 5000 ms"));
            CHECK(contains(r.content, "exit code: 0\nran\n"));
        }
        // Whole numbers written as floats: clamped here; a schema validator may also refuse them
        // as integers. Never converted blindly (1e30 used to become a negative timeout).
        for (const char* huge : {"1e30", "1e300", "1.0e19"}) {
            CAPTURE(huge);
            auto r = f.run_raw(std::string(R"({"command":"echo ran","timeout_ms":)") + huge + "}");
            if (r.status == tools::result_status::ok) {
                CHECK(contains(r.content, "lowered to the maximum of 5000 ms"));
                CHECK(contains(r.content, "exit code: 0\nran\n"));
            } else {
                CHECK(r.status == tools::result_status::invalid_arguments);
                CHECK(contains(r.content, "timeout_ms"));
            }
        }
        for (const char* bad : {"-1", "-1e30", "0", "-9223372036854775808", "0.5"}) {
            CAPTURE(bad);
            auto r = f.run_raw(std::string(R"({"command":"echo ran","timeout_ms":)") + bad + "}");
            CHECK(r.status == tools::result_status::invalid_arguments);
            CHECK_FALSE(contains(r.content, "ran"));
        }
    }

    TEST_CASE("a setsid daemon started by the command does not outlive it") {
        fixture f;
        // A new session (out of the command's process group) and a double fork (reparented away
        // from the shell): neither survives the command.
        auto r = f.run(
            "setsid sh -c 'echo $$ > d1; exec sleep 1000' > /dev/null 2>&1 < /dev/null & "
            "( setsid sh -c 'echo $$ > d2; exec sleep 1000' > /dev/null 2>&1 < /dev/null & ) ; "
            "while [ ! -s d1 ] || [ ! -s d2 ]; do sleep 0.01; done; echo started"
        );
        CHECK(r.content == "exit code: 0\nstarted\n");
        const pid_t d1 = f.read_pid("d1");
        const pid_t d2 = f.read_pid("d2");
        CHECK(wait_gone(d1));
        CHECK(wait_gone(d2));
        kill_if_alive(d1);
        kill_if_alive(d2);

        // The same after a timeout.
        r = f.run(
            "setsid sh -c 'echo $$ > d3; exec sleep 1000' > /dev/null 2>&1 < /dev/null & sleep 30",
            300
        );
        CHECK(contains(r.content, "timed out after 300 ms"));
        std::this_thread::sleep_for(100ms);
        const pid_t d3 = f.read_pid("d3");
        CHECK(wait_gone(d3));
        kill_if_alive(d3);
    }

    TEST_CASE("async_run_command: a stop_token cancels; a bad cwd throws") {
        asio::io_context ioc;
        std::stop_source stop;
        asio::steady_timer t(ioc, 200ms);
        t.async_wait([&](boost::system::error_code) { stop.request_stop(); });
        const auto t0 = clock_type::now();
        auto r = wafer::testing::run_coro(
            ioc,
            tools::async_run_command("sleep 30", fs::temp_directory_path(), {}, stop.get_token())
        );
        CHECK(r.cancelled);
        CHECK_FALSE(r.timed_out);
        CHECK_FALSE(r.exit_code.has_value());
        CHECK(r.signal == 15);
        CHECK(clock_type::now() - t0 < 5s);

        CHECK_THROWS_AS(
            wafer::testing::run_coro(ioc, tools::async_run_command("true", "/nonexistent/dir")),
            std::system_error
        );
    }
}
