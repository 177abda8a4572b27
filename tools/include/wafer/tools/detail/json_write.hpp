// JSON writing without a DOM (strings, integers, any nlohmann value), shared by the chat
// request writer, the OTLP exporter and the MCP request writer. Internal to wafer: not an API.
#pragma once

#include <nlohmann/json.hpp>

#include <charconv>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

namespace wafer::detail {

// Appends one UTF-8 sequence starting at s[i] (a byte >= 0x80) and returns its length, or 0 if
// it is malformed (overlong, surrogate, beyond U+10FFFF, truncated): the rules of nlohmann's
// strict dump, which the fallback path then reports.
inline std::size_t utf8_sequence(std::string_view s, std::size_t i) noexcept {
    const auto b = [&](std::size_t k) {
        return static_cast<unsigned char>(s[i + k]);
    };
    const auto cont = [&](std::size_t k) {
        return i + k < s.size() && (b(k) & 0xC0) == 0x80;
    };
    const unsigned char c = b(0);
    if (c >= 0xC2 && c <= 0xDF) {
        return cont(1) ? 2 : 0;
    }
    if (c >= 0xE0 && c <= 0xEF) {
        if (!cont(1) || !cont(2)) {
            return 0;
        }
        if ((c == 0xE0 && b(1) < 0xA0) || (c == 0xED && b(1) > 0x9F)) {
            return 0; // overlong, or a UTF-16 surrogate
        }
        return 3;
    }
    if (c >= 0xF0 && c <= 0xF4) {
        if (!cont(1) || !cont(2) || !cont(3)) {
            return 0;
        }
        if ((c == 0xF0 && b(1) < 0x90) || (c == 0xF4 && b(1) > 0x8F)) {
            return 0; // overlong, or beyond U+10FFFF
        }
        return 4;
    }
    return 0;
}

// Whether any of the 8 bytes of `w` needs a look of its own in a JSON string: a control
// character (< 0x20), '"', '\\' or a byte of a multi-byte UTF-8 sequence (>= 0x80). The usual
// SWAR tests: a byte is below n when (w - n) borrows into its top bit while its own is clear.
inline bool word_needs_care(std::uint64_t w) noexcept {
    constexpr std::uint64_t ones = 0x0101010101010101ULL;
    constexpr std::uint64_t highs = 0x8080808080808080ULL;
    const auto has_zero = [](std::uint64_t x) {
        return ((x - ones) & ~x & highs) != 0;
    };
    const bool control = ((w - ones * 0x20) & ~w & highs) != 0;
    return control || (w & highs) != 0 || has_zero(w ^ (ones * '"')) || has_zero(w ^ (ones * '\\'));
}

// Appends `s` as a JSON string. False if `s` is not valid UTF-8.
inline bool put_string(std::string& out, std::string_view s) {
    out += '"';
    std::size_t run = 0; // start of the bytes not yet appended
    std::size_t i = 0;
    while (i < s.size()) {
        // Plain text (the most of it) goes by in words of 8 bytes.
        while (i + 8 <= s.size()) {
            std::uint64_t w;
            std::memcpy(&w, s.data() + i, 8);
            if (word_needs_care(w)) {
                break;
            }
            i += 8;
        }
        if (i >= s.size()) {
            break;
        }
        const auto c = static_cast<unsigned char>(s[i]);
        if (c >= 0x80) {
            const std::size_t n = utf8_sequence(s, i);
            if (n == 0) {
                return false;
            }
            i += n;
            continue;
        }
        if (c >= 0x20 && c != '"' && c != '\\') {
            ++i;
            continue;
        }
        out.append(s.data() + run, i - run);
        switch (c) {
        case '"':
            out += "\\\"";
            break;
        case '\\':
            out += "\\\\";
            break;
        case '\b':
            out += "\\b";
            break;
        case '\f':
            out += "\\f";
            break;
        case '\n':
            out += "\\n";
            break;
        case '\r':
            out += "\\r";
            break;
        case '\t':
            out += "\\t";
            break;
        default: {
            static constexpr char hex[] = "0123456789abcdef";
            const char esc[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 0xF]};
            out.append(esc, sizeof esc);
        }
        }
        run = ++i;
    }
    out.append(s.data() + run, s.size() - run);
    out += '"';
    return true;
}

// Appends an integer in decimal.
template <class Int>
void put_int(std::string& out, Int v) {
    char buf[24];
    const auto r = std::to_chars(buf, buf + sizeof buf, v);
    out.append(buf, static_cast<std::size_t>(r.ptr - buf));
}

// Appends any nlohmann value as dump(-1) writes it (objects in its sorted key order, floats in
// its shortest round-trip form). False if a string is not valid UTF-8 or the value has no JSON
// text (binary, discarded): the caller falls back to nlohmann's dump with replacement.
inline bool put_value(std::string& out, const nlohmann::json& v) {
    using value_t = nlohmann::json::value_t;
    switch (v.type()) {
    case value_t::null:
        out += "null";
        return true;
    case value_t::boolean:
        out += v.get<bool>() ? "true" : "false";
        return true;
    case value_t::number_integer:
        put_int(out, v.get<std::int64_t>());
        return true;
    case value_t::number_unsigned:
        put_int(out, v.get<std::uint64_t>());
        return true;
    case value_t::number_float:
        out += v.dump();
        return true;
    case value_t::string:
        return put_string(out, v.get_ref<const std::string&>());
    case value_t::array: {
        out += '[';
        bool first = true;
        for (const auto& e : v) {
            if (!first) {
                out += ',';
            }
            first = false;
            if (!put_value(out, e)) {
                return false;
            }
        }
        out += ']';
        return true;
    }
    case value_t::object: {
        out += '{';
        bool first = true;
        for (auto it = v.begin(); it != v.end(); ++it) {
            if (!first) {
                out += ',';
            }
            first = false;
            if (!put_string(out, it.key())) {
                return false;
            }
            out += ':';
            if (!put_value(out, *it)) {
                return false;
            }
        }
        out += '}';
        return true;
    }
    case value_t::binary:
    case value_t::discarded:
        return false;
    }
    return false;
}

} // namespace wafer::detail
