// Terminal facts and the y/N approval prompt of the wafer CLI.
#pragma once

#include <optional>
#include <string>

namespace wafer::cli {

/// True if standard output (resp. input) is a terminal.
bool stdout_is_tty() noexcept;
bool stdin_is_tty() noexcept;

/// Whether approval prompts can be answered: standard input is a terminal.
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
