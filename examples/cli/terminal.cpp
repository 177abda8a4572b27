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

} // namespace

std::optional<bool> ask_yes_no(const std::string& question, int cancel_fd) {
    static std::mutex one_question_at_a_time;
    std::lock_guard lock(one_question_at_a_time);
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

} // namespace wafer::cli
