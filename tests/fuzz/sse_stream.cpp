// SSE parser -> chunk decoder -> accumulator, on arbitrary bytes.
//
// Input: [k][k piece sizes][stream]. k = byte 0 % 16 piece sizes follow (one byte each); the
// stream is fed in those pieces (the rest in one last piece). Properties:
// - the events are the same whether the stream is fed whole, in the chosen pieces or byte by
//   byte (and so are pending_bytes / has_partial_event at the end);
// - a reused decoder decodes a payload exactly as a fresh one does (the first events, for speed);
// - the accumulated message serialises into a request, or the serialiser reports invalid UTF-8.
#include <wafer/api/accumulator.hpp>
#include <wafer/api/chat_request.hpp>
#include <wafer/api/chunk_decoder.hpp>
#include <wafer/api/sse_parser.hpp>

#include <nlohmann/json.hpp>

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "fuzz_check.hpp"

namespace {

using namespace wafer::api;

struct owned_event {
    std::string event;
    std::string data;
    std::string id;
    std::optional<unsigned long> retry;
    bool operator==(const owned_event&) const = default;
};

struct parse_result {
    std::vector<owned_event> events;
    std::size_t pending = 0;
    bool partial = false;
    bool operator==(const parse_result&) const = default;
};

void drain(sse_parser& p, std::vector<owned_event>& out) {
    while (auto ev = p.next()) {
        out.push_back(
            {std::string(ev->event), std::string(ev->data), std::string(ev->id), ev->retry}
        );
    }
}

parse_result parse_in_pieces(std::string_view stream, const std::vector<std::size_t>& pieces) {
    sse_parser p;
    parse_result r;
    std::size_t pos = 0;
    for (std::size_t n : pieces) {
        n = std::min(n, stream.size() - pos);
        p.feed(stream.substr(pos, n));
        pos += n;
        drain(p, r.events);
    }
    p.feed(stream.substr(pos));
    drain(p, r.events);
    r.pending = p.pending_bytes();
    r.partial = p.has_partial_event();
    return r;
}

bool same_delta(const tool_call_delta& a, const tool_call_delta& b) {
    return a.index == b.index && a.id == b.id && a.name == b.name && a.arguments == b.arguments;
}

bool same_chunk(const chunk_view& a, const chunk_view& b) {
    if (a.id != b.id || a.model != b.model || a.system_fingerprint != b.system_fingerprint ||
        a.created != b.created || a.role != b.role || a.content != b.content ||
        a.reasoning != b.reasoning || a.has_content != b.has_content ||
        a.has_reasoning != b.has_reasoning || a.tool_call_count != b.tool_call_count ||
        a.finish_reason != b.finish_reason || a.usage != b.usage ||
        a.time_info.has_value() != b.time_info.has_value() ||
        a.error.has_value() != b.error.has_value()) {
        return false;
    }
    for (std::size_t i = 0; i < a.tool_call_count; ++i) {
        if (!same_delta(a.tool_calls[i], b.tool_calls[i])) {
            return false;
        }
    }
    if (a.error) {
        const stream_error& x = *a.error;
        const stream_error& y = *b.error;
        return x.status_code == y.status_code && x.message == y.message && x.type == y.type &&
               x.code == y.code && x.param == y.param;
    }
    return true;
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size == 0) {
        return 0;
    }
    const std::size_t k = std::min<std::size_t>(data[0] % 16, size - 1);
    std::vector<std::size_t> pieces;
    for (std::size_t i = 0; i < k; ++i) {
        pieces.push_back(data[1 + i]);
    }
    const std::string_view stream(reinterpret_cast<const char*>(data) + 1 + k, size - 1 - k);

    const parse_result whole = parse_in_pieces(stream, {});
    WAFER_FUZZ_CHECK(parse_in_pieces(stream, pieces) == whole);
    if (stream.size() <= 1024) { // byte by byte is quadratic in the line length
        const std::vector<std::size_t> bytewise(stream.size(), 1);
        WAFER_FUZZ_CHECK(parse_in_pieces(stream, bytewise) == whole);
    }

    chunk_decoder reused;
    accumulator acc;
    std::size_t decoded = 0;
    for (const owned_event& ev : whole.events) {
        if (ev.data == "[DONE]") {
            break;
        }
        boost::system::error_code ec;
        const chunk_view& c = reused.decode(ev.data, ec);
        if (++decoded <= 8) {
            chunk_decoder fresh;
            boost::system::error_code fresh_ec;
            const chunk_view& f = fresh.decode(ev.data, fresh_ec);
            WAFER_FUZZ_CHECK(ec == fresh_ec);
            WAFER_FUZZ_CHECK(same_chunk(c, f));
        }
        if (ec) {
            WAFER_FUZZ_CHECK(c.tool_call_count == 0 && c.content.empty() && !c.error);
            continue;
        }
        if (c.error) {
            continue; // the client ends the stream with an error here
        }
        acc.add(c);
    }

    // What the agent does next: the message goes into the following request.
    chat_response resp = acc.to_response();
    chat_request req;
    req.model = "m";
    req.messages.push_back(acc.message());
    try {
        const std::string body = serialize(req);
        WAFER_FUZZ_CHECK(nlohmann::json::accept(body));
    } catch (const nlohmann::json::type_error&) {
        // Invalid UTF-8 in the model's text is reported, not sent.
    }
    nlohmann::json j;
    to_json(j, resp);
    return 0;
}
