#include "slash.hpp"

#include <algorithm>
#include <array>
#include <cstdio>

namespace wafer::cli {

namespace {

struct command_spec {
    std::string_view name;
    slash_kind kind;
    /// 0: no argument, 1: optional argument.
    int arguments;
    std::string_view usage;
    std::string_view help;
};

constexpr std::array<command_spec, 10> commands{{
    {"help", slash_kind::help, 0, "/help", "these commands"},
    {"model", slash_kind::model, 1, "/model [ID]", "show the model, or switch to model ID"},
    {"critic",
     slash_kind::critic,
     1,
     "/critic [NAME|off]",
     "show the critics, turn critic NAME (security, code-review, qa, performance) on or off, or "
     "turn all off"},
    {"compact", slash_kind::compact, 0, "/compact", "compact the conversation now"},
    {"approve",
     slash_kind::approve,
     1,
     "/approve [on|off]",
     "on: file edits and commands run without asking (as --yes); off: ask each time"},
    {"diff", slash_kind::diff, 0, "/diff", "what the agent changed in this session (a diff)"},
    {"undo", slash_kind::undo, 0, "/undo", "revert the agent's last file edit"},
    {"usage", slash_kind::usage, 0, "/usage", "tokens, speed and context of the session"},
    {"exit", slash_kind::exit, 0, "/exit", "end the session (also /quit, Ctrl-D)"},
    {"quit", slash_kind::exit, 0, "", ""},
}};

std::string_view trim(std::string_view s) {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) {
        s.remove_prefix(1);
    }
    while (!s.empty() &&
           (s.back() == ' ' || s.back() == '\t' || s.back() == '\r' || s.back() == '\n')) {
        s.remove_suffix(1);
    }
    return s;
}

} // namespace

slash_parse parse_slash(std::string_view line) {
    slash_parse out;
    const std::string_view text = trim(line);
    if (!text.starts_with('/') || text.starts_with("//")) {
        out.message = std::string(text.starts_with("//") ? text.substr(1) : text);
        return out;
    }
    out.is_command = true;
    std::string_view rest = text.substr(1);
    const std::size_t space = rest.find_first_of(" \t");
    const std::string_view name = rest.substr(0, space);
    const std::string_view argument =
        space == std::string_view::npos ? std::string_view() : trim(rest.substr(space));
    if (name.empty()) {
        out.error = "an empty command; /help lists them";
        return out;
    }
    // An exact name, else the one command a prefix names (/quit and /exit are one command).
    const command_spec* found = nullptr;
    std::string candidates;
    bool ambiguous = false;
    for (const auto& c : commands) {
        if (c.name == name) {
            found = &c;
            ambiguous = false;
            break;
        }
        if (!c.name.starts_with(name)) {
            continue;
        }
        candidates += (candidates.empty() ? "/" : " or /") + std::string(c.name);
        if (found != nullptr && found->kind != c.kind) {
            ambiguous = true;
        }
        if (found == nullptr) {
            found = &c;
        }
    }
    if (ambiguous) {
        out.error = "/" + std::string(name) + " is ambiguous: " + candidates;
        return out;
    }
    if (found == nullptr) {
        out.error = "unknown command /" + std::string(name) + "; /help lists them";
        return out;
    }
    if (found->arguments == 0 && !argument.empty()) {
        out.error = "/" + std::string(found->name) + " takes no argument";
        return out;
    }
    if (found->kind == slash_kind::approve && !argument.empty() && argument != "on" &&
        argument != "off") {
        out.error = "/approve takes on or off";
        return out;
    }
    out.command = slash_command{found->kind, std::string(argument)};
    return out;
}

std::string slash_help() {
    std::string out;
    for (const auto& c : commands) {
        if (c.usage.empty()) {
            continue;
        }
        std::string usage(c.usage);
        usage.resize(std::max<std::size_t>(usage.size(), 20), ' ');
        out += "  " + usage + " " + std::string(c.help) + "\n";
    }
    out += "  //text               a message that starts with a slash\n"
           "Ctrl-C cancels the current turn (twice quits); Ctrl-D or /exit ends the session.\n";
    return out;
}

turn_figures& turn_figures::operator+=(const turn_figures& o) noexcept {
    prompt_tokens += o.prompt_tokens;
    completion_tokens += o.completion_tokens;
    cached_tokens += o.cached_tokens;
    reasoning_tokens += o.reasoning_tokens;
    generation_s += o.generation_s;
    model_calls += o.model_calls;
    if (o.model_calls > 0) {
        context_tokens = o.context_tokens;
        context_window = o.context_window;
    }
    return *this;
}

std::string short_count(std::int64_t n) {
    char buf[32];
    if (n < 1000) {
        std::snprintf(buf, sizeof buf, "%lld", static_cast<long long>(n));
    } else if (n < 10'000) {
        std::snprintf(buf, sizeof buf, "%.1fk", static_cast<double>(n) / 1e3);
    } else if (n < 1'000'000) {
        std::snprintf(buf, sizeof buf, "%lldk", static_cast<long long>((n + 500) / 1000));
    } else {
        std::snprintf(buf, sizeof buf, "%.1fM", static_cast<double>(n) / 1e6);
    }
    return buf;
}

std::string status_line(std::string_view model, const turn_figures& f) {
    std::string out = std::string(model);
    if (f.context_window > 0) {
        const double pct =
            100.0 * static_cast<double>(f.context_tokens) / static_cast<double>(f.context_window);
        char buf[16];
        std::snprintf(buf, sizeof buf, "%.0f", pct);
        out += " · context " + short_count(f.context_tokens) + "/" + short_count(f.context_window) +
               " (" + buf + "%)";
    } else if (f.context_tokens > 0) {
        out += " · context " + short_count(f.context_tokens);
    }
    out +=
        " · " + short_count(f.prompt_tokens) + " in / " + short_count(f.completion_tokens) + " out";
    if (f.generation_s > 0 && f.completion_tokens > 0) {
        char buf[32];
        std::snprintf(
            buf, sizeof buf, "%.0f", static_cast<double>(f.completion_tokens) / f.generation_s
        );
        out += std::string(" · ") + buf + " tokens/s";
    }
    return out;
}

} // namespace wafer::cli
