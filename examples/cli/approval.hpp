// Approval of the tools that change the workspace (write_file, edit_file, run_command): the
// user says y/N on the terminal, or, with nobody to ask, the call is denied and the model reads
// why. Implemented by wrapping the tools' handlers, so the registry and the agent are unchanged.
#pragma once

#include <wafer/tools/registry.hpp>

#include <memory>
#include <string>
#include <vector>

namespace wafer::cli {

enum class approval_mode {
    /// Every call runs (--yes).
    allow,
    /// Each call is shown and runs only if the user answers y (stdin is a terminal).
    ask,
    /// Each call is refused with a result that tells the model why (stdin is not a terminal).
    deny,
};

/// The tools that need approval: write_file, edit_file, run_command.
const std::vector<std::string>& gated_tools();

/// A registry with every tool of `base` (same names, schemas and options), where the calls of
/// the tools named in `gated` go through `mode` first. Denied calls end as error results
/// ("denied: ...") without running; the model reads them like any tool failure.
///
/// With approval_mode::ask, prompts are asked one at a time (ask_yes_no). Blocking handlers ask
/// on their pool thread, async handlers on a separate prompt thread, so the io_context keeps
/// running while the user decides.
std::shared_ptr<tools::registry> with_approval(
    const tools::registry& base, const std::vector<std::string>& gated, approval_mode mode
);

/// The question shown for a call: the tool and the essentials of its arguments (the command,
/// the path and sizes; never a whole file).
std::string describe_call(const std::string& tool, const nlohmann::json& args);

} // namespace wafer::cli
