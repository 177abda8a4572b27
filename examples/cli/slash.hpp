// The slash commands of the interactive session (`wafer` / `wafer chat`): what a line that starts
// with "/" asks for, parsed without any I/O so that it can be tested on its own.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace wafer::cli {

enum class slash_kind {
    help,    ///< /help: the commands
    model,   ///< /model [ID]: show or switch the model
    critic,  ///< /critic [NAME|off]: show, toggle one critic, or none
    compact, ///< /compact: compact the conversation now
    approve, ///< /approve [on|off]: show or set whether gated tools run without asking
    diff,    ///< /diff: what the agent changed in this session
    undo,    ///< /undo: revert the agent's last edit
    usage,   ///< /usage: tokens and context of the session
    exit,    ///< /exit (or /quit): end the session
};

/// A parsed slash command: its kind and its argument (trimmed; empty when none).
struct slash_command {
    slash_kind kind = slash_kind::help;
    std::string argument;
};

/// What parse_slash made of a line.
struct slash_parse {
    /// The line is not a slash command (it is a message for the model): it does not start with
    /// "/", or starts with "//" (a message that starts with a slash, the first one dropped).
    bool is_command = false;
    std::optional<slash_command> command;
    /// Set when is_command and the line is not a valid command: one line saying why.
    std::string error;
    /// The message for the model when !is_command ("//x" gives "/x").
    std::string message;
};

/// Parses one input line of the session. Leading and trailing spaces are ignored. Commands may
/// be abbreviated to any unique prefix ("/he" is /help, "/u" is ambiguous: /undo or /usage).
/// /model, /critic and /approve take an optional argument (/approve only "on" or "off"); the
/// others take none.
slash_parse parse_slash(std::string_view line);

/// The /help text: each command and what it does, one per line.
std::string slash_help();

/// The figures of a turn (or of the whole session), from the run's events.
struct turn_figures {
    std::int64_t prompt_tokens = 0;
    std::int64_t completion_tokens = 0;
    std::int64_t cached_tokens = 0;
    std::int64_t reasoning_tokens = 0;
    /// Seconds the model spent generating (the server's completion time, else the wall time of
    /// the model calls).
    double generation_s = 0;
    std::size_t model_calls = 0;
    /// The last request's estimated prompt tokens and the model's window (0: unknown).
    std::int64_t context_tokens = 0;
    std::int64_t context_window = 0;

    turn_figures& operator+=(const turn_figures& o) noexcept;
};

/// The status line after a turn: "model M · context 1.2k/131k (1%) · 3.4k in / 789 out ·
/// 812 tokens/s" (the context part only when known, the speed only when measured).
std::string status_line(std::string_view model, const turn_figures& f);

/// A token count for a person: 950, 1.2k, 12k, 1.3M.
std::string short_count(std::int64_t n);

} // namespace wafer::cli
