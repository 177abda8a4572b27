// The command-line habits the wafer CLI follows, as pure rules (unit-tested in
// tests/unit/test_cli_conventions.cpp): where the prompt comes from (words, standard input, "-"),
// when output is coloured (--color, NO_COLOR, TERM=dumb), and what is refused before any request.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace wafer::cli {

/// What a command that takes a prompt was given.
struct prompt_input {
    /// The words after the command (`wafer ask hello world`), "-" among them possibly.
    std::vector<std::string> words;
    /// Standard input is a terminal (it is then read only for "-").
    bool stdin_is_terminal = true;
};

/// True if standard input is to be read: a word is "-", or standard input is not a terminal
/// (a pipe, a file, /dev/null).
bool reads_stdin(const prompt_input& in);

/// The prompt: the words joined by spaces ("-" left out), then, when standard input was read and
/// holds something other than white space, a blank line and that text without its final line
/// ends (the piped text is context for the words). Only standard input, when there are no words.
///
/// Errors: throws cli_error (exit status 2) when the prompt is empty or only white space,
/// naming `what` ("prompt", "task") and how to give one.
std::string compose_prompt(
    const prompt_input& in, const std::optional<std::string>& stdin_text, std::string_view what
);

/// The most standard input may hold (a larger one is refused, not cut).
inline constexpr std::size_t max_stdin_bytes = 8U * 1024U * 1024U;

/// --color: "auto" (a terminal, unless NO_COLOR is set and not empty or TERM is "dumb"),
/// "always", "never". `no_color` and `term` are the variables' values (null: unset).
bool color_enabled(std::string_view mode, bool is_terminal, const char* no_color, const char* term);

/// A "thinking…" line may be drawn and erased on standard error: it is a terminal that is not
/// TERM=dumb.
bool can_draw_status(bool stderr_is_terminal, const char* term);

/// Refuses an empty (or white-space) model name before any request (cli_error, exit status 2).
void check_model_name(const std::string& model);

} // namespace wafer::cli
