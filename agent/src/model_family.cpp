#include <wafer/model_family.hpp>

#include <algorithm>
#include <array>
#include <cctype>
#include <string>

#include "detail/ascii.hpp"

namespace wafer {

using wafer::detail::ascii_lower;

namespace {

constexpr std::array<std::string_view, 5> family_names{"unknown", "none", "glm", "gpt_oss", "qwen"};

bool starts_with(std::string_view s, std::string_view prefix) {
    return s.substr(0, prefix.size()) == prefix;
}

} // namespace

std::string_view to_string(model_family f) noexcept {
    return family_names[static_cast<std::size_t>(f)];
}

std::optional<model_family> model_family_from_string(std::string_view s) noexcept {
    for (std::size_t i = 0; i < family_names.size(); ++i) {
        if (family_names[i] == s) {
            return static_cast<model_family>(i);
        }
    }
    return std::nullopt;
}

model_family detect_model_family(std::string_view model_id) noexcept {
    const std::string id = ascii_lower(model_id);
    // Routers and gateways prefix ids with the provider ("cerebras/zai-glm-4.7").
    std::string_view name = id;
    if (auto slash = name.rfind('/'); slash != std::string_view::npos) {
        name.remove_prefix(slash + 1);
    }
    if (name.find("glm") != std::string_view::npos) {
        return model_family::glm;
    }
    if (starts_with(name, "gpt-oss")) {
        return model_family::gpt_oss;
    }
    if (starts_with(name, "qwen") || starts_with(name, "qwq")) {
        // qwen-3-235b-a22b-instruct-2507 does not reason; qwen-3-32b and *-thinking-* do.
        return name.find("instruct") != std::string_view::npos ? model_family::none
                                                               : model_family::qwen;
    }
    if (starts_with(name, "llama")) {
        return model_family::none;
    }
    return model_family::unknown;
}

} // namespace wafer
