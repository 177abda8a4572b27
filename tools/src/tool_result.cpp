#include <wafer/tools/tool_result.hpp>

#include <string>

#include "detail/utf8.hpp"

namespace wafer::tools {

std::string_view to_string(result_status s) noexcept {
    switch (s) {
    case result_status::ok:
        return "ok";
    case result_status::tool_error:
        return "tool_error";
    case result_status::invalid_arguments:
        return "invalid_arguments";
    case result_status::unknown_tool:
        return "unknown_tool";
    case result_status::handler_exception:
        return "handler_exception";
    case result_status::timeout:
        return "timeout";
    case result_status::cancelled:
        return "cancelled";
    case result_status::refused:
        return "refused";
    case result_status::in_doubt:
        return "in_doubt";
    }
    return "unknown";
}

std::ostream& operator<<(std::ostream& os, result_status s) {
    return os << to_string(s);
}

bool truncate_output(std::string& text, std::size_t cap) {
    if (cap == 0 || text.size() <= cap) {
        return false;
    }
    const std::size_t total = text.size();
    utf8::truncate_at_boundary(text, cap);
    text += "\n[output truncated: " + std::to_string(text.size()) + " of " + std::to_string(total) +
            " bytes shown]";
    return true;
}

} // namespace wafer::tools
