// The wafer program end to end: each test spawns the built binary (posix_spawn, stdout and stderr
// captured through pipes, stdin from /dev/null) against a fake server running in this process on
// its own thread, and checks what a user sees: the output, the one-line failures, the exit
// status, the requests that went over the wire and the files the agent changed.
#ifdef WAFER_CLI_PATH

#include <wafer/event.hpp>
#include <wafer/store/sqlite_store.hpp>
#include <wafer/testing/fake_server.hpp>
#include <wafer/testing/offline_session.hpp>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>

#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <csignal>
#include <cstring>
#include <fcntl.h>
#include <filesystem>
#include <fstream>
#include <functional>
#include <poll.h>
#include <pty.h>
#include <random>
#include <spawn.h>
#include <sqlite3.h>
#include <sstream>
#include <string>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>
#include <vector>

extern char** environ;

namespace asio = boost::asio;
namespace fs = std::filesystem;
using namespace std::chrono_literals;
using nlohmann::json;
using wafer::testing::delivery;
using wafer::testing::fake_server;
using wafer::testing::fake_server_config;
using wafer::testing::raw_reply;
using wafer::testing::reply;
using wafer::testing::scripted_error;
using wafer::testing::scripted_turn;

namespace {

std::size_t count(std::string_view s, std::string_view part) {
    std::size_t n = 0;
    for (auto pos = s.find(part); pos != std::string_view::npos; pos = s.find(part, pos + 1)) {
        ++n;
    }
    return n;
}

bool contains(std::string_view s, std::string_view part) {
    return s.find(part) != std::string_view::npos;
}

struct process_result {
    int status = -1; ///< exit status, or 128 + signal
    std::string out;
    std::string err;
    bool timed_out = false;
};

/// The XDG state directory of every child that is not given its own: a temporary directory of
/// this test process, so `wafer run` never journals into the user's own store.
const fs::path& shared_state_home() {
    static const struct state_dir {
        fs::path path;
        state_dir() {
            path = fs::temp_directory_path() / ("wafer-cli-state-" + std::to_string(::getpid()));
            fs::create_directories(path);
        }
        ~state_dir() {
            std::error_code ec;
            fs::remove_all(path, ec);
        }
    } dir;
    return dir.path;
}

/// The environment of the child: ours without anything that would change the endpoint or the
/// run store, plus `extra` ("NAME=value"; XDG_STATE_HOME defaults to shared_state_home()).
std::vector<std::string> child_env(const std::vector<std::string>& extra) {
    static const char* const drop[] = {
        "XDG_STATE_HOME=",
        "CEREBRAS_API_KEY=",
        "CEREBRAS_BASE_URL=",
        "HTTPS_PROXY=",
        "https_proxy=",
        "HTTP_PROXY=",
        "http_proxy=",
        "NO_PROXY=",
        "no_proxy="};
    // A variable `extra` sets replaces ours (getenv finds the first one).
    const auto overridden = [&](std::string_view v) {
        return std::any_of(extra.begin(), extra.end(), [&](const std::string& x) {
            const auto eq = x.find('=');
            return eq != std::string::npos && v.starts_with(x.substr(0, eq + 1));
        });
    };
    std::vector<std::string> env;
    for (char** e = environ; *e != nullptr; ++e) {
        const std::string_view v = *e;
        const bool dropped = std::any_of(std::begin(drop), std::end(drop), [&](const char* d) {
            return v.starts_with(d);
        });
        if (!dropped && !overridden(v)) {
            env.emplace_back(v);
        }
    }
    env.insert(env.end(), extra.begin(), extra.end());
    const bool own_state = std::any_of(extra.begin(), extra.end(), [](const std::string& e) {
        return e.starts_with("XDG_STATE_HOME=");
    });
    if (!own_state) {
        env.push_back("XDG_STATE_HOME=" + shared_state_home().string());
    }
    return env;
}

/// Milliseconds left until `end`; -1 once it has passed, after killing `pid` and marking `r`.
int ms_left_or_kill(std::chrono::steady_clock::time_point end, pid_t pid, process_result& r) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        end - std::chrono::steady_clock::now()
    );
    if (left <= 0ms) {
        r.timed_out = true;
        ::kill(pid, SIGKILL);
        return -1;
    }
    return static_cast<int>(left.count());
}

/// A wafer process started with stdout and stderr on pipes, stdin from /dev/null and no
/// controlling terminal (approval prompts must see "nobody to ask").
struct spawned_wafer {
    pid_t pid = -1;
    int out_fd = -1;
    int err_fd = -1;

    spawned_wafer(std::vector<std::string> args, const std::vector<std::string>& env_extra) {
        int out_pipe[2];
        int err_pipe[2];
        REQUIRE(::pipe2(out_pipe, O_CLOEXEC) == 0);
        REQUIRE(::pipe2(err_pipe, O_CLOEXEC) == 0);

        posix_spawn_file_actions_t fa;
        posix_spawn_file_actions_init(&fa);
        posix_spawn_file_actions_addopen(&fa, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
        posix_spawn_file_actions_adddup2(&fa, out_pipe[1], STDOUT_FILENO);
        posix_spawn_file_actions_adddup2(&fa, err_pipe[1], STDERR_FILENO);
        posix_spawnattr_t attr;
        posix_spawnattr_init(&attr);
        posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSID);

        args.insert(args.begin(), WAFER_CLI_PATH);
        std::vector<char*> argv;
        for (auto& a : args) {
            argv.push_back(a.data());
        }
        argv.push_back(nullptr);
        std::vector<std::string> env = child_env(env_extra);
        std::vector<char*> envp;
        for (auto& e : env) {
            envp.push_back(e.data());
        }
        envp.push_back(nullptr);

        const int rc = ::posix_spawn(&pid, WAFER_CLI_PATH, &fa, &attr, argv.data(), envp.data());
        posix_spawn_file_actions_destroy(&fa);
        posix_spawnattr_destroy(&attr);
        ::close(out_pipe[1]);
        ::close(err_pipe[1]);
        out_fd = out_pipe[0];
        err_fd = err_pipe[0];
        REQUIRE_MESSAGE(rc == 0, "posix_spawn: ", std::strerror(rc));
    }
    ~spawned_wafer() {
        if (pid > 0) {
            ::kill(pid, SIGKILL);
            ::waitpid(pid, nullptr, 0);
        }
        for (int fd : {out_fd, err_fd}) {
            if (fd >= 0) {
                ::close(fd);
            }
        }
    }
    spawned_wafer(const spawned_wafer&) = delete;
    spawned_wafer& operator=(const spawned_wafer&) = delete;

    /// Reads stdout and stderr until both close (or `deadline`, which kills the process), then
    /// reaps it.
    process_result collect(std::chrono::milliseconds deadline) {
        process_result r;
        const auto end = std::chrono::steady_clock::now() + deadline;
        pollfd fds[2] = {{out_fd, POLLIN, 0}, {err_fd, POLLIN, 0}};
        std::string* sinks[2] = {&r.out, &r.err};
        int open_fds = 2;
        while (open_fds > 0) {
            const int left = ms_left_or_kill(end, pid, r);
            if (left < 0) {
                break;
            }
            if (::poll(fds, 2, left) < 0) {
                continue;
            }
            for (int i = 0; i < 2; ++i) {
                if (fds[i].fd < 0 || fds[i].revents == 0) {
                    continue;
                }
                char buf[4096];
                const ssize_t n = ::read(fds[i].fd, buf, sizeof buf);
                if (n > 0) {
                    sinks[i]->append(buf, static_cast<std::size_t>(n));
                } else {
                    ::close(fds[i].fd);
                    fds[i].fd = -1;
                    --open_fds;
                }
            }
        }
        for (auto& f : fds) {
            if (f.fd >= 0) {
                ::close(f.fd);
            }
        }
        out_fd = err_fd = -1;
        r.status = reap(end, r);
        return r;
    }

