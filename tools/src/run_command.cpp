// run_command: /bin/sh -c under a supervisor process, output through a pipe, the shell's exit
// through the supervisor's status pipe.
//
// One `process_run` per command, driven by callbacks on the caller's executor (like the
// dispatcher's batch): the output read loop, the status pipe, the deadline, the SIGTERM->SIGKILL
// grace timer and the drain timer each report to it, and it finishes once the shell has exited,
// the pipe is closed and the supervisor has killed what was left and exited. The awaiting
// coroutine only waits on one timer used as a condition variable, so cancellation of the
// coroutine simply starts the kill sequence.
//
// wafer never signals the command itself: it asks the supervisor (sandbox/supervisor.hpp),
// which is the parent or subreaper of every process involved, so no pid it signals can have
// been reused.
#include <wafer/tools/run_command.hpp>
#include <wafer/tools/secret_redactor.hpp>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <fstream>
#include <signal.h>
#include <string_view>
#include <sys/wait.h>
#include <system_error>
#include <unistd.h>
#include <utility>
#include <vector>

#include "detail/text.hpp"
#include "sandbox/landlock.hpp"
#include "sandbox/supervisor.hpp"

extern char** environ; // NOLINT: POSIX

namespace wafer::tools {

namespace asio = boost::asio;
using nlohmann::json;
using clock_type = std::chrono::steady_clock;

namespace {

// A directory made for one command and removed with everything in it afterwards.
class private_temp_dir {
public:
    private_temp_dir() = default;
    ~private_temp_dir() { remove(); }
    private_temp_dir(const private_temp_dir&) = delete;
    private_temp_dir& operator=(const private_temp_dir&) = delete;

    void create() {
        std::string tmpl = (std::filesystem::temp_directory_path() / "wafer-tmp-XXXXXX").string();
        if (::mkdtemp(tmpl.data()) == nullptr) {
            throw std::system_error(
                errno, std::generic_category(), "run_command: cannot create a temp directory"
            );
        }
        path_ = tmpl;
    }
    void remove() noexcept {
        if (!path_.empty()) {
            std::error_code ec;
            std::filesystem::remove_all(path_, ec);
            path_.clear();
        }
    }
    const std::filesystem::path& path() const noexcept { return path_; }

private:
    std::filesystem::path path_;
};

// "/proc/PID" of this process and its ancestors below init: the sandbox covers them so the
// command cannot read their environment (a CI runner's, for example, holds credentials).
std::vector<std::string> ancestor_proc_dirs() {
    std::vector<std::string> dirs;
    long pid = ::getpid();
    // wafer itself always (it may be pid 1 in a container), then its ancestors below init.
    for (int depth = 0; (depth == 0 || pid > 1) && depth < 64; ++depth) {
        dirs.push_back("/proc/" + std::to_string(pid));
        std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
        std::string line;
        std::getline(stat, line);
        const auto close_paren = line.rfind(')');
        if (close_paren == std::string::npos || close_paren + 4 > line.size()) {
            break;
        }
        pid = std::strtol(line.c_str() + close_paren + 4, nullptr, 10);
    }
    return dirs;
}

class process_run : public std::enable_shared_from_this<process_run> {
public:
    process_run(asio::any_io_executor ex, command_params p)
        : ex_(ex), params_(std::move(p)), redactor_(params_.redact), pipe_(ex), status_(ex),
          deadline_(ex), grace_(ex), drain_(ex), done_(ex) {
        done_.expires_at(clock_type::time_point::max());
        const std::size_t cap = params_.output_cap;
        head_cap_ = cap / 2;
        tail_cap_ = cap - head_cap_;
    }

    ~process_run() {
        // Destroyed before the normal end (the executor went away): do not leave anything
        // running or the supervisor as a zombie. It kills with SIGKILL, so the wait is short.
        if (supervisor_ > 0 && !reaped_) {
            detail::send_control(control_fd_, detail::control_kill);
            ::close(control_fd_);
            control_fd_ = -1;
            int st = 0;
            while (::waitpid(supervisor_, &st, 0) < 0 && errno == EINTR) {
            }
        }
        if (control_fd_ >= 0) {
            ::close(control_fd_);
        }
    }

