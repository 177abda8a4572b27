// Text helpers of the built-in tools: binary detection and making bytes safe to send as JSON.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace wafer::tools::text {

/// Heuristic used by read_file, edit_file and search: a NUL byte in the first 8 KiB.
inline bool looks_binary(std::string_view head) noexcept {
    return head.substr(0, 8192).find('\0') != std::string_view::npos;
}

/// Length of the valid UTF-8 sequence at s[i], or 0 if it is invalid or cut short.
inline std::size_t valid_sequence(std::string_view s, std::size_t i) noexcept {
    const auto b = [&](std::size_t k) {
        return static_cast<unsigned char>(s[i + k]);
    };
    const unsigned char c = b(0);
    std::size_t n = 0;
    unsigned char lo = 0x80;
    unsigned char hi = 0xBF;
    if (c < 0x80) {
        return 1;
    } else if (c >= 0xC2 && c <= 0xDF) {
        n = 2;
    } else if (c >= 0xE0 && c <= 0xEF) {
        n = 3;
        lo = c == 0xE0 ? 0xA0 : 0x80; // no overlong forms
        hi = c == 0xED ? 0x9F : 0xBF; // no surrogates
    } else if (c >= 0xF0 && c <= 0xF4) {
        n = 4;
        lo = c == 0xF0 ? 0x90 : 0x80;
        hi = c == 0xF4 ? 0x8F : 0xBF;
    } else {
        return 0;
    }
    if (i + n > s.size() || b(1) < lo || b(1) > hi) {
        return 0;
    }
    for (std::size_t k = 2; k < n; ++k) {
        if (b(k) < 0x80 || b(k) > 0xBF) {
            return 0;
        }
    }
    return n;
}

/// Replaces each invalid UTF-8 byte with U+FFFD, so command output in any encoding can go into
/// a JSON string.
inline void sanitize_utf8(std::string& s) {
    std::size_t i = 0;
    while (i < s.size()) {
        const std::size_t n = valid_sequence(s, i);
        if (n == 0) {
            break;
        }
        i += n;
    }
    if (i == s.size()) {
        return; // the common case: already valid, no copy
    }
    std::string out;
    out.reserve(s.size() + 16);
    out.append(s, 0, i);
    while (i < s.size()) {
        const std::size_t n = valid_sequence(s, i);
        if (n == 0) {
            out += "\xEF\xBF\xBD";
            ++i;
        } else {
            out.append(s, i, n);
            i += n;
        }
    }
    s = std::move(out);
}

/// `s` as valid UTF-8 with every invalid byte shown as the four characters `\xNN`, for names
/// (paths, link targets) that must reach JSON and stay recognisable. A name that is already
/// valid UTF-8 comes back unchanged.
inline std::string escape_invalid_utf8(std::string_view s) {
    static constexpr char hex[] = "0123456789abcdef";
    std::string out;
    out.reserve(s.size());
    std::size_t i = 0;
    while (i < s.size()) {
        const std::size_t n = valid_sequence(s, i);
        if (n == 0) {
            const auto b = static_cast<unsigned char>(s[i]);
            out += "\\x";
            out += hex[b >> 4U];
            out += hex[b & 0x0FU];
            ++i;
        } else {
            out.append(s, i, n);
            i += n;
        }
    }
    return out;
}

} // namespace wafer::tools::text
