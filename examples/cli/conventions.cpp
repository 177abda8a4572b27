#include "conventions.hpp"

#include <algorithm>
#include <string_view>

#include "failure.hpp"

namespace wafer::cli {

namespace {

bool blank(std::string_view s) {
    return std::all_of(s.begin(), s.end(), [](char c) {
        return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
    });
}

} // namespace

bool reads_stdin(const prompt_input& in) {
    return !in.stdin_is_terminal ||
           std::find(in.words.begin(), in.words.end(), "-") != in.words.end();
}

std::string compose_prompt(
    const prompt_input& in, const std::optional<std::string>& stdin_text, std::string_view what
) {
    std::string prompt;
    for (const auto& w : in.words) {
        if (w == "-") {
            continue;
        }
        prompt += prompt.empty() ? "" : " ";
        prompt += w;
    }
    if (stdin_text && !blank(*stdin_text)) {
        // The piped text is the context of the words, after them and a blank line (without the
        // newline `echo` ends it with).
        std::string_view text = *stdin_text;
        while (text.back() == '\n' || text.back() == '\r') {
            text.remove_suffix(1);
        }
        prompt += prompt.empty() ? "" : "\n\n";
        prompt += text;
    }
    if (!blank(prompt)) {
        return prompt;
    }
    const std::string w(what);
    if (in.words.empty() && in.stdin_is_terminal) {
        throw cli_error(
            "no " + w +
                ": give it as words (wafer ask WORDS...) or on standard input (echo ... | "
                "wafer ask, or wafer ask - to type it, ended by Ctrl-D)",
            exit_usage
        );
    }
    throw cli_error("the " + w + " is empty", exit_usage);
}

bool color_enabled(
    std::string_view mode, bool is_terminal, const char* no_color, const char* term
) {
    if (mode == "always") {
        return true;
    }
    if (mode == "never") {
        return false;
    }
    // https://no-color.org: set and not empty turns colour off, whatever its value.
    if (no_color != nullptr && *no_color != '\0') {
        return false;
    }
    if (term != nullptr && std::string_view(term) == "dumb") {
        return false;
    }
    return is_terminal;
}

bool can_draw_status(bool stderr_is_terminal, const char* term) {
    return stderr_is_terminal && !(term != nullptr && std::string_view(term) == "dumb");
}

void check_model_name(const std::string& model) {
    if (blank(model)) {
        throw cli_error("the model name is empty: give one with --model (or -m)", exit_usage);
    }
}

} // namespace wafer::cli
