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

// ---- compaction records (the strategies are in compaction.hpp) ----------------------------

/// The strategies, cheapest (and least lossy) first.
enum class compaction_strategy {
    /// Tool results larger than a cap keep their head and tail, with a marker between that says
    /// how much was left out and how to read it.
    clamp_tool_results,
    /// A read-only call made again later with the same tool and arguments (a file read twice):
    /// the earlier result becomes a pointer to the later one.
    dedupe_reads,
    /// Reasoning is dropped from assistant messages older than the last `keep_pairs` tool
    /// results (the current steps keep theirs, as GLM's preserved thinking needs).
    drop_reasoning,
    /// Tool results older than the last `keep_pairs` become a short marker; the call/result
    /// pairs themselves stay whole.
    clear_tool_results,
    /// The oldest messages (never the system prompt, the task or another user message, never a
    /// call without its result) are replaced by a summary the model writes with no tools.
    summarise,
};

std::string_view to_string(compaction_strategy s) noexcept;
std::optional<compaction_strategy> compaction_strategy_from_string(std::string_view s) noexcept;

/// Why a compaction ran.
enum class compaction_trigger {
    /// The estimate passed context_config::trigger of the window.
    threshold,
    /// Asked for (agent::async_compact, the CLI's /compact).
    on_demand,
    /// The server answered that the request was longer than its context.
    overflow,
};

std::string_view to_string(compaction_trigger t) noexcept;

/// One message a compaction changed or removed, as it was, at its index in the history of the
/// time.
struct replaced_message {
    std::size_t index = 0;
    api::message message;
    message_meta meta;
    friend bool operator==(const replaced_message&, const replaced_message&) = default;
};

/// What one compaction step did, kept in the conversation (and rebuilt the same way when a
/// journaled run is replayed).
struct compaction_record {
    /// 1, 2, ... in the conversation.
    std::size_t seq = 0;
    /// The model request it was made before.
    std::size_t turn = 0;
    compaction_strategy strategy = compaction_strategy::clamp_tool_results;
    compaction_trigger trigger = compaction_trigger::threshold;
    /// The range of the history of the time it replaced: [first, first + replaced), now
    /// `replacement` messages (the same count for every strategy but summarise).
    std::size_t first = 0;
    std::size_t replaced = 0;
    std::size_t replacement = 0;
    /// Estimated prompt tokens of the request before and after this step.
    std::int64_t tokens_before = 0;
    std::int64_t tokens_after = 0;
    /// compaction_digest(originals): identifies what was replaced.
    std::string digest;
    /// The messages changed or removed: every message of the range for summarise, the changed
    /// ones for the others.
    std::vector<replaced_message> originals;
    friend bool operator==(const compaction_record&, const compaction_record&) = default;
};

/// "sha256:<hex>" over the originals' fields, each with its length in front (the digest
/// compaction_record keeps).
std::string compaction_digest(const std::vector<replaced_message>& originals);

void to_json(nlohmann::json& j, const compaction_record& r);
void from_json(const nlohmann::json& j, compaction_record& r);

/// A change a strategy proposes, applied with conversation::apply_compaction. Either rewrites
/// of single messages (the index and the new message, ascending) or one contiguous range
/// replaced by other messages.
struct history_edit {
    std::vector<std::pair<std::size_t, api::message>> rewrites;
    std::size_t first = 0;
    std::size_t count = 0;
    std::vector<api::message> replacement;

    bool empty() const noexcept { return rewrites.empty() && count == 0; }
};

/// A half-open range of message indices.
struct message_range {
    std::size_t first = 0;
    std::size_t last = 0;
    std::size_t size() const noexcept { return last - first; }
    friend bool operator==(const message_range&, const message_range&) = default;
};

// ---- repair ------------------------------------------------------------------------------

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

    /// Applies a compaction step: `edit` changes the history, and `record` (its seq, first,
    /// replaced, replacement, digest and originals filled in here) is kept. Returns the record.
    /// Throws std::out_of_range when the edit reaches past the history.
    const compaction_record& apply_compaction(history_edit edit, compaction_record record);
    /// What compactions replaced, oldest first.
    const std::vector<compaction_record>& compactions() const noexcept { return compactions_; }
    /// The history as it would be without any compaction: every record undone, newest first.
    std::vector<api::message> full_messages() const;

    /// Removes every message (metadata object and compaction records kept).
    void clear();

    friend bool operator==(const conversation&, const conversation&) = default;
    friend void from_json(const nlohmann::json& j, conversation& c);

private:
    std::vector<api::message> messages_;
    std::vector<message_meta> meta_;
    std::size_t turn_ = 0;
    nlohmann::json metadata_ = nlohmann::json::object();
    std::vector<compaction_record> compactions_;
};

/// Serialises the whole state: {"version":1,"messages":[…],"meta":[{"turn",…}],"metadata":{…},
/// "compactions":[…]} ("compactions" only when there are records; older readers ignore it).
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
