// Critics: sub-agents that review a run at its gates and answer with a verdict.
#pragma once

#include <wafer/api/chat_request.hpp>
#include <wafer/api/usage.hpp>
#include <wafer/gate.hpp>
#include <wafer/model.hpp>
#include <wafer/prompts.hpp>
#include <wafer/tools/registry.hpp>
#include <wafer/verdict.hpp>

#include <chrono>
#include <cstddef>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace wafer {

/// A critic: a sub-agent with its own model settings, prompt and (read-only) tools, whose reply
/// is a verdict constrained by verdict_schema() (`response_format: json_schema`, strict). It runs
/// on the same loop, events machinery and limits as any agent.
///
/// At `before_tools`, a critic reviews each proposed call it covers (one review per call, all
/// concurrently); at `after_step` and `final_answer` it reviews the step as a whole.
struct critic {
    /// Names the critic in events and feedback (e.g. "security").
    std::string name;
    /// The critic's model; often a faster one, with reasoning off (set request.reasoning_effort).
    std::shared_ptr<wafer::model> model;
    /// The critic's system prompt (e.g. prompt_library::builtin().render("security", vars)).
    std::string instructions;
    /// Tools the critic may use to look around. Every tool must be read_only (checked when the
    /// agent is built).
    std::shared_ptr<const tools::registry> tools;
    /// Where the critic reviews.
    gate_set gates = gate::final_answer;
    /// At before_tools: the tool names this critic covers. Empty: every tool that is not
    /// read_only.
    std::vector<std::string> tool_names;
    /// Deadline of one review, model and tools included.
    std::chrono::milliseconds timeout{60'000};
    /// A review that fails (model error, deadline, no valid verdict) counts as deny; with
    /// `fail_closed = false` it counts as approve instead.
    bool fail_closed = true;
    /// Turns of the critic's own loop (tool use included).
    std::size_t max_turns = 4;
    /// Request parameters of the critic's model calls (temperature, reasoning_effort, ...).
    /// response_format is set by wafer.
    api::chat_request request;

    /// Whether this critic reviews a call to `tool_name` at before_tools (`read_only`: the
    /// tool's flag; unknown tools are not covered: they cannot run).
    bool covers(std::string_view tool_name, bool read_only) const;
};

/// What happens when critics keep asking for revisions.
enum class revisions_exhausted_policy {
    /// Stop the run with stop_reason::revisions_exhausted (default).
    stop,
    /// Accept the step as it is and go on.
    accept,
};

/// How an agent's critics combine and how far they may push back.
struct critic_policy {
    gate_policy combine = gate_policy::all;
    /// Revisions asked at after_step and final_answer, per run. A revise at before_tools does
    /// not count: that call simply does not run, and max_turns bounds how often the model can
    /// propose it again.
    std::size_t max_revisions = 3;
    revisions_exhausted_policy on_exhausted = revisions_exhausted_policy::stop;
};

/// One review as recorded in run_result::reviews (and sent as an events::critic_verdict).
struct critic_review {
    std::string critic;
    wafer::gate gate = gate::final_answer;
    std::size_t turn = 0;
    /// The call reviewed, at before_tools.
    std::optional<std::string> call_id;
    /// The verdict; for a failed review, the decision it counts as.
    wafer::verdict verdict;
    /// Why the review failed, if it did.
    std::optional<std::string> error;
    std::chrono::microseconds latency{0};
    /// The critic's token usage (kept apart from the run's usage).
    api::usage usage;
};

/// Options of the built-in critics.
struct builtin_critic_options {
    /// Variables for the prompt template ("language" defaults to English).
    prompt_vars vars;
    /// Where to look up the template (the built-in set unless given).
    const prompt_library* prompts = nullptr;
    std::chrono::milliseconds timeout{60'000};
};

/// Names of the built-in critics: "security", "code-review", "qa", "performance".
std::vector<std::string_view> builtin_critic_names();

/// A built-in critic with its prompt from the prompts library, using `model`:
/// - "security": before_tools, covering write_file, edit_file and run_command;
/// - "code-review", "qa", "performance": after_step and final_answer.
/// Request parameters are the model's defaults; for quicker gates set
/// `critic::request.reasoning_effort` (api::reasoning_effort::none turns GLM reasoning off).
///
/// Errors: throws std::invalid_argument naming the known critics for an unknown name;
/// prompt_error if its template cannot be rendered.
critic builtin_critic(
    std::string_view name, std::shared_ptr<wafer::model> model, builtin_critic_options options = {}
);

} // namespace wafer
