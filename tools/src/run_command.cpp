// run_command: /bin/sh -c in its own process group, output through a pipe, exit through a pidfd.
//
// One `process_run` per command, driven by callbacks on the caller's executor (like the
// dispatcher's batch): the pipe read loop, the exit watch, the deadline, the SIGTERM->SIGKILL
// grace timer and the drain timer each report to it, and it finishes once the shell has exited
// and the pipe is closed. The awaiting coroutine only waits on one timer used as a condition
// variable, so cancellation of the coroutine simply starts the kill sequence.
//
// Reaping is deliberately last: while the exited shell is an unreaped zombie its pid (= the
// process group id) cannot be reused, so the final killpg of leftover background processes can
// never hit an unrelated group.
#include <wafer/tools/run_command.hpp>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <string_view>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <system_error>
#include <unistd.h>
#include <utility>
#include <vector>

#include "detail/text.hpp"

extern char** environ; // NOLINT: POSIX

namespace wafer::tools {

namespace asio = boost::asio;
using nlohmann::json;
using clock_type = std::chrono::steady_clock;

namespace {

int open_pidfd(pid_t pid) {
#ifdef SYS_pidfd_open
    return static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
#else
    (void)pid;
    errno = ENOSYS;
    return -1;
#endif
}

// RAII for the posix_spawn attribute objects.
struct spawn_setup {
    posix_spawn_file_actions_t fa{};
    posix_spawnattr_t attr{};
    spawn_setup() {
        ::posix_spawn_file_actions_init(&fa);
        ::posix_spawnattr_init(&attr);
    }
    ~spawn_setup() {
        ::posix_spawn_file_actions_destroy(&fa);
        ::posix_spawnattr_destroy(&attr);
    }
    spawn_setup(const spawn_setup&) = delete;
    spawn_setup& operator=(const spawn_setup&) = delete;
};

class process_run : public std::enable_shared_from_this<process_run> {
public:
    process_run(asio::any_io_executor ex, command_params p)
        : ex_(ex), params_(std::move(p)), pipe_(ex), deadline_(ex), grace_(ex), drain_(ex),
          poll_(ex), done_(ex) {
        done_.expires_at(clock_type::time_point::max());
        const std::size_t cap = params_.output_cap;
        head_cap_ = cap / 2;
        tail_cap_ = cap - head_cap_;
    }

    ~process_run() {
        // Destroyed before the normal end (the executor went away): do not leave the group
        // running or the shell as a zombie. SIGKILL cannot be ignored, so the wait is short.
        if (pid_ > 0 && !reaped_) {
            ::kill(-pid_, SIGKILL);
            int st = 0;
            while (::waitpid(pid_, &st, 0) < 0 && errno == EINTR) {
            }
        }
    }

    process_run(const process_run&) = delete;
    process_run& operator=(const process_run&) = delete;

    void spawn(const std::string& command, const std::filesystem::path& cwd) {
        int fds[2];
        if (::pipe2(fds, O_CLOEXEC) != 0) {
            throw std::system_error(errno, std::generic_category(), "run_command: pipe");
        }
        // Both ends are close-on-exec, so concurrent spawns never inherit our write end (which
        // would keep our pipe open); the child gets it as fd 1 and 2 through dup2.
        spawn_setup s;
        ::posix_spawn_file_actions_addopen(&s.fa, 0, "/dev/null", O_RDONLY, 0);
        ::posix_spawn_file_actions_adddup2(&s.fa, fds[1], 1);
        ::posix_spawn_file_actions_adddup2(&s.fa, fds[1], 2);
        ::posix_spawn_file_actions_addchdir_np(&s.fa, cwd.c_str());
        // New process group (pgid = pid), empty signal mask, default dispositions: a parent that
        // ignores SIGPIPE or SIGTERM must not pass that on (`yes | head` relies on SIGPIPE).
        sigset_t mask;
        sigemptyset(&mask);
        sigset_t def;
        sigfillset(&def);
        sigdelset(&def, SIGKILL);
        sigdelset(&def, SIGSTOP);
        ::posix_spawnattr_setflags(
            &s.attr, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF
        );
        ::posix_spawnattr_setpgroup(&s.attr, 0);
        ::posix_spawnattr_setsigmask(&s.attr, &mask);
        ::posix_spawnattr_setsigdefault(&s.attr, &def);

        std::string shell = params_.shell;
        std::string dash_c = "-c";
        std::string cmd = command;
        char* argv[] = {shell.data(), dash_c.data(), cmd.data(), nullptr};
        std::vector<char*> envp;
        for (char** e = environ; *e != nullptr; ++e) {
            const std::string_view entry(*e);
            const bool drop =
                std::any_of(params_.unset_env.begin(), params_.unset_env.end(), [&](const auto& n) {
                    return entry.size() > n.size() && entry.compare(0, n.size(), n) == 0 &&
                           entry[n.size()] == '=';
                });
            if (!drop) {
                envp.push_back(*e);
            }
        }
        envp.push_back(nullptr);
        pid_t pid = -1;
        const int rc = ::posix_spawn(&pid, shell.c_str(), &s.fa, &s.attr, argv, envp.data());
        ::close(fds[1]);
        if (rc != 0) {
            ::close(fds[0]);
            throw std::system_error(
                rc,
                std::generic_category(),
                "run_command: cannot start " + shell + " in " + cwd.string()
            );
        }
        pid_ = pid;
        started_ = clock_type::now();
        pipe_.assign(fds[0]);
        const int pfd = open_pidfd(pid_);
        if (pfd >= 0) {
            pidfd_.emplace(ex_, pfd);
        }
    }

