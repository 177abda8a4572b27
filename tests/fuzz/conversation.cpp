// A saved conversation loaded from JSON, repaired, and turned into the next request.
//
// Input: JSON text (a conversation document as written by to_json, or anything else).
// Properties: from_json throws only nlohmann::json::exception or std::invalid_argument; a loaded
// conversation saves and loads back equal; repair is idempotent; build_request_messages gives
// the same messages from the conversation and from its plain message list, leaves nothing to
// repair, and strips keys a role may not carry; the request serialises to the same JSON as
// nlohmann's to_json (or both report invalid UTF-8).
#include <wafer/api/chat_request.hpp>
#include <wafer/conversation.hpp>

#include <nlohmann/json.hpp>

#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <string_view>

#include "fuzz_check.hpp"

using nlohmann::json;
using namespace wafer;

namespace {

void check_request_messages(const conversation& c, const replay_options& opts) {
    std::vector<history_repair> repairs;
    const auto msgs = build_request_messages(c, opts, &repairs);
    WAFER_FUZZ_CHECK(msgs == build_request_messages(c.messages(), opts));
    std::vector<history_repair> again;
    (void)build_request_messages(msgs, opts, &again);
    WAFER_FUZZ_CHECK(again.empty());
    for (const api::message& m : msgs) {
        if (m.role != api::role::assistant) {
            WAFER_FUZZ_CHECK(m.tool_calls.empty());
            WAFER_FUZZ_CHECK(!m.reasoning);
        }
        if (m.role != api::role::tool) {
            WAFER_FUZZ_CHECK(!m.tool_call_id);
        } else {
            WAFER_FUZZ_CHECK(m.content || !m.parts.empty());
        }
        if (opts.effective_carrier() != reasoning_carrier::field) {
            WAFER_FUZZ_CHECK(!m.reasoning);
        }
    }

    api::chat_request req;
    req.model = "zai-glm-4.7";
    req.messages = msgs;
    apply_replay_params(req, opts);
    std::string body;
    bool serialised = true;
    try {
        body = api::serialize(req);
    } catch (const json::type_error&) {
        serialised = false;
    }
    json expected;
    bool dumped = true;
    try {
        expected = json::parse(json(req).dump());
    } catch (const json::type_error&) {
        dumped = false;
    }
    WAFER_FUZZ_CHECK(serialised == dumped);
    if (serialised) {
        WAFER_FUZZ_CHECK(json::parse(body) == expected);
    }
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view in(reinterpret_cast<const char*>(data), size);
    const json doc = json::parse(in, nullptr, /*allow_exceptions=*/false);
    if (doc.is_discarded()) {
        return 0;
    }
    conversation c;
    try {
        from_json(doc, c);
    } catch (const json::exception&) {
        return 0;
    } catch (const std::invalid_argument&) {
        return 0;
    }

    // Saved and loaded back: the same state (skipped if the text cannot be emitted as JSON).
    json saved;
    to_json(saved, c);
    bool emittable = true;
    try {
        (void)saved.dump();
    } catch (const json::type_error&) {
        emittable = false;
    }
    if (emittable) {
        conversation back;
        from_json(json::parse(saved.dump()), back);
        WAFER_FUZZ_CHECK(back == c);
    }

    conversation repaired = c;
    (void)repaired.repair();
    WAFER_FUZZ_CHECK(repaired.meta().size() == repaired.messages().size());
    WAFER_FUZZ_CHECK(repaired.repair().empty());

    for (auto mode : {replay_mode::preserve_all, replay_mode::current_turn, replay_mode::drop}) {
        for (auto family : {model_family::glm, model_family::qwen, model_family::none}) {
            replay_options opts;
            opts.family = family;
            opts.mode = mode;
            check_request_messages(c, opts);
        }
    }
    return 0;
}
