// The interactive session's input line: libedit (Debian's libedit-dev) through its readline
// interface, with line editing and a history kept in a file across sessions.
#pragma once

#include <filesystem>
#include <optional>
#include <string>

namespace wafer::cli {

/// One per process.
///
/// Thread safety: none; use from the main thread.
class line_editor {
public:
    /// `history_file`: where the history is read from and appended to (empty: none kept).
    explicit line_editor(std::filesystem::path history_file);
    ~line_editor();
    line_editor(const line_editor&) = delete;
    line_editor& operator=(const line_editor&) = delete;

    /// Shows `prompt` and reads one line (editing keys and the history work). nullopt at the end
    /// of input (Ctrl-D on an empty line). A non-empty line goes into the history.
    std::optional<std::string> read(const std::string& prompt);

private:
    std::filesystem::path history_file_;
};

} // namespace wafer::cli