    // Starts the read loop, the exit watch and the deadline. Call right after spawn(), before
    // yielding: the pidfd wait must be queued before its (edge-triggered) event can arrive.
    void start() {
        read_more();
        watch_exit();
        deadline_.expires_after(params_.timeout);
        deadline_.async_wait([self = shared_from_this()](boost::system::error_code ec) {
            if (!ec && !self->exited_) {
                self->timed_out_ = true;
                self->terminate();
            }
        });
    }

    // Cancellation from the caller: terminate the group (idempotent).
    void cancel() {
        if (!finished_ && !timed_out_) {
            cancelled_ = true;
        }
        terminate();
    }

    bool finished() const noexcept { return finished_; }
    asio::steady_timer& done_timer() noexcept { return done_; }

    command_result take_result() {
        command_result r;
        if (exit_known_) {
            if (exit_signal_ != 0) {
                r.signal = exit_signal_;
            } else {
                r.exit_code = exit_code_;
            }
        }
        r.timed_out = timed_out_;
        r.cancelled = cancelled_;
        r.output_bytes = total_;
        if (tail_.size() > tail_cap_) {
            tail_.erase(0, tail_.size() - tail_cap_);
        }
        const std::size_t kept = head_.size() + tail_.size();
        r.truncated = kept < total_;
        r.output = std::move(head_);
        if (r.truncated) {
            r.output += "\n[... " + std::to_string(total_ - kept) + " of " +
                        std::to_string(total_) + " bytes of output omitted ...]\n";
        }
        r.output += tail_;
        r.elapsed = clock_type::now() - started_;
        return r;
    }

private:
    void read_more() {
        pipe_.async_read_some(
            asio::buffer(buf_),
            [self = shared_from_this()](boost::system::error_code ec, std::size_t n) {
                self->append(n);
                if (ec) {
                    self->pipe_closed();
                } else {
                    self->read_more();
                }
            }
        );
    }

    // Keeps the first head_cap_ bytes and (amortised) the last tail_cap_ bytes.
    void append(std::size_t n) {
        total_ += n;
        const char* p = buf_.data();
        const std::size_t h = std::min(n, head_cap_ - head_.size());
        head_.append(p, h);
        if (n > h) {
            tail_.append(p + h, n - h);
            if (tail_.size() > 2 * tail_cap_ + buf_.size()) {
                tail_.erase(0, tail_.size() - tail_cap_);
            }
        }
    }

    void pipe_closed() {
        if (!pipe_open_) {
            return;
        }
        pipe_open_ = false;
        boost::system::error_code ignored;
        pipe_.close(ignored);
        drain_.cancel();
        maybe_finish();
    }

    void watch_exit() {
        if (pidfd_) {
            pidfd_->async_wait(
                asio::posix::stream_descriptor::wait_read,
                [self = shared_from_this()](boost::system::error_code ec) {
                    if (ec == asio::error::operation_aborted) {
                        return;
                    }
                    if (!self->check_exit()) {
                        self->pidfd_.reset(); // unexpected wake-up: fall back to polling
                        self->watch_exit();
                    }
                }
            );
            return;
        }
        // No pidfd (old kernel, seccomp): poll, backing off from 1 ms to 50 ms.
        poll_interval_ = std::min(poll_interval_ * 2, std::chrono::milliseconds(50));
        poll_.expires_after(poll_interval_);
        poll_.async_wait([self = shared_from_this()](boost::system::error_code ec) {
            if (!ec && !self->check_exit()) {
                self->watch_exit();
            }
        });
    }

