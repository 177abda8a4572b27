// JSON for the CLI's --json lines: one line, invalid UTF-8 from the model or a server replaced
// with U+FFFD instead of thrown.
#pragma once

#include <nlohmann/json.hpp>

#include <string>

namespace wafer::cli {

inline std::string json_text(const nlohmann::json& j) {
    return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

} // namespace wafer::cli
