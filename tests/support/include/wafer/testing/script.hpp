// Scripted replies as JSON: the format of `wafer-fake --script FILE.json` (see
// tests/support/README.md), usable from users' tests too.
#pragma once

#include <wafer/testing/fake_server.hpp>

#include <nlohmann/json_fwd.hpp>

#include <string>
#include <vector>

namespace wafer::testing {

/// Reads one reply: {"reasoning","content","tool_calls":[{"id","name","arguments"}],
/// "finish_reason","model","usage", "error":{…}, "raw":{…}, "delivery":{…}}.
/// A reply with "error" is an HTTP error, with "raw" a verbatim reply, else a turn.
///
/// Errors: throws std::invalid_argument naming the offending key for unknown keys or wrong
/// types, so typos in scripts fail loudly.
reply reply_from_json(const nlohmann::json& j);

/// Reads a JSON array of replies. Errors: std::invalid_argument (with the index) as above.
std::vector<reply> script_from_json(const nlohmann::json& j);

/// Reads a script file. Errors: std::runtime_error if it cannot be read or is not JSON,
/// std::invalid_argument for a bad reply.
std::vector<reply> load_script(const std::string& path);

} // namespace wafer::testing
