// Terminal facts and the y/N approval prompt of the wafer CLI.
#pragma once

#include <cstddef>
#include <optional>
#include <string>

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

} // namespace wafer::cli
