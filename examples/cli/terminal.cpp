#include "terminal.hpp"

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <iostream>
#include <mutex>
#include <poll.h>
#include <string>
#include <unistd.h>

#include "conventions.hpp"
#include "failure.hpp"

namespace wafer::cli {

bool stdout_is_tty() noexcept {
    return ::isatty(STDOUT_FILENO) == 1;
}

bool stdin_is_tty() noexcept {
    return ::isatty(STDIN_FILENO) == 1;
}

bool stderr_is_tty() noexcept {
    return ::isatty(STDERR_FILENO) == 1;
}

bool output_color(const std::string& mode) {
    return color_enabled(mode, stdout_is_tty(), std::getenv("NO_COLOR"), std::getenv("TERM"));
}

bool thinking_line_allowed() {
    return can_draw_status(stderr_is_tty(), std::getenv("TERM"));
}

std::string read_all_stdin(std::size_t max_bytes) {
    std::string text;
    char buf[65536];
    for (;;) {
        const ssize_t n = ::read(STDIN_FILENO, buf, sizeof buf);
        if (n == 0) {
            return text;
        }
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            throw cli_error(
                std::string("cannot read standard input: ") + std::strerror(errno), exit_usage
            );
        }
        text.append(buf, static_cast<std::size_t>(n));
        if (text.size() > max_bytes) {
            throw cli_error(
                "standard input holds more than " + std::to_string(max_bytes / (1024 * 1024)) +
                    " MiB; give a smaller prompt",
                exit_usage
            );
        }
    }
}

bool can_prompt() noexcept {
    if (stdin_is_tty()) {
        return true;
    }
    // Standard input may carry the prompt (echo task | wafer run) while a person sits at the
    // controlling terminal, where ask_yes_no asks.
    const int fd = ::open("/dev/tty", O_RDWR | O_CLOEXEC | O_NOCTTY);
    if (fd < 0) {
        return false;
    }
    ::close(fd);
    return true;
}

namespace {

/// Waits until `in` has input or `cancel_fd` (when >= 0) is readable; false for the latter.
bool wait_for_input(std::FILE* in, int cancel_fd) {
    if (cancel_fd < 0) {
        return true;
    }
    pollfd fds[2] = {{::fileno(in), POLLIN, 0}, {cancel_fd, POLLIN, 0}};
    while (true) {
        const int n = ::poll(fds, 2, -1);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        return n < 0 || (fds[1].revents & POLLIN) == 0;
    }
}

std::optional<std::string> read_line(std::FILE* in, int cancel_fd = -1) {
    // A terminal in canonical mode has input once a whole line was typed.
    if (!wait_for_input(in, cancel_fd)) {
        return std::nullopt;
    }
    std::string line;
    for (int c = std::fgetc(in); c != EOF; c = std::fgetc(in)) {
        if (c == '\n') {
            return line;
        }
        line.push_back(static_cast<char>(c));
    }
    if (line.empty()) {
        return std::nullopt;
    }
    return line;
}

bool is_yes(std::string s) {
    while (!s.empty() && (s.back() == ' ' || s.back() == '\r' || s.back() == '\t')) {
        s.pop_back();
    }
    std::size_t i = 0;
    while (i < s.size() && (s[i] == ' ' || s[i] == '\t')) {
        ++i;
    }
    s.erase(0, i);
    for (auto& c : s) {
        if (c >= 'A' && c <= 'Z') {
            c = static_cast<char>(c - 'A' + 'a');
        }
    }
    return s == "y" || s == "yes";
}

// One question at a time on the terminal: approvals and MCP forms share it.
std::mutex& terminal_mutex() {
    static std::mutex m;
    return m;
}

} // namespace

std::optional<bool> ask_yes_no(const std::string& question, int cancel_fd) {
    std::lock_guard lock(terminal_mutex());
    std::cout.flush();

    // The controlling terminal first: standard input may be a terminal while output is piped.
    if (std::FILE* tty = std::fopen("/dev/tty", "r+")) {
        std::fprintf(tty, "%s [y/N] ", question.c_str());
        std::fflush(tty);
        auto line = read_line(tty, cancel_fd);
        std::fclose(tty);
        if (!line) {
            return std::nullopt;
        }
        return is_yes(*line);
    }
    if (!stdin_is_tty()) {
        return std::nullopt;
    }
    std::cerr << question << " [y/N] " << std::flush;
    auto line = read_line(stdin, cancel_fd);
    if (!line) {
        return std::nullopt;
    }
    return is_yes(*line);
}

terminal_prompt::terminal_prompt(int cancel_fd) : lock_(terminal_mutex()), cancel_fd_(cancel_fd) {
    std::cout.flush();
    const int tty = ::open("/dev/tty", O_RDWR | O_CLOEXEC | O_NOCTTY);
    if (tty >= 0) {
        in_ = out_ = tty;
        own_fd_ = true;
    } else if (stdin_is_tty()) {
        in_ = STDIN_FILENO;
        out_ = STDERR_FILENO;
    } else {
        return;
    }
    // Ctrl-C ends the line (VEOL) instead of raising SIGINT, so that it cancels the form and
    // not the run; the line editing of canonical mode (erase, Ctrl-D) stays.
    if (::tcgetattr(in_, &saved_) == 0) {
        ::termios t = saved_;
        t.c_lflag &= ~static_cast<tcflag_t>(ISIG);
        t.c_lflag |= ICANON | ECHO;
        t.c_cc[VEOL] = '\x03';
        restore_ = ::tcsetattr(in_, TCSANOW, &t) == 0;
    }
}

terminal_prompt::~terminal_prompt() {
    if (restore_) {
        ::tcsetattr(in_, TCSANOW, &saved_);
    }
    if (own_fd_) {
        ::close(in_);
    }
}

void terminal_prompt::say(std::string_view text) {
    while (out_ >= 0 && !text.empty()) {
        const ssize_t n = ::write(out_, text.data(), text.size());
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            return;
        }
        text.remove_prefix(static_cast<std::size_t>(n));
    }
}

std::optional<std::string> terminal_prompt::ask(std::string_view question) {
    if (in_ < 0) {
        return std::nullopt;
    }
    say(question);
    std::string line;
    char buf[4096];
    for (;;) {
        pollfd fds[2] = {{in_, POLLIN, 0}, {cancel_fd_, POLLIN, 0}};
        const int n = ::poll(fds, cancel_fd_ >= 0 ? 2 : 1, -1);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0 || (cancel_fd_ >= 0 && (fds[1].revents & POLLIN) != 0)) {
            say("\n");
            return std::nullopt;
        }
        // Canonical mode: a read returns at most one line.
        const ssize_t got = ::read(in_, buf, sizeof buf);
        if (got < 0 && errno == EINTR) {
            continue;
        }
        if (got <= 0) {
            say("\n");
            return std::nullopt; // end of input (Ctrl-D on an empty line), or an error
        }
        line.append(buf, static_cast<std::size_t>(got));
        if (line.back() == '\x03') {
            say("\n");
            return std::nullopt; // Ctrl-C
        }
        if (line.back() == '\n') {
            line.pop_back();
            return line;
        }
        if (line.size() > 65536) {
            say("\n");
            return std::nullopt;
        }
    }
}

} // namespace wafer::cli
