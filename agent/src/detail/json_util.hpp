// Small helpers for tolerant JSON reading: absent and null mean "not set".
#pragma once

#include <nlohmann/json.hpp>

#include <optional>
#include <string>
#include <string_view>

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

template <class T>
void read_optional(const nlohmann::json& j, std::string_view key, std::optional<T>& out) {
    if (auto* v = member(j, key)) {
        out = v->get<T>();
    }
}

template <class T>
void read_value(const nlohmann::json& j, std::string_view key, T& out) {
    if (auto* v = member(j, key)) {
        out = v->get<T>();
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
