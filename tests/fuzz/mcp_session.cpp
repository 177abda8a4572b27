// What an MCP server answers, read by the client's sans-io core in both protocol generations,
// and the server JSON the client reads beside it (tools, call results, input_required results,
// elicitation forms).
//
// Input: `[flags][lines]`: flags bit 0 picks the stateless (2026) era, bit 3 the automatic one
// (the probe), bit 4 feeds the lines through the stdio framer; each line is one message
// of the server. Properties: nothing throws; every request the harness made ends at most once
// and is no longer awaited once it ended; the session's output stays lines of JSON; whatever a
// line holds, reading it as a tool, a call result, an input_required result or a form is a value
// or a refusal, never a crash.
#include <wafer/tools/mcp/elicitation.hpp>
#include <wafer/tools/mcp/jsonrpc.hpp>
#include <wafer/tools/mcp/mrtr.hpp>
#include <wafer/tools/mcp/server_tools.hpp>
#include <wafer/tools/mcp/session.hpp>

#include <nlohmann/json.hpp>

#include <cstddef>
#include <cstdint>
#include <set>
#include <string>
#include <string_view>
#include <variant>

#include "fuzz_check.hpp"

using namespace wafer::tools::mcp;
using nlohmann::json;

namespace {

void read_as_server_json(std::string_view line) {
    if (!nesting_within(line, max_nesting)) {
        return; // read_message refuses such lines before anything reads them
    }
    const json j = json::parse(line, nullptr, false);
    if (j.is_discarded()) {
        return;
    }
    const json& r = j.is_object() && j.contains("result") ? j["result"] : j;
    std::string why;
    if (r.is_object() && r.contains("tools") && r["tools"].is_array()) {
        for (const auto& t : r["tools"]) {
            if (auto info = read_tool_info(t, &why)) {
                WAFER_FUZZ_CHECK(!info->name.empty());
                WAFER_FUZZ_CHECK(info->input_schema.is_object());
            } else {
                WAFER_FUZZ_CHECK(!why.empty());
            }
        }
    }
    static_cast<void>(read_call_result(r));
    bool malformed = false;
    const auto asked = read_input_required(r, malformed, &why);
    WAFER_FUZZ_CHECK(!(asked && malformed));
    if (asked) {
        WAFER_FUZZ_CHECK(!asked->requests.empty() || asked->request_state);
        const json retry = retry_params(json::object(), json::object(), asked->request_state);
        WAFER_FUZZ_CHECK(retry.is_object());
    }
    const json defaults = elicitation_defaults(r.is_object() ? r.value("requestedSchema", r) : r);
    WAFER_FUZZ_CHECK(defaults.is_object());
    static_cast<void>(read_param_headers(r, &why));
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size == 0) {
        return 0;
    }
    session_config cfg;
    cfg.era = (data[0] & 1U) != 0 ? protocol_era::stateless : protocol_era::dated;
    if ((data[0] & 8U) != 0) {
        cfg.era = protocol_era::automatic;
    }
    const bool framed = (data[0] & 16U) != 0; // as stdio lines, oversized ones included
    cfg.elicitation = (data[0] & 2U) != 0;
    cfg.max_message = 4096;
    if ((data[0] & 4U) != 0) {
        cfg.roots.push_back({"file:///w", "w"});
    }
    session s(cfg);
    auto now = session_clock::now();
    s.start(now);
    std::set<std::int64_t> open;
    std::set<std::int64_t> ended;
    const std::string_view input(reinterpret_cast<const char*>(data) + 1, size - 1);
    std::size_t pos = 0;
    int round = 0;
    while (pos <= input.size()) {
        const std::size_t nl = input.find('\n', pos);
        const std::string_view line =
            input.substr(pos, nl == std::string_view::npos ? std::string_view::npos : nl - pos);
        read_as_server_json(line);
        if (framed) {
            s.receive(std::string(line) + "\n", now);
        } else {
            s.receive_message(line, now);
        }
        if (s.ready() && round % 2 == 0) {
            request_options ro;
            ro.progress = round % 4 == 0;
            open.insert(s.request("tools/call", json::parse(R"({"name":"t"})"), now, ro));
        }
        if (round % 5 == 4 && !open.empty()) {
            s.cancel(*open.begin(), "fuzz");
        }
        if (round % 7 == 6 && !open.empty()) {
            s.abandon(*open.rbegin(), errc::transport, "fuzz");
        }
        now += std::chrono::seconds(7);
        s.on_time(now);
        for (auto& ev : s.take_events()) {
            if (auto* r = std::get_if<response_event>(&ev)) {
                WAFER_FUZZ_CHECK(ended.insert(r->id).second);
                WAFER_FUZZ_CHECK(!s.awaiting(r->id));
                open.erase(r->id);
            }
            if (auto* q = std::get_if<server_request_event>(&ev)) {
                s.respond(q->id, elicitation_answer("decline"));
            }
        }
        const std::string out = s.take_output();
        std::size_t start = 0;
        while (start < out.size()) {
            const std::size_t end = out.find('\n', start);
            WAFER_FUZZ_CHECK(end != std::string::npos);
            WAFER_FUZZ_CHECK(
                !json::parse(out.substr(start, end - start), nullptr, false).is_discarded()
            );
            start = end + 1;
        }
        ++round;
        if (nl == std::string_view::npos) {
            break;
        }
        pos = nl + 1;
    }
    s.close(errc::closed, "fuzz end");
    for (auto& ev : s.take_events()) {
        if (auto* r = std::get_if<response_event>(&ev)) {
            WAFER_FUZZ_CHECK(ended.insert(r->id).second);
        }
    }
    for (const auto id : open) {
        WAFER_FUZZ_CHECK(ended.contains(id));
    }
    return 0;
}
