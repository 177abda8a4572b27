#include "mcp/stdio_process.hpp"

#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <cerrno>
#include <csignal>
#include <cstring>
#include <fcntl.h>
#include <spawn.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <system_error>
#include <unistd.h>

#include "detail/unique_fd.hpp"

namespace wafer::tools::mcp::detail {

namespace asio = boost::asio;
using tools::detail::unique_fd;

namespace {

struct pipe_pair {
    unique_fd read;
    unique_fd write;
};

pipe_pair make_pipe() {
    int fds[2];
    if (::pipe2(fds, O_CLOEXEC) != 0) {
        throw std::system_error(errno, std::generic_category(), "pipe2");
    }
    return {unique_fd(fds[0]), unique_fd(fds[1])};
}

// Owns posix_spawn's attribute and file-action objects.
struct spawn_setup {
    posix_spawn_file_actions_t actions{};
    posix_spawnattr_t attr{};
    spawn_setup() {
        ::posix_spawn_file_actions_init(&actions);
        ::posix_spawnattr_init(&attr);
    }
    ~spawn_setup() {
        ::posix_spawn_file_actions_destroy(&actions);
        ::posix_spawnattr_destroy(&attr);
    }
    spawn_setup(const spawn_setup&) = delete;
    spawn_setup& operator=(const spawn_setup&) = delete;
};

// write(2) with SIGPIPE blocked on this thread: a server that closed its stdin gives EPIPE, not a
// signal that ends wafer. A SIGPIPE this write raised is taken back unless one was already
// pending for the thread. Three system calls (block, write, restore) on the usual path: a
// thread that did not block SIGPIPE cannot have one pending (it would have been delivered), so
// only a thread that blocks it already needs sigpending (and no restore).
ssize_t write_without_sigpipe(int fd, const char* data, std::size_t size) noexcept {
    sigset_t pipe_set;
    sigset_t old_mask;
    sigemptyset(&pipe_set);
    sigaddset(&pipe_set, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &pipe_set, &old_mask);
    const bool blocked_before = sigismember(&old_mask, SIGPIPE) == 1;
    bool was_pending = false;
    if (blocked_before) {
        sigset_t pending;
        sigpending(&pending);
        was_pending = sigismember(&pending, SIGPIPE) == 1;
    }
    const ssize_t n = ::write(fd, data, size);
    const int saved = errno;
    if (n < 0 && saved == EPIPE && !was_pending) {
        const timespec zero{};
        while (::sigtimedwait(&pipe_set, nullptr, &zero) < 0 && errno == EINTR) {
        }
    }
    if (!blocked_before) {
        pthread_sigmask(SIG_SETMASK, &old_mask, nullptr);
    }
    errno = saved;
    return n;
}

} // namespace

stdio_process::stdio_process(const asio::any_io_executor& ex, const spawn_request& req)
    : in_(ex), out_(ex), err_(ex), exit_fd_(ex) {
    pipe_pair in = make_pipe();
    pipe_pair out = make_pipe();
    pipe_pair err = make_pipe();

    spawn_setup setup;
    ::posix_spawn_file_actions_adddup2(&setup.actions, in.read.get(), STDIN_FILENO);
    ::posix_spawn_file_actions_adddup2(&setup.actions, out.write.get(), STDOUT_FILENO);
    ::posix_spawn_file_actions_adddup2(&setup.actions, err.write.get(), STDERR_FILENO);
    // Nothing of wafer's beyond the three pipes, whatever a library opened without O_CLOEXEC.
    ::posix_spawn_file_actions_addclosefrom_np(&setup.actions, STDERR_FILENO + 1);
    if (!req.cwd.empty()) {
        ::posix_spawn_file_actions_addchdir_np(&setup.actions, req.cwd.c_str());
    }
    // Its own process group (the shutdown signals reach its children too), default signal
    // dispositions and an empty mask, whatever wafer's threads block or ignore.
    sigset_t none;
    sigset_t all;
    sigemptyset(&none);
    sigfillset(&all);
    ::posix_spawnattr_setpgroup(&setup.attr, 0);
    ::posix_spawnattr_setsigmask(&setup.attr, &none);
    ::posix_spawnattr_setsigdefault(&setup.attr, &all);
    ::posix_spawnattr_setflags(
        &setup.attr, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF
    );

    std::vector<char*> argv;
    argv.push_back(const_cast<char*>(req.command.c_str()));
    for (const auto& a : req.args) {
        argv.push_back(const_cast<char*>(a.c_str()));
    }
    argv.push_back(nullptr);
    std::vector<char*> envp;
    for (const auto& e : req.env) {
        envp.push_back(const_cast<char*>(e.c_str()));
    }
    envp.push_back(nullptr);

    pid_t pid = -1;
    const int rc = ::posix_spawnp(
        &pid, req.command.c_str(), &setup.actions, &setup.attr, argv.data(), envp.data()
    );
    if (rc != 0) {
        throw std::system_error(rc, std::generic_category(), "cannot start " + req.command);
    }
    pid_ = pid;
    in_.assign(in.write.release());
    out_.assign(out.read.release());
    err_.assign(err.read.release());
    in_.non_blocking(true);
    const int pidfd = static_cast<int>(::syscall(SYS_pidfd_open, pid_, 0));
    if (pidfd >= 0) {
        exit_fd_.assign(pidfd);
    }
}

stdio_process::~stdio_process() {
    if (pid_ > 0 && !status_) {
        ::kill(-pid_, SIGKILL);
        int st = 0;
        while (::waitpid(pid_, &st, 0) < 0 && errno == EINTR) {
        }
    }
}

asio::awaitable<void> stdio_process::async_write(std::string_view bytes) {
    while (!bytes.empty()) {
        if (!in_.is_open()) {
            throw boost::system::system_error(
                asio::error::bad_descriptor, "the server's stdin is closed"
            );
        }
        const ssize_t n = write_without_sigpipe(in_.native_handle(), bytes.data(), bytes.size());
        if (n >= 0) {
            bytes.remove_prefix(static_cast<std::size_t>(n));
            continue;
        }
        if (errno == EINTR) {
            continue;
        }
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
            co_await in_.async_wait(
                asio::posix::stream_descriptor::wait_write, asio::use_awaitable
            );
            continue;
        }
        throw boost::system::system_error(
            boost::system::error_code(errno, boost::system::system_category()),
            "write to the server's stdin"
        );
    }
}