    /// Reads stdout until it contains `part` (true) or `deadline` passes (false).
    bool
    read_stdout_until(std::string& out, std::string_view part, std::chrono::milliseconds deadline) {
        return read_until(out_fd, out, part, deadline);
    }
    /// The same for stderr.
    bool
    read_stderr_until(std::string& err, std::string_view part, std::chrono::milliseconds deadline) {
        return read_until(err_fd, err, part, deadline);
    }

    bool read_until(
        int fd, std::string& out, std::string_view part, std::chrono::milliseconds deadline
    ) {
        const auto end = std::chrono::steady_clock::now() + deadline;
        while (!contains(out, part)) {
            const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                end - std::chrono::steady_clock::now()
            );
            pollfd p{fd, POLLIN, 0};
            if (left <= 0ms || ::poll(&p, 1, static_cast<int>(left.count())) <= 0) {
                return false;
            }
            char buf[4096];
            const ssize_t n = ::read(fd, buf, sizeof buf);
            if (n <= 0) {
                return false;
            }
            out.append(buf, static_cast<std::size_t>(n));
        }
        return true;
    }

    /// Waits for the process to end by `deadline` (else kills it and marks `r`); returns the exit
    /// status, or 128 + signal when it was killed by one (see exited_normally).
    int reap(std::chrono::steady_clock::time_point end, process_result& r) {
        int wstatus = 0;
        for (;;) {
            const pid_t done = ::waitpid(pid, &wstatus, WNOHANG);
            if (done == pid) {
                break;
            }
            if (std::chrono::steady_clock::now() >= end) {
                r.timed_out = true;
                ::kill(pid, SIGKILL);
                ::waitpid(pid, &wstatus, 0);
                break;
            }
            std::this_thread::sleep_for(20ms);
        }
        pid = -1;
        exited_normally = WIFEXITED(wstatus);
        return WIFEXITED(wstatus) ? WEXITSTATUS(wstatus) : 128 + WTERMSIG(wstatus);
    }

    /// Set by reap: the process called exit (rather than being killed by a signal).
    bool exited_normally = false;
};

/// Runs `wafer args...` and collects its output; kills it after `deadline`.
process_result run_wafer(
    std::vector<std::string> args,
    const std::vector<std::string>& env_extra = {},
    std::chrono::seconds deadline = 60s
) {
    spawned_wafer w(std::move(args), env_extra);
    return w.collect(deadline);
}

/// Runs `wafer args...` on a pseudo-terminal (stdin, stdout and stderr), answering each
/// "[y/N]" prompt with the next of `answers`; returns everything the terminal showed.
process_result run_wafer_on_terminal(
    std::vector<std::string> args,
    std::vector<std::string> answers,
    std::chrono::seconds deadline = 60s
) {
    process_result r;
    args.insert(args.begin(), WAFER_CLI_PATH);
    std::vector<char*> argv;
    for (auto& a : args) {
        argv.push_back(a.data());
    }
    argv.push_back(nullptr);
    std::vector<std::string> env = child_env({});
    std::vector<char*> envp;
    for (auto& e : env) {
        envp.push_back(e.data());
    }
    envp.push_back(nullptr);

    int master = -1;
    const pid_t pid = ::forkpty(&master, nullptr, nullptr, nullptr);
    REQUIRE(pid >= 0);
    if (pid == 0) {
        ::execve(WAFER_CLI_PATH, argv.data(), envp.data());
        ::_exit(127);
    }
    std::size_t answered = 0;
    const auto end = std::chrono::steady_clock::now() + deadline;
    for (;;) {
        const int left = ms_left_or_kill(end, pid, r);
        if (left < 0) {
            break;
        }
        pollfd p{master, POLLIN, 0};
        if (::poll(&p, 1, left) < 0) {
            continue;
        }
        char buf[4096];
        const ssize_t n = ::read(master, buf, sizeof buf);
        if (n <= 0) {
            break; // EIO once the child has exited and closed the terminal
        }
        r.out.append(buf, static_cast<std::size_t>(n));
        if (count(r.out, "[y/N]") > answered && answered < answers.size()) {
            const std::string& a = answers[answered++];
            REQUIRE(::write(master, a.data(), a.size()) == static_cast<ssize_t>(a.size()));
        }
    }
    ::close(master);
    int wstatus = 0;
    ::waitpid(pid, &wstatus, 0);
    r.status = WIFEXITED(wstatus) ? WEXITSTATUS(wstatus) : 128 + WTERMSIG(wstatus);
    return r;
}

/// A fake server served from a background thread while a child runs.
struct served {
    asio::io_context ioc;
    fake_server server;

    explicit served(fake_server_config cfg = {}) : server(ioc.get_executor(), std::move(cfg)) {}

    /// Runs `f` (which spawns wafer) while the server answers; the server is idle again after.
    process_result while_serving(const std::function<process_result()>& f) {
        auto guard = asio::make_work_guard(ioc);
        std::thread t([this] { ioc.run(); });
        process_result r = f();
        ioc.stop();
        t.join();
        ioc.restart();
        return r;
    }

    std::vector<json> chat_bodies() const {
        std::vector<json> out;
        for (const auto& r : server.requests()) {
            if (r.method == "POST" && r.target == "/v1/chat/completions") {
                out.push_back(json::parse(r.body));
            }
        }
        return out;
    }
};

/// stderr without the "run <id>" line a journaled run starts with.
std::string without_run_line(std::string err) {
    if (err.starts_with("run ")) {
        err.erase(0, err.find('\n') + 1);
    }
    return err;
}

/// A failure as the issue asks: exactly one line on stderr, non-zero exit.
void check_one_failure_line(const process_result& r) {
    CHECK(r.status != 0);
    CHECK_FALSE(r.timed_out);
    CHECK(r.err.starts_with("wafer: "));
    CHECK(count(r.err, "\n") == 1);
    CHECK(r.err.ends_with("\n"));
}

/// A fresh copy of examples/sample_repo in a temporary directory, removed at the end.
struct sample_workspace {
    fs::path dir;
    sample_workspace() {
        std::random_device rd;
        dir = fs::temp_directory_path() / ("wafer-cli-test-" + std::to_string(rd()));
        fs::copy(WAFER_SAMPLE_REPO_DIR, dir, fs::copy_options::recursive);
    }
    ~sample_workspace() {
        std::error_code ec;
        fs::remove_all(dir, ec);
    }
    std::string read(const std::string& name) const {
        std::ifstream in(dir / name);
        std::stringstream ss;
        ss << in.rdbuf();
        return ss.str();
    }
};

/// The offline coding session served in-process, and a fresh sample workspace to run it on.
struct offline_run {
    sample_workspace ws;
    served s;

    offline_run() { s.server.set_responder(wafer::testing::offline_session()); }

    /// `wafer run` against this server and workspace: `flags`, then the task.
    std::vector<std::string> args(const std::vector<std::string>& flags = {}) const {
        std::vector<std::string> a{
            "run", "--base-url", s.server.base_url(), "--workspace", ws.dir.string()};
        a.insert(a.end(), flags.begin(), flags.end());
        a.emplace_back("Fix the failing test");
        return a;
    }
};

std::vector<json> json_lines(const std::string& out) {
    std::vector<json> lines;
    std::istringstream in(out);
    for (std::string line; std::getline(in, line);) {
        lines.push_back(json::parse(line));
    }
    return lines;
}

/// Starts `wafer ask` on a reply far larger than a pipe holds and stops reading its stdout,
/// so its io thread blocks in a write; then sends `sig` twice. Returns how it ended.
process_result twice_while_stuck(int sig) {
    served s;
    std::string huge;
    for (int i = 0; i < 200000; ++i) {
        huge += "filler ";
    }
    delivery how;
    how.chunk_chars = 4096;
    s.server.enqueue(reply::of({.content = huge}, how));
    return s.while_serving([&] {
        spawned_wafer w({"ask", "--base-url", s.server.base_url(), "q"}, {});
        std::string out;
        // (No REQUIRE in here: an exception would leave the server thread unjoined.)
        if (!w.read_stdout_until(out, "filler", 20s)) { // it runs and prints
            FAIL_CHECK("wafer printed nothing");
            return process_result{};
        }
        std::this_thread::sleep_for(1s); // ... until the pipe is full
        ::kill(w.pid, sig);
        std::this_thread::sleep_for(300ms);
        ::kill(w.pid, sig);
        // Not reading stdout any more: only an exit from the signal handler ends it.
        process_result r;
        r.status = w.reap(std::chrono::steady_clock::now() + 10s, r);
        CHECK(w.exited_normally);
        return r;
    });
}

