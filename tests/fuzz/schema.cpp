// The schema compiler and validator on a random schema and instance.
//
// Input: SCHEMA-JSON NUL INSTANCE-JSON (no NUL: the instance is null). Text that is not JSON is
// skipped. Properties: compile() either succeeds or throws schema_error (nothing else); validate()
// and is_valid() never throw and agree; at most max_errors violations are reported, and each
// path is a JSON pointer to a value that exists in the instance.
#include <wafer/tools/schema.hpp>

#include <nlohmann/json.hpp>

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>

#include "fuzz_check.hpp"

using nlohmann::json;
using wafer::tools::schema;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view in(reinterpret_cast<const char*>(data), size);
    const auto nul = in.find('\0');
    const json doc = json::parse(in.substr(0, nul), nullptr, /*allow_exceptions=*/false);
    if (doc.is_discarded()) {
        return 0;
    }
    json instance = nullptr;
    if (nul != std::string_view::npos) {
        instance = json::parse(in.substr(nul + 1), nullptr, /*allow_exceptions=*/false);
        if (instance.is_discarded()) {
            return 0;
        }
    }

    std::optional<schema> s;
    try {
        s = schema::compile(doc);
    } catch (const wafer::tools::schema_error&) {
        return 0;
    }
    WAFER_FUZZ_CHECK(s->source() == doc);

    const auto errors = s->validate(instance, 4);
    WAFER_FUZZ_CHECK(errors.size() <= 4);
    WAFER_FUZZ_CHECK(s->is_valid(instance) == errors.empty());
    WAFER_FUZZ_CHECK(s->validate(instance, 1).size() == (errors.empty() ? 0u : 1u));
    for (const auto& e : errors) {
        WAFER_FUZZ_CHECK(!e.message.empty());
        json::json_pointer ptr(e.path); // throws (a finding) if the path is not a JSON pointer
        WAFER_FUZZ_CHECK(instance.contains(ptr));
        (void)e.to_string();
    }
    return 0;
}
