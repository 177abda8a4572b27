// The offline coding session: a scripted, GLM-like coding agent that fixes the bug of wafer's
// sample repository (examples/sample_repo) with the built-in tools. It is what `wafer run` and
// `make demo` talk to when no API key or base URL is given, and what `wafer-fake --session`
// serves.
#pragma once

#include <wafer/api/chat_request.hpp>
#include <wafer/testing/fake_server.hpp>

#include <functional>

namespace wafer::testing {

/// The reply of the offline coding session to `req`, delivered as `how` says.
///
/// The reply is computed from the request alone (the conversation so far), never from a counter,
/// so any number of sessions may run against one server at once.
///
/// - Critic requests (`response_format` json_schema whose schema has a `decision` enum containing
///   "approve") get an approve verdict with one reason that fits the reviewed step.
/// - Coding requests: the request offers `read_file`, `edit_file` and `run_command` and the last
///   user message asks to fix something (mentions "fix", "bug", "fail" or "test"). The session
///   follows the conversation, each turn with reasoning:
///   1. no tool result yet: `list_dir {"path":"."}`, `read_file {"path":"stats.sh"}` and
///      `read_file {"path":"tests/run_tests.sh"}` in one turn (parallel calls);
///   2. after those reads: if stats.sh still has the bug (`BEGIN { min = 0; max = 0 }`), an
///      `edit_file` that replaces that line with `NR == 1 { min = $1; max = $1 }`; if it is fixed
///      already, straight to 3; if stats.sh is not there, a final answer saying the offline
///      session only knows the sample repository;
///   3. after the edit: `run_command {"command":"sh tests/run_tests.sh"}`;
///   4. after the tests: a final answer summarising the cause, the fix and the test summary line
///      ("6 passed, 0 failed"), or saying plainly what went wrong when the tests did not pass or
///      a step was refused.
/// - Anything else: offline_reply(req).
///
/// Reasoning is left out when the request turns it off (`reasoning_effort: "none"`).
reply offline_session_reply(const api::chat_request& req, const delivery& how = {});

/// A responder for fake_server::set_responder that answers with offline_session_reply(req, how).
std::function<reply(const api::chat_request&)> offline_session(delivery how = {});

} // namespace wafer::testing
