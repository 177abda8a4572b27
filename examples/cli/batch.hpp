// `wafer batch FILE.jsonl`: many runs from a JSONL file, results as JSONL. The sans-io parts
// live here (batch_core.cpp, unit-tested): the streaming line splitter with its size limit, the
// run spec of one line, the resume index of an earlier results file, the output order, the
// result line and the progress text. batch.cpp does the I/O and drives the runs.
#pragma once

#include <wafer/api/chat_request.hpp>
#include <wafer/run_result.hpp>

#include <nlohmann/json.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "commands.hpp"

namespace wafer::cli {

/// The flags of `wafer batch`.
struct batch_flags : run_flags {
    std::string input; ///< the JSONL file ("-": standard input)
    std::string out;   ///< --out (empty: standard output, no resume)
    std::size_t concurrency = 8;
    std::string order = "input";    ///< --order input|finish
    std::string admission = "auto"; ///< --admission auto|on|off
    std::optional<std::int64_t> tokens_per_minute;
};

/// Exit status of a batch where some lines were bad or some runs failed (all others ran).
inline constexpr int exit_batch_partial = 1;

/// Lines longer than this (without the newline) are reported and skipped unread.
inline constexpr std::size_t max_batch_line_bytes = 8 * 1024 * 1024;

/// Splits a byte stream into lines, keeping at most `limit` bytes of one line: a longer line is
/// reported as oversized (its bytes dropped as they come, never buffered). Line numbers start
/// at 1. A last line without a newline counts too (finish()).
class line_splitter {
public:
    struct line {
        std::size_t number = 0;
        std::string text; ///< empty when oversized
        bool oversized = false;
        std::uint64_t bytes = 0; ///< length without the newline
        bool terminated = true;  ///< false for a last line without newline
    };

    explicit line_splitter(std::size_t limit = max_batch_line_bytes) : limit_(limit) {}

    /// Consumes `chunk`; complete lines are appended to `out`.
    void feed(std::string_view chunk, std::vector<line>& out);
    /// End of input: the unterminated last line, if any.
    std::optional<line> finish();
    /// True while the current line is over the limit: its remaining bytes are only counted, so
    /// the reader may skip a hole of a sparse file (zeros hold no newline).
    bool skipping() const noexcept { return oversized_; }
    /// Counts `n` bytes of the current (oversized) line that were skipped without reading.
    void skipped(std::uint64_t n) noexcept { bytes_ += n; }

private:
    line take();

    std::size_t limit_;
    std::size_t number_ = 1;
    std::string current_;
    std::uint64_t bytes_ = 0;
    bool oversized_ = false;
};

/// One run a line asks for.
struct batch_spec {
    std::string id;
    std::string input;
    std::optional<std::string> model;
    std::optional<std::string> system;
    std::optional<std::int64_t> max_completion_tokens;
    std::optional<api::response_format> response_format;
    bool builtin_tools = false;

    /// The id a plain-prompt line (or an object without "id") gets: "line-<number>".
    static std::string line_id(std::size_t line_number);
};

/// Reads one line: a JSON string (a prompt, id line_id()) or an object with "input" (a
/// non-empty string), optional "id" (a non-empty string of at most 256 bytes), "model" (a
/// non-empty string), "system" (a string), "max_completion_tokens" (an integer from 1),
/// "response_format" (the Chat Completions shape), "tools" ("builtin" or "none"). Unknown keys
/// are an error (a misspelt key would silently change the run). Returns the spec, or why the
/// line is bad. Blank lines are bad too (the caller may choose to skip them silently).
std::variant<batch_spec, std::string> parse_batch_line(std::string_view text, std::size_t number);

/// What an earlier results file holds: the ids with a result that is not an error (they are
/// skipped), and how much of the file to keep. Errored results are dropped from the kept part
/// (their ids run again and get a fresh line), and so is a truncated last line (a crash
/// mid-write) and any line that is not a result object.
class resume_index {
public:
    /// Feeds one complete line (without its newline); true if it is to be kept.
    bool add_line(std::string_view text);
    bool finished(const std::string& id) const { return done_.contains(id); }
    std::size_t size() const noexcept { return done_.size(); }

private:
    std::set<std::string> done_;
};

/// Which results may be written: in input order (a result waits for its predecessors, at most
/// `window` runs ahead of the oldest unfinished one: that bounds the buffered results) or as
/// they finish. Sequence numbers are given to runs in input order, from 0.
class output_order {
public:
    output_order(bool input_order, std::size_t window)
        : input_order_(input_order), window_(window) {}

    /// Whether run `seq` may start now (input order: it is within the window).
    bool may_start(std::size_t seq) const noexcept {
        return !input_order_ || seq < next_ + window_;
    }
    /// Run `seq` finished with result line `line`; returns the lines to write now, in order.
    /// `line` empty: nothing to write for it (e.g. cancelled) but it no longer holds others up.
    std::vector<std::string> finished(std::size_t seq, std::string line);
    /// Everything still buffered, in sequence order (at a stop).
    std::vector<std::string> drain();
    std::size_t buffered() const noexcept { return pending_.size(); }

private:
    void pop_ready(std::vector<std::string>& out);

    bool input_order_;
    std::size_t window_;
    std::size_t next_ = 0;
    std::map<std::size_t, std::string> pending_;
};

/// The result line (compact JSON, no newline) of a finished run: id, "text" (or "json" when
/// the spec asked for JSON output and the answer parses), usage, stop_reason, finish_reason,
/// queue_wait_ms, duration_ms, and on failure "error" {"code", "message"}. `describe` words a
/// run error (the CLI: failure_line, which never holds the API key).
struct batch_outcome {
    std::string id;
    run_result result;
    api::finish_reason finish = api::finish_reason::none;
    bool wants_json = false;
};
nlohmann::json
result_json(const batch_outcome& o, const std::function<std::string(const run_error&)>& describe);
/// Whether a result counts as a failure (retried by a resumed batch).
inline bool is_failure(const nlohmann::json& result) {
    return result.contains("error");
}

/// The counters the progress line shows.
struct batch_progress {
    std::size_t done = 0;
    std::size_t failed = 0;
    std::size_t running = 0;
    std::size_t queued = 0; ///< lines not started yet (known once the file was counted)
    std::int64_t tokens = 0;
    std::chrono::milliseconds elapsed{0};
};
/// "12 done, 1 failed, 8 running, 79 queued | 340 tok/s | ETA 1m05s" (no ETA before the first
/// run finished). Only numbers: no model text ever reaches this line.
std::string progress_text(const batch_progress& p);

/// `wafer batch`: runs every line of flags.input. Returns the exit status: 0 when every line
/// ran and every run succeeded, exit_batch_partial (1) when some lines were bad or some runs
/// failed (the others ran), 2 for usage errors, 130/143 when a signal stopped it.
int batch(const batch_flags& flags);

} // namespace wafer::cli
