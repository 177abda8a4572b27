// The harness of the CLI tests: spawn the built wafer binary (posix_spawn, stdout and stderr
// captured through pipes, stdin from /dev/null, or on a pty) against a fake server running in this
// process on its own thread, each child with its own XDG_STATE_HOME. Used by test_cli.cpp and
// test_cli_runs.cpp.
#pragma once

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
#include <cstddef>
#include <cstring>
#include <fcntl.h>
#include <filesystem>
#include <fstream>
#include <functional>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <poll.h>
#include <pty.h>
#include <random>
#include <spawn.h>
#include <sqlite3.h>
#include <sstream>
#include <string>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>
#include <vector>

extern char** environ;

namespace wafer::testing::cli {

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

inline std::size_t count(std::string_view s, std::string_view part) {
    std::size_t n = 0;
    for (auto pos = s.find(part); pos != std::string_view::npos; pos = s.find(part, pos + 1)) {
        ++n;
    }
    return n;
}

inline bool contains(std::string_view s, std::string_view part) {
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
inline const fs::path& shared_state_home() {
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
inline std::vector<std::string> child_env(const std::vector<std::string>& extra) {
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
inline int
ms_left_or_kill(std::chrono::steady_clock::time_point end, pid_t pid, process_result& r) {
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

    /// `stdin_path`: the file standard input reads (a pipe's contents, for prompts from stdin).
    spawned_wafer(
        std::vector<std::string> args,
        const std::vector<std::string>& env_extra,
        const std::string& stdin_path = "/dev/null"
    ) {
        int out_pipe[2];
        int err_pipe[2];
        REQUIRE(::pipe2(out_pipe, O_CLOEXEC) == 0);
        REQUIRE(::pipe2(err_pipe, O_CLOEXEC) == 0);

        posix_spawn_file_actions_t fa;
        posix_spawn_file_actions_init(&fa);
        posix_spawn_file_actions_addopen(&fa, STDIN_FILENO, stdin_path.c_str(), O_RDONLY, 0);
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
    /// reaps it. `before_reap` (if set) is called once the process has exited but before it is
    /// reaped, while /proc/PID still describes it.
    process_result collect(
        std::chrono::milliseconds deadline, const std::function<void(pid_t)>& before_reap = {}
    ) {
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
        if (before_reap) {
            siginfo_t info{};
            if (::waitid(P_PID, static_cast<id_t>(pid), &info, WEXITED | WNOWAIT) == 0) {
                before_reap(pid);
            }
        }
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
inline process_result run_wafer(
    std::vector<std::string> args,
    const std::vector<std::string>& env_extra = {},
    std::chrono::seconds deadline = 60s
) {
    spawned_wafer w(std::move(args), env_extra);
    return w.collect(deadline);
}

/// Makes this process (and what it executes) see a kernel without Landlock: a seccomp filter
/// fails landlock_create_ruleset with ENOSYS, as on a kernel built without it. False where that
/// cannot be done (another architecture, seccomp refused).
inline bool pretend_no_landlock() {
#if defined(__x86_64__) && defined(__NR_landlock_create_ruleset)
    sock_filter filter[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(seccomp_data, arch)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH_X86_64, 1, 0),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(seccomp_data, nr)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_landlock_create_ruleset, 0, 1),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | (ENOSYS & SECCOMP_RET_DATA)),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
    };
    sock_fprog prog{static_cast<unsigned short>(std::size(filter)), filter};
    return ::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == 0 &&
           ::prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) == 0;
#else
    return false;
#endif
}

/// Runs `wafer args...` on a pseudo-terminal (stdin, stdout and stderr), answering each
/// "[y/N]" prompt with the next of `answers`; returns everything the terminal showed. With
/// `without_landlock`, wafer runs as on a kernel without Landlock (pretend_no_landlock; exit
/// status 126 if that cannot be arranged).
inline process_result run_wafer_on_terminal(
    std::vector<std::string> args,
    std::vector<std::string> answers,
    std::chrono::seconds deadline = 60s,
    bool without_landlock = false,
    const std::vector<std::string>& env_extra = {}
) {
    process_result r;
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

    int master = -1;
    const pid_t pid = ::forkpty(&master, nullptr, nullptr, nullptr);
    REQUIRE(pid >= 0);
    if (pid == 0) {
        if (without_landlock && !pretend_no_landlock()) {
            ::_exit(126);
        }
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
inline std::string without_run_line(std::string err) {
    if (err.starts_with("run ")) {
        err.erase(0, err.find('\n') + 1);
    }
    return err;
}

/// What a terminal showed without wafer's own "thinking…" line (drawn and erased with CR and
/// erase-line on standard error), for checks that nothing else reached it raw.
inline std::string without_thinking_line(std::string shown) {
    for (const std::string_view own :
         {std::string_view("\r\x1b[K"), std::string_view("thinking\xe2\x80\xa6")}) {
        for (auto pos = shown.find(own); pos != std::string::npos; pos = shown.find(own, pos)) {
            shown.erase(pos, own.size());
        }
    }
    return shown;
}

/// A failure as the issue asks: exactly one line on stderr, non-zero exit.
inline void check_one_failure_line(const process_result& r) {
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

inline std::vector<json> json_lines(const std::string& out) {
    std::vector<json> lines;
    std::istringstream in(out);
    for (std::string line; std::getline(in, line);) {
        lines.push_back(json::parse(line));
    }
    return lines;
}

/// Starts `wafer ask` on a reply far larger than a pipe holds and stops reading its stdout,
/// so its io thread blocks in a write; then sends `sig` twice. Returns how it ended.
inline process_result twice_while_stuck(int sig) {
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

inline const std::string secret = "sk-CLI-TEST-SECRET-9f8e7d";

} // namespace wafer::testing::cli

#endif // WAFER_CLI_PATH
