// The prompts library: templates from prompts/*.md, embedded at build time, loadable by name,
// overridable from a directory, with {{variable}} substitution.
#pragma once

#include <filesystem>
#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace wafer {

/// A template could not be found or rendered (unknown name, missing variable, unclosed `{{`).
/// what() names the template and the problem.
class prompt_error : public std::invalid_argument {
public:
    using std::invalid_argument::invalid_argument;
};

/// Variables for rendering: name to value.
using prompt_vars = std::map<std::string, std::string, std::less<>>;

/// Replaces every `{{name}}` (spaces inside the braces allowed: `{{ name }}`) with its value.
/// Values are inserted as they are (not scanned again).
///
/// Errors: throws prompt_error naming the variable if `vars` lacks one that the template uses,
/// or if a `{{` is not closed. `template_name` only labels the message.
std::string render_prompt(
    std::string_view text, const prompt_vars& vars, std::string_view template_name = "prompt"
);

/// The variable names a template uses, in order of first use.
std::vector<std::string> prompt_variables(std::string_view text);

/// Templates by name. The built-in set comes from prompts/*.md of the wafer sources (a file
/// `security.md` is the template "security"): "coding-agent", "planner", "code-review", "qa",
/// "security", "performance". A library made with an override directory looks there first, so a
/// deployment can change a prompt without rebuilding: `<dir>/<name>.md` replaces the built-in
/// template of that name, and new names may be added.
///
/// Thread safety: const member functions are safe to call concurrently.
class prompt_library {
public:
    /// The built-in templates only.
    prompt_library() = default;
    /// Built-in templates, overridden by `<override_dir>/<name>.md` files (read on each lookup).
    explicit prompt_library(std::filesystem::path override_dir);

    /// The template text named `name`.
    ///
    /// Errors: throws prompt_error listing the available names if there is none; an override
    /// file that exists but cannot be read throws prompt_error too.
    std::string text(std::string_view name) const;

    /// text(name) rendered with `vars`. Errors: as text() and render_prompt().
    std::string render(std::string_view name, const prompt_vars& vars) const;

    /// Names of every template available (built-in and override), sorted.
    std::vector<std::string> names() const;

    /// The process-wide library of built-in templates.
    static const prompt_library& builtin();

private:
    std::optional<std::filesystem::path> override_dir_;
};

} // namespace wafer
