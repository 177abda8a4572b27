// A non-streaming reply body, read as the client reads it (nlohmann DOM, then chat_response).
//
// Input: the response body. Properties: from_json throws only std::exception subclasses (the
// client turns them into invalid_response) and no undefined behaviour (UBSan: e.g. a count
// beyond int64); writing a loaded reply is a fixed point (written, loaded and written again: the
// same JSON).
#include <wafer/api/chat_response.hpp>

#include <nlohmann/json.hpp>

#include <cstddef>
#include <cstdint>
#include <exception>
#include <string_view>

#include "fuzz_check.hpp"

using nlohmann::json;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view body(reinterpret_cast<const char*>(data), size);
    const json j = json::parse(body, nullptr, /*allow_exceptions=*/false);
    if (j.is_discarded() || !j.is_object()) {
        return 0;
    }
    wafer::api::chat_response r;
    try {
        r = j.get<wafer::api::chat_response>();
    } catch (const std::exception&) {
        return 0;
    }
    (void)r.first_message();
    const json written = r;
    const auto back = json::parse(written.dump()).get<wafer::api::chat_response>();
    WAFER_FUZZ_CHECK(json(back) == written);
    return 0;
}
