// Small helpers for tolerant JSON reading: absent and null mean "not set".
#pragma once

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>

namespace wafer::detail {

/// The member `key` of object `j` if it exists and is not null.
inline const nlohmann::json* member(const nlohmann::json& j, std::string_view key) {
    if (!j.is_object()) {
        return nullptr;
    }
    auto it = j.find(key);
    if (it == j.end() || it->is_null()) {
        return nullptr;
    }
    return &*it;
}

/// True if `d` is a whole number that integer type T can hold. Casting any other double to T
/// is undefined behaviour (1e300, NaN), or silently drops the fraction.
template <class T>
bool whole_and_in_range(double d) noexcept {
    using lim = std::numeric_limits<T>;
    // lim::min() is 0 or a power of two and 2^digits is one past lim::max(): both exact.
    return std::isfinite(d) && d == std::trunc(d) && d >= static_cast<double>(lim::min()) &&
           d < std::ldexp(1.0, lim::digits);
}

/// `v` as T. Integral T: an integer that fits T, or a float that is whole and fits T; anything
/// else throws nlohmann's out_of_range (406), never a wrapped-around or undefined value.
template <class T>
T get_checked(const nlohmann::json& v) {
    if constexpr (std::is_integral_v<T> && !std::is_same_v<T, bool>) {
        bool ok = true;
        if (v.is_number_unsigned()) {
            ok = std::in_range<T>(v.get<std::uint64_t>());
        } else if (v.is_number_integer()) {
            ok = std::in_range<T>(v.get<std::int64_t>());
        } else if (v.is_number_float()) {
            ok = whole_and_in_range<T>(v.get<double>());
            if (ok) {
                return static_cast<T>(v.get<double>());
            }
        }
        if (!ok) {
            throw nlohmann::json::out_of_range::create(
                406, "number " + v.dump() + " is not an integer in range", &v
            );
        }
    }
    return v.get<T>();
}

template <class T>
void read_optional(const nlohmann::json& j, std::string_view key, std::optional<T>& out) {
    if (auto* v = member(j, key)) {
        out = get_checked<T>(*v);
    }
}

template <class T>
void read_value(const nlohmann::json& j, std::string_view key, T& out) {
    if (auto* v = member(j, key)) {
        out = get_checked<T>(*v);
    }
}

/// Token counts are clamped, not rejected: a bogus count must not fail an otherwise good
/// reply. Negative, NaN or non-numbers count as 0, fractions are dropped, and anything above
/// `max` (api::max_token_count) counts as `max`.
inline std::int64_t clamp_count(double d, std::int64_t max) noexcept {
    if (!(d > 0)) {
        return 0; // also NaN
    }
    if (d >= static_cast<double>(max)) {
        return max;
    }
    return static_cast<std::int64_t>(d);
}

inline void
read_count(const nlohmann::json& j, std::string_view key, std::int64_t& out, std::int64_t max) {
    const nlohmann::json* v = member(j, key);
    if (!v) {
        return;
    }
    if (v->is_number_unsigned()) {
        const auto u = v->get<std::uint64_t>();
        out = u > static_cast<std::uint64_t>(max) ? max : static_cast<std::int64_t>(u);
    } else if (v->is_number_integer()) {
        out = std::clamp<std::int64_t>(v->get<std::int64_t>(), 0, max);
    } else if (v->is_number_float()) {
        out = clamp_count(v->get<double>(), max);
    } else {
        out = 0;
    }
}

template <class T>
void write_optional(nlohmann::json& j, const char* key, const std::optional<T>& v) {
    if (v) {
        j[key] = *v;
    }
}

/// A string, or an array of {"type":"text","text"} parts joined into one string.
inline std::string text_of(const nlohmann::json& v) {
    if (v.is_string()) {
        return v.get<std::string>();
    }
    std::string out;
    if (v.is_array()) {
        for (const auto& part : v) {
            if (auto* t = member(part, "text"); t && t->is_string()) {
                out += t->get_ref<const std::string&>();
            }
        }
    }
    return out;
}

} // namespace wafer::detail
