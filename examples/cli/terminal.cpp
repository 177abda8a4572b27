#include "terminal.hpp"

#include <cstdio>
#include <iostream>
#include <mutex>
#include <string>
#include <unistd.h>

namespace wafer::cli {

bool stdout_is_tty() noexcept {
    return ::isatty(STDOUT_FILENO) == 1;
}

bool stdin_is_tty() noexcept {
    return ::isatty(STDIN_FILENO) == 1;
}

bool can_prompt() noexcept {
    return stdin_is_tty();
}

namespace {

std::optional<std::string> read_line(std::FILE* in) {
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

std::optional<bool> ask_yes_no(const std::string& question) {
    static std::mutex one_question_at_a_time;
    std::lock_guard lock(one_question_at_a_time);
    std::cout.flush();

    // The controlling terminal first: standard input may be a terminal while output is piped.
    if (std::FILE* tty = std::fopen("/dev/tty", "r+")) {
        std::fprintf(tty, "%s [y/N] ", question.c_str());
        std::fflush(tty);
        auto line = read_line(tty);
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
    auto line = read_line(stdin);
    if (!line) {
        return std::nullopt;
    }
    return is_yes(*line);
}

} // namespace wafer::cli
