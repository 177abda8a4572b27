#include <wafer/tools/command_environment.hpp>

#include <algorithm>

namespace wafer::tools {

bool env_name_matches(std::string_view pattern, std::string_view name) noexcept {
    if (!pattern.empty() && pattern.back() == '*') {
        pattern.remove_suffix(1);
        return name.size() >= pattern.size() && name.substr(0, pattern.size()) == pattern;
    }
    return name == pattern;
}

namespace {

bool matches_any(const std::vector<std::string>& patterns, std::string_view name) {
    return std::any_of(patterns.begin(), patterns.end(), [&](const std::string& p) {
        return env_name_matches(p, name);
    });
}

// Replaces the entry named `name` or appends one.
void put(std::vector<std::string>& entries, std::string_view name, std::string_view value) {
    std::string entry;
    entry.reserve(name.size() + 1 + value.size());
    entry.append(name).append("=").append(value);
    for (auto& e : entries) {
        if (e.size() > name.size() && e[name.size()] == '=' &&
            e.compare(0, name.size(), name) == 0) {
            e = std::move(entry);
            return;
        }
    }
    entries.push_back(std::move(entry));
}

} // namespace

std::vector<std::string> build_command_environment(
    const command_environment& env,
    const char* const* parent,
    const std::vector<std::pair<std::string, std::string>>& overrides
) {
    std::vector<std::string> out;
    for (const char* const* e = parent; e != nullptr && *e != nullptr; ++e) {
        const std::string_view entry(*e);
        const auto eq = entry.find('=');
        if (eq == std::string_view::npos || eq == 0) {
            continue;
        }
        const std::string_view name = entry.substr(0, eq);
        if (matches_any(env.unset, name)) {
            continue;
        }
        if (env.inherit_all || matches_any(env.pass, name) || matches_any(env.pass_extra, name)) {
            put(out, name, entry.substr(eq + 1));
        }
    }
    for (const auto& [name, value] : env.set) {
        if (!name.empty() && name.find('=') == std::string::npos) {
            put(out, name, value);
        }
    }
    for (const auto& [name, value] : overrides) {
        put(out, name, value);
    }
    return out;
}

} // namespace wafer::tools
