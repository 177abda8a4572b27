// Options of an agent called as a tool by another agent (agent::as_tool).
#pragma once

#include <wafer/run_result.hpp>
#include <wafer/tools/tool.hpp>

#include <nlohmann/json.hpp>

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>

namespace wafer {

/// What the parent model reads back from a child run that finished.
enum class agent_tool_output {
    /// The child's final answer text.
    final_text,
    /// The child's final_json, serialised (its request must ask for json_object / json_schema
    /// output); a child without valid JSON output is an error result.
    structured,
};

/// How agent::as_tool exposes an agent.
struct agent_tool_options {
    /// JSON Schema of the tool's arguments. Null: {"input": string} (required).
    nlohmann::json parameters;
    /// Builds the child's input from the validated arguments. Unset: the "input" member when it
    /// is a string, else the arguments as JSON text. May throw tools::argument_error.
    std::function<std::string(const nlohmann::json& args)> input;
    agent_tool_output output = agent_tool_output::final_text;
    /// Builds the tool result from the child's result instead (success and failure alike).
    std::function<tools::tool_output(const run_result& child)> result;
    /// Limits of the child for this tool, replacing the agent's own when set.
    std::optional<std::size_t> max_turns;
    std::optional<std::chrono::milliseconds> run_timeout;
    std::optional<std::int64_t> token_budget;
    /// The tool's options (timeout, read_only, needs_approval, ...).
    tools::tool_options tool;
    /// Whether the child's events reach the parent's observers (nested by event::parent_run_id).
    bool forward_events = true;
};

} // namespace wafer
