#include <wafer/testing/offline_model.hpp>
#include <wafer/testing/offline_session.hpp>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <string>
#include <string_view>
#include <vector>

namespace wafer::testing {

namespace {

using nlohmann::json;

// What the session knows about examples/sample_repo.
constexpr std::string_view source_file = "stats.sh";
constexpr std::string_view test_file = "tests/run_tests.sh";
constexpr std::string_view test_command = "sh tests/run_tests.sh";
constexpr std::string_view buggy_line = "BEGIN { min = 0; max = 0 }";
constexpr std::string_view fixed_line = "NR == 1 { min = $1; max = $1 }";

std::string lower(std::string_view s) {
    std::string out(s);
    std::transform(out.begin(), out.end(), out.begin(), [](char c) {
        return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
    });
    return out;
}

bool contains(std::string_view haystack, std::string_view needle) {
    return haystack.find(needle) != std::string_view::npos;
}

const api::message* last_of_role(const api::chat_request& req, api::role r) {
    for (auto it = req.messages.rbegin(); it != req.messages.rend(); ++it) {
        if (it->role == r) {
            return &*it;
        }
    }
    return nullptr;
}

bool offers(const api::chat_request& req, std::string_view name) {
    return std::any_of(req.tools.begin(), req.tools.end(), [&](const api::function_tool& t) {
        return t.name == name;
    });
}

// ---- critics -------------------------------------------------------------------------------

bool is_critic_request(const api::chat_request& req) {
    if (!req.response_format ||
        req.response_format->type != api::response_format::kind::json_schema ||
        !req.response_format->schema) {
        return false;
    }
    const json& schema = *req.response_format->schema;
    const auto props = schema.find("properties");
    if (props == schema.end() || !props->is_object()) {
        return false;
    }
    const auto decision = props->find("decision");
    if (decision == props->end() || !decision->is_object()) {
        return false;
    }
    const auto values = decision->find("enum");
    return values != decision->end() && values->is_array() &&
           std::find(values->begin(), values->end(), json("approve")) != values->end();
}

/// A reason that fits what the critic was shown (its last user message).
std::string approve_reason(const api::chat_request& req) {
    const api::message* shown = last_of_role(req, api::role::user);
    const std::string text = shown ? lower(shown->text()) : std::string();
    if (contains(text, "edit_file")) {
        return "The edit stays inside the workspace and only changes how stats.sh initialises "
               "min and max; nothing is executed or sent anywhere.";
    }
    if (contains(text, "run_command")) {
        return "The command runs the project's own test script inside the workspace; it does "
               "not touch the network or files outside the workspace.";
    }
    if (contains(text, "write_file")) {
        return "The write stays inside the workspace and contains no secrets or executable "
               "payloads.";
    }
    return "The step does what the task asks and I see no problem with it.";
}

reply critic_reply(const api::chat_request& req, const delivery& how) {
    // offline_reply already fills the schema (first enum value, empty arrays, nulls); make the
    // decision explicit and give a reason, as a real critic would.
    reply r = offline_reply(req);
    json verdict = json::parse(r.turn.content, nullptr, false);
    if (!verdict.is_object()) {
        verdict = json::object();
    }
    verdict["decision"] = "approve";
    verdict["reasons"] = json::array({approve_reason(req)});
    r.turn.content = verdict.dump();
    if (!r.turn.reasoning.empty()) {
        r.turn.reasoning = "I am reviewing one step of a coding agent. It is in scope for the task "
                           "and stays inside the workspace, so I approve it.";
    }
    r.how = how;
    return r;
}

// ---- the coding session --------------------------------------------------------------------

bool is_fix_task(const api::chat_request& req) {
    if (!offers(req, "read_file") || !offers(req, "edit_file") || !offers(req, "run_command")) {
        return false;
    }
    const api::message* user = last_of_role(req, api::role::user);
    if (user == nullptr) {
        return false;
    }
    const std::string text = lower(user->text());
    return contains(text, "fix") || contains(text, "bug") || contains(text, "fail") ||
           contains(text, "test");
}

/// One call of the latest batch and what came back.
struct finished_call {
    std::string name;
    json arguments;
    std::string result;
};

/// The calls of the last assistant message that asked for tools, with their results, provided
/// the conversation ends with those results (otherwise the session starts over: a new task).
std::vector<finished_call> last_batch(const api::chat_request& req) {
    std::vector<finished_call> out;
    if (req.messages.empty() || req.messages.back().role != api::role::tool) {
        return out;
    }
    auto it = req.messages.rbegin();
    while (it != req.messages.rend() && it->role == api::role::tool) {
        ++it;
    }
    if (it == req.messages.rend() || it->role != api::role::assistant) {
        return out;
    }
    for (const auto& call : it->tool_calls) {
        finished_call c{call.name, json::parse(call.arguments, nullptr, false), {}};
        for (auto r = req.messages.rbegin(); r != it; ++r) {
            if (r->tool_call_id == call.id) {
                c.result = r->text();
                break;
            }
        }
        out.push_back(std::move(c));
    }
    return out;
}

const finished_call* find_call(const std::vector<finished_call>& batch, std::string_view name) {
    for (const auto& c : batch) {
        if (c.name == name) {
            return &c;
        }
    }
    return nullptr;
}

api::tool_call call(std::string name, json args) {
    return {.id = {}, .name = std::move(name), .arguments = args.dump()};
}

/// The last line of `text` that mentions "passed" (the test script's summary), if any.
std::string summary_line(std::string_view text) {
    std::string found;
    std::size_t start = 0;
    while (start < text.size()) {
        std::size_t end = text.find('\n', start);
        if (end == std::string_view::npos) {
            end = text.size();
        }
        const std::string_view line = text.substr(start, end - start);
        if (contains(line, " passed, ")) {
            found = std::string(line);
        }
        start = end + 1;
    }
    return found;
}

/// First `limit` bytes of `s` (whole lines where possible), for quoting a tool result.
std::string excerpt(std::string_view s, std::size_t limit = 300) {
    if (s.size() <= limit) {
        return std::string(s);
    }
    std::size_t end = s.rfind('\n', limit);
    if (end == std::string_view::npos || end == 0) {
        end = limit;
        while (end > 0 && (static_cast<unsigned char>(s[end]) & 0xC0U) == 0x80U) {
            --end;
        }
    }
    return std::string(s.substr(0, end)) + "\n...";
}

scripted_turn explore() {
    scripted_turn t;
    t.reasoning =
        "The user wants me to fix a failing test. I don't know this project yet, so before "
        "changing anything I should look at its layout, the main script and its tests. These "
        "reads are independent of each other, so I can do them at the same time: list the root "
        "directory, read stats.sh and read tests/run_tests.sh.";
    t.content = "Let me look at the project first.";
    t.tool_calls = {
        call("list_dir", {{"path", "."}}),
        call("read_file", {{"path", source_file}}),
        call("read_file", {{"path", test_file}}),
    };
    return t;
}

scripted_turn fix_bug() {
    scripted_turn t;
    t.reasoning =
        "stats.sh computes count, sum, mean, min and max with one awk program. The BEGIN block "
        "starts both min and max at 0. That is wrong whenever every value is positive (min "
        "stays 0) or every value is negative (max stays 0), which is exactly what the cases "
        "\"min of positive values\" and \"max of negative values\" in tests/run_tests.sh check. "
        "The fix is to start both from the first value: replace the BEGIN line with an NR == 1 "
        "rule. awk runs the rules in order, so on the first record min and max are set before "
        "the comparisons run. It is a one-line change, so edit_file fits.";
    t.content = "Found it: `min` and `max` start at 0 instead of at the first value. Fixing "
                "stats.sh.";
    t.tool_calls = {call(
        "edit_file", {{"path", source_file}, {"old_text", buggy_line}, {"new_text", fixed_line}}
    )};
    return t;
}

scripted_turn run_tests(bool edited) {
    scripted_turn t;
    t.reasoning = edited ? "The edit was applied. I should not assume it works: I will run the "
                           "test script and read its summary."
                         : "stats.sh already starts min and max from the first value, so the "
                           "bug may be fixed already. I will run the tests to see what fails.";
    t.content = "Running the tests.";
    t.tool_calls = {call("run_command", {{"command", test_command}})};
    return t;
}

/// The edit did not happen (denied, or edit_file failed): say so, and what the fix would be,
/// instead of running the tests as if it had.
scripted_turn edit_not_made(const std::string& edit_result) {
    scripted_turn t;
    const bool denied = edit_result.starts_with("denied");
    t.reasoning = std::string(denied ? "The edit was denied" : "The edit failed") +
                  ", so stats.sh is unchanged and the bug is still there. Running the tests "
                  "would only show the same failures; I will say what happened and what the "
                  "fix is.";
    t.content = std::string(denied ? "The edit was not made: it was denied" : "The edit failed") +
                ", so stats.sh is unchanged and the two tests still fail. edit_file said: " +
                excerpt(edit_result) + "\n\nThe fix is to replace `" + std::string(buggy_line) +
                "` with `" + std::string(fixed_line) + "` in stats.sh" +
                (denied ? "; approve the edit (or run with --yes) to let me make it." : ".");
    return t;
}

scripted_turn unknown_project(const std::string& read_result) {
    scripted_turn t;
    t.reasoning = "stats.sh is not in this workspace, so this is not the sample project the "
                  "offline session knows. I must not guess at edits in code I cannot see, so I "
                  "stop and say so.";
    t.content = "I could not find stats.sh in this workspace. This is wafer's offline stand-in: "
                "its scripted session only knows how to fix examples/sample_repo (the bug in "
                "stats.sh). Give wafer a real model (CEREBRAS_API_KEY, or --base-url for another "
                "server) to work on this project.\n\n"
                "read_file said: " +
                excerpt(read_result);
    return t;
}

scripted_turn summarise(const finished_call& tests) {
    scripted_turn t;
    const std::string summary = summary_line(tests.result);
    const bool passed = contains(summary, " 0 failed");
    if (passed) {
        t.reasoning = "The test script reports \"" + summary +
                      "\". The two failing cases pass now and nothing else broke. I will "
                      "summarise the cause and the change.";
        t.content =
            "Fixed. `stats.sh` started `min` and `max` at 0 in a `BEGIN` block, so the minimum "
            "of all-positive input and the maximum of all-negative input came out as 0. They "
            "now start from the first value (`NR == 1 { min = $1; max = $1 }`).\n\n"
            "Tests: " +
            summary + " (`" + std::string(test_command) + "`).";
    } else if (summary.empty()) {
        t.reasoning = "The test command did not produce the test script's summary, so the tests "
                      "did not run. I must not claim success; I will report what it returned.";
        t.content = "I could not run the tests, so the fix is not verified. `" +
                    std::string(test_command) + "` returned:\n\n" + excerpt(tests.result) +
                    "\n\nThe fix replaces `" + std::string(buggy_line) + "` with `" +
                    std::string(fixed_line) + "` in stats.sh; run `" + std::string(test_command) +
                    "` to check it.";
    } else {
        t.reasoning = "The tests still fail. I must not claim success; I will report exactly "
                      "what the command returned.";
        t.content = "The tests did not pass after my change, so the task is not done. `" +
                    std::string(test_command) + "` returned:\n\n" + excerpt(tests.result) +
                    "\n\nThe intended fix is to replace `" + std::string(buggy_line) + "` with `" +
                    std::string(fixed_line) + "` in stats.sh.";
    }
    return t;
}

scripted_turn session_turn(const api::chat_request& req) {
    const std::vector<finished_call> batch = last_batch(req);
    if (batch.empty()) {
        return explore();
    }
    if (const finished_call* tests = find_call(batch, "run_command")) {
        return summarise(*tests);
    }
    if (const finished_call* edit = find_call(batch, "edit_file")) {
        // edit_file reports "edited PATH: ..."; anything else (a denial, an error) changed
        // nothing. The test run then tells whether the edit worked.
        if (!edit->result.starts_with("edited ")) {
            return edit_not_made(edit->result);
        }
        return run_tests(true);
    }
    for (const auto& c : batch) {
        if (c.name != "read_file" || !c.arguments.is_object() ||
            c.arguments.value("path", "") != source_file) {
            continue;
        }
        if (contains(c.result, buggy_line)) {
            return fix_bug();
        }
        if (contains(c.result, fixed_line)) {
            return run_tests(false);
        }
        return unknown_project(c.result);
    }
    // Some other batch (e.g. a real user's history): look again.
    return explore();
}

} // namespace

reply offline_session_reply(const api::chat_request& req, const delivery& how) {
    if (is_critic_request(req)) {
        return critic_reply(req, how);
    }
    if (!is_fix_task(req)) {
        reply r = offline_reply(req);
        r.how = how;
        return r;
    }
    scripted_turn turn = session_turn(req);
    if (req.reasoning_effort == api::reasoning_effort::none || req.disable_reasoning == true) {
        turn.reasoning.clear();
    }
    return reply::of(std::move(turn), how);
}

std::function<reply(const api::chat_request&)> offline_session(delivery how) {
    return [how = std::move(how)](const api::chat_request& req) {
        return offline_session_reply(req, how);
    };
}

} // namespace wafer::testing
