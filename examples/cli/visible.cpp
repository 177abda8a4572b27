#include "visible.hpp"

#include <cstdint>
#include <cstdio>

namespace wafer::cli {

namespace {

struct range {
    char32_t first;
    char32_t last;
};

/// Unicode format characters (general category Cf), the line and paragraph separators, and
/// the C1 controls: invisible, or able to reorder or hide the text around them.
constexpr range hidden[] = {
    {0x0080, 0x009F},   {0x00AD, 0x00AD},   {0x0600, 0x0605},   {0x061C, 0x061C},
    {0x06DD, 0x06DD},   {0x070F, 0x070F},   {0x0890, 0x0891},   {0x08E2, 0x08E2},
    {0x180E, 0x180E},   {0x200B, 0x200F},   {0x2028, 0x202E},   {0x2060, 0x2064},
    {0x2066, 0x206F},   {0xFEFF, 0xFEFF},   {0xFFF9, 0xFFFB},   {0x110BD, 0x110BD},
    {0x110CD, 0x110CD}, {0x13430, 0x1343F}, {0x1BCA0, 0x1BCA3}, {0x1D173, 0x1D17A},
    {0xE0001, 0xE0001}, {0xE0020, 0xE007F},
};

bool is_hidden(char32_t cp, layout how) {
    if (how == layout::text && (cp == 0x200C || cp == 0x200D)) {
        return false;
    }
    for (const auto& r : hidden) {
        if (cp >= r.first && cp <= r.last) {
            return true;
        }
    }
    return false;
}

void append_byte_escape(std::string& out, unsigned char b) {
    char buf[8];
    std::snprintf(buf, sizeof buf, "\\x%02x", static_cast<unsigned>(b));
    out += buf;
}

void append_code_point_escape(std::string& out, char32_t cp) {
    char buf[16];
    std::snprintf(buf, sizeof buf, "\\u{%04x}", static_cast<unsigned>(cp));
    out += buf;
}

/// Length of the valid UTF-8 sequence at the start of `s` and its code point; 0 if invalid
/// (RFC 3629: no overlong forms, no surrogates, nothing above U+10FFFF).
std::size_t decode_utf8(std::string_view s, char32_t& cp) {
    const auto b0 = static_cast<unsigned char>(s[0]);
    std::size_t len = 0;
    char32_t min = 0;
    if (b0 >= 0xC2 && b0 <= 0xDF) {
        len = 2;
        cp = b0 & 0x1FU;
        min = 0x80;
    } else if (b0 >= 0xE0 && b0 <= 0xEF) {
        len = 3;
        cp = b0 & 0x0FU;
        min = 0x800;
    } else if (b0 >= 0xF0 && b0 <= 0xF4) {
        len = 4;
        cp = b0 & 0x07U;
        min = 0x10000;
    } else {
        return 0;
    }
    if (s.size() < len) {
        return 0;
    }
    for (std::size_t i = 1; i < len; ++i) {
        const auto b = static_cast<unsigned char>(s[i]);
        if ((b & 0xC0U) != 0x80U) {
            return 0;
        }
        cp = (cp << 6) | (b & 0x3FU);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) {
        return 0;
    }
    return len;
}

} // namespace

std::string visible(std::string_view s, layout how) {
    std::string out;
    out.reserve(s.size());
    std::size_t i = 0;
    while (i < s.size()) {
        const auto b = static_cast<unsigned char>(s[i]);
        if (b < 0x80) {
            if (b >= 0x20 && b != 0x7F) {
                out += static_cast<char>(b);
            } else if ((b == '\n' || b == '\t') && how == layout::text) {
                out += static_cast<char>(b);
            } else if (b == '\n') {
                out += "\\n";
            } else if (b == '\r') {
                out += "\\r";
            } else if (b == '\t') {
                out += "\\t";
            } else {
                append_byte_escape(out, b);
            }
            ++i;
            continue;
        }
        char32_t cp = 0;
        const std::size_t len = decode_utf8(s.substr(i), cp);
        if (len == 0) {
            append_byte_escape(out, b);
            ++i;
            continue;
        }
        if (is_hidden(cp, how)) {
            append_code_point_escape(out, cp);
        } else {
            out.append(s.substr(i, len));
        }
        i += len;
    }
    return out;
}

std::string shortened(const std::string& s, std::size_t limit) {
    if (s.size() <= limit) {
        return s;
    }
    std::size_t end = limit;
    while (end > 0 && (static_cast<unsigned char>(s[end]) & 0xC0U) == 0x80U) {
        --end;
    }
    return s.substr(0, end) + "...";
}

} // namespace wafer::cli
