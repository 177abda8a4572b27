// Shared by the harnesses: a failed property aborts, so libFuzzer saves the input as a crash.
#pragma once

#include <cstdio>
#include <cstdlib>

namespace wafer::fuzz {

[[noreturn]] inline void property_failed(const char* what, const char* file, int line) {
    std::fprintf(stderr, "fuzz property failed: %s (%s:%d)\n", what, file, line);
    std::abort();
}

} // namespace wafer::fuzz

// Checked in every build type (the fuzz build keeps NDEBUG off, but this must not depend on it).
#define WAFER_FUZZ_CHECK(cond)                                                                     \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            ::wafer::fuzz::property_failed(#cond, __FILE__, __LINE__);                             \
        }                                                                                          \
    } while (false)

#include <nlohmann/json.hpp>

#include <string>

namespace wafer::fuzz {

/// True if `s` is valid UTF-8, i.e. nlohmann (and so every JSON writer in wafer) can emit it.
inline bool is_valid_utf8(const std::string& s) {
    try {
        (void)nlohmann::json(s).dump();
        return true;
    } catch (const nlohmann::json::type_error&) {
        return false;
    }
}

} // namespace wafer::fuzz
