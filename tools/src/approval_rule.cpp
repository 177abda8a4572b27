#include <wafer/tools/approval_rule.hpp>

#include <nlohmann/json.hpp>

namespace wafer::tools {

bool approval_rule::needs(std::string_view arguments) const {
    if (always_) {
        return true;
    }
    if (!when_) {
        return false;
    }
    const nlohmann::json args = nlohmann::json::parse(arguments, nullptr, false);
    if (!args.is_object()) {
        return true; // malformed: nobody can tell what the call would do
    }
    try {
        return when_(args);
    } catch (...) {
        return true;
    }
}

} // namespace wafer::tools