    // Notes the shell's exit without reaping it (WNOWAIT, see the top of the file).
    bool check_exit() {
        siginfo_t si{};
        int rc = 0;
        do {
            rc = ::waitid(P_PID, static_cast<id_t>(pid_), &si, WEXITED | WNOHANG | WNOWAIT);
        } while (rc < 0 && errno == EINTR);
        if (rc < 0) {
            // ECHILD: someone else reaped it (SIGCHLD ignored by the application); status lost.
            reaped_ = true;
            on_exited();
            return true;
        }
        if (si.si_pid != pid_) {
            return false;
        }
        exit_known_ = true;
        if (si.si_code == CLD_EXITED) {
            exit_code_ = si.si_status;
        } else {
            exit_signal_ = si.si_status;
        }
        on_exited();
        return true;
    }

    void on_exited() {
        exited_ = true;
        deadline_.cancel();
        grace_.cancel();
        if (pipe_open_) {
            // Background processes may still hold the pipe: give them drain_timeout to finish
            // writing, then stop listening.
            drain_.expires_after(params_.drain_timeout);
            drain_.async_wait([self = shared_from_this()](boost::system::error_code ec) {
                if (!ec) {
                    self->pipe_closed();
                }
            });
        }
        maybe_finish();
    }

    void terminate() {
        if (finished_ || terminating_) {
            return;
        }
        terminating_ = true;
        if (exited_) {
            pipe_closed(); // only background processes left: finish now, killing them
            return;
        }
        ::kill(-pid_, SIGTERM);
        grace_.expires_after(params_.kill_grace);
        grace_.async_wait([self = shared_from_this()](boost::system::error_code ec) {
            if (!ec && !self->exited_) {
                ::kill(-self->pid_, SIGKILL);
            }
        });
    }

    void maybe_finish() {
        if (finished_ || !exited_ || pipe_open_) {
            return;
        }
        // The shell is done: whatever is left of its group (background jobs) goes too.
        if (!reaped_) {
            ::kill(-pid_, SIGKILL);
            int st = 0;
            while (::waitpid(pid_, &st, 0) < 0 && errno == EINTR) {
            }
            reaped_ = true;
        }
        finished_ = true;
        deadline_.cancel();
        grace_.cancel();
        drain_.cancel();
        poll_.cancel();
        pidfd_.reset();
        done_.cancel(); // wakes the awaiting coroutine
    }