    process_run(const process_run&) = delete;
    process_run& operator=(const process_run&) = delete;

    void spawn(const std::string& command, const std::filesystem::path& cwd) {
        const sandbox_support support =
            params_.sandbox.mode == sandbox_mode::off ? sandbox_support{} : probe_sandbox_support();
        const sandbox_plan plan = plan_sandbox(params_.sandbox, support);
        sandbox_note_ = plan.note;
        std::vector<std::pair<std::string, std::string>> overrides{{"PWD", cwd.string()}};
        detail::landlock_ruleset ruleset;
        if (plan.confine) {
            tmp_.create();
            std::vector<std::filesystem::path> writable{cwd, tmp_.path()};
            writable.insert(
                writable.end(),
                params_.sandbox.writable_paths.begin(),
                params_.sandbox.writable_paths.end()
            );
            ruleset = detail::make_landlock_ruleset(support, writable, plan.deny_tcp);
            overrides.emplace_back("TMPDIR", tmp_.path().string());
        }

        std::vector<std::string> env_entries =
            build_command_environment(params_.env, environ, overrides);
        std::vector<char*> envp;
        envp.reserve(env_entries.size() + 1);
        for (auto& e : env_entries) {
            envp.push_back(e.data());
        }
        envp.push_back(nullptr);
        std::string shell = params_.shell;
        std::string dash_c = "-c";
        std::string cmd = command;
        char* argv[] = {shell.data(), dash_c.data(), cmd.data(), nullptr};
        const std::string cwd_text = cwd.string();
        const std::string uid_map =
            std::to_string(::geteuid()) + " " + std::to_string(::geteuid()) + " 1\n";
        const std::string gid_map =
            std::to_string(::getegid()) + " " + std::to_string(::getegid()) + " 1\n";

        int fds[2];
        if (::pipe2(fds, O_CLOEXEC) != 0) {
            throw std::system_error(errno, std::generic_category(), "run_command: pipe");
        }
        detail::supervised_command sc;
        sc.path = shell.c_str();
        sc.argv = argv;
        sc.envp = envp.data();
        sc.cwd = cwd_text.c_str();
        sc.output_fd = fds[1];
        sc.ruleset_fd = ruleset.fd();
        sc.new_network_namespace = plan.network_namespace;
        sc.network_namespace_required = plan.network_namespace_required;
        if (::geteuid() != 0) {
            sc.uid_map = uid_map.c_str();
            sc.gid_map = gid_map.c_str();
        }
        std::vector<std::string> hidden =
            plan.confine ? ancestor_proc_dirs() : std::vector<std::string>{};
        std::vector<const char*> hidden_ptrs;
        for (const auto& d : hidden) {
            hidden_ptrs.push_back(d.c_str());
        }
        hidden_ptrs.push_back(nullptr);
        if (plan.confine) {
            sc.hidden_proc_dirs = hidden_ptrs.data();
        }
        detail::supervisor_handle h;
        try {
            h = detail::start_supervised(sc);
        } catch (...) {
            ::close(fds[0]);
            ::close(fds[1]);
            throw;
        }
        ::close(fds[1]);
        supervisor_ = h.pid;
        control_fd_ = h.control_fd;
        sandboxed_ = plan.confine;
        if (plan.confine && !h.proc_hidden) {
            sandbox_note_ = "no mount namespace here: wafer's /proc/PID/environ is readable";
        }
        if (plan.network_namespace && !h.network_namespace) {
            sandbox_note_ = plan.deny_tcp
                                ? "no network namespace here; Landlock still denies TCP"
                                : "sandbox: the network is not confined here (no Landlock TCP "
                                  "rules, no network namespace)";
        }
        started_ = clock_type::now();
        pipe_.assign(fds[0]);
        status_.assign(h.status_fd);
    }

    // Starts the read loops and the deadline. Call right after spawn().
    void start() {
        read_more();
        read_status();
        deadline_.expires_after(params_.timeout);
        deadline_.async_wait([self = shared_from_this()](boost::system::error_code ec) {
            if (!ec && !self->exited_) {
                self->timed_out_ = true;
                self->terminate();
            }
        });
    }

