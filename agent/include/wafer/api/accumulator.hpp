// Folds streamed chunks into one assistant message, sans-io.
#pragma once

#include <wafer/api/chat_response.hpp>
#include <wafer/api/chunk.hpp>

#include <optional>
#include <string>
#include <vector>

namespace wafer::api {

/// Accumulates chunk deltas: role, reasoning and content pieces concatenated, tool calls merged by
/// `index` (id and name taken when first non-empty, argument fragments concatenated; whole calls in
/// one chunk work too), usage/time_info/finish_reason from whichever chunk carries them (the last).
class accumulator {
public:
    /// Adds one decoded chunk. Copies what it needs; the views may die after the call.
    void add(const chunk_view& c);

    /// True once a chunk carried a finish_reason.
    bool finished() const noexcept { return finish_ != finish_reason::none; }
    api::finish_reason finish_reason() const noexcept { return finish_; }

    /// The message so far (tool calls in index order).
    const api::message& message() const noexcept { return message_; }
    const std::optional<api::usage>& usage() const noexcept { return usage_; }
    const std::optional<api::time_info>& time_info() const noexcept { return time_info_; }
    const std::string& id() const noexcept { return id_; }
    const std::string& model() const noexcept { return model_; }
    const std::string& system_fingerprint() const noexcept { return fingerprint_; }
    std::int64_t created() const noexcept { return created_; }

    /// The accumulated result shaped as a non-streaming response (one choice).
    chat_response to_response() const;

    /// Forgets everything (reuse for the next stream).
    void reset();

private:
    api::message message_ = empty_message(role::assistant);
    std::vector<int> call_index_; // call_index_[i] = wire index of message_.tool_calls[i]
    api::finish_reason finish_ = finish_reason::none;
    std::optional<api::usage> usage_;
    std::optional<api::time_info> time_info_;
    std::string id_;
    std::string model_;
    std::string fingerprint_;
    std::int64_t created_ = 0;
};

} // namespace wafer::api
