#include "render.hpp"

#include <nlohmann/json.hpp>

#include <chrono>
#include <cstdio>

namespace wafer::testing::detail {

namespace {

using ojson = nlohmann::ordered_json;

// Continuation bytes of a UTF-8 sequence look like 10xxxxxx.
bool is_continuation(char c) noexcept {
    return (static_cast<unsigned char>(c) & 0xC0U) == 0x80U;
}

bool is_space(char c) noexcept {
    return c == ' ' || c == '\n' || c == '\t' || c == '\r';
}

std::string random_hex(std::mt19937_64& rng, std::size_t n) {
    static constexpr char digits[] = "0123456789abcdef";
    std::string out;
    out.reserve(n);
    std::uint64_t bits = rng();
    int left = 16;
    for (std::size_t i = 0; i < n; ++i) {
        if (left == 0) {
            bits = rng();
            left = 16;
        }
        out.push_back(digits[bits & 0xFU]);
        bits >>= 4U;
        --left;
    }
    return out;
}

ojson usage_json(const api::usage& u) {
    ojson j;
    j["prompt_tokens"] = u.prompt_tokens;
    j["completion_tokens"] = u.completion_tokens;
    j["total_tokens"] = u.total_tokens;
    j["prompt_tokens_details"] = {{"cached_tokens", u.cached_tokens}};
    ojson details;
    details["accepted_prediction_tokens"] = u.accepted_prediction_tokens;
    details["rejected_prediction_tokens"] = u.rejected_prediction_tokens;
    details["reasoning_tokens"] = u.reasoning_tokens;
    j["completion_tokens_details"] = std::move(details);
    return j;
}

ojson time_info_json(const api::time_info& t) {
    ojson j;
    j["queue_time"] = t.queue_time;
    j["prompt_time"] = t.prompt_time;
    j["completion_time"] = t.completion_time;
    j["total_time"] = t.total_time;
    j["created"] = t.created;
    return j;
}

// Tool calls as Cerebras sends them; streamed ones carry their index.
ojson tool_calls_json(const std::vector<api::tool_call>& calls, bool with_index) {
    ojson arr = ojson::array();
    int index = 0;
    for (const auto& c : calls) {
        ojson call;
        call["function"] = {{"name", c.name}, {"arguments", c.arguments}};
        call["type"] = "function";
        call["id"] = c.id;
        if (with_index) {
            call["index"] = index;
        }
        ++index;
        arr.push_back(std::move(call));
    }
    return arr;
}

ojson error_object(const scripted_error& e) {
    ojson j;
    j["message"] = e.message;
    j["type"] = e.type;
    j["param"] = e.param;
    j["code"] = e.code;
    return j;
}

} // namespace

void append_json_string(std::string& out, std::string_view s) {
    static constexpr char hex[] = "0123456789abcdef";
    out.push_back('"');
    std::size_t run = 0; // start of the pending run of bytes that need no escaping
    for (std::size_t i = 0; i < s.size(); ++i) {
        const auto c = static_cast<unsigned char>(s[i]);
        if (c >= 0x20U && c != '"' && c != '\\') {
            continue;
        }
        out.append(s.data() + run, i - run);
        run = i + 1;
        switch (c) {
        case '"':
            out.append("\\\"");
            break;
        case '\\':
            out.append("\\\\");
            break;
        case '\n':
            out.append("\\n");
            break;
        case '\r':
            out.append("\\r");
            break;
        case '\t':
            out.append("\\t");
            break;
        case '\b':
            out.append("\\b");
            break;
        case '\f':
            out.append("\\f");
            break;
        default:
            out.append("\\u00");
            out.push_back(hex[c >> 4U]);
            out.push_back(hex[c & 0xFU]);
        }
    }
    out.append(s.data() + run, s.size() - run);
    out.push_back('"');
}

std::vector<std::string_view> split_pieces(std::string_view text, std::size_t chunk_chars) {
    std::vector<std::string_view> out;
    std::size_t pos = 0;
    while (pos < text.size()) {
        std::size_t end = pos;
        if (chunk_chars > 0) {
            end = std::min(text.size(), pos + chunk_chars);
            while (end < text.size() && end > pos && is_continuation(text[end])) {
                --end;
            }
            if (end == pos) { // a single sequence longer than chunk_chars: keep it whole
                end = pos + 1;
                while (end < text.size() && is_continuation(text[end])) {
                    ++end;
                }
            }
        } else {
            while (end < text.size() && is_space(text[end])) {
                ++end;
            }
            while (end < text.size() && !is_space(text[end])) {
                ++end;
            }
        }
        out.push_back(text.substr(pos, end - pos));
        pos = end;
    }
    return out;
}

std::string make_completion_id(std::mt19937_64& rng) {
    std::string hex = random_hex(rng, 32);
    hex[12] = '4'; // UUID version 4 and RFC 4122 variant, as the real ids are
    hex[16] = "89ab"[rng() & 3U];
    return "chatcmpl-" + hex.substr(0, 8) + '-' + hex.substr(8, 4) + '-' + hex.substr(12, 4) + '-' +
           hex.substr(16, 4) + '-' + hex.substr(20, 12);
}

std::string make_tool_call_id(std::mt19937_64& rng) {
    return random_hex(rng, 9);
}

std::int64_t estimate_tokens(std::size_t chars) noexcept {
    return static_cast<std::int64_t>((chars + 3) / 4);
}

std::size_t prompt_chars(const api::chat_request& req) {
    std::size_t n = 0;
    for (const auto& m : req.messages) {
        n += m.text().size();
        if (m.reasoning) {
            n += m.reasoning->size();
        }
        for (const auto& c : m.tool_calls) {
            n += c.name.size() + c.arguments.size();
        }
    }
    return n;
}

resolved_turn resolve(scripted_turn t, const api::chat_request& req, std::mt19937_64& rng) {
    resolved_turn r;
    for (auto& c : t.tool_calls) {
        if (c.id.empty()) {
            c.id = make_tool_call_id(rng);
        }
    }
    r.id = make_completion_id(rng);
    const auto now = std::chrono::system_clock::now().time_since_epoch();
    r.created = std::chrono::duration_cast<std::chrono::seconds>(now).count();
    r.model = !t.model.empty()     ? t.model
              : !req.model.empty() ? req.model
                                   : std::string("zai-glm-4.7");
    r.system_fingerprint = "fp_7afe5e4e0c0ffee00000";
    r.finish = t.finish_reason.value_or(
        t.tool_calls.empty() ? api::finish_reason::stop : api::finish_reason::tool_calls
    );
    if (t.usage) {
        r.usage = *t.usage;
    } else {
        std::size_t completion = t.reasoning.size() + t.content.size();
        for (const auto& c : t.tool_calls) {
            completion += c.name.size() + c.arguments.size();
        }
        r.usage.prompt_tokens = estimate_tokens(prompt_chars(req));
        r.usage.completion_tokens = estimate_tokens(completion);
        r.usage.total_tokens = r.usage.prompt_tokens + r.usage.completion_tokens;
        r.usage.reasoning_tokens = estimate_tokens(t.reasoning.size());
    }
    if (t.time_info) {
        r.time_info = *t.time_info;
    } else {
        r.time_info.queue_time = 0.000125;
        r.time_info.prompt_time = static_cast<double>(r.usage.prompt_tokens) / 100000.0;
        r.time_info.completion_time = static_cast<double>(r.usage.completion_tokens) / 1000.0;
        r.time_info.total_time =
            r.time_info.queue_time + r.time_info.prompt_time + r.time_info.completion_time;
        r.time_info.created = std::chrono::duration<double>(now).count();
    }
    r.turn = std::move(t);
    return r;
}

std::string render_completion(const resolved_turn& t) {
    ojson message;
    // Keys whose value would be null are omitted, as the live API does; content is kept when it
    // is the only thing the reply has.
    const bool bare = t.turn.reasoning.empty() && t.turn.tool_calls.empty();
    if (!t.turn.content.empty() || bare) {
        message["content"] = t.turn.content;
    }
    if (!t.turn.reasoning.empty()) {
        message["reasoning"] = t.turn.reasoning;
    }
    if (!t.turn.tool_calls.empty()) {
        message["tool_calls"] = tool_calls_json(t.turn.tool_calls, false);
    }
    message["role"] = "assistant";

    ojson choice;
    choice["finish_reason"] = api::to_string(t.finish);
    choice["index"] = 0;
    choice["message"] = std::move(message);

    ojson j;
    j["id"] = t.id;
    j["choices"] = ojson::array({std::move(choice)});
    j["created"] = t.created;
    j["model"] = t.model;
    j["system_fingerprint"] = t.system_fingerprint;
    j["object"] = "chat.completion";
    j["usage"] = usage_json(t.usage);
    j["time_info"] = time_info_json(t.time_info);
    return j.dump();
}

sse_plan::sse_plan(const resolved_turn& t, std::size_t chunk_chars)
    : turn_(t), reasoning_(split_pieces(t.turn.reasoning, chunk_chars)),
      content_(split_pieces(t.turn.content, chunk_chars)) {
    prefix_ = "data: {\"id\":";
    append_json_string(prefix_, t.id);
    prefix_ += ",\"choices\":[{\"delta\":{";
    suffix_ = ",\"created\":" + std::to_string(t.created) + ",\"model\":";
    append_json_string(suffix_, t.model);
    suffix_ += ",\"system_fingerprint\":";
    append_json_string(suffix_, t.system_fingerprint);
    suffix_ += ",\"object\":\"chat.completion.chunk\"";
    // role + pieces + one chunk with every tool call + the final chunk
    count_ = 1 + reasoning_.size() + content_.size() + (t.turn.tool_calls.empty() ? 0 : 1) + 1;
}

void sse_plan::append_event(std::size_t i, std::string& out) const {
    out += prefix_;
    const std::size_t first_content = 1 + reasoning_.size();
    const std::size_t after_content = first_content + content_.size();
    if (i == 0) {
        out += "\"role\":\"assistant\"},\"index\":0}]";
    } else if (i < first_content) {
        out += "\"reasoning\":";
        append_json_string(out, reasoning_[i - 1]);
        out += "},\"index\":0}]";
    } else if (i < after_content) {
        out += "\"content\":";
        append_json_string(out, content_[i - first_content]);
        out += "},\"index\":0}]";
    } else if (i == after_content && !turn_.turn.tool_calls.empty()) {
        out += "\"tool_calls\":";
        out += tool_calls_json(turn_.turn.tool_calls, true).dump();
        out += "},\"index\":0}]";
    } else {
        out += "},\"finish_reason\":";
        append_json_string(out, api::to_string(turn_.finish));
        out += ",\"index\":0}]";
        out += suffix_;
        out += ",\"usage\":";
        out += usage_json(turn_.usage).dump();
        out += ",\"time_info\":";
        out += time_info_json(turn_.time_info).dump();
        out += "}\n\n";
        return;
    }
    out += suffix_;
    out += "}\n\n";
}

std::string render_error_body(const scripted_error& e) {
    switch (e.shape) {
    case error_shape::flat:
        return error_object(e).dump();
    case error_shape::nested: {
        ojson inner = error_object(e);
        inner["id"] = "";
        ojson j;
        j["status_code"] = e.status;
        j["error"] = std::move(inner);
        return j.dump();
    }
    case error_shape::detail:
        return ojson{{"detail", e.message}}.dump();
    }
    return error_object(e).dump();
}

std::string render_stream_error(const scripted_error& e) {
    ojson inner = error_object(e);
    inner["id"] = "";
    ojson j;
    j["error"] = std::move(inner);
    j["status_code"] = e.status;
    return "data: " + j.dump() + "\n\n";
}

} // namespace wafer::testing::detail
