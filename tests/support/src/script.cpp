#include <wafer/testing/script.hpp>

#include <nlohmann/json.hpp>

#include <fstream>
#include <initializer_list>
#include <sstream>
#include <stdexcept>
#include <string_view>

namespace wafer::testing {

namespace {

using nlohmann::json;

[[noreturn]] void fail(std::string_view where, std::string_view what) {
    throw std::invalid_argument("script: " + std::string(where) + ": " + std::string(what));
}

void check_keys(
    const json& j, std::string_view where, std::initializer_list<std::string_view> known
) {
    if (!j.is_object()) {
        fail(where, "expected an object");
    }
    for (const auto& item : j.items()) {
        bool ok = false;
        for (auto k : known) {
            ok = ok || item.key() == k;
        }
        if (!ok) {
            fail(where, "unknown key \"" + item.key() + "\"");
        }
    }
}

std::string get_string(const json& j, const char* key, std::string_view where) {
    const auto& v = j.at(key);
    if (!v.is_string()) {
        fail(where, std::string(key) + " must be a string");
    }
    return v.get<std::string>();
}

std::size_t get_count(const json& j, const char* key, std::string_view where) {
    const auto& v = j.at(key);
    if (!v.is_number_unsigned() && !(v.is_number_integer() && v.get<long long>() >= 0)) {
        fail(where, std::string(key) + " must be a non-negative integer");
    }
    return v.get<std::size_t>();
}

// Header values may be written as numbers or booleans; they are sent as their JSON text.
std::string header_value(const json& v) {
    return v.is_string() ? v.get<std::string>() : v.dump();
}

scripted_error error_from_json(const json& j, std::string_view where) {
    check_keys(
        j,
        where,
        {"status",
         "shape",
         "message",
         "type",
         "code",
         "param",
         "retry_after",
         "retry_after_ms",
         "should_retry"}
    );
    scripted_error e;
    if (j.contains("status")) {
        if (!j["status"].is_number_integer()) {
            fail(where, "status must be an integer");
        }
        e.status = j["status"].get<int>();
    }
    if (j.contains("shape")) {
        const auto shape = get_string(j, "shape", where);
        if (shape == "flat") {
            e.shape = error_shape::flat;
        } else if (shape == "nested") {
            e.shape = error_shape::nested;
        } else if (shape == "detail") {
            e.shape = error_shape::detail;
        } else {
            fail(where, "shape must be flat, nested or detail");
        }
    }
    if (j.contains("message")) {
        e.message = get_string(j, "message", where);
    }
    if (j.contains("type")) {
        e.type = get_string(j, "type", where);
    }
    if (j.contains("code")) {
        e.code = get_string(j, "code", where);
    }
    if (j.contains("param")) {
        e.param = get_string(j, "param", where);
    }
    if (j.contains("retry_after")) {
        e.retry_after = header_value(j["retry_after"]);
    }
    if (j.contains("retry_after_ms")) {
        e.retry_after_ms = header_value(j["retry_after_ms"]);
    }
    if (j.contains("should_retry")) {
        e.should_retry = header_value(j["should_retry"]);
    }
    return e;
}

delivery delivery_from_json(const json& j, std::string_view where) {
    check_keys(
        j,
        where,
        {"chunk_chars",
         "chunk_delay_ms",
         "header_delay_ms",
         "done_marker",
         "disconnect_after_chunks",
         "malformed_chunk_at",
         "error_after_chunks",
         "stream_error",
         "headers"}
    );
    delivery d;
    if (j.contains("chunk_chars")) {
        d.chunk_chars = get_count(j, "chunk_chars", where);
    }
    if (j.contains("chunk_delay_ms")) {
        d.chunk_delay = std::chrono::milliseconds(get_count(j, "chunk_delay_ms", where));
    }
    if (j.contains("header_delay_ms")) {
        d.header_delay = std::chrono::milliseconds(get_count(j, "header_delay_ms", where));
    }
    if (j.contains("done_marker")) {
        if (!j["done_marker"].is_boolean()) {
            fail(where, "done_marker must be a boolean");
        }
        d.done_marker = j["done_marker"].get<bool>();
    }
    if (j.contains("disconnect_after_chunks")) {
        d.disconnect_after_chunks = get_count(j, "disconnect_after_chunks", where);
    }
    if (j.contains("malformed_chunk_at")) {
        d.malformed_chunk_at = get_count(j, "malformed_chunk_at", where);
    }
    if (j.contains("error_after_chunks")) {
        d.error_after_chunks = get_count(j, "error_after_chunks", where);
    }
    if (j.contains("stream_error")) {
        d.stream_error = error_from_json(j["stream_error"], std::string(where) + ".stream_error");
    }
    if (j.contains("headers")) {
        const auto& h = j["headers"];
        if (!h.is_object()) {
            fail(where, "headers must be an object of name: value");
        }
        for (const auto& item : h.items()) {
            d.headers.emplace_back(item.key(), header_value(item.value()));
        }
    }
    return d;
}

std::string read_file(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) {
        throw std::runtime_error("script: cannot read " + path);
    }
    std::ostringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

raw_reply raw_from_json(const json& j, std::string_view where) {
    check_keys(j, where, {"status", "content_type", "body", "body_file"});
    raw_reply r;
    if (j.contains("status")) {
        if (!j["status"].is_number_integer()) {
            fail(where, "status must be an integer");
        }
        r.status = j["status"].get<int>();
    }
    if (j.contains("content_type")) {
        r.content_type = get_string(j, "content_type", where);
    }
    if (j.contains("body")) {
        r.body = get_string(j, "body", where);
    }
    if (j.contains("body_file")) {
        r.body = read_file(get_string(j, "body_file", where));
    }
    return r;
}

api::tool_call call_from_json(const json& j, std::string_view where) {
    check_keys(j, where, {"id", "name", "arguments"});
    api::tool_call c;
    if (j.contains("id")) {
        c.id = get_string(j, "id", where);
    }
    c.name = j.contains("name") ? get_string(j, "name", where) : std::string();
    if (c.name.empty()) {
        fail(where, "a tool call needs a name");
    }
    if (j.contains("arguments")) {
        // Arguments are JSON text on the wire; an object in the script is serialised.
        const auto& a = j["arguments"];
        c.arguments = a.is_string() ? a.get<std::string>() : a.dump();
    } else {
        c.arguments = "{}";
    }
    return c;
}

} // namespace

reply reply_from_json(const json& j) {
    const std::string where = "reply";
    check_keys(
        j,
        where,
        {"reasoning",
         "content",
         "tool_calls",
         "finish_reason",
         "model",
         "usage",
         "time_info",
         "error",
         "raw",
         "delivery"}
    );
    delivery how;
    if (j.contains("delivery")) {
        how = delivery_from_json(j["delivery"], where + ".delivery");
    }
    if (j.contains("error") && j.contains("raw")) {
        fail(where, "give either error or raw, not both");
    }
    if (j.contains("error")) {
        return reply::failure(error_from_json(j["error"], where + ".error"), std::move(how));
    }
    if (j.contains("raw")) {
        return reply::verbatim(raw_from_json(j["raw"], where + ".raw"), std::move(how));
    }
    scripted_turn t;
    if (j.contains("reasoning")) {
        t.reasoning = get_string(j, "reasoning", where);
    }
    if (j.contains("content")) {
        t.content = get_string(j, "content", where);
    }
    if (j.contains("model")) {
        t.model = get_string(j, "model", where);
    }
    if (j.contains("tool_calls")) {
        if (!j["tool_calls"].is_array()) {
            fail(where, "tool_calls must be an array");
        }
        for (const auto& c : j["tool_calls"]) {
            t.tool_calls.push_back(call_from_json(c, where + ".tool_calls[]"));
        }
    }
    if (j.contains("finish_reason")) {
        t.finish_reason = api::finish_reason_from_string(get_string(j, "finish_reason", where));
    }
    try {
        if (j.contains("usage")) {
            t.usage = j["usage"].get<api::usage>();
        }
        if (j.contains("time_info")) {
            t.time_info = j["time_info"].get<api::time_info>();
        }
    } catch (const json::exception& e) {
        fail(where, std::string("usage/time_info: ") + e.what());
    }
    return reply::of(std::move(t), std::move(how));
}

std::vector<reply> script_from_json(const json& j) {
    if (!j.is_array()) {
        throw std::invalid_argument("script: expected a JSON array of replies");
    }
    std::vector<reply> out;
    out.reserve(j.size());
    for (std::size_t i = 0; i < j.size(); ++i) {
        try {
            out.push_back(reply_from_json(j[i]));
        } catch (const std::invalid_argument& e) {
            throw std::invalid_argument("script[" + std::to_string(i) + "]: " + e.what());
        }
    }
    return out;
}

std::vector<reply> load_script(const std::string& path) {
    const auto j = json::parse(read_file(path), nullptr, false);
    if (j.is_discarded()) {
        throw std::runtime_error("script: " + path + " is not valid JSON");
    }
    return script_from_json(j);
}

} // namespace wafer::testing
