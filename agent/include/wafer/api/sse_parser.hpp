// Server-sent events, sans-io: bytes in, events out (WHATWG "text/event-stream" rules).
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

namespace wafer::api {

/// One dispatched event. The views stay valid until the next call to sse_parser::next() or
/// sse_parser::feed().
struct sse_event {
    /// The event type ("message" when the stream gave none).
    std::string_view event;
    /// The data lines joined with '\n' (no trailing newline).
    std::string_view data;
    /// The last event id seen (persists across events, as the spec says).
    std::string_view id;
    /// The retry field in ms if this event carried a valid one.
    std::optional<unsigned long> retry;
};

/// Incremental SSE parser. Lines end in CR, LF or CRLF (a CR at the end of one feed and an LF at
/// the start of the next count as one line break). "data:" with or without the space; lines that
/// start with ':' are comments; an event is dispatched on a blank line, and only if it has data.
///
/// Usage: feed() bytes as they arrive, then call next() until it returns nullopt.
///
/// The parser copies what it needs; the bytes passed to feed() need not outlive the call.
/// Thread safety: distinct objects safe, shared objects unsafe.
class sse_parser {
public:
    /// Appends bytes to the parser's input.
    void feed(std::string_view bytes);

    /// The next complete event, or nullopt if more bytes are needed.
    std::optional<sse_event> next();

    /// Bytes fed but not yet consumed as complete lines (a partial line).
    std::size_t pending_bytes() const noexcept;

    /// True if a partial event (data lines without the blank line) is buffered.
    bool has_partial_event() const noexcept;

    /// The last event id the stream set (an `id:` line, dispatched or not): what a client sends
    /// as Last-Event-ID when it reconnects.
    const std::string& last_event_id() const noexcept { return last_id_; }
    /// The last valid `retry:` the stream sent (ms), dispatched or not.
    std::optional<unsigned long> reconnection_time() const noexcept { return reconnection_; }

    /// The maximum size of one event's data; exceeding it makes next() throw std::length_error.
    void set_max_event_size(std::size_t bytes) noexcept { max_event_size_ = bytes; }

private:
    std::string buffer_;     // unconsumed input
    std::size_t pos_ = 0;    // read position in buffer_
    bool skip_lf_ = false;   // last line ended in CR at the end of input: skip a leading LF
    std::string data_;       // data of the event being assembled
    std::string event_type_; // event field of the event being assembled
    std::string last_id_;    // last event id
    std::string out_data_;   // storage behind the returned views
    std::string out_event_;
    std::optional<unsigned long> retry_;
    std::optional<unsigned long> reconnection_;
    bool has_data_ = false;
    bool bom_checked_ = false;
    // The first data line of the current event, referenced in buffer_ instead of copied.
    bool single_line_pending_ = false;
    std::size_t single_line_off_ = 0;
    std::size_t single_line_len_ = 0;
    std::size_t max_event_size_ = 16 * 1024 * 1024;
};

} // namespace wafer::api
