#include <wafer/telemetry/span.hpp>

#include <algorithm>
#include <random>

#include "telemetry/hex.hpp"

namespace wafer::telemetry {

namespace {

using detail::put_hex;

template <std::size_t N>
std::string hex_of(const std::array<std::uint8_t, N>& id) {
    std::string out(N * 2, '0');
    put_hex(out.data(), id);
    return out;
}

// Lowercase hex only: W3C forbids uppercase in traceparent.
int hex_value(char c) noexcept {
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }
    return -1;
}

template <std::size_t N>
bool parse_hex(std::string_view s, std::array<std::uint8_t, N>& out) noexcept {
    if (s.size() != N * 2) {
        return false;
    }
    for (std::size_t i = 0; i < N; ++i) {
        const int hi = hex_value(s[2 * i]);
        const int lo = hex_value(s[2 * i + 1]);
        if (hi < 0 || lo < 0) {
            return false;
        }
        out[i] = static_cast<std::uint8_t>(hi * 16 + lo);
    }
    return true;
}

template <std::size_t N>
bool all_zero(const std::array<std::uint8_t, N>& id) noexcept {
    return std::all_of(id.begin(), id.end(), [](std::uint8_t b) { return b == 0; });
}

// splitmix64: ids need to be unique, not secret; a per-thread state keeps it lock-free.
std::uint64_t next_random() noexcept {
    thread_local std::uint64_t state = [] {
        std::random_device rd;
        return (std::uint64_t{rd()} << 32) ^ rd();
    }();
    std::uint64_t z = (state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

void fill_random(std::uint8_t* p, std::size_t n) noexcept {
    for (std::size_t i = 0; i < n; i += 8) {
        std::uint64_t r = next_random();
        for (std::size_t j = i; j < n && j < i + 8; ++j) {
            p[j] = static_cast<std::uint8_t>(r);
            r >>= 8;
        }
    }
}

} // namespace

bool span_context::valid() const noexcept {
    return !all_zero(trace) && !all_zero(span);
}

std::string to_hex(const trace_id& id) {
    return hex_of(id);
}

std::string to_hex(const span_id& id) {
    return hex_of(id);
}

std::string format_traceparent(const span_context& ctx) {
    // Written in place: this is on every model request of a traced run.
    std::string out(55, '-');
    char* p = out.data();
    *p++ = '0';
    *p++ = '0';
    p = put_hex(p + 1, ctx.trace);
    p = put_hex(p + 1, ctx.span);
    p[1] = '0';
    p[2] = ctx.sampled ? '1' : '0';
    return out;
}

std::optional<span_context> parse_traceparent(std::string_view v) noexcept {
    // version "-" trace-id "-" parent-id "-" flags: 2 + 1 + 32 + 1 + 16 + 1 + 2.
    if (v.size() < 55 || v[2] != '-' || v[35] != '-' || v[52] != '-') {
        return std::nullopt;
    }
    std::array<std::uint8_t, 1> version{};
    std::array<std::uint8_t, 1> flags{};
    span_context ctx;
    if (!parse_hex(v.substr(0, 2), version) || version[0] == 0xff ||
        !parse_hex(v.substr(3, 32), ctx.trace) || !parse_hex(v.substr(36, 16), ctx.span) ||
        !parse_hex(v.substr(53, 2), flags)) {
        return std::nullopt;
    }
    // Version 00 has exactly these fields; a later version may append "-..." fields.
    if ((version[0] == 0 && v.size() != 55) || (v.size() > 55 && v[55] != '-')) {
        return std::nullopt;
    }
    if (!ctx.valid()) {
        return std::nullopt;
    }
    ctx.sampled = (flags[0] & 1) != 0;
    return ctx;
}

trace_id new_trace_id() noexcept {
    trace_id id{};
    do {
        fill_random(id.data(), id.size());
    } while (all_zero(id));
    return id;
}

span_id new_span_id() noexcept {
    span_id id{};
    do {
        fill_random(id.data(), id.size());
    } while (all_zero(id));
    return id;
}

const attribute_value* span_data::find(std::string_view key) const noexcept {
    for (const auto& a : attributes) {
        if (a.key == key) {
            return &a.value;
        }
    }
    return nullptr;
}

} // namespace wafer::telemetry
