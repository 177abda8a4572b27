// What an MCP server writes to stdout, framed into lines and read as JSON-RPC messages.
//
// Input: `[p][stream bytes]`: p picks the size of the reads (1 + p % 64 bytes each).
// Properties: the frames are the same whether the stream is fed whole or in those reads; no
// frame is longer than the limit and the framer never buffers more than a line and a read;
// read_message never throws; what it reads (simdjson's fast path or nlohmann's parser) is what
// nlohmann's parser reads; a message it reads writes back as one line that reads back equal, and
// write_request writes what nlohmann's dump writes.
#include <wafer/tools/mcp/jsonrpc.hpp>
#include <wafer/tools/mcp/line_framer.hpp>

#include <nlohmann/json.hpp>

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "fuzz_check.hpp"

using namespace wafer::tools::mcp;

namespace {

constexpr std::size_t max_line = 4096;

std::vector<frame> frames_of(std::string_view stream, std::size_t piece) {
    line_framer f(max_line);
    std::vector<frame> out;
    for (std::size_t i = 0; i < stream.size(); i += piece) {
        f.feed(stream.substr(i, piece));
        WAFER_FUZZ_CHECK(f.buffered() <= 2 * max_line + piece);
        while (auto fr = f.next()) {
            out.push_back(std::move(*fr));
        }
    }
    if (auto last = f.finish()) {
        out.push_back(std::move(*last));
    }
    return out;
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size == 0) {
        return 0;
    }
    const std::size_t piece = 1 + data[0] % 64;
    const std::string_view stream(reinterpret_cast<const char*>(data) + 1, size - 1);
    const std::vector<frame> whole = frames_of(stream, stream.size() + 1);
    WAFER_FUZZ_CHECK(frames_of(stream, piece) == whole);
    for (const frame& fr : whole) {
        WAFER_FUZZ_CHECK(fr.size <= stream.size());
        if (fr.type == frame::kind::oversized) {
            WAFER_FUZZ_CHECK(fr.size > max_line && fr.text.size() <= line_framer::head_bytes);
            WAFER_FUZZ_CHECK(fr.tail.size() <= line_framer::tail_bytes);
            static_cast<void>(oversized_response_id(fr.text, fr.tail));
            continue;
        }
        WAFER_FUZZ_CHECK(fr.text.size() <= max_line);
        WAFER_FUZZ_CHECK(fr.text.find('\n') == std::string::npos);
        std::string why;
        const auto m = read_message(fr.text, &why);
        const nlohmann::json j = nlohmann::json::parse(fr.text, nullptr, false);
        if (!m) {
            WAFER_FUZZ_CHECK(!why.empty());
            // Refused as not JSON only when nlohmann refuses it too.
            WAFER_FUZZ_CHECK(why.find("not JSON") == std::string::npos || j.is_discarded());
            continue;
        }
        WAFER_FUZZ_CHECK(!j.is_discarded());
        if (m->type == rpc_message::kind::result) {
            WAFER_FUZZ_CHECK(m->result == j.at("result"));
        }
        if (!m->params.is_null()) {
            WAFER_FUZZ_CHECK(m->params == j.at("params"));
            if (m->id) {
                const nlohmann::json envelope = {
                    {"id", j.at("id")},
                    {"jsonrpc", "2.0"},
                    {"method", m->method},
                    {"params", m->params}};
                const std::string expected =
                    envelope.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
                WAFER_FUZZ_CHECK(write_request(*m->id, m->method, m->params) == expected);
            }
        }
        const std::string out = write_message(*m);
        WAFER_FUZZ_CHECK(out.find('\n') == std::string::npos);
        const auto again = read_message(out);
        WAFER_FUZZ_CHECK(again && *again == *m);
        WAFER_FUZZ_CHECK(write_message(*again) == out);
    }
    return 0;
}