const std::string secret = "sk-CLI-TEST-SECRET-9f8e7d";

} // namespace

TEST_SUITE("integration/cli") {

    TEST_CASE("ask streams the answer to stdout and sends a GLM request with preserved thinking") {
        // setup
        served s;
        delivery how;
        how.chunk_chars = 3;
        s.server.enqueue(
            reply::of({.reasoning = "The user greets me.", .content = "Hello from wafer!"}, how)
        );
        // run
        auto r = s.while_serving([&] {
            return run_wafer(
                {"ask", "--base-url", s.server.base_url() + "/v1", "Say hello"},
                {"CEREBRAS_API_KEY=" + secret}
            );
        });
        // check
        CHECK(r.status == 0);
        CHECK(r.out == "Hello from wafer!\n"); // no reasoning without --reasoning
        CHECK(r.err.empty());
        const auto bodies = s.chat_bodies();
        REQUIRE(bodies.size() == 1);
        CHECK(bodies[0]["model"] == "zai-glm-4.7");
        CHECK(bodies[0]["stream"] == true);
        CHECK(bodies[0]["clear_thinking"] == false);
        CHECK(bodies[0]["messages"].back()["content"] == "Say hello");
        CHECK(s.server.requests().at(0).header("authorization") == "Bearer " + secret);
    }

    TEST_CASE("ask --reasoning shows the reasoning before the answer; a bare host works") {
        served s;
        s.server.enqueue(reply::of({.reasoning = "Thinking it over.", .content = "Done."}));
        const std::string bare = s.server.base_url().substr(std::string("http://").size());
        auto r = s.while_serving([&] {
            return run_wafer({"ask", "--reasoning", "--base-url", bare, "q"});
        });
        CHECK(r.status == 0);
        // Not a terminal: no escape codes, the reasoning labelled and separated from the answer.
        CHECK(r.out == "thinking: Thinking it over.\n\nDone.\n");
        CHECK_FALSE(contains(r.out, "\x1b["));
    }

    TEST_CASE("ask --no-stream sends a non-streaming request and prints the whole answer") {
        served s;
        s.server.enqueue(reply::of({.reasoning = "r", .content = "All at once."}));
        auto r = s.while_serving([&] {
            return run_wafer(
                {"ask", "--no-stream", "--base-url", s.server.base_url(), "q"},
                {"CEREBRAS_API_KEY=" + secret}
            );
        });
        CHECK(r.status == 0);
        CHECK(r.out == "All at once.\n");
        const auto bodies = s.chat_bodies();
        REQUIRE(bodies.size() == 1);
        CHECK(bodies[0].value("stream", false) == false);
    }

    TEST_CASE("ask --json prints every event as one JSON line") {
        served s;
        s.server.enqueue(reply::of({.reasoning = "Hmm.", .content = "one two three"}));
        auto r = s.while_serving([&] {
            return run_wafer({"ask", "--json", "--base-url", s.server.base_url(), "count"});
        });
        CHECK(r.status == 0);
        const auto lines = json_lines(r.out);
        REQUIRE(lines.size() >= 4);
        std::string text;
        std::vector<std::string> types;
        for (const auto& j : lines) {
            wafer::event e;
            from_json(j, e); // each line is a complete event
            types.push_back(j.at("type").get<std::string>());
            if (auto* c = e.get_if<wafer::events::content_delta>()) {
                text += c->text;
            }
        }
        CHECK(types.front() == "run_started");
        CHECK(types.back() == "run_finished");
        CHECK(std::count(types.begin(), types.end(), "reasoning_delta") >= 1);
        CHECK(text == "one two three");
        CHECK(lines.back()["final_text"] == "one two three");
    }

    TEST_CASE("models lists the endpoint's models") {
        served s;
        auto r = s.while_serving([&] {
            return run_wafer({"models", "--base-url", s.server.base_url()});
        });
        CHECK(r.status == 0);
        CHECK(r.out == "zai-glm-4.7\ngpt-oss-120b\n");
    }

    TEST_CASE("without a key or base URL the offline stand-in answers and says so on stderr") {
        auto r = run_wafer({"ask", "hello there"});
        CHECK(r.status == 0);
        CHECK(contains(r.err, "offline stand-in"));
        CHECK(contains(r.out, "offline stand-in"));
        CHECK(contains(r.out, "hello there"));
    }

    TEST_CASE("run: parallel reads, an edit, the tests, a security critic and a summary") {
        // setup: the offline coding session, served in-process
        offline_run o;
        sample_workspace& ws = o.ws;
        served& s = o.s;
        // run
        auto r = s.while_serving([&] {
            return run_wafer(o.args({"--critic", "security", "--yes"}));
        });
        // check: what the user sees
        INFO("stdout:\n" << r.out << "\nstderr:\n" << r.err);
        CHECK(r.status == 0);
        CHECK(count(r.out, "-> read_file ") == 2);
        CHECK(count(r.out, "-> list_dir ") == 1);
        CHECK(contains(r.out, "-> edit_file "));
        CHECK(contains(r.out, "-> run_command "));
        CHECK(contains(r.out, "6 passed, 0 failed"));
        CHECK(contains(r.out, "[critic security, before_tools] approve"));
        CHECK(contains(r.out, "== completed: 4 turns"));
        CHECK(contains(r.out, "tokens: prompt "));
        CHECK(contains(r.out, "tokens/s"));
        // the workspace: the bug is fixed
        CHECK(contains(ws.read("stats.sh"), "NR == 1 { min = $1; max = $1 }"));
        CHECK_FALSE(contains(ws.read("stats.sh"), "BEGIN { min = 0; max = 0 }"));
        // the wire: turn 2 answered all three calls of turn 1; the critic asked with a json_schema
        std::size_t critic_requests = 0;
        std::size_t agent_requests = 0;
        for (const auto& b : s.chat_bodies()) {
            if (b.contains("response_format")) {
                ++critic_requests;
                CHECK(b["response_format"]["type"] == "json_schema");
                continue;
            }
            ++agent_requests;
            if (agent_requests == 2) {
                std::size_t tool_messages = 0;
                for (const auto& m : b["messages"]) {
                    tool_messages += m["role"] == "tool" ? 1U : 0U;
                }
                CHECK(tool_messages == 3);
            }
        }
        CHECK(agent_requests == 4);
        CHECK(critic_requests == 2); // edit_file and run_command; the reads are not gated
    }

    TEST_CASE("run --json: the three reads of turn 1 all start before any finishes") {
        offline_run o;
        auto r = o.s.while_serving([&] { return run_wafer(o.args({"--json", "--yes"})); });
        CHECK(r.status == 0);
        std::vector<std::string> turn1;
        for (const auto& j : json_lines(r.out)) {
            const auto type = j.at("type").get<std::string>();
            if ((type == "tool_call_started" || type == "tool_call_finished") && j["turn"] == 1) {
                turn1.push_back(type);
            }
        }
        CHECK(
            turn1 ==
            std::vector<std::string>{
                "tool_call_started",
                "tool_call_started",
                "tool_call_started",
                "tool_call_finished",
                "tool_call_finished",
                "tool_call_finished"}
        );
    }

    TEST_CASE("run without --yes and without a terminal: changes are denied, the model is told") {
        offline_run o;
        sample_workspace& ws = o.ws;
        served& s = o.s;
        const std::string before = ws.read("stats.sh");
        auto r = s.while_serving([&] { return run_wafer(o.args()); });
        INFO("stdout:\n" << r.out);
        CHECK(r.status == 0);
        CHECK(contains(r.out, "<- edit_file failed"));
        CHECK(contains(r.out, "denied: edit_file"));
        CHECK(ws.read("stats.sh") == before);
        // The model read the denial as the tool's result.
        bool denial_sent = false;
        for (const auto& b : s.chat_bodies()) {
            for (const auto& m : b["messages"]) {
                if (m["role"] == "tool" && contains(m.value("content", ""), "denied: edit_file")) {
                    denial_sent = true;
                }
            }
        }
        CHECK(denial_sent);
    }

    TEST_CASE("run without --yes on a terminal asks: y runs the edit, n refuses the command") {
        offline_run o;
        sample_workspace& ws = o.ws;
        served& s = o.s;
        auto r = s.while_serving([&] { return run_wafer_on_terminal(o.args(), {"y\n", "n\n"}); });
        INFO("terminal:\n" << r.out);
        CHECK(r.status == 0);
        CHECK_FALSE(r.timed_out);
        CHECK(count(r.out, "[y/N]") == 2); // the reads were not asked about
        CHECK(contains(r.out, "allow edit_file stats.sh: replace"));
        CHECK(contains(r.out, "allow run_command: sh tests/run_tests.sh?"));
        CHECK(contains(r.out, "<- edit_file ok"));
        CHECK(contains(r.out, "denied: the user declined this run_command call"));
        CHECK_FALSE(contains(r.out, "6 passed")); // the tests never ran
        CHECK(contains(ws.read("stats.sh"), "NR == 1 { min = $1; max = $1 }"));
    }

    TEST_CASE("failure: a real endpoint without an API key") {
        auto r = run_wafer({"ask", "--base-url", "https://api.example.invalid/v1", "hi"});
        check_one_failure_line(r);
        CHECK(contains(r.err, "no API key"));
        CHECK(contains(r.err, "CEREBRAS_API_KEY"));
    }

    TEST_CASE("failure: 401 names the problem and never prints the key") {
        fake_server_config cfg;
        cfg.api_key = "the-right-key";
        served s(cfg);
        auto r = s.while_serving([&] {
            return run_wafer(
                {"ask", "--base-url", s.server.base_url(), "hi"}, {"CEREBRAS_API_KEY=" + secret}
            );
        });
        check_one_failure_line(r);
        CHECK(contains(r.err, "authentication failed"));
        CHECK(contains(r.err, "401"));
        CHECK_FALSE(contains(r.err + r.out, secret));
    }

    TEST_CASE("failure: 429 with the retry-after") {
        served s;
        scripted_error e;
        e.status = 429;
        e.type = "too_many_requests_error";
        e.code = "request_quota_exceeded";
        e.message = "Requests per minute limit exceeded - too many requests sent.";
        e.retry_after = "7";
        e.should_retry = "false"; // the server says: do not retry now, so the CLI reports at once
        s.server.enqueue(reply::failure(e));
        auto r = s.while_serving([&] {
            return run_wafer({"run", "--base-url", s.server.base_url(), "--yes", "do it"});
        });
        r.err = without_run_line(r.err);
        check_one_failure_line(r);
        CHECK(contains(r.err, "rate limited"));
        CHECK(contains(r.err, "429"));
        CHECK(contains(r.err, "Requests per minute limit exceeded"));
        CHECK(contains(r.err, "retry after 7 s"));
    }

    TEST_CASE("failure: connection refused") {
        // A port that was free a moment ago and has no listener now.
        unsigned short port = 0;
        {
            asio::io_context ioc;
            asio::ip::tcp::acceptor a(ioc, {asio::ip::make_address("127.0.0.1"), 0});
            port = a.local_endpoint().port();
        }
        auto r = run_wafer({"models", "--base-url", "http://127.0.0.1:" + std::to_string(port)});
        check_one_failure_line(r);
        CHECK(contains(r.err, "cannot connect"));
        CHECK(contains(r.err, "refused"));
    }

    TEST_CASE("failure: TLS verification against a certificate the client does not trust") {
        fake_server_config cfg;
        cfg.tls_cert_file = std::string(WAFER_TEST_DATA_DIR) + "/tls/server.pem";
        cfg.tls_key_file = std::string(WAFER_TEST_DATA_DIR) + "/tls/server.key";
        served s(cfg);
        REQUIRE(s.server.base_url().starts_with("https://"));
        auto r = s.while_serving([&] {
            return run_wafer(
                {"ask", "--base-url", s.server.base_url(), "hi"}, {"CEREBRAS_API_KEY=" + secret}
            );
        });
        check_one_failure_line(r);
        CHECK(contains(r.err, "TLS verification failed"));
        CHECK_FALSE(contains(r.err, secret));
    }

    // ---- what reaches the terminal is shown, never interpreted (issue 10, item 1) ----

    TEST_CASE("approval prompt: a command cannot erase itself, its escapes are shown escaped") {
        // A command that, written raw, would return to the line start, erase it, move up and
        // show a harmless "echo hello" before [y/N]; and a right-to-left override.
        const std::string command = "rm -rf ~\r\x1b[2K\x1b[1Aecho hello \u202E#txt.sh";
        served s;
        s.server.enqueue(
            reply::of({.tool_calls = {{"", "run_command", json{{"command", command}}.dump()}}})
        );
        s.server.enqueue(reply::text("I did not run it."));
        sample_workspace ws;
        auto r = s.while_serving([&] {
            return run_wafer_on_terminal(
                {"run", "--base-url", s.server.base_url(), "--workspace", ws.dir.string(), "go"},
                {"n\n"}
            );
        });
        INFO("terminal:\n" << r.out);
        CHECK(r.status == 0);
        CHECK_FALSE(r.timed_out);
        CHECK(count(r.out, "[y/N]") == 1);
        CHECK(contains(
            r.out,
            "wafer: allow run_command: rm -rf ~\\r\\x1b[2K\\x1b[1Aecho hello \\u{202e}#txt.sh? "
            "[y/N]"
        ));
        // Nothing the terminal would act on: no ESC at all (no reasoning, so no dimming), no
        // carriage return except the terminal's own before a newline, no RLO.
        CHECK_FALSE(contains(r.out, "\x1b"));
        for (std::size_t i = r.out.find('\r'); i != std::string::npos;
             i = r.out.find('\r', i + 1)) {
            CHECK(r.out.substr(i, 2) == "\r\n");
        }
        CHECK_FALSE(contains(r.out, "\u202E"));
        CHECK(contains(r.out, "denied: the user declined this run_command call"));
    }

    TEST_CASE("streamed answer: escape sequences and bidi controls are shown escaped") {
        served s;
        delivery how;
        how.chunk_chars = 3; // the escapes arrive split across deltas
        s.server.enqueue(reply::of(
            {.reasoning = "plan\x1b[8m hidden",
             .content = "safe\x1b]0;pwned\x07 text\x1b[2J\rline 1\n\tline 2 \u202Eevil\u2066"},
            how
        ));
        auto r = s.while_serving([&] {
            return run_wafer({"ask", "--reasoning", "--base-url", s.server.base_url(), "q"});
        });
        CHECK(r.status == 0);
        // Newlines and tabs of the text stay; everything else a terminal interprets is escaped.
        CHECK(
            r.out ==
            "thinking: plan\\x1b[8m hidden\n\nsafe\\x1b]0;pwned\\x07 text\\x1b[2J\\rline 1\n"
            "\tline 2 \\u{202e}evil\\u{2066}\n"
        );
    }

    TEST_CASE("run: tool names, arguments and output previews are shown escaped") {
        served s;
        s.server.enqueue(reply::of(
            {.tool_calls = {{"", "run_command", R"({"command":"printf 'a\\033[2Jb\\rc\\n'"})"}}}
        ));
        s.server.enqueue(reply::text("done"));
        sample_workspace ws;
        auto r = s.while_serving([&] {
            return run_wafer(
                {"run",
                 "--yes",
                 "--base-url",
                 s.server.base_url(),
                 "--workspace",
                 ws.dir.string(),
                 "go"}
            );
        });
        INFO("stdout:\n" << r.out);
        CHECK(r.status == 0);
        CHECK(contains(r.out, "a\\x1b[2Jb\\rc")); // the command's output, escaped
        CHECK_FALSE(contains(r.out, "\x1b"));
        CHECK_FALSE(contains(r.out, "\r"));
    }

    TEST_CASE("failure: control characters in a server's error message are shown escaped") {
        served s;
        scripted_error e;
        e.status = 400;
        e.type = "invalid_request_error";
        e.message = "bad\x1b[31m red\r\nwafer: all good\x1b[0m";
        e.should_retry = "false";
        s.server.enqueue(reply::failure(e));
        auto r = s.while_serving([&] {
            return run_wafer({"ask", "--base-url", s.server.base_url(), "hi"});
        });
        check_one_failure_line(r);
        INFO("stderr: " << r.err);
        CHECK(contains(r.err, "bad\\x1b[31m red\\r\\nwafer: all good\\x1b[0m"));
        CHECK_FALSE(contains(r.err, "\x1b"));
        CHECK_FALSE(contains(r.err, "\r"));
    }

    TEST_CASE("models: a server's model ids are shown escaped") {
        fake_server_config cfg;
        cfg.models = {"zai-glm-4.7", "evil\x1b[2K\rgpt-oss-120b"};
        served s(cfg);
        auto r = s.while_serving([&] {
            return run_wafer({"models", "--base-url", s.server.base_url()});
        });
        CHECK(r.status == 0);
        CHECK(r.out == "zai-glm-4.7\nevil\\x1b[2K\\rgpt-oss-120b\n");
        auto j = s.while_serving([&] {
            return run_wafer({"models", "--json", "--base-url", s.server.base_url()});
        });
        CHECK(j.status == 0);
        CHECK_FALSE(contains(j.out, "\x1b")); // JSON escapes it as \u001b
        CHECK(json::parse(j.out).at(1).at("id") == "evil\x1b[2K\rgpt-oss-120b");
    }

    // ---- an error event inside a stream (issue 10, item 9) ----

    TEST_CASE("failure: an error inside a 200 stream without a status code names it so") {
        raw_reply raw;
        raw.content_type = "text/event-stream";
        raw.body = "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"created\":1,"
                   "\"model\":\"zai-glm-4.7\",\"choices\":[{\"index\":0,\"delta\":{\"role\":"
                   "\"assistant\"}}]}\n\n"
                   "data: {\"error\":{\"message\":\"Queue full\\u001b[2K, try later\",\"type\":"
                   "\"overloaded_error\",\"code\":\"queue_full\"}}\n\n";
        delivery how;
        how.headers = {{"x-should-retry", "false"}};
        fake_server_config cfg;
        cfg.fallback = reply::verbatim(raw, how); // the same, should the client retry
        served s(cfg);
        auto r = s.while_serving([&] {
            return run_wafer({"ask", "--base-url", s.server.base_url(), "hi"});
        });
        check_one_failure_line(r);
        INFO("stderr: " << r.err);
        CHECK(contains(
            r.err,
            "the server reported an error inside the stream: overloaded_error (queue_full): "
            "Queue full\\x1b[2K, try later"
        ));
        CHECK_FALSE(contains(r.err, "5xx"));
    }

    // ---- the API key is not in wafer's environment (issue 10, item 3) ----

    TEST_CASE("run: commands are sandboxed by default: no writes outside the workspace") {
        served s;
        const auto outside =
            fs::temp_directory_path() / ("wafer-cli-outside-" + std::to_string(::getpid()));
        fs::remove(outside);
        s.server.enqueue(reply::of(
            {.tool_calls =
                 {{"",
                   "run_command",
                   json{{"command", "touch '" + outside.string() + "'; touch inside.txt"}}.dump()}}}
        ));
        s.server.enqueue(reply::text("done"));
        sample_workspace ws;
        auto r = s.while_serving([&] {
            return run_wafer(
                {"run",
                 "--yes",
                 "--base-url",
                 s.server.base_url(),
                 "--workspace",
                 ws.dir.string(),
                 "go"},
                {}
            );
        });
        INFO("stdout:\n" << r.out << "\nstderr:\n" << r.err);
        CHECK(r.status == 0);
        CHECK(contains(r.out, "sandbox: Landlock ABI"));
        CHECK_FALSE(fs::exists(outside));
        CHECK(fs::exists(ws.dir / "inside.txt"));
        fs::remove(outside);
    }

    TEST_CASE("run: a command cannot read the API key from /proc/$PPID/environ") {
        served s;
        s.server.enqueue(reply::of(
            {.tool_calls =
                 {{"",
                   "run_command",
                   json{{"command", "cat /proc/$PPID/environ | tr '\\0' '\\n'"}}.dump()}}}
        ));
        s.server.enqueue(reply::text("done"));
        sample_workspace ws;
        const std::string other = "sk-OPENAI-TEST-SECRET-1a2b3c";
        auto r = s.while_serving([&] {
            return run_wafer(
                // Unsandboxed: the sandbox also hides wafer's /proc entries; this checks that the
                // key is gone from wafer's environment block itself.
                {"run",
                 "--yes",
                 "--sandbox=off",
                 "--base-url",
                 s.server.base_url(),
                 "--workspace",
                 ws.dir.string(),
                 "go"},
                {"CEREBRAS_API_KEY=" + secret, "OPENAI_API_KEY=" + other, "WAFER_TEST_MARK=here"}
            );
        });
        INFO("stdout:\n" << r.out << "\nstderr:\n" << r.err);
        CHECK(r.status == 0);
        // The key was read and used ...
        REQUIRE_FALSE(s.server.requests().empty());
        CHECK(s.server.requests().at(0).header("authorization") == "Bearer " + secret);
        // ... and the command read wafer's environment, but the key was no longer in it.
        const auto bodies = s.chat_bodies();
        REQUIRE(bodies.size() == 2);
        std::string tool_output;
        for (const auto& m : bodies[1]["messages"]) {
            if (m["role"] == "tool") {
                tool_output = m.value("content", "");
            }
        }
        CHECK(contains(tool_output, "WAFER_TEST_MARK=here"));
        CHECK_FALSE(contains(tool_output, secret));
        CHECK_FALSE(contains(tool_output, other));
        CHECK_FALSE(contains(tool_output, "CEREBRAS_API_KEY"));
        CHECK_FALSE(contains(tool_output, "OPENAI_API_KEY"));
        CHECK_FALSE(contains(r.out + r.err, secret));
    }

    // ---- limits and signals (issue 10, items 4 and 9) ----

    TEST_CASE("ask --timeout: a reply that trickles forever ends with one clear line") {
        // Headers, one content chunk, then a keep-alive comment every 50 ms for minutes: the
        // client's idle timeout never fires, only the overall deadline can.
        raw_reply raw;
        raw.content_type = "text/event-stream";
        raw.body = "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"created\":1,"
                   "\"model\":\"zai-glm-4.7\",\"choices\":[{\"index\":0,\"delta\":{\"role\":"
                   "\"assistant\",\"content\":\"partial\"}}]}\n\n";
        for (int i = 0; i < 4000; ++i) {
            raw.body += ": keep-alive\n\n";
        }
        delivery how;
        how.chunk_delay = 50ms;
        served s;
        s.server.enqueue(reply::verbatim(raw, how));
        const auto started = std::chrono::steady_clock::now();
        auto r = s.while_serving([&] {
            return run_wafer(
                {"ask", "--timeout", "1", "--base-url", s.server.base_url(), "q"}, {}, 30s
            );
        });
        const auto took = std::chrono::steady_clock::now() - started;
        INFO("stdout: " << r.out << "\nstderr: " << r.err);
        CHECK_FALSE(r.timed_out);
        CHECK(r.status == 3); // stopped before a final answer
        CHECK(took < 15s);
        CHECK(r.err == "wafer: timed out: no final answer within the --timeout of 1 s\n");
        CHECK(contains(r.out, "partial"));
    }

    TEST_CASE("run --timeout: a command that hangs is stopped at the run's deadline") {
        served s;
        s.server.enqueue(
            reply::of({.tool_calls = {{"", "run_command", R"({"command":"sleep 120"})"}}})
        );
        // Slow, should a model call still start at the deadline (the library floors the batch
        // deadline to milliseconds, so one may): the deadline then cuts it.
        delivery slow;
        slow.header_delay = std::chrono::hours(1);
        s.server.enqueue(reply::text("never reached", slow));
        sample_workspace ws;
        const auto started = std::chrono::steady_clock::now();
        auto r = s.while_serving([&] {
            return run_wafer(
                {"run",
                 "--yes",
                 "--timeout",
                 "2",
                 "--base-url",
                 s.server.base_url(),
                 "--workspace",
                 ws.dir.string(),
                 "go"},
                {},
                60s
            );
        });
        const auto took = std::chrono::steady_clock::now() - started;
        INFO("stdout:\n" << r.out << "\nstderr:\n" << r.err);
        CHECK_FALSE(r.timed_out);
        CHECK(r.status == 3);
        CHECK(took < 30s);
        CHECK(
            without_run_line(r.err) ==
            "wafer: timed out: no final answer within the --timeout of 2 s\n"
        );
        CHECK(contains(r.out, "== deadline"));
    }

    TEST_CASE("run: one Ctrl-C stops a run that waits for a server that never answers") {
        delivery how;
        how.header_delay = std::chrono::hours(1);
        served s;
        s.server.enqueue(reply::text("never", how));
        sample_workspace ws;
        auto r = s.while_serving([&] {
            spawned_wafer w(
                {"run", "--base-url", s.server.base_url(), "--workspace", ws.dir.string(), "go"}, {}
            );
            std::string out;
            if (!w.read_stdout_until(out, "approvals:", 20s)) {
                FAIL_CHECK("wafer did not start the run");
                return process_result{};
            }
            std::this_thread::sleep_for(300ms); // the request is on its way
            ::kill(w.pid, SIGINT);
            process_result res = w.collect(20s);
            res.out = out + res.out;
            CHECK(w.exited_normally);
            return res;
        });
        INFO("stdout:\n" << r.out << "\nstderr:\n" << r.err);
        CHECK_FALSE(r.timed_out);
        CHECK(r.status == 130);
        CHECK(contains(r.err, "interrupted"));
        CHECK(contains(r.out, "== cancelled"));
    }

    TEST_CASE("a second SIGINT exits at once, even while wafer is stuck writing its output") {
        const auto r = twice_while_stuck(SIGINT);
        CHECK_FALSE(r.timed_out);
        CHECK(r.status == 130);
    }

    TEST_CASE("a second SIGTERM exits at once, even while wafer is stuck writing its output") {
        const auto r = twice_while_stuck(SIGTERM);
        CHECK_FALSE(r.timed_out);
        CHECK(r.status == 143);
    }

    TEST_CASE("a catastrophically backtracking search pattern no longer blocks the run") {
        // With std::regex this search did not return for a very long time, and the run with it
        // (the second-signal exit that was the way out is tested above, while wafer is stuck
        // writing). On RE2 it finishes in linear time and the run goes on to its answer.
        served s;
        s.server.enqueue(reply::of(
            {.tool_calls = {{"", "search", R"({"pattern":"^(a+)+$","path":"redos.txt"})"}}}
        ));
        s.server.enqueue(reply::text("searched"));
        sample_workspace ws;
        std::ofstream(ws.dir / "redos.txt") << std::string(40, 'a') << "!\n";
        auto r = s.while_serving([&] {
            return run_wafer(
                {"run", "--base-url", s.server.base_url(), "--workspace", ws.dir.string(), "go"}, {}
            );
        });
        INFO("stdout:\n" << r.out << "\nstderr:\n" << r.err);
        CHECK_FALSE(r.timed_out);
        CHECK(r.status == 0);
        CHECK(contains(r.out, "searched"));
    }

    TEST_CASE("usage errors exit with 2") {
        auto r = run_wafer({"run", "--critic", "nonsense", "task"});
        CHECK(r.status == 2);
        auto none = run_wafer({});
        CHECK(none.status == 2);
    }

} // TEST_SUITE

