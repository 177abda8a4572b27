// Small helpers for reading HTTP header values (shared by the retry policy and admission).
#pragma once

#include <string_view>

namespace wafer::api::detail {

/// `v` without the optional whitespace (spaces and tabs) HTTP allows around a field value.
inline std::string_view trim_ows(std::string_view v) noexcept {
    while (!v.empty() && (v.front() == ' ' || v.front() == '\t')) {
        v.remove_prefix(1);
    }
    while (!v.empty() && (v.back() == ' ' || v.back() == '\t')) {
        v.remove_suffix(1);
    }
    return v;
}

} // namespace wafer::api::detail