namespace {

asio::awaitable<std::size_t>
read_some(asio::posix::stream_descriptor& d, char* buf, std::size_t size) {
    boost::system::error_code ec;
    const std::size_t n = co_await d.async_read_some(
        asio::buffer(buf, size), asio::redirect_error(asio::use_awaitable, ec)
    );
    if (ec == asio::error::eof) {
        co_return 0;
    }
    if (ec) {
        throw boost::system::system_error(ec);
    }
    co_return n;
}

} // namespace

asio::awaitable<std::size_t> stdio_process::async_read_out(char* buf, std::size_t size) {
    return read_some(out_, buf, size);
}

asio::awaitable<std::size_t> stdio_process::async_read_err(char* buf, std::size_t size) {
    return read_some(err_, buf, size);
}

void stdio_process::close_stdin() noexcept {
    boost::system::error_code ignored;
    in_.close(ignored);
}

bool stdio_process::try_reap() noexcept {
    if (status_) {
        return true;
    }
    int st = 0;
    pid_t r = 0;
    do {
        r = ::waitpid(pid_, &st, WNOHANG);
    } while (r < 0 && errno == EINTR);
    if (r == pid_) {
        status_ = st;
        return true;
    }
    if (r < 0) {
        status_ = 0; // reaped by someone else (ECHILD): nothing left to wait for
        return true;
    }
    return false;
}

asio::awaitable<int> stdio_process::async_wait_exit() {
    while (!try_reap()) {
        if (exit_fd_.is_open()) {
            co_await exit_fd_.async_wait(
                asio::posix::stream_descriptor::wait_read, asio::use_awaitable
            );
        } else {
            // No pidfd (an old kernel or a seccomp filter): poll.
            asio::steady_timer t(co_await asio::this_coro::executor, std::chrono::milliseconds(20));
            co_await t.async_wait(asio::use_awaitable);
        }
    }
    co_return *status_;
}

asio::awaitable<bool> stdio_process::async_wait_exit_for(std::chrono::milliseconds limit) {
    using namespace asio::experimental::awaitable_operators;
    if (try_reap()) {
        co_return true;
    }
    asio::steady_timer t(co_await asio::this_coro::executor, limit);
    const auto r = co_await (async_wait_exit() || t.async_wait(asio::use_awaitable));
    co_return r.index() == 0;
}

asio::awaitable<void> stdio_process::async_shutdown(std::chrono::milliseconds grace) {
    close_stdin();
    const bool ended_on_eof = co_await async_wait_exit_for(grace);
    if (ended_on_eof) {
        co_return;
    }
    signal_group(SIGTERM);
    const bool ended_on_term = co_await async_wait_exit_for(grace);
    if (ended_on_term) {
        co_return;
    }
    signal_group(SIGKILL);
    co_await async_wait_exit();
}

void stdio_process::signal_group(int sig) noexcept {
    if (pid_ > 0 && !status_) {
        ::kill(-pid_, sig);
    }
}

std::string stdio_process::describe_status(int status) {
    if (WIFEXITED(status)) {
        return "exited with status " + std::to_string(WEXITSTATUS(status));
    }
    if (WIFSIGNALED(status)) {
        const char* name = ::sigabbrev_np(WTERMSIG(status));
        return "killed by signal " + std::to_string(WTERMSIG(status)) +
               (name ? std::string(" (SIG") + name + ")" : std::string());
    }
    return "ended (wait status " + std::to_string(status) + ")";
}

} // namespace wafer::tools::mcp::detail
