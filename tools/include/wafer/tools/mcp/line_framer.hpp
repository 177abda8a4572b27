// MCP's stdio framing, sans-io: one JSON-RPC message per line on the server's stdout.
#pragma once

#include <algorithm>
#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

namespace wafer::tools::mcp {

/// What a scan of an oversized line found among the members of its top-level object (a scan, not
/// a parse: it follows nesting, strings and escapes, and checks nothing else).
struct line_members {
    /// The value of its top-level "id" member as written: an integer (at most 20 characters of
    /// `-` and digits), or a string with its quotes (at most 256 bytes, without escapes); empty
    /// when there was none, or another kind of value.
    std::string id;
    /// It has a top-level "method" member (a request or notification).
    bool method = false;
    /// It has a top-level "result" or "error" member (a response).
    bool result = false;

    friend bool operator==(const line_members&, const line_members&) = default;
};

/// Scans a JSON text fed in pieces for line_members; what it keeps is bounded whatever the
/// input.
class member_scanner {
public:
    void feed(std::string_view bytes) noexcept;
    /// What was found (call once the text has been fed).
    line_members finish();
    void reset() { *this = member_scanner(); }

private:
    enum class state : unsigned char {
        value,     // depth 0 before the top-level value, or inside nested values
        key,       // depth 1: a key may start
        in_key,    // depth 1: inside a key string
        colon,     // depth 1: after a key, before ':'
        member,    // depth 1: after ':', before the value
        id_number, // depth 1: inside the "id" member's number
        id_string, // depth 1: inside the "id" member's string
        other,     // depth 1: inside another member's value, or after it
    };
    void end_key();
    void end_number();

    state st_ = state::value;
    std::size_t depth_ = 0;
    bool in_string_ = false;
    bool escaped_ = false;
    bool key_escaped_ = false;
    std::string key_; // at most 8 bytes of the current key
    std::string token_;
    bool value_is_id_ = false;
    line_members found_;
};

/// One line the server wrote, or the report of one that was too long.
struct frame {
    enum class kind {
        /// A complete line, without its "\n" (and without a "\r" before it).
        line,
        /// A line longer than the framer's limit: its bytes were dropped but for its first and
        /// last few (`text` and `tail`, enough to tell whose answer it was), the next line
        /// starts fresh. A server's stdout is untrusted: one runaway message must not exhaust
        /// memory nor end the connection.
        oversized,
    };
    kind type = kind::line;
    /// The line; for an oversized one, its first line_framer::head_bytes bytes.
    std::string text;
    /// Oversized lines: their last line_framer::tail_bytes bytes (empty for lines).
    std::string tail;
    /// Bytes the line had (for oversized ones too), without the line end.
    std::size_t size = 0;
    /// Oversized lines: their top-level members of note, found while the line streamed past
    /// (its "id" may be anywhere in it). Default for lines.
    line_members members;

    friend bool operator==(const frame&, const frame&) = default;
};

/// Splits the bytes read from a stdio server into lines. Feed it what each read returned, then
/// take frames until there are none; at end of stream, finish() returns a last line that had no
/// newline. Keeps at most the current partial line (bounded by `max_line`).
///
/// Thread safety: distinct objects safe; shared objects unsafe.
class line_framer {
public:
    /// 8 MiB by default (the TypeScript SDK refuses above 10 MiB, codex above 8 MiB).
    static constexpr std::size_t default_max_line = 8U << 20U;
    /// What an oversized frame keeps of its line's start and end (at most `max_line` each).
    static constexpr std::size_t head_bytes = 256;
    static constexpr std::size_t tail_bytes = 64;

    explicit line_framer(std::size_t max_line = default_max_line)
        : max_line_(max_line), head_max_(std::min(head_bytes, max_line)),
          tail_max_(std::min(tail_bytes, max_line)) {}

    /// Takes the next bytes of the stream.
    void feed(std::string_view bytes);
    /// The next complete frame, if any.
    std::optional<frame> next();
    /// At end of stream: the partial last line (kind line, or oversized), if there was one.
    std::optional<frame> finish();

    /// Bytes buffered and not yet returned.
    std::size_t buffered() const noexcept { return buf_.size() - pos_; }

private:
    // The frame of the line from pos_ to `end` (its "\n", or the end of the stream).
    frame take(std::size_t end);

    // Keeps the last tail_max_ bytes of `bytes` after those of tail_.
    void keep_tail(std::string_view bytes);

    std::size_t max_line_;
    std::size_t head_max_;
    std::size_t tail_max_;
    std::string buf_;
    std::size_t pos_ = 0;     // where the unread part of buf_ starts
    std::size_t scan_ = 0;    // where to look for the next "\n" (everything before has none)
    bool dropping_ = false;   // inside an oversized line: skip to its newline
    std::size_t dropped_ = 0; // bytes of it skipped so far
    std::string head_;        // its first head_max_ bytes
    std::string tail_;        // the last tail_max_ bytes skipped
    member_scanner members_;  // over every byte of the oversized line
};

} // namespace wafer::tools::mcp
