// Terminal facts and the y/N approval prompt of the wafer CLI.
#pragma once

#include <cstddef>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <termios.h>

namespace wafer::cli {

/// True if standard output (resp. input) is a terminal.
bool stdout_is_tty() noexcept;
bool stdin_is_tty() noexcept;
bool stderr_is_tty() noexcept;

/// Whether standard output gets colour for --color `mode` (NO_COLOR, TERM; conventions.hpp).
bool output_color(const std::string& mode);
/// Whether a "thinking…" line may be drawn on standard error (a terminal, not TERM=dumb).
bool thinking_line_allowed();

/// All of standard input (for a prompt read from a pipe or "-"). Errors: cli_error (exit status
/// 2) when it holds more than `max_bytes` or cannot be read.
std::string read_all_stdin(std::size_t max_bytes);

/// Whether approval prompts can be answered: standard input is a terminal, or there is a
/// controlling terminal (/dev/tty) while standard input carries the prompt.
bool can_prompt() noexcept;

/// Asks `question` followed by " [y/N] " on the controlling terminal (/dev/tty, else standard
/// error and standard input) and reads one line. Returns true for "y"/"yes" (any case), false for
/// anything else, nullopt when no terminal can be read (end of input, no /dev/tty and stdin not a
/// terminal).
///
/// `cancel_fd` (optional, -1: none): a descriptor that becomes readable to give up waiting for
/// the answer (the run the question was for has stopped); the question then ends as nullopt.
///
/// Blocking. Thread safety: prompts from several threads are serialised (one question at a time).
std::optional<bool> ask_yes_no(const std::string& question, int cancel_fd = -1);

/// The terminal held for a sequence of questions (an MCP server's form): while it lives no other
/// question (ask_yes_no, another terminal_prompt) is asked. It asks on the controlling terminal
/// (/dev/tty, else standard error and standard input when standard input is a terminal), where
/// Ctrl-C ends the answer as a cancel instead of stopping the run (the terminal's interrupt
/// character is read as a line end while it lives; restored after).
///
/// Blocking, like ask_yes_no.
class terminal_prompt {
public:
    /// `cancel_fd`: as for ask_yes_no.
    explicit terminal_prompt(int cancel_fd = -1);
    ~terminal_prompt();
    terminal_prompt(const terminal_prompt&) = delete;
    terminal_prompt& operator=(const terminal_prompt&) = delete;

    /// False when there is no terminal to ask.
    bool ready() const noexcept { return in_ >= 0; }
    /// Shows `text` as it is (the caller escaped what came from elsewhere).
    void say(std::string_view text);
    /// Shows `question` and reads one line (without its end). nullopt: cancelled (Ctrl-C, end of
    /// input, `cancel_fd`, no terminal).
    std::optional<std::string> ask(std::string_view question);

private:
    std::unique_lock<std::mutex> lock_;
    int in_ = -1;
    int out_ = -1;
    bool own_fd_ = false;
    int cancel_fd_ = -1;
    bool restore_ = false;
    ::termios saved_{};
};

} // namespace wafer::cli
