// Text helpers of the MCP client: a string member of untrusted JSON, and server text made safe
// to put in an error or a log line.
#pragma once

#include <nlohmann/json.hpp>

#include <cstddef>
#include <string>
#include <string_view>

namespace wafer::tools::mcp::detail {

/// obj[key] when obj is an object and the member a string; empty otherwise.
inline std::string text_of(const nlohmann::json& obj, const char* key) {
    if (!obj.is_object()) {
        return {};
    }
    const auto it = obj.find(key);
    return it != obj.end() && it->is_string() ? it->get<std::string>() : std::string{};
}

/// At most `max_bytes` of `text`, newlines as "\n" and every other byte outside printable ASCII
/// as "\xNN", "..." after a cut: what a server wrote never acts on a terminal.
inline std::string escaped(std::string_view text, std::size_t max_bytes = std::string_view::npos) {
    static constexpr char hex[] = "0123456789abcdef";
    std::string out;
    for (std::size_t i = 0; i < text.size() && i < max_bytes; ++i) {
        const auto c = static_cast<unsigned char>(text[i]);
        if (c == '\n') {
            out += "\\n";
        } else if (c >= 0x20 && c < 0x7f) {
            out += static_cast<char>(c);
        } else {
            out += "\\x";
            out += hex[c >> 4U];
            out += hex[c & 0xfU];
        }
    }
    if (text.size() > max_bytes) {
        out += "...";
    }
    return out;
}

} // namespace wafer::tools::mcp::detail
