// ASCII case folding for protocol tokens (header names, schemes, model ids): the C locale's,
// whatever the process's locale.
#pragma once

#include <string>
#include <string_view>

namespace wafer::detail {

inline std::string ascii_lower(std::string_view s) {
    std::string out(s);
    for (char& c : out) {
        if (c >= 'A' && c <= 'Z') {
            c = static_cast<char>(c - 'A' + 'a');
        }
    }
    return out;
}

} // namespace wafer::detail
