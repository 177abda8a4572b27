#include "secret_env.hpp"

#include <cstdlib>
#include <cstring>
#include <string_view>
#include <vector>

extern char** environ;

namespace wafer::cli {

std::string take_secret_env(const char* name) {
    const std::string_view key = name;
    std::string value;
    bool found = false;
    // Every entry of that name (an environment may hold duplicates; getenv sees only one).
    std::vector<char*> entries;
    for (char** e = environ; e != nullptr && *e != nullptr; ++e) {
        const std::string_view entry = *e;
        if (entry.size() > key.size() && entry.starts_with(key) && entry[key.size()] == '=') {
            if (!found) {
                value = std::string(entry.substr(key.size() + 1));
                found = true;
            }
            entries.push_back(*e);
        }
    }
    if (const char* v = std::getenv(name); v != nullptr && !found) {
        value = v;
    }
    ::unsetenv(name);
    // unsetenv only drops the pointers; the strings (in the block the kernel shows as
    // /proc/<pid>/environ, or copies made by setenv) keep the value until overwritten.
    for (char* entry : entries) {
        std::memset(entry, 0, std::strlen(entry));
    }
    return value;
}

} // namespace wafer::cli
