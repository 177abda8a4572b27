// Sans-io rendering of the fake server's replies: a scripted turn into a chat.completion body or
// into SSE events, errors into their body shapes. No sockets here.
#pragma once

#include <wafer/testing/fake_server.hpp>

#include <cstddef>
#include <cstdint>
#include <random>
#include <string>
#include <string_view>
#include <vector>

namespace wafer::testing::detail {

/// Appends `s` as a quoted JSON string (UTF-8 passed through, control characters escaped).
void append_json_string(std::string& out, std::string_view s);

/// Splits text into stream pieces: `chunk_chars` bytes each without splitting a UTF-8 sequence,
/// or (0) one word with its leading whitespace each. Pieces view into `text`.
std::vector<std::string_view> split_pieces(std::string_view text, std::size_t chunk_chars);

/// "chatcmpl-" + a random UUID-shaped string.
std::string make_completion_id(std::mt19937_64& rng);
/// 9 lowercase hex characters, like Cerebras tool-call ids.
std::string make_tool_call_id(std::mt19937_64& rng);

/// Rough token count: ceil(bytes / 4).
std::int64_t estimate_tokens(std::size_t chars) noexcept;
/// Characters of every message text in the request (for the prompt-token estimate).
std::size_t prompt_chars(const api::chat_request& req);

/// A turn with every default resolved (ids, finish reason, usage, timing, model).
struct resolved_turn {
    scripted_turn turn;
    std::string id;
    std::int64_t created = 0;
    std::string model;
    std::string system_fingerprint;
    api::finish_reason finish = api::finish_reason::stop;
    api::usage usage;
    api::time_info time_info;
};

resolved_turn resolve(scripted_turn t, const api::chat_request& req, std::mt19937_64& rng);

/// The non-streaming chat.completion body (compact JSON).
std::string render_completion(const resolved_turn& t);

/// The SSE events of a streamed turn. Event i is rendered on demand, so a 100k-chunk stream
/// never exists in memory at once.
class sse_plan {
public:
    sse_plan(const resolved_turn& t, std::size_t chunk_chars);

    /// Number of events, without any [DONE] marker.
    std::size_t size() const noexcept { return count_; }
    /// Appends event i ("data: {...}\n\n").
    void append_event(std::size_t i, std::string& out) const;

private:
    const resolved_turn& turn_;
    std::vector<std::string_view> reasoning_;
    std::vector<std::string_view> content_;
    std::string prefix_; ///< data: {"id":…,"choices":[{"delta":{
    std::string suffix_; ///< …"created":…,"object":"chat.completion.chunk"}
    std::size_t count_ = 0;
};

/// "data: [DONE]\n\n".
inline constexpr std::string_view done_event = "data: [DONE]\n\n";
/// An event whose data is not valid JSON.
inline constexpr std::string_view malformed_event =
    "data: {\"id\":\"chatcmpl-malformed\",\"choices\":[{\"delta\":{\"content\":\"oops\n\n";

/// The HTTP error body in the requested shape.
std::string render_error_body(const scripted_error& e);
/// A mid-stream error event, "data: {"error":{…},"status_code":N}\n\n".
std::string render_stream_error(const scripted_error& e);

} // namespace wafer::testing::detail
