// One streamed chat.completion.chunk, decoded without building a DOM (the hot path).
#pragma once

#include <wafer/api/chat_response.hpp>
#include <wafer/api/usage.hpp>

#include <cstdint>
#include <optional>
#include <string_view>

namespace wafer::api {

/// A tool-call delta. Cerebras sends whole calls; other servers send the id and name first and
/// then argument fragments for the same index.
struct tool_call_delta {
    int index = 0;
    std::string_view id;        ///< empty if absent in this delta
    std::string_view name;      ///< empty if absent in this delta
    std::string_view arguments; ///< fragment to append (may be empty)
};

/// A mid-stream error event: {"error":{"message","type","param","code"},"status_code":N}.
struct stream_error {
    int status_code = 0;
    std::string_view message;
    std::string_view type;
    std::string_view code;
    std::string_view param;
};

/// A decoded chunk. All string views point into the decoder's buffer and are valid until the
/// next decode. Only choice 0 is decoded (wafer never sends n > 1).
struct chunk_view {
    std::string_view id;
    std::string_view model;
    std::string_view system_fingerprint;
    std::int64_t created = 0;
    std::string_view role;      ///< delta.role, empty if absent
    std::string_view content;   ///< delta.content piece, empty if absent
    std::string_view reasoning; ///< delta.reasoning piece, empty if absent
    bool has_content = false;   ///< delta.content present (even if "")
    bool has_reasoning = false; ///< delta.reasoning present (even if "")
    /// Tool-call deltas of this chunk (views into the decoder; at most `tool_call_count`).
    const tool_call_delta* tool_calls = nullptr;
    std::size_t tool_call_count = 0;
    api::finish_reason finish_reason = finish_reason::none;
    std::optional<api::usage> usage;
    std::optional<api::time_info> time_info;
    /// Set when the event is an error object instead of a chunk.
    std::optional<stream_error> error;
};

} // namespace wafer::api
