// The supervisor process (see supervisor.hpp). Everything between fork and exec runs in a
// forked copy of a multi-threaded program, so it only makes system calls: no allocation, no
// locks, no stdio. Buffers live on the stack; the inputs were prepared before the fork.
#include "sandbox/supervisor.hpp"

#include <wafer/tools/sandbox.hpp>

#include <cerrno>
#include <csignal>
#include <cstring>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <string>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <system_error>
#include <unistd.h>

#include "sandbox/landlock.hpp"

namespace wafer::tools::detail {

namespace {

// Where the supervisor keeps its descriptors (everything else is closed).
constexpr int fd_output = 3;
constexpr int fd_startup = 4; // startup reports to wafer; close-on-exec, so EOF means exec'd
constexpr int fd_status = 5;
constexpr int fd_control = 6;
constexpr int fd_ruleset = 7;
constexpr int fd_first_free = 8;

// What failed while starting, reported on the startup pipe.
enum startup_stage : std::int32_t {
    stage_supervisor = 1, // setting up the supervisor itself
    stage_fork,
    stage_chdir,
    stage_stdio,
    stage_network_namespace,
    stage_namespaces_skipped, // not fatal: Landlock denies TCP anyway, /proc stays visible
    stage_hide_proc_skipped,  // not fatal
    stage_user_namespace_map,
    stage_landlock,
    stage_exec,
};

struct startup_record {
    std::int32_t stage = 0;
    std::int32_t error = 0;
};

void report(startup_stage stage, int err) noexcept {
    const startup_record r{stage, err};
    (void)!::write(fd_startup, &r, sizeof r);
}

[[noreturn]] void fail(startup_stage stage, int err) noexcept {
    report(stage, err);
    ::_exit(127);
}

bool write_all(int fd, const char* data, std::size_t n) noexcept {
    while (n > 0) {
        const ssize_t w = ::write(fd, data, n);
        if (w < 0 && errno == EINTR) {
            continue;
        }
        if (w <= 0) {
            return false;
        }
        data += w;
        n -= static_cast<std::size_t>(w);
    }
    return true;
}

bool write_file(const char* path, const char* text) noexcept {
    const int fd = ::open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0) {
        return false;
    }
    const bool ok = write_all(fd, text, std::strlen(text));
    ::close(fd);
    return ok;
}

void close_from(int first) noexcept {
    if (::close_range(static_cast<unsigned>(first), ~0U, 0) == 0) {
        return;
    }
    for (int fd = first; fd < 65536; ++fd) { // kernels before 5.9
        ::close(fd);
    }
}

char* format_pid(char* p, pid_t v) noexcept {
    char digits[16];
    int n = 0;
    do {
        digits[n++] = static_cast<char>('0' + v % 10);
        v /= 10;
    } while (v > 0 && n < 16);
    while (n > 0) {
        *p++ = digits[--n];
    }
    return p;
}

// ---- the shell (grandchild) ----

// Covers each /proc/PID directory (and the supervisor's) with an empty read-only tmpfs. Mounts
// are made private first, so nothing propagates to wafer's mount namespace.
void hide_proc_dirs(const char* const* dirs) noexcept {
    if (::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0) {
        report(stage_hide_proc_skipped, errno);
        return;
    }
    char supervisor_dir[32] = "/proc/";
    *format_pid(supervisor_dir + 6, ::getppid()) = '\0';
    constexpr unsigned long flags = MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC;
    bool ok = ::mount("wafer-hidden", supervisor_dir, "tmpfs", flags, "size=4k,mode=555") == 0;
    for (const char* const* d = dirs; *d != nullptr; ++d) {
        ok = ::mount("wafer-hidden", *d, "tmpfs", flags, "size=4k,mode=555") == 0 && ok;
    }
    if (!ok) {
        report(stage_hide_proc_skipped, errno);
    }
}

[[noreturn]] void exec_shell(const supervised_command& cmd) noexcept {
    // Default dispositions and an empty mask: the supervisor's handlers and blocked signals
    // must not reach the command (`yes | head` relies on SIGPIPE).
    struct sigaction dfl {};
    dfl.sa_handler = SIG_DFL;
    for (int s = 1; s < NSIG; ++s) {
        ::sigaction(s, &dfl, nullptr);
    }
    sigset_t none;
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    // The supervisor is not dumpable; this process must be, to write its own uid_map below
    // (exec would make it dumpable anyway).
    ::prctl(PR_SET_DUMPABLE, 1, 0, 0, 0);
    // Its own process group, so the supervisor can signal the shell and its jobs at once.
    ::setpgid(0, 0);

    if (::chdir(cmd.cwd) != 0) {
        fail(stage_chdir, errno);
    }
    const int in = ::open("/dev/null", O_RDONLY);
    if (in < 0 || ::dup2(in, 0) < 0 || ::dup2(fd_output, 1) < 0 || ::dup2(fd_output, 2) < 0) {
        fail(stage_stdio, errno);
    }
    if (in > 2) {
        ::close(in);
    }
    ::close(fd_output);
    ::close(fd_status);
    ::close(fd_control);

    const bool hide = cmd.hidden_proc_dirs != nullptr;
    if (cmd.new_network_namespace || hide) {
        const int flags = (cmd.new_network_namespace ? CLONE_NEWNET : 0) |
                          (hide ? CLONE_NEWNS : 0) | (cmd.uid_map != nullptr ? CLONE_NEWUSER : 0);
        if (::unshare(flags) != 0) {
            if (cmd.network_namespace_required) {
                fail(stage_network_namespace, errno);
            }
            report(stage_namespaces_skipped, errno);
        } else {
            if (cmd.uid_map != nullptr) {
                // Map the user to itself, so files and `id` look as before.
                if (!write_file("/proc/self/setgroups", "deny") ||
                    !write_file("/proc/self/uid_map", cmd.uid_map) ||
                    !write_file("/proc/self/gid_map", cmd.gid_map)) {
                    fail(stage_user_namespace_map, errno);
                }
            }
            if (hide) {
                hide_proc_dirs(cmd.hidden_proc_dirs);
            }
        }
    }
    if (cmd.ruleset_fd >= 0) {
        const int err = landlock_restrict_self(fd_ruleset);
        if (err != 0) {
            fail(stage_landlock, err);
        }
        ::close(fd_ruleset);
    }
    ::execve(cmd.path, cmd.argv, cmd.envp);
    fail(stage_exec, errno);
}

// ---- the supervisor (child) ----

volatile sig_atomic_t got_hangup = 0;

void on_child(int) {}
void on_hangup(int) {
    got_hangup = 1;
}

struct supervisor_state {
    pid_t shell = -1;
    bool shell_reaped = false;
    bool status_sent = false;
};

void note_reaped(supervisor_state& st, pid_t pid, int status) noexcept {
    if (pid != st.shell || st.shell_reaped) {
        return;
    }
    st.shell_reaped = true;
    exit_record r;
    if (WIFEXITED(status)) {
        r.kind = exited;
        r.value = WEXITSTATUS(status);
    } else {
        r.kind = signalled;
        r.value = WTERMSIG(status);
    }
    if (!st.status_sent) {
        st.status_sent = true;
        write_all(fd_status, reinterpret_cast<const char*>(&r), sizeof r);
    }
}

void reap_exited(supervisor_state& st) noexcept {
    int status = 0;
    pid_t p = 0;
    while ((p = ::waitpid(-1, &status, WNOHANG)) > 0) {
        note_reaped(st, p, status);
    }
}

// Parses space-separated pids from [p, end); a number cut at `end` is carried in `partial`.
int parse_pids(const char* p, const char* end, long& partial, pid_t* out, int n, int max) {
    for (; p < end; ++p) {
        if (*p >= '0' && *p <= '9') {
            partial = partial * 10 + (*p - '0');
        } else if (partial > 0) {
            if (n < max) {
                out[n++] = static_cast<pid_t>(partial);
            }
            partial = 0;
        }
    }
    return n;
}

// The supervisor's children through /proc/PID/task/PID/children (CONFIG_PROC_CHILDREN);
// -1 if that file does not exist.
int children_from_proc_file(pid_t self, pid_t* out, int max) noexcept {
    char path[64] = "/proc/";
    char* p = format_pid(path + 6, self);
    std::memcpy(p, "/task/", 6);
    p = format_pid(p + 6, self);
    std::memcpy(p, "/children", 10);
    const int fd = ::open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        return -1;
    }
    char buf[4096];
    long partial = 0;
    int n = 0;
    ssize_t r = 0;
    while ((r = ::read(fd, buf, sizeof buf)) > 0 || (r < 0 && errno == EINTR)) {
        if (r > 0) {
            n = parse_pids(buf, buf + r, partial, out, n, max);
        }
    }
    if (partial > 0 && n < max) {
        out[n++] = static_cast<pid_t>(partial);
    }
    ::close(fd);
    return n;
}

