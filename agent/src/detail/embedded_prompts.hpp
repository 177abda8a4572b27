// The prompt templates compiled into the library (generated from prompts/*.md).
#pragma once

#include <string_view>
#include <vector>

namespace wafer::detail {

struct embedded_prompt {
    std::string_view name;
    std::string_view text;
};

/// Sorted by name.
const std::vector<embedded_prompt>& embedded_prompts();

} // namespace wafer::detail