    // Cancellation from the caller: terminate the command (idempotent).
    void cancel() {
        if (!finished_ && !timed_out_) {
            cancelled_ = true;
        }
        terminate();
    }

    bool finished() const noexcept { return finished_; }
    asio::steady_timer& done_timer() noexcept { return done_; }

    command_result take_result() {
        if (redactor_.active()) {
            std::string rest;
            redactor_.finish(rest);
            keep(rest.data(), rest.size());
        }
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
        r.output_bytes = raw_total_;
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
        r.sandboxed = sandboxed_;
        r.sandbox_note = sandbox_note_;
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

    void append(std::size_t n) {
        raw_total_ += n;
        if (!redactor_.active()) {
            keep(buf_.data(), n);
            return;
        }
        redacted_.clear();
        redactor_.feed(std::string_view(buf_.data(), n), redacted_);
        keep(redacted_.data(), redacted_.size());
    }

    // Keeps the first head_cap_ bytes and (amortised) the last tail_cap_ bytes.
    void keep(const char* p, std::size_t n) {
        total_ += n;
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

    // The supervisor writes one record when the shell ends, and its end closes when it exits.
    void read_status() {
        asio::async_read(
            status_,
            asio::buffer(&record_, sizeof record_),
            [self = shared_from_this()](boost::system::error_code ec, std::size_t n) {
                if (!ec && n == sizeof self->record_) {
                    self->exit_known_ = true;
                    if (self->record_.kind == detail::exited) {
                        self->exit_code_ = self->record_.value;
                    } else {
                        self->exit_signal_ = self->record_.value;
                    }
                    self->on_exited();
                    self->await_supervisor_exit();
                    return;
                }
                // The supervisor went away without a report (killed from outside).
                self->supervisor_gone_ = true;
                if (!self->exited_) {
                    self->on_exited();
                } else {
                    self->maybe_finish();
                }
            }
        );
    }

    void await_supervisor_exit() {
        status_.async_read_some(
            asio::buffer(junk_),
            [self = shared_from_this()](boost::system::error_code ec, std::size_t) {
                if (!ec) {
                    self->await_supervisor_exit();
                    return;
                }
                self->supervisor_gone_ = true;
                self->maybe_finish();
            }
        );
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
        detail::send_control(control_fd_, detail::control_terminate);
        grace_.expires_after(params_.kill_grace);
        grace_.async_wait([self = shared_from_this()](boost::system::error_code ec) {
            if (!ec && !self->exited_) {
                self->kill_everything();
            }
        });
    }

    void kill_everything() {
        if (!kill_sent_) {
            kill_sent_ = true;
            detail::send_control(control_fd_, detail::control_kill);
        }
    }

    void maybe_finish() {
        if (finished_ || !exited_ || pipe_open_) {
            return;
        }
        // The shell is done: whatever it left behind goes too; then the supervisor exits.
        kill_everything();
        if (!supervisor_gone_) {
            return;
        }
        if (!reaped_) {
            int st = 0; // its status pipe closed: it is exiting, the wait is short
            while (::waitpid(supervisor_, &st, 0) < 0 && errno == EINTR) {
            }
            reaped_ = true;
        }
        tmp_.remove();
        finished_ = true;
        deadline_.cancel();
        grace_.cancel();
        drain_.cancel();
        boost::system::error_code ignored;
        status_.close(ignored);
        done_.cancel(); // wakes the awaiting coroutine
    }

    asio::any_io_executor ex_;
    command_params params_;
    secret_redactor redactor_;
    private_temp_dir tmp_;
    pid_t supervisor_ = -1;
    int control_fd_ = -1;
    clock_type::time_point started_{};
    asio::posix::stream_descriptor pipe_;
    asio::posix::stream_descriptor status_;
    asio::steady_timer deadline_;
    asio::steady_timer grace_;
    asio::steady_timer drain_;
    asio::steady_timer done_;
    detail::exit_record record_{};
    std::array<char, 16> junk_{};
    std::array<char, 16 * 1024> buf_{};
    std::string redacted_;
    std::string head_;
    std::string tail_;
    std::size_t head_cap_ = 0;
    std::size_t tail_cap_ = 0;
    std::size_t total_ = 0;
    std::size_t raw_total_ = 0;
    bool pipe_open_ = true;
    bool exited_ = false;
    bool exit_known_ = false;
    int exit_code_ = 0;
    int exit_signal_ = 0;
    bool supervisor_gone_ = false;
    bool kill_sent_ = false;
    bool reaped_ = false;
    bool terminating_ = false;
    bool timed_out_ = false;
    bool cancelled_ = false;
    bool finished_ = false;
    bool sandboxed_ = false;
    std::string sandbox_note_;
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

struct timeout_choice {
    std::chrono::milliseconds timeout;
    bool clamped = false;
};

// The model's timeout_ms, range-checked before any conversion: a JSON number may be an integer
// beyond int64 (unsigned) or a float such as 1e30, whose conversion to an integer would be
// undefined. Anything above the maximum (however large) is clamped; below 1 is refused.
timeout_choice choose_timeout(const json& v, std::chrono::milliseconds max) {
    const std::int64_t max_ms = std::max<std::int64_t>(max.count(), 1);
    const timeout_choice clamped{std::chrono::milliseconds(max_ms), true};
    if (v.is_number_unsigned()) {
        const auto u = v.get<std::uint64_t>();
        if (u == 0) {
            throw argument_error("timeout_ms must be at least 1");
        }
        if (u > static_cast<std::uint64_t>(max_ms)) {
            return clamped;
        }
        return {std::chrono::milliseconds(static_cast<std::int64_t>(u)), false};
    }
    if (v.is_number_integer()) {
        const auto i = v.get<std::int64_t>();
        if (i < 1) {
            throw argument_error("timeout_ms must be at least 1");
        }
        if (i > max_ms) {
            return clamped;
        }
        return {std::chrono::milliseconds(i), false};
    }
    if (v.is_number_float()) {
        const double d = v.get<double>();
        if (!(d >= 1.0) || std::floor(d) != d) { // also NaN
            throw argument_error("timeout_ms must be a whole number of at least 1");
        }
        if (d > static_cast<double>(max_ms)) { // compared as doubles: no conversion of d
            return clamped;
        }
        return {std::chrono::milliseconds(static_cast<std::int64_t>(d)), false};
    }
    throw argument_error("timeout_ms must be a number");
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
        const timeout_choice t = choose_timeout(args["timeout_ms"], opts.max_timeout);
        p.timeout = t.timeout;
        if (t.clamped) {
            note = "(timeout_ms was lowered to the maximum of " + ms_text(opts.max_timeout) + ")\n";
        }
    }
    const auto timeout = p.timeout;
    const auto grace = p.kill_grace;
    if (p.sandbox.mode == sandbox_mode::on && opts.unconfined_if_approved && ctx.approved) {
        // A person approved this command knowing the sandbox may be missing: where it is, the
        // command runs unconfined and says so.
        if (const sandbox_support s = probe_sandbox_support(); s.landlock_abi <= 0) {
            p.sandbox.mode = sandbox_mode::off;
            note += "(ran unconfined because the user approved it: the sandbox is unavailable "
                    "here (" +
                    (s.reason.empty() ? std::string("no Landlock") : s.reason) + "))\n";
        }
    }
    std::optional<command_result> ran;
    std::string refused;
    try {
        ran = co_await async_run_command(std::move(command), ws->root(), std::move(p), ctx.stop);
    } catch (const sandbox_unavailable& e) {
        refused = e.what();
    }
    if (!ran) {
        co_return tool_output{
            "run_command refused: " + refused + ". The command was not run.", true};
    }
    command_result& r = *ran;

    std::string out = note;
    if (!r.sandbox_note.empty()) {
        out += "(" + r.sandbox_note + ")\n";
    }
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

asio::awaitable<command_result> async_run_command(std::string command, std::filesystem::path cwd) {
    return async_run_command(
        std::move(command), std::move(cwd), command_params(), std::stop_token()
    );
}

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
    if (options.run.sandbox.mode != sandbox_mode::off) {
        t.description +=
            " Commands run in a sandbox: they can read files anywhere but write only inside the "
            "workspace and $TMPDIR (a fresh directory per command, deleted afterwards)";
        t.description += options.run.sandbox.allow_network
                             ? "."
                             : ", and have no network access (downloads and installs fail).";
    }
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
