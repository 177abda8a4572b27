// The JSON of a stored message's metadata, shared by the conversation state and its compaction
// records: {"turn", "is_error"?, "synthetic"?, "content"?}.
#pragma once

#include <wafer/conversation.hpp>

#include <nlohmann/json.hpp>

#include "detail/json_util.hpp"

namespace wafer::detail {

/// Adds `meta`'s fields to `j`; and the string content of `m` when it has parts too (the wire
/// form drops it then: kept for an exact restore).
inline void write_meta(nlohmann::json& j, const message_meta& meta, const api::message& m) {
    j["turn"] = meta.turn;
    if (meta.is_error) {
        j["is_error"] = true;
    }
    if (meta.synthetic) {
        j["synthetic"] = true;
    }
    if (!m.parts.empty() && m.content) {
        j["content"] = *m.content;
    }
}

/// Reads what write_meta wrote.
inline void read_meta(const nlohmann::json& j, message_meta& meta, api::message& m) {
    read_value(j, "turn", meta.turn);
    read_value(j, "is_error", meta.is_error);
    read_value(j, "synthetic", meta.synthetic);
    read_optional(j, "content", m.content);
}

} // namespace wafer::detail