// The same by reading the parent pid of every process in /proc (kernels without the file).
int children_from_proc_scan(pid_t self, pid_t* out, int max) noexcept {
    const int dir = ::open("/proc", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dir < 0) {
        return 0;
    }
    int n = 0;
    alignas(8) char buf[8192];
    long got = 0;
    while ((got = ::syscall(SYS_getdents64, dir, buf, sizeof buf)) > 0 && n < max) {
        for (long off = 0; off < got;) {
            // struct linux_dirent64: ino (8), off (8), reclen (2), type (1), name
            unsigned short reclen = 0;
            std::memcpy(&reclen, buf + off + 16, sizeof reclen);
            const char* name = buf + off + 19;
            off += reclen;
            if (name[0] < '1' || name[0] > '9') {
                continue;
            }
            char path[64] = "/proc/";
            const std::size_t len = ::strnlen(name, 20);
            std::memcpy(path + 6, name, len);
            std::memcpy(path + 6 + len, "/stat", 6);
            const int fd = ::open(path, O_RDONLY | O_CLOEXEC);
            if (fd < 0) {
                continue;
            }
            char stat[512];
            const ssize_t r = ::read(fd, stat, sizeof stat - 1);
            ::close(fd);
            if (r <= 0) {
                continue;
            }
            stat[r] = '\0';
            const char* close_paren = std::strrchr(stat, ')');
            if (close_paren == nullptr || close_paren[1] == '\0' || close_paren[2] == '\0') {
                continue;
            }
            // ") S PPID ..."
            const char* q = close_paren + 4;
            long ppid = 0;
            while (*q >= '0' && *q <= '9') {
                ppid = ppid * 10 + (*q++ - '0');
            }
            if (ppid == self && n < max) {
                long pid = 0;
                for (const char* c = name; *c >= '0' && *c <= '9'; ++c) {
                    pid = pid * 10 + (*c - '0');
                }
                out[n++] = static_cast<pid_t>(pid);
            }
        }
    }
    ::close(dir);
    return n;
}

