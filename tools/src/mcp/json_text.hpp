// Reading a string member of an untrusted JSON object without trusting its type.
#pragma once

#include <nlohmann/json.hpp>

#include <string>

namespace wafer::tools::mcp::detail {

/// obj[key] when obj is an object and the member a string; empty otherwise.
inline std::string text_of(const nlohmann::json& obj, const char* key) {
    if (!obj.is_object()) {
        return {};
    }
    const auto it = obj.find(key);
    return it != obj.end() && it->is_string() ? it->get<std::string>() : std::string{};
}

} // namespace wafer::tools::mcp::detail