// ---- durable runs in the CLI (issue 11, item 5) ----

namespace {

/// A temporary directory, removed at the end (an XDG_STATE_HOME, a HOME, a store's place).
struct temp_dir {
    fs::path dir;
    explicit temp_dir(const std::string& what) {
        std::random_device rd;
        dir = fs::temp_directory_path() / ("wafer-cli-" + what + "-" + std::to_string(rd()));
        fs::create_directories(dir);
    }
    ~temp_dir() {
        std::error_code ec;
        fs::remove_all(dir, ec);
    }
    temp_dir(const temp_dir&) = delete;
    temp_dir& operator=(const temp_dir&) = delete;
};

/// The id a journaled run names in its "run <id>" line on stderr (empty if none).
std::string run_id_of(const std::string& err) {
    std::istringstream in(err);
    for (std::string line; std::getline(in, line);) {
        if (line.starts_with("run ") && line.size() == 4 + 16 &&
            line.find_first_not_of("0123456789abcdef", 4) == std::string::npos) {
            return line.substr(4);
        }
    }
    return {};
}

/// The user and assistant texts a chat request carried, in order.
std::vector<std::string> texts_of(const json& body) {
    std::vector<std::string> out;
    for (const auto& m : body.at("messages")) {
        if ((m["role"] == "user" || m["role"] == "assistant") && m.contains("content") &&
            m["content"].is_string() && !m["content"].get<std::string>().empty()) {
            out.push_back(m["role"].get<std::string>() + ": " + m["content"].get<std::string>());
        }
    }
    return out;
}

} // namespace