int list_children(pid_t self, pid_t* out, int max) noexcept {
    const int n = children_from_proc_file(self, out, max);
    return n >= 0 ? n : children_from_proc_scan(self, out, max);
}

// SIGTERM to the shell's group (while the shell is unreaped its pid, the group id, cannot be
// reused) and to every orphan the supervisor adopted.
void terminate_all(supervisor_state& st, pid_t self) noexcept {
    if (!st.shell_reaped) {
        ::kill(-st.shell, SIGTERM);
    }
    pid_t kids[512];
    const int n = list_children(self, kids, 512);
    for (int i = 0; i < n; ++i) {
        if (kids[i] != st.shell) { // the shell had it with its group
            ::kill(kids[i], SIGTERM);
        }
    }
}

// SIGKILLs children until there are none. Each killed child's children become ours (we are
// their subreaper) before its exit is reported, so the next round finds them. Our children
// are unreaped until we reap them, so their pids cannot be reused under us.
void kill_all(supervisor_state& st, pid_t self) noexcept {
    if (!st.shell_reaped) {
        ::kill(-st.shell, SIGKILL);
    }
    pid_t kids[512];
    for (;;) {
        const int n = list_children(self, kids, 512);
        if (n == 0) {
            int status = 0;
            const pid_t p = ::waitpid(-1, &status, WNOHANG);
            if (p > 0) {
                note_reaped(st, p, status);
                continue;
            }
            if (p < 0) {
                return; // ECHILD: nothing left
            }
            const timespec pause{0, 1'000'000}; // a child not listed yet: look again shortly
            ::nanosleep(&pause, nullptr);
            continue;
        }
        for (int i = 0; i < n; ++i) {
            ::kill(kids[i], SIGKILL);
        }
        for (int i = 0; i < n; ++i) {
            int status = 0;
            while (::waitpid(kids[i], &status, 0) < 0 && errno == EINTR) {
            }
            note_reaped(st, kids[i], status);
        }
    }
}

