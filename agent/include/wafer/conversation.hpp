// The conversation state of a run: messages with their reasoning kept verbatim, history repair
// and the request messages built from it by replay policy. Sans-io.
#pragma once

#include <wafer/api/message.hpp>
#include <wafer/replay_policy.hpp>

#include <nlohmann/json.hpp>

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace wafer {

/// What wafer knows about a stored message beyond its wire form.
struct message_meta {
    /// The user turn the message belongs to: 0 before the first user message, then the count of
    /// user messages up to and including this one.
    std::size_t turn = 0;
    /// Tool messages: the result reports a failure (the text says what failed).
    bool is_error = false;
    /// Added by wafer itself (e.g. a repair's "not run" result), not by the model or a tool.
    bool synthetic = false;

    friend bool operator==(const message_meta&, const message_meta&) = default;
};

/// One fix made by repair_history.
struct history_repair {
    enum class kind {
        /// A tool call had no result; a synthetic error result was inserted after it.
        missing_result,
        /// A tool message answered no earlier tool call (or had no tool_call_id); dropped.
        orphan_result,
        /// A second tool message answered an already answered call; dropped.
        duplicate_result,
        /// A tool result was not right after its call (or out of call order); moved there.
        moved_result,
        /// Not made any more (calls with reused ids are renamed); kept for compatibility.
        duplicate_call,
        /// A tool call had no id or reused an earlier call's id (some servers send "call_0"
        /// every turn); it got the fresh id `call_id` (`previous_id` was its own), and so did
        /// the result that answered it.
        renamed_call,
    };
    kind what = kind::missing_result;
    /// The tool call id concerned.
    std::string call_id;
    /// Index of the message concerned in the history before repair (for missing_result and
    /// duplicate_call and renamed_call: the assistant message).
    std::size_t index = 0;
    /// renamed_call: the id the call had before (possibly empty).
    std::string previous_id;

    /// One line for logs: "missing_result call_1 at #3".
    std::string to_string() const;
    friend bool operator==(const history_repair&, const history_repair&) = default;
};

std::string_view to_string(history_repair::kind k) noexcept;

/// The text of the synthetic result inserted for a tool call that never ran.
inline constexpr std::string_view not_run_result = "not run: cancelled";

/// A list of messages with per-message metadata, in order.
///
/// Reasoning is stored verbatim on assistant messages whatever the model family; what is sent back
/// is decided per request by build_request_messages. The whole state (messages, metadata, the
/// free-form `metadata()` object) serialises to JSON and back exactly.
///
/// Thread safety: distinct objects: safe. Shared objects: unsafe.
class conversation {
public:
    /// Version written to and accepted from JSON.
    static constexpr int format_version = 1;

    conversation() = default;

    /// Appends a message; its turn is derived (a user message starts a new turn).
    void append(api::message m, bool is_error = false);
    /// Appends a message with explicit metadata (used when restoring or merging state).
    void append(api::message m, message_meta meta);

    void add_system(std::string text) { append(api::message::system(std::move(text))); }
    void add_user(std::string text) { append(api::message::user(std::move(text))); }
    /// Appends a tool result for `call_id`; `is_error` marks a failed tool.
    void add_tool_result(std::string call_id, std::string text, bool is_error = false) {
        append(api::message::tool_result(std::move(call_id), std::move(text)), is_error);
    }

    const std::vector<api::message>& messages() const noexcept { return messages_; }
    const std::vector<message_meta>& meta() const noexcept { return meta_; }
    std::size_t size() const noexcept { return messages_.size(); }
    bool empty() const noexcept { return messages_.empty(); }
    /// The number of user messages so far.
    std::size_t turn() const noexcept { return turn_; }

    /// Free-form state saved with the conversation (e.g. agent name, model id). An object.
    nlohmann::json& metadata() noexcept { return metadata_; }
    const nlohmann::json& metadata() const noexcept { return metadata_; }

    /// Repairs the stored history in place (see repair_history) and returns what was fixed.
    /// Synthetic results are stored with meta.synthetic and meta.is_error set.
    std::vector<history_repair> repair();
    /// Only the id part of repair(): gives calls without an id, or with an id an earlier call
    /// has, a fresh one (renaming their results). The loop calls it on each new reply before
    /// running its tools, so results and events carry the ids the history will keep.
    std::vector<history_repair> make_call_ids_unique();

    /// Replaces the arguments of the latest assistant tool call with id `call_id` (a call
    /// approved with edited arguments). Returns false, changing nothing, if there is none.
    bool set_call_arguments(std::string_view call_id, std::string arguments);

    /// Removes every message (metadata object kept).
    void clear();

    friend bool operator==(const conversation&, const conversation&) = default;
    friend void from_json(const nlohmann::json& j, conversation& c);

private:
    std::vector<api::message> messages_;
    std::vector<message_meta> meta_;
    std::size_t turn_ = 0;
    nlohmann::json metadata_ = nlohmann::json::object();
};

/// Serialises the whole state: {"version":1,"messages":[…],"meta":[{"turn",…}],"metadata":{…}}.
void to_json(nlohmann::json& j, const conversation& c);
/// Restores a state written by to_json. Throws nlohmann::json::exception on a malformed document
/// and std::invalid_argument on an unsupported version.
void from_json(const nlohmann::json& j, conversation& c);

/// Makes tool calls and results consistent, deterministically (same input, same output) and
/// idempotently (a repaired history needs no repair):
/// - every assistant tool call is followed, in call order, by exactly one tool message with its
///   id; a result found later in the history is moved up, a missing one is replaced by a
///   synthetic result with content `not_run_result`;
/// - tool messages that answer no earlier call, or answer an already answered call, are dropped;
/// - a tool call without an id, or with an id an earlier call already has, gets a fresh one,
///   "wafer_call_<message index>_<call index>", and the tool message that answered it (the first
///   unclaimed one with its old id, before the next assistant message) is renamed with it:
///   every call and every result is kept.
/// `meta`, when given, must be parallel to `messages` and is kept parallel.
/// Returns the repairs in the order they were made.
std::vector<history_repair>
repair_history(std::vector<api::message>& messages, std::vector<message_meta>* meta = nullptr);

/// The messages to send in the next request (a pure function):
/// 1. the history is repaired (repair_history) on a copy;
/// 2. reasoning is replayed per `opts` (mode and carrier), and never on non-assistant messages;
/// 3. keys a role may not carry are stripped (tool_calls off non-assistant, tool_call_id off
///    non-tool), an assistant with tool calls and no text has no content key, an assistant with
///    neither gets content "", a tool message always has content.
/// `repairs`, when given, receives what step 1 fixed.
std::vector<api::message> build_request_messages(
    const conversation& c,
    const replay_options& opts,
    std::vector<history_repair>* repairs = nullptr
);

/// Same, over a plain message list.
std::vector<api::message> build_request_messages(
    std::vector<api::message> messages,
    const replay_options& opts,
    std::vector<history_repair>* repairs = nullptr
);

} // namespace wafer
