// The environment a command gets: an allow-list of wafer's variables, never its credentials.
#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace wafer::tools {

/// Which of wafer's environment variables a command sees.
///
/// By default only `pass` reaches the command, so tokens and keys (`AWS_*`, `GITHUB_TOKEN`,
/// `*_API_KEY`, ...) never do. PWD is set to the command's directory and, in the sandbox, TMPDIR
/// to its private temp directory.
struct command_environment {
    /// Names passed when set in wafer's environment; a trailing `*` matches a prefix (`LC_*`).
    std::vector<std::string> pass{
        "PATH",
        "HOME",
        "USER",
        "LOGNAME",
        "SHELL",
        "LANG",
        "LANGUAGE",
        "LC_*",
        "TERM",
        "COLORTERM",
        "NO_COLOR",
        "TZ",
        "TMPDIR"};
    /// More names to pass (same syntax as `pass`), for a user's `--pass-env NAME`.
    std::vector<std::string> pass_extra;
    /// Variables set for every command (after `pass`; they replace a passed value).
    std::vector<std::pair<std::string, std::string>> set;
    /// Pass wafer's whole environment (minus `unset`) instead of the allow-list.
    bool inherit_all = false;
    /// Never passed, whatever `pass`, `pass_extra` or `inherit_all` say (not applied to `set`).
    std::vector<std::string> unset{"CEREBRAS_API_KEY", "OPENAI_API_KEY"};
};

/// True if `name` matches `pattern` (exact, or a prefix when the pattern ends in `*`).
bool env_name_matches(std::string_view pattern, std::string_view name) noexcept;

/// The "NAME=value" entries of a command's environment: `parent` (a NULL-terminated array like
/// `environ`) filtered by `env`, then `env.set`, then `overrides` (PWD, TMPDIR). Later entries
/// replace earlier ones of the same name; entries without '=' are dropped.
std::vector<std::string> build_command_environment(
    const command_environment& env,
    const char* const* parent,
    const std::vector<std::pair<std::string, std::string>>& overrides = {}
);

} // namespace wafer::tools
