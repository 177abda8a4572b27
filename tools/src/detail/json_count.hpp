// A count (length, offset, limit) read from JSON without an undefined float-to-integer cast.
#pragma once

#include <nlohmann/json.hpp>

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <optional>

namespace wafer::tools::detail {

/// `v` as a non-negative whole number: an integer >= 0, or a whole double >= 0 (1e3 counts).
/// A double of 2^64 or more saturates to SIZE_MAX when `saturate`, else it is refused. Anything
/// else (negative, fractional, NaN, not a number) is nullopt.
inline std::optional<std::size_t> whole_count(const nlohmann::json& v, bool saturate) {
    if (v.is_number_unsigned()) {
        return v.get<std::uint64_t>();
    }
    if (v.is_number_integer() && v.get<std::int64_t>() >= 0) {
        return static_cast<std::size_t>(v.get<std::int64_t>());
    }
    if (v.is_number_float()) {
        constexpr double two_pow_64 = 18446744073709551616.0;
        const double d = v.get<double>();
        if (std::isfinite(d) && d >= 0 && std::floor(d) == d) {
            if (d < two_pow_64) {
                return static_cast<std::size_t>(d);
            }
            if (saturate) {
                return std::numeric_limits<std::size_t>::max();
            }
        }
    }
    return std::nullopt;
}

} // namespace wafer::tools::detail
