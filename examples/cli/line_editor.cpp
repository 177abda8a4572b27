#include "line_editor.hpp"

#include <cstdio>
#include <cstdlib>
#include <memory>
#include <system_error>

// libedit's readline interface wants stdio declared first.
#include <editline/readline.h>

namespace wafer::cli {

namespace {

constexpr int history_lines = 1000;

/// Writes the history, readable by its owner only (what was typed may be private).
void save(const std::filesystem::path& file) {
    std::error_code ec;
    std::filesystem::create_directories(file.parent_path(), ec);
    if (::write_history(file.c_str()) == 0) {
        std::filesystem::permissions(
            file, std::filesystem::perms::owner_read | std::filesystem::perms::owner_write, ec
        );
    }
}

} // namespace

line_editor::line_editor(std::filesystem::path history_file)
    : history_file_(std::move(history_file)) {
    // No filename completion: Tab inserts nothing surprising in a message.
    ::rl_bind_key('\t', ::rl_insert);
    ::using_history();
    ::stifle_history(history_lines);
    if (!history_file_.empty()) {
        ::read_history(history_file_.c_str());
    }
}

line_editor::~line_editor() {
    if (!history_file_.empty()) {
        save(history_file_);
    }
}

std::optional<std::string> line_editor::read(const std::string& prompt) {
    const std::unique_ptr<char, decltype(&std::free)> line(::readline(prompt.c_str()), &std::free);
    if (!line) {
        return std::nullopt;
    }
    std::string text(line.get());
    if (text.find_first_not_of(" \t") != std::string::npos) {
        ::add_history(line.get());
        if (!history_file_.empty()) {
            save(history_file_); // as it grows: a session ended by a signal keeps it too
        }
    }
    return text;
}

} // namespace wafer::cli
