#include "ecma_regex.hpp"

#include <cstddef>
#include <re2/re2.h>

namespace wafer::tools::detail {

namespace {

bool is_hex(char c) {
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

bool starts_with(std::string_view s, std::size_t at, std::string_view prefix) {
    return s.substr(at, prefix.size()) == prefix;
}

// Rewrites `p` into RE2 syntax; returns an error text for constructs RE2 cannot run.
std::string translate(std::string_view p, std::string& out) {
    bool in_class = false;
    for (std::size_t i = 0; i < p.size(); ++i) {
        const char c = p[i];
        if (c == '\\') {
            if (i + 1 >= p.size()) {
                out += c; // RE2 reports the trailing backslash
                continue;
            }
            const char n = p[i + 1];
            if (!in_class && n >= '1' && n <= '9') {
                return "it uses a backreference (\\" + std::string(1, n) +
                       "), which the linear-time regex engine (RE2) does not support";
            }
            if (!in_class && n == 'k' && starts_with(p, i + 2, "<")) {
                return "it uses a named backreference (\\k<...>), which the linear-time regex "
                       "engine (RE2) does not support";
            }
            if (n == 'u' && i + 5 < p.size() && is_hex(p[i + 2]) && is_hex(p[i + 3]) &&
                is_hex(p[i + 4]) && is_hex(p[i + 5])) {
                out += "\\x{";
                out += p.substr(i + 2, 4);
                out += '}';
                i += 5;
                continue;
            }
            if (n == 'u' && starts_with(p, i + 2, "{")) {
                const std::size_t close = p.find('}', i + 3);
                if (close != std::string_view::npos) {
                    out += "\\x";
                    out += p.substr(i + 2, close - (i + 2) + 1);
                    i = close;
                    continue;
                }
            }
            if (n == '0' && (i + 2 >= p.size() || p[i + 2] < '0' || p[i + 2] > '9')) {
                out += "\\x00";
                ++i;
                continue;
            }
            out += c;
            out += n;
            ++i;
            continue;
        }
        if (in_class) {
            if (c == ']') {
                in_class = false;
            }
            out += c;
            continue;
        }
        if (c == '[') {
            if (starts_with(p, i, "[^]")) {
                out += "(?s:.)"; // ECMA: any character, line terminators included
                i += 2;
                continue;
            }
            in_class = true;
            out += c;
            // A ']' right after '[' or '[^' is a literal in RE2 but ends an empty class in
            // ECMA; both are rare, RE2's reading is kept.
            continue;
        }
        if (c == '(' && starts_with(p, i, "(?")) {
            if (starts_with(p, i, "(?=") || starts_with(p, i, "(?!")) {
                return "it uses lookahead (" + std::string(p.substr(i, 3)) +
                       "...), which the linear-time regex engine (RE2) does not support";
            }
            if (starts_with(p, i, "(?<=") || starts_with(p, i, "(?<!")) {
                return "it uses lookbehind (" + std::string(p.substr(i, 4)) +
                       "...), which the linear-time regex engine (RE2) does not support";
            }
            if (starts_with(p, i, "(?<")) {
                out += "(?P<"; // named group
                i += 2;
                continue;
            }
        }
        out += c;
    }
    return {};
}

} // namespace

regex_compile_result compile_ecma_regex(std::string_view pattern) {
    regex_compile_result r;
    std::string translated;
    translated.reserve(pattern.size() + 8);
    r.error = translate(pattern, translated);
    if (!r.error.empty()) {
        r.unsupported = true;
        return r;
    }
    RE2::Options opts;
    opts.set_log_errors(false);
    opts.set_encoding(RE2::Options::EncodingUTF8);
    auto re = std::make_shared<const RE2>(translated, opts);
    if (!re->ok()) {
        r.error = re->error();
        return r;
    }
    r.re = std::move(re);
    return r;
}

bool regex_search(const re2::RE2& re, std::string_view text) {
    return RE2::PartialMatch(re2::StringPiece(text.data(), text.size()), re);
}

} // namespace wafer::tools::detail
