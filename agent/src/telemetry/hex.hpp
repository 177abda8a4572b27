// Lowercase hex of trace and span ids, written in place (W3C and OTLP both want lowercase).
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>

namespace wafer::telemetry::detail {

/// Writes the 2 * N digits of `id` at `p`; returns the end.
template <std::size_t N>
char* put_hex(char* p, const std::array<std::uint8_t, N>& id) noexcept {
    constexpr char digits[] = "0123456789abcdef";
    for (std::uint8_t b : id) {
        *p++ = digits[b >> 4];
        *p++ = digits[b & 0xf];
    }
    return p;
}

/// Appends the digits of `id` to `out`.
template <std::size_t N>
void append_hex(std::string& out, const std::array<std::uint8_t, N>& id) {
    const std::size_t at = out.size();
    out.resize(at + 2 * N);
    put_hex(out.data() + at, id);
}

} // namespace wafer::telemetry::detail
