// UTF-8 helpers shared by the schema validator (code point counts) and the output cap.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace wafer::tools::utf8 {

inline bool is_continuation(char c) noexcept {
    return (static_cast<unsigned char>(c) & 0xC0U) == 0x80U;
}

/// Number of code points: every byte that is not a continuation byte starts one. Invalid
/// sequences count one per stray lead byte, which is what a lenient reader would show.
inline std::size_t count_code_points(std::string_view s) noexcept {
    std::size_t n = 0;
    for (char c : s) {
        n += is_continuation(c) ? 0U : 1U;
    }
    return n;
}

/// The largest length <= max_bytes that does not split a code point of `s`.
inline std::size_t boundary_at_or_before(std::string_view s, std::size_t max_bytes) noexcept {
    if (max_bytes >= s.size()) {
        return s.size();
    }
    std::size_t cut = max_bytes;
    // Step back over at most 3 continuation bytes to the start of the cut code point.
    for (int i = 0; i < 3 && cut > 0 && is_continuation(s[cut]); ++i) {
        --cut;
    }
    return is_continuation(s[cut]) ? max_bytes : cut;
}

/// Shortens `s` to at most `max_bytes` without splitting a code point.
inline void truncate_at_boundary(std::string& s, std::size_t max_bytes) {
    s.resize(boundary_at_or_before(s, max_bytes));
}

} // namespace wafer::tools::utf8