// Moves the descriptors the supervisor needs to fixed numbers and closes every other one
// (wafer's sockets, other commands' pipes: a forked copy holds them all).
void arrange_descriptors(const supervised_command& cmd, int startup, int status, int control) {
    const int sources[] = {cmd.output_fd, startup, status, control, cmd.ruleset_fd};
    const int targets[] = {fd_output, fd_startup, fd_status, fd_control, fd_ruleset};
    int temps[5];
    for (int i = 0; i < 5; ++i) {
        temps[i] = sources[i] < 0 ? -1 : ::fcntl(sources[i], F_DUPFD_CLOEXEC, 16);
        if (sources[i] >= 0 && temps[i] < 0) {
            ::_exit(127); // cannot even report: wafer sees EOF without a report and no status
        }
    }
    for (int i = 0; i < 5; ++i) {
        if (temps[i] >= 0) {
            // Close-on-exec: the startup pipe's EOF tells wafer the exec worked; the others are
            // closed explicitly before exec anyway.
            ::dup3(temps[i], targets[i], O_CLOEXEC);
        } else {
            ::close(targets[i]); // one of wafer's descriptors may sit there
        }
    }
    close_from(fd_first_free);
    const int null = ::open("/dev/null", O_RDWR);
    if (null >= 0) {
        ::dup2(null, 0);
        ::dup2(null, 1);
        ::dup2(null, 2);
        if (null > 2) {
            ::close(null);
        }
    }
}

[[noreturn]] void
supervise(const supervised_command& cmd, int startup, int status, int control) noexcept {
    sigset_t all;
    sigfillset(&all);
    ::sigprocmask(SIG_SETMASK, &all, nullptr);
    arrange_descriptors(cmd, startup, status, control);
    const pid_t self = ::getpid();
    // A new session: no controlling terminal, so nothing the command starts can open /dev/tty
    // to read the user's keys or write over wafer's prompts.
    if (::setsid() < 0 || ::prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0) {
        fail(stage_supervisor, errno);
    }
    // Not dumpable: its /proc/PID/environ (a copy of wafer's original environment block) is
    // then readable only with CAP_SYS_PTRACE, also when the sandbox is off.
    ::prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
    struct sigaction sa {};
    sa.sa_handler = on_child;
    ::sigaction(SIGCHLD, &sa, nullptr);
    sa.sa_handler = on_hangup;
    ::sigaction(SIGTERM, &sa, nullptr);
    ::sigaction(SIGHUP, &sa, nullptr);
    sa.sa_handler = SIG_IGN;
    ::sigaction(SIGPIPE, &sa, nullptr);

    supervisor_state st;
    // _Fork, not fork: fork's atfork handlers take locks (malloc's) that another thread of
    // wafer may have held when the supervisor was forked.
    st.shell = ::_Fork();
    if (st.shell < 0) {
        fail(stage_fork, errno);
    }
    if (st.shell == 0) {
        exec_shell(cmd);
    }
    ::setpgid(st.shell, st.shell); // also here, so a kill of the group cannot come before it
    ::close(fd_output);
    ::close(fd_startup);
    if (cmd.ruleset_fd >= 0) {
        ::close(fd_ruleset);
    }

    sigset_t waiting = all; // while polling, SIGCHLD/SIGTERM/SIGHUP interrupt the poll
    sigdelset(&waiting, SIGCHLD);
    sigdelset(&waiting, SIGTERM);
    sigdelset(&waiting, SIGHUP);
    for (;;) {
        reap_exited(st);
        if (got_hangup != 0) {
            break;
        }
        pollfd pfd{fd_control, POLLIN, 0};
        const int rc = ::ppoll(&pfd, 1, nullptr, &waiting);
        if (rc < 0) {
            continue; // EINTR: a child changed state or we were told to go
        }
        char c = 0;
        const ssize_t r = ::recv(fd_control, &c, 1, 0);
        if (r < 0 && errno == EINTR) {
            continue;
        }
        if (r == 1 && c == control_terminate) {
            terminate_all(st, self);
            continue;
        }
        break; // control_kill, or wafer closed its end (or went away)
    }
    kill_all(st, self);
    ::_exit(0);
}