    asio::any_io_executor ex_;
    command_params params_;
    pid_t pid_ = -1;
    clock_type::time_point started_{};
    asio::posix::stream_descriptor pipe_;
    std::optional<asio::posix::stream_descriptor> pidfd_;
    asio::steady_timer deadline_;
    asio::steady_timer grace_;
    asio::steady_timer drain_;
    asio::steady_timer poll_;
    asio::steady_timer done_;
    std::chrono::milliseconds poll_interval_{1};
    std::array<char, 16 * 1024> buf_{};
    std::string head_;
    std::string tail_;
    std::size_t head_cap_ = 0;
    std::size_t tail_cap_ = 0;
    std::size_t total_ = 0;
    bool pipe_open_ = true;
    bool exited_ = false;
    bool exit_known_ = false;
    int exit_code_ = 0;
    int exit_signal_ = 0;
    bool reaped_ = false;
    bool terminating_ = false;
    bool timed_out_ = false;
    bool cancelled_ = false;
    bool finished_ = false;
};

// std::stop_callback body: hops onto the run's executor (request_stop may come from any thread).
struct stop_forwarder {
    std::weak_ptr<process_run> run;
    asio::any_io_executor ex;
    void operator()() {
        asio::post(ex, [w = run] {
            if (auto r = w.lock()) {
                r->cancel();
            }
        });
    }
};

std::string signal_name(int sig) {
    const char* abbrev = ::sigabbrev_np(sig);
    return std::to_string(sig) + (abbrev ? std::string(" (SIG") + abbrev + ")" : std::string());
}

std::string ms_text(std::chrono::milliseconds d) {
    return std::to_string(d.count()) + " ms";
}

asio::awaitable<tool_output> run_command_handler(
    std::shared_ptr<const workspace> ws, run_command_options opts, json args, call_context ctx
) {
    std::string command = args.at("command").get<std::string>();
    if (command.find('\0') != std::string::npos) {
        throw argument_error("command contains a NUL byte");
    }
    if (command.find_first_not_of(" \t\r\n") == std::string::npos) {
        throw argument_error("command is empty");
    }
    command_params p = opts.run;
    std::string note;
    if (args.contains("timeout_ms")) {
        const auto requested = std::chrono::milliseconds(args["timeout_ms"].get<std::int64_t>());
        p.timeout = std::min(requested, opts.max_timeout);
        if (requested > opts.max_timeout) {
            note = "(timeout_ms was lowered to the maximum of " + ms_text(opts.max_timeout) + ")\n";
        }
    }
    const auto timeout = p.timeout;
    const auto grace = p.kill_grace;
    command_result r =
        co_await async_run_command(std::move(command), ws->root(), std::move(p), ctx.stop);

    std::string out = note;
    if (r.timed_out) {
        out += "timed out after " + ms_text(timeout) +
               ": the command's process group was terminated (SIGTERM, then SIGKILL after " +
               ms_text(grace) + ")";
    } else if (r.cancelled) {
        out += "cancelled: the command's process group was terminated";
    } else if (r.exit_code) {
        out += "exit code: " + std::to_string(*r.exit_code);
    } else if (r.signal != 0) {
        out += "killed by signal " + signal_name(r.signal);
    } else {
        out += "exit status unknown";
    }
    if (r.output.empty()) {
        out += "\n(no output)";
    } else {
        out += "\n";
        out += r.output;
    }
    text::sanitize_utf8(out);
    const bool ok = !r.timed_out && !r.cancelled && r.exit_code && *r.exit_code == 0;
    co_return tool_output{std::move(out), !ok};
}

} // namespace

asio::awaitable<command_result> async_run_command(
    std::string command, std::filesystem::path cwd, command_params params, std::stop_token stop
) {
    // We always finish the kill sequence and reap, so cancellation must not throw out of our
    // waits.
    co_await asio::this_coro::throw_if_cancelled(false);
    auto cs = co_await asio::this_coro::cancellation_state;
    auto ex = co_await asio::this_coro::executor;

    auto run = std::make_shared<process_run>(ex, std::move(params));
    run->spawn(command, cwd);
    run->start();
    std::stop_callback<stop_forwarder> on_stop(std::move(stop), stop_forwarder{run, ex});
    while (!run->finished()) {
        if (cs.cancelled() != asio::cancellation_type::none) {
            run->cancel();
        }
        auto [ec] = co_await run->done_timer().async_wait(asio::as_tuple(asio::use_awaitable));
        (void)ec; // woken by done_.cancel() or by our own cancellation: re-check either way
    }
    co_return run->take_result();
}

tool make_run_command_tool(std::shared_ptr<const workspace> ws, run_command_options options) {
    tool t;
    t.name = "run_command";
    t.description =
        "Run a shell command with /bin/sh -c in the workspace root directory and return its exit "
        "code and combined stdout and stderr. stdin is empty (/dev/null), so interactive "
        "programs get no input. The command is killed after timeout_ms (default " +
        ms_text(options.run.timeout) + ", at most " + ms_text(options.max_timeout) +
        "), together with everything it started; background processes (`cmd &`) are killed "
        "when the command finishes. Output beyond " +
        std::to_string(options.run.output_cap) +
        " bytes is cut in the middle (the start and the end are kept). Use it for builds, "
        "tests, git and other programs.";
    t.parameters = {
        {"type", "object"},
        {"properties",
         {{"command", {{"type", "string"}, {"description", "The shell command line to run."}}},
          {"timeout_ms",
           {{"type", "integer"},
            {"minimum", 1},
            {"description",
             "Time limit in milliseconds (default " + std::to_string(options.run.timeout.count()) +
                 ")."}}}}},
        {"required", {"command"}},
        {"additionalProperties", false}};
    t.options.output_cap = options.run.output_cap + 1024;
    t.fn = async_handler{[ws = std::move(ws), options](json args, call_context ctx) {
        return run_command_handler(ws, options, std::move(args), std::move(ctx));
    }};
    return t;
}

} // namespace wafer::tools