TEST_SUITE("integration/cli_runs") {

    TEST_CASE("a run is journaled in the XDG state directory; runs lists it, runs show prints "
              "its history, resume and run --continue add follow-ups") {
        temp_dir state("state");
        const std::vector<std::string> env{"XDG_STATE_HOME=" + state.dir.string()};
        served s;
        s.server.enqueue(reply::of({.tool_calls = {{"", "read_file", R"({"path":"stats.sh"})"}}}));
        s.server.enqueue(reply::text("First answer: stats.sh starts min at 0."));
        sample_workspace ws;
        const std::string url = s.server.base_url();
        const std::string wsd = ws.dir.string();
        const std::string task = "Look at stats.sh\nand tell me what is wrong";

        auto r = s.while_serving([&] {
            return run_wafer({"run", "--base-url", url, "--workspace", wsd, task}, env);
        });
        INFO("stdout:\n" << r.out << "\nstderr:\n" << r.err);
        REQUIRE(r.status == 0);
        const std::string id = run_id_of(r.err);
        REQUIRE(id.size() == 16);
        CHECK(r.err == "run " + id + "\n"); // the run's id, and nothing else
        CHECK(fs::exists(state.dir / "wafer" / "runs.db"));

        // runs: this workspace's runs, the task's first line made visible.
        auto list = run_wafer({"runs", "--workspace", wsd}, env);
        INFO("runs:\n" << list.out << list.err);
        CHECK(list.status == 0);
        CHECK(count(list.out, "\n") == 2); // the header and one run
        CHECK(contains(list.out, id));
        CHECK(contains(list.out, "finished"));
        CHECK(contains(list.out, "completed"));
        CHECK(contains(list.out, "Look at stats.sh ..."));
        CHECK_FALSE(contains(list.out, "tell me"));

        auto lines = json_lines(run_wafer({"runs", "--json", "--workspace", wsd}, env).out);
        REQUIRE(lines.size() == 1);
        CHECK(lines[0]["id"] == id);
        CHECK(lines[0]["status"] == "finished");
        CHECK(lines[0]["stop_reason"] == "completed");
        CHECK(lines[0]["turns"] == 2);
        CHECK(lines[0]["task"] == task);
        CHECK(lines[0]["scope"] == fs::canonical(ws.dir).string());
        CHECK(lines[0]["updated_ms"].get<std::int64_t>() > 0);
        // Another workspace has no runs; --all lists every one.
        temp_dir other("other");
        auto none = run_wafer({"runs", "--json", "--workspace", other.dir.string()}, env);
        CHECK(none.status == 0);
        CHECK(none.out.empty());
        CHECK(json_lines(run_wafer({"runs", "--all", "--json"}, env).out).size() == 1);

        // runs show: the history as the journal has it.
        auto show = run_wafer({"runs", "show", id}, env);
        INFO("show:\n" << show.out << show.err);
        CHECK(show.status == 0);
        CHECK(contains(show.out, "user: Look at stats.sh\n  and tell me what is wrong\n"));
        CHECK(contains(show.out, "-> read_file {\"path\":\"stats.sh\"}"));
        CHECK(contains(show.out, "<- read_file ok"));
        CHECK(contains(show.out, "assistant: First answer: stats.sh starts min at 0."));
        CHECK(contains(show.out, "== completed"));
        auto show_json = json_lines(run_wafer({"runs", "show", "--json", id}, env).out);
        REQUIRE(show_json.size() >= 4);
        CHECK(show_json[0]["type"] == "run");
        CHECK(show_json[0]["id"] == id);
        std::vector<std::string> kinds;
        for (std::size_t i = 1; i < show_json.size(); ++i) {
            kinds.push_back(show_json[i]["kind"].get<std::string>());
        }
        CHECK(std::count(kinds.begin(), kinds.end(), "model_reply") == 2);
        CHECK(std::count(kinds.begin(), kinds.end(), "tool_result") == 1);
        CHECK(kinds.back() == "stopped");

        // A finished run needs a message: one line.
        auto bare = run_wafer({"resume", id}, env);
        check_one_failure_line(bare);
        CHECK(contains(bare.err, "finished (completed)"));
        CHECK(contains(bare.err, "give a message"));

        // resume with a message: the model sees the whole history, then the follow-up.
        s.server.enqueue(reply::text("Second answer."));
        auto more = s.while_serving([&] {
            return run_wafer({"resume", "--base-url", url, id, "And how to fix it?"}, env);
        });
        INFO("resume:\n" << more.out << more.err);
        CHECK(more.status == 0);
        CHECK(contains(more.out, "Second answer."));
        CHECK(contains(more.out, "workspace: " + fs::canonical(ws.dir).string()));
        CHECK(run_id_of(more.err) == id);
        auto bodies = s.chat_bodies();
        REQUIRE(bodies.size() == 3);
        CHECK(
            texts_of(bodies[2]) ==
            std::vector<std::string>{
                "user: " + task,
                "assistant: First answer: stats.sh starts min at 0.",
                "user: And how to fix it?"}
        );
        CHECK(contains(run_wafer({"runs", "show", id}, env).out, "user: And how to fix it?"));

        // run --continue: the last run of this workspace, with a message.
        s.server.enqueue(reply::text("Third answer."));
        auto cont = s.while_serving([&] {
            return run_wafer(
                {"run", "--base-url", url, "--workspace", wsd, "--continue", "Thanks"}, env
            );
        });
        INFO("continue:\n" << cont.out << cont.err);
        CHECK(cont.status == 0);
        CHECK(contains(cont.out, "Third answer."));
        CHECK(run_id_of(cont.err) == id);
        bodies = s.chat_bodies();
        REQUIRE(bodies.size() == 4);
        CHECK(texts_of(bodies[3]).size() == 5);
        CHECK(texts_of(bodies[3]).back() == "user: Thanks");
        lines = json_lines(run_wafer({"runs", "--json", "--workspace", wsd}, env).out);
        REQUIRE(lines.size() == 1); // still one run, grown
        const auto history = run_wafer({"runs", "show", id}, env).out;
        CHECK(count(history, "assistant: ") == 3);
        CHECK(count(history, "== completed") == 3);

        // --continue in a workspace without runs: one line.
        auto nothing = run_wafer(
            {"run", "--base-url", url, "--workspace", other.dir.string(), "--continue", "x"}, env
        );
        check_one_failure_line(nothing);
        CHECK(contains(nothing.err, "no run of"));
    }

    TEST_CASE("runs and runs show show tasks, answers and tool output escaped, never raw") {
        temp_dir state("state");
        const std::vector<std::string> env{"XDG_STATE_HOME=" + state.dir.string()};
        served s;
        s.server.enqueue(reply::of(
            {.tool_calls = {{"", "run_command", R"({"command":"printf 'out\\033[2Jput'"})"}}}
        ));
        s.server.enqueue(reply::text("answer\x1b]0;pwned\x07 \u202Etxt"));
        sample_workspace ws;
        const std::string task = "clear\x1b[2J \u202Eevil\rthe screen";
        auto r = s.while_serving([&] {
            return run_wafer(
                {"run",
                 "--yes",
                 "--base-url",
                 s.server.base_url(),
                 "--workspace",
                 ws.dir.string(),
                 task},
                env
            );
        });
        REQUIRE(r.status == 0);
        const std::string id = run_id_of(r.err);
        auto list = run_wafer({"runs", "--workspace", ws.dir.string()}, env);
        INFO("runs:\n" << list.out);
        // The first line only (a CR ends it too).
        CHECK(contains(list.out, "clear\\x1b[2J \\u{202e}evil ...\n"));
        auto show = run_wafer({"runs", "show", id}, env);
        INFO("show:\n" << show.out);
        CHECK(contains(show.out, "user: clear\\x1b[2J \\u{202e}evil\\rthe screen\n"));
        CHECK(contains(show.out, "out\\x1b[2Jput"));
        CHECK(contains(show.out, "answer\\x1b]0;pwned\\x07 \\u{202e}txt"));
        for (const auto* out : {&list.out, &show.out}) {
            CHECK_FALSE(contains(*out, "\x1b"));
            CHECK_FALSE(contains(*out, "\r"));
            CHECK_FALSE(contains(*out, "\u202E"));
        }
        // JSON keeps the text as it is, escaped by the encoder.
        auto lines =
            json_lines(run_wafer({"runs", "--json", "--workspace", ws.dir.string()}, env).out);
        REQUIRE(lines.size() == 1);
        CHECK(lines[0]["task"] == task);
    }

    TEST_CASE("resume and runs show of an unknown run: one line, and no store is created") {
        temp_dir state("state");
        const std::vector<std::string> env{"XDG_STATE_HOME=" + state.dir.string()};
        auto r = run_wafer({"resume", "0123456789abcdef"}, env);
        check_one_failure_line(r);
        CHECK(contains(r.err, "run 0123456789abcdef does not exist"));
        CHECK_FALSE(fs::exists(state.dir / "wafer"));
        auto show = run_wafer({"runs", "show", "nope"}, env);
        check_one_failure_line(show);
        CHECK(contains(show.err, "run nope does not exist"));
        auto list = run_wafer({"runs"}, env);
        CHECK(list.status == 0);
        CHECK(list.out.empty());
        CHECK_FALSE(fs::exists(state.dir / "wafer"));

        // With a store that exists but does not have the run.
        served s;
        s.server.enqueue(reply::text("ok"));
        sample_workspace ws;
        auto made = s.while_serving([&] {
            return run_wafer(
                {"run", "--base-url", s.server.base_url(), "--workspace", ws.dir.string(), "t"}, env
            );
        });
        REQUIRE(made.status == 0);
        auto unknown = run_wafer({"resume", "ffffffffffffffff", "hi"}, env);
        check_one_failure_line(unknown);
        CHECK(contains(unknown.err, "run ffffffffffffffff does not exist"));
    }

    TEST_CASE("--no-store journals nothing; without XDG_STATE_HOME the store is under HOME") {
        temp_dir state("state");
        temp_dir home("home");
        served s;
        s.server.enqueue(reply::text("not journaled"));
        s.server.enqueue(reply::text("journaled under HOME"));
        sample_workspace ws;
        const std::string url = s.server.base_url();
        auto r = s.while_serving([&] {
            return run_wafer(
                {"run", "--no-store", "--base-url", url, "--workspace", ws.dir.string(), "t"},
                {"XDG_STATE_HOME=" + state.dir.string()}
            );
        });
        CHECK(r.status == 0);
        CHECK(r.err.empty()); // no run id: there is nothing to resume
        CHECK(fs::is_empty(state.dir));

        auto h = s.while_serving([&] {
            return run_wafer(
                {"run", "--base-url", url, "--workspace", ws.dir.string(), "t"},
                {"XDG_STATE_HOME=", "HOME=" + home.dir.string()}
            );
        });
        CHECK(h.status == 0);
        CHECK(run_id_of(h.err).size() == 16);
        CHECK(fs::exists(home.dir / ".local" / "state" / "wafer" / "runs.db"));

        // --continue needs the store.
        auto both = run_wafer({"run", "--no-store", "--continue", "x"});
        CHECK(both.status == 2);
    }

    TEST_CASE("a store that cannot be opened is one line and exit status 2, never a crash") {
        temp_dir place("store");
        sample_workspace ws;
        // Its directory would have to be made inside a regular file.
        std::ofstream(place.dir / "file") << "x";
        auto r = run_wafer(
            {"run",
             "--store",
             (place.dir / "file" / "runs.db").string(),
             "--workspace",
             ws.dir.string(),
             "t"}
        );
        INFO("stderr: " << r.err);
        check_one_failure_line(r);
        CHECK(r.status == 2);
        CHECK(contains(r.err, (place.dir / "file").string()));

        // A file that is not a run store is refused and left as it was.
        const std::string garbage(3000, 'g');
        std::ofstream(place.dir / "junk.db") << garbage;
        for (const std::vector<std::string>& args :
             {std::vector<std::string>{
                  "run",
                  "--store",
                  (place.dir / "junk.db").string(),
                  "--workspace",
                  ws.dir.string(),
                  "t"},
              std::vector<std::string>{"runs", "--store", (place.dir / "junk.db").string()},
              std::vector<std::string>{
                  "resume", "--store", (place.dir / "junk.db").string(), "0123456789abcdef"}}) {
            auto bad = run_wafer(args);
            INFO(args[0] << " stderr: " << bad.err);
            check_one_failure_line(bad);
            CHECK(bad.status == 2);
            CHECK(contains(bad.err, "junk.db"));
        }
        std::ifstream in(place.dir / "junk.db");
        std::stringstream ss;
        ss << in.rdbuf();
        CHECK(ss.str() == garbage);

        // A store a newer wafer wrote.
        const fs::path newer = place.dir / "newer.db";
        { wafer::store::sqlite_store made(newer); }
        sqlite3* db = nullptr;
        REQUIRE(sqlite3_open(newer.c_str(), &db) == SQLITE_OK);
        CHECK(sqlite3_exec(db, "PRAGMA user_version=99", nullptr, nullptr, nullptr) == SQLITE_OK);
        sqlite3_close(db);
        auto too_new = run_wafer({"runs", "--store", newer.string()});
        check_one_failure_line(too_new);
        CHECK(too_new.status == 2);
        CHECK(contains(too_new.err, "newer wafer"));
    }

    TEST_CASE("Ctrl-C during a slow model turn leaves a run that wafer resume completes; a "
              "second process cannot resume it while it runs") {
        temp_dir state("state");
        const std::vector<std::string> env{"XDG_STATE_HOME=" + state.dir.string()};
        delivery slow;
        slow.header_delay = std::chrono::hours(1);
        served s;
        s.server.enqueue(reply::text("never", slow));
        s.server.enqueue(reply::text("Answered after the resume."));
        sample_workspace ws;
        const std::string url = s.server.base_url();
        std::string id;
        process_result busy;
        auto r = s.while_serving([&] {
            spawned_wafer w({"run", "--base-url", url, "--workspace", ws.dir.string(), "go"}, env);
            std::string err;
            if (!w.read_stderr_until(err, "\n", 20s)) {
                FAIL_CHECK("wafer did not start the run");
                return process_result{};
            }
            id = run_id_of(err);
            std::this_thread::sleep_for(500ms); // the request is on its way
            busy = run_wafer({"resume", id}, env);
            ::kill(w.pid, SIGINT);
            process_result res = w.collect(20s);
            res.err = err + res.err;
            CHECK(w.exited_normally);
            return res;
        });
        INFO("stdout:\n" << r.out << "\nstderr:\n" << r.err);
        REQUIRE(id.size() == 16);
        // While it ran, another process was refused.
        check_one_failure_line(busy);
        CHECK(contains(busy.err, "another process"));
        CHECK_FALSE(r.timed_out);
        CHECK(r.status == 130);
        CHECK(contains(r.err, "wafer resume " + id));
        auto lines =
            json_lines(run_wafer({"runs", "--json", "--workspace", ws.dir.string()}, env).out);
        REQUIRE(lines.size() == 1);
        CHECK(lines[0]["status"] == "running");
        CHECK(lines[0]["stop_reason"] == "cancelled");
        CHECK(lines[0]["live"] == false);
        CHECK(contains(run_wafer({"runs", "--workspace", ws.dir.string()}, env).out, "interrupted")
        );

        auto resumed = s.while_serving([&] {
            return run_wafer({"resume", "--base-url", url, id}, env);
        });
        INFO("resume:\n" << resumed.out << resumed.err);
        CHECK(resumed.status == 0);
        CHECK(contains(resumed.out, "Answered after the resume."));
        // The abandoned request was asked again, as it was.
        const auto bodies = s.chat_bodies();
        REQUIRE(bodies.size() == 2);
        CHECK(bodies[0]["messages"] == bodies[1]["messages"]);
        lines = json_lines(run_wafer({"runs", "--json", "--workspace", ws.dir.string()}, env).out);
        REQUIRE(lines.size() == 1);
        CHECK(lines[0]["status"] == "finished");
        CHECK(lines[0]["stop_reason"] == "completed");
    }

    TEST_CASE("Ctrl-C during a tool: on resume the call is in doubt and does not run again") {
        temp_dir state("state");
        const std::vector<std::string> env{"XDG_STATE_HOME=" + state.dir.string()};
        served s;
        s.server.enqueue(reply::of(
            {.tool_calls = {{"", "run_command", R"({"command":"echo ran >> log.txt; sleep 60"})"}}}
        ));
        s.server.enqueue(reply::text("I will check log.txt first."));
        sample_workspace ws;
        const std::string url = s.server.base_url();
        const std::vector<std::string> flags{
            "--yes", "--sandbox=auto", "--base-url", url, "--workspace", ws.dir.string()};
        std::vector<std::string> run_args{"run"};
        run_args.insert(run_args.end(), flags.begin(), flags.end());
        run_args.emplace_back("log it");
        auto r = s.while_serving([&] {
            spawned_wafer w(run_args, env);
            std::string out;
            if (!w.read_stdout_until(out, "-> run_command", 20s)) {
                FAIL_CHECK("wafer did not start the command");
                return process_result{};
            }
            // The command has written its line and sleeps.
            for (int i = 0; i < 100 && !fs::exists(ws.dir / "log.txt"); ++i) {
                std::this_thread::sleep_for(50ms);
            }
            std::this_thread::sleep_for(200ms);
            ::kill(w.pid, SIGINT);
            process_result res = w.collect(30s);
            res.out = out + res.out;
            return res;
        });
        INFO("stdout:\n" << r.out << "\nstderr:\n" << r.err);
        CHECK(r.status == 130);
        const std::string id = run_id_of(r.err);
        REQUIRE(id.size() == 16);
        CHECK(ws.read("log.txt") == "ran\n");

        std::vector<std::string> resume_args{"resume"};
        resume_args.insert(resume_args.end(), flags.begin(), flags.end());
        resume_args.push_back(id);
        auto resumed = s.while_serving([&] { return run_wafer(resume_args, env); });
        INFO("resume:\n" << resumed.out << resumed.err);
        CHECK(resumed.status == 0);
        CHECK(contains(resumed.out, "I will check log.txt first."));
        CHECK(ws.read("log.txt") == "ran\n"); // never silently repeated
        const auto bodies = s.chat_bodies();
        REQUIRE(bodies.size() == 2);
        std::string tool_output;
        for (const auto& m : bodies[1]["messages"]) {
            if (m["role"] == "tool") {
                tool_output = m.value("content", "");
            }
        }
        CHECK(contains(tool_output, "unknown"));
    }

} // TEST_SUITE

#endif // WAFER_CLI_PATH
