// Small helpers for tolerant JSON reading: absent and null mean "not set".
#pragma once

#include <nlohmann/json.hpp>

#include <limits>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>

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

/// v->get<T>(), except that a float outside an integer T's range throws out_of_range: nlohmann
/// converts it with a plain cast, which is undefined behaviour (e.g. "turn": 1e30).
template <class T>
T get_checked(const nlohmann::json& v) {
    if constexpr (std::is_integral_v<T> && !std::is_same_v<T, bool>) {
        if (v.is_number_float()) {
            // [lo, hi) with hi = max + 1: both are zero or powers of two, exact as doubles.
            constexpr double lo = static_cast<double>(std::numeric_limits<T>::min());
            constexpr double hi = static_cast<double>(std::numeric_limits<T>::max() / 2 + 1) * 2.0;
            const double d = v.get<double>();
            if (!(d >= lo && d < hi)) {
                throw nlohmann::json::out_of_range::create(406, "number out of range", &v);
            }
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
