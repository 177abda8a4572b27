// A fresh directory under the system's temp directory for one test, removed at its end.
#pragma once

#include <doctest/doctest.h>

#include <cstdlib>
#include <filesystem>
#include <string>
#include <string_view>
#include <system_error>

namespace wafer::testing {

struct temp_dir {
    /// Canonical (no symlinks), so that paths a program prints compare equal.
    std::filesystem::path path;

    explicit temp_dir(std::string_view prefix = "wafer-test") {
        std::string tmpl =
            (std::filesystem::temp_directory_path() / (std::string(prefix) + "-XXXXXX")).string();
        REQUIRE(::mkdtemp(tmpl.data()) != nullptr);
        path = std::filesystem::canonical(tmpl);
    }
    ~temp_dir() {
        std::error_code ec;
        std::filesystem::remove_all(path, ec);
    }
    temp_dir(const temp_dir&) = delete;
    temp_dir& operator=(const temp_dir&) = delete;
};

} // namespace wafer::testing