std::string stage_text(std::int32_t stage) {
    switch (stage) {
    case stage_supervisor:
        return "setting up the supervisor";
    case stage_fork:
        return "fork";
    case stage_chdir:
        return "chdir";
    case stage_stdio:
        return "redirecting stdin/stdout";
    case stage_network_namespace:
        return "creating a network namespace";
    case stage_user_namespace_map:
        return "mapping the user namespace";
    case stage_landlock:
        return "landlock_restrict_self";
    case stage_exec:
        return "exec";
    default:
        return "starting";
    }
}

struct descriptors {
    int fds[6] = {-1, -1, -1, -1, -1, -1};
    ~descriptors() {
        for (int fd : fds) {
            if (fd >= 0) {
                ::close(fd);
            }
        }
    }
    descriptors() = default;
    descriptors(const descriptors&) = delete;
    descriptors& operator=(const descriptors&) = delete;
};

} // namespace

supervisor_handle start_supervised(const supervised_command& cmd) {
    // [0,1] startup pipe, [2,3] status pipe, [4,5] control socket; all close-on-exec so that
    // commands started concurrently by other threads do not inherit them.
    descriptors d;
    if (::pipe2(d.fds, O_CLOEXEC) != 0 || ::pipe2(d.fds + 2, O_CLOEXEC) != 0 ||
        ::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, d.fds + 4) != 0) {
        throw std::system_error(errno, std::generic_category(), "run_command: pipe");
    }
    const pid_t pid = ::_Fork(); // no atfork handlers: the child only makes system calls
    if (pid < 0) {
        throw std::system_error(errno, std::generic_category(), "run_command: fork");
    }
    if (pid == 0) {
        supervise(cmd, d.fds[1], d.fds[3], d.fds[5]);
    }
    for (int i : {1, 3, 5}) {
        ::close(d.fds[i]);
        d.fds[i] = -1;
    }

    supervisor_handle h;
    h.pid = pid;
    h.network_namespace = cmd.new_network_namespace;
    h.proc_hidden = cmd.hidden_proc_dirs != nullptr;
    // Read startup reports until EOF: the shell's exec closed the last copy.
    startup_record fatal{};
    for (;;) {
        startup_record r;
        const ssize_t n = ::read(d.fds[0], &r, sizeof r);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n != static_cast<ssize_t>(sizeof r)) {
            break;
        }
        if (r.stage == stage_namespaces_skipped) {
            h.network_namespace = false;
            h.proc_hidden = false;
        } else if (r.stage == stage_hide_proc_skipped) {
            h.proc_hidden = false;
        } else if (fatal.stage == 0) {
            fatal = r;
        }
    }
    if (fatal.stage != 0) {
        ::close(d.fds[4]); // the supervisor reaps what is left and exits
        d.fds[4] = -1;
        int st = 0;
        while (::waitpid(pid, &st, 0) < 0 && errno == EINTR) {
        }
        const std::string what = stage_text(fatal.stage);
        if (fatal.stage == stage_network_namespace || fatal.stage == stage_user_namespace_map ||
            fatal.stage == stage_landlock) {
            throw sandbox_unavailable(
                "sandbox: " + what + " failed: " + std::strerror(fatal.error)
            );
        }
        throw std::system_error(
            fatal.error,
            std::generic_category(),
            std::string("run_command: cannot start ") + cmd.path + " in " + cmd.cwd + " (" + what +
                ")"
        );
    }
    h.status_fd = d.fds[2];
    h.control_fd = d.fds[4];
    d.fds[2] = -1;
    d.fds[4] = -1;
    return h;
}

bool send_control(int control_fd, char c) noexcept {
    ssize_t r = 0;
    do {
        r = ::send(control_fd, &c, 1, MSG_NOSIGNAL);
    } while (r < 0 && errno == EINTR);
    return r == 1;
}

} // namespace wafer::tools::detail
