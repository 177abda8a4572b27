#include <wafer/tools/detail/json_write.hpp>
#include <wafer/tools/mcp/jsonrpc.hpp>

#include <simdjson.h>

#include <charconv>
#include <limits>

namespace wafer::tools::mcp {

using nlohmann::json;

namespace {

std::optional<rpc_message> refuse(std::string* why, const char* reason) {
    if (why) {
        *why = reason;
    }
    return std::nullopt;
}

// An id member: integer (within int64) or string. False for anything else, null included.
bool read_id(const json& v, rpc_id& out) {
    if (v.is_string()) {
        out = v.get<std::string>();
        return true;
    }
    if (v.is_number_integer() && !v.is_number_unsigned()) {
        out = v.get<std::int64_t>();
        return true;
    }
    if (v.is_number_unsigned()) {
        const auto u = v.get<std::uint64_t>();
        if (u <= static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max())) {
            out = static_cast<std::int64_t>(u);
            return true;
        }
    }
    return false;
}

json id_json(const rpc_id& id) {
    return std::visit([](const auto& v) { return json(v); }, id);
}

bool json_space(char c) noexcept {
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

// A decimal integer within int64, all of `text`.
std::optional<std::int64_t> integer_of(std::string_view text) noexcept {
    std::int64_t v = 0;
    const char* end = text.data() + text.size();
    const auto [p, ec] = std::from_chars(text.data(), end, v);
    if (ec != std::errc() || p != end || text.empty()) {
        return std::nullopt;
    }
    return v;
}

// The top-level members of the object a truncated line starts with, as far as they go.
struct head_scan {
    bool response = false; // a "result" or "error" member
    bool request = false;  // a "method" member
    bool id_seen = false;
    std::optional<std::int64_t> id;
};

class prefix_scanner {
public:
    explicit prefix_scanner(std::string_view s) noexcept : s_(s) {}

    head_scan members() noexcept {
        head_scan out;
        if (!eat('{')) {
            return out;
        }
        for (;;) {
            skip_space();
            if (i_ >= s_.size() || s_[i_] != '"') {
                return out;
            }
            const auto key = string();
            if (!key || !eat(':')) {
                return out;
            }
            if (*key == "method") {
                out.request = true;
                return out;
            }
            out.response = out.response || *key == "result" || *key == "error";
            skip_space();
            const std::size_t start = i_;
            if (!skip_value()) {
                return out; // runs past the head (the huge member, most likely)
            }
            if (*key == "id") {
                out.id_seen = true;
                out.id = integer_of(s_.substr(start, i_ - start));
            }
            if (!eat(',')) {
                return out;
            }
        }
    }

private:
    void skip_space() noexcept {
        while (i_ < s_.size() && json_space(s_[i_])) {
            ++i_;
        }
    }
    bool eat(char c) noexcept {
        skip_space();
        if (i_ < s_.size() && s_[i_] == c) {
            ++i_;
            return true;
        }
        return false;
    }
    // The raw content of the string at i_ (its opening quote), if it ends within the text.
    std::optional<std::string_view> string() noexcept {
        const std::size_t start = ++i_;
        while (i_ < s_.size()) {
            if (s_[i_] == '\\') {
                i_ += 2;
            } else if (s_[i_] == '"') {
                return s_.substr(start, i_++ - start);
            } else {
                ++i_;
            }
        }
        return std::nullopt;
    }
    // Skips the value at i_; false when it does not end within the text (a number must be
    // followed by something: "12" at the end may be the start of "123").
    bool skip_value() noexcept {
        if (i_ >= s_.size()) {
            return false;
        }
        if (s_[i_] == '"') {
            return string().has_value();
        }
        if (s_[i_] == '{' || s_[i_] == '[') {
            std::size_t depth = 0;
            while (i_ < s_.size()) {
                const char c = s_[i_];
                if (c == '"') {
                    if (!string()) {
                        return false;
                    }
                    continue;
                }
                ++i_;
                if (c == '{' || c == '[') {
                    ++depth;
                } else if ((c == '}' || c == ']') && --depth == 0) {
                    return true;
                }
            }
            return false;
        }
        const std::size_t start = i_;
        while (i_ < s_.size() && s_[i_] != ',' && s_[i_] != '}' && s_[i_] != ']' &&
               !json_space(s_[i_])) {
            ++i_;
        }
        return i_ < s_.size() && i_ > start;
    }

    std::string_view s_;
    std::size_t i_ = 0;
};

// N of a line that ends with `"id":N}`: that member belongs to the object the line's last '}'
// closes, the top-level one (in a string, the digits would be followed by its closing quote).
std::optional<std::int64_t> tail_id(std::string_view tail) noexcept {
    std::size_t e = tail.size();
    const auto back_space = [&] {
        while (e > 0 && json_space(tail[e - 1])) {
            --e;
        }
    };
    back_space();
    if (e == 0 || tail[e - 1] != '}') {
        return std::nullopt;
    }
    --e;
    back_space();
    const std::size_t digits_end = e;
    while (e > 0 && tail[e - 1] >= '0' && tail[e - 1] <= '9') {
        --e;
    }
    if (e > 0 && tail[e - 1] == '-') {
        --e;
    }
    const auto n = integer_of(tail.substr(e, digits_end - e));
    back_space();
    if (!n || e == 0 || tail[e - 1] != ':') {
        return std::nullopt;
    }
    --e;
    back_space();
    if (e < 5 || tail.substr(e - 4, 4) != "\"id\"") {
        return std::nullopt;
    }
    // The quote before `id` opens the key unless it is escaped (an odd run of backslashes; a
    // run that reaches the start of the tail cannot be told).
    std::size_t k = e - 4;
    std::size_t slashes = 0;
    while (k > 0 && tail[k - 1] == '\\') {
        --k;
        ++slashes;
    }
    if (k == 0 && slashes > 0) {
        return std::nullopt;
    }
    if (slashes % 2 != 0) {
        return std::nullopt;
    }
    return n;
}

// ---- the fast parse: simdjson's DOM turned into nlohmann::json ------------------------------
//
// What nlohmann's own parser would build, without its per-character lexer: the same value types
// (a non-negative integer is number_unsigned, as nlohmann makes it; only "-0" differs, an
// unsigned 0 here and a signed one there), the last of duplicate keys kept. Only for messages
// simdjson accepts and that nest at most max_nesting deep; anything else (too large, bad UTF-8, an
// integer beyond 64 bits, a number out of double's range, ...) goes through nlohmann's parser,
// whose verdict stands.

// Messages larger than this take nlohmann's path: the parser's buffers, which are kept for the
// thread's next message, stay small.
constexpr std::size_t fast_parse_max_bytes = 1U << 20;

enum class fast_parse { ok, too_deep, declined };

fast_parse convert(simdjson::dom::element e, json& out, std::size_t depth) {
    using simdjson::dom::element_type;
    switch (e.type()) {
    case element_type::ARRAY: {
        if (++depth > max_nesting) {
            return fast_parse::too_deep;
        }
        out = json::array();
        auto& arr = out.get_ref<json::array_t&>();
        simdjson::dom::array a;
        if (e.get_array().get(a) != simdjson::SUCCESS) {
            return fast_parse::declined;
        }
        arr.reserve(a.size());
        for (const simdjson::dom::element child : a) {
            arr.emplace_back();
            if (const auto r = convert(child, arr.back(), depth); r != fast_parse::ok) {
                return r;
            }
        }
        return fast_parse::ok;
    }
    case element_type::OBJECT: {
        if (++depth > max_nesting) {
            return fast_parse::too_deep;
        }
        out = json::object();
        auto& obj = out.get_ref<json::object_t&>();
        simdjson::dom::object o;
        if (e.get_object().get(o) != simdjson::SUCCESS) {
            return fast_parse::declined;
        }
        for (const simdjson::dom::key_value_pair kv : o) {
            // A duplicate key: convert overwrites the slot, so the last one wins.
            json& slot = obj[std::string(kv.key)];
            if (const auto r = convert(kv.value, slot, depth); r != fast_parse::ok) {
                return r;
            }
        }
        return fast_parse::ok;
    }
    case element_type::INT64: {
        const std::int64_t v = e.get_int64().value_unsafe();
        if (v >= 0) {
            out = static_cast<std::uint64_t>(v);
        } else {
            out = v;
        }
        return fast_parse::ok;
    }
    case element_type::UINT64:
        out = e.get_uint64().value_unsafe();
        return fast_parse::ok;
    case element_type::DOUBLE:
        out = e.get_double().value_unsafe();
        return fast_parse::ok;
    case element_type::STRING:
        out = std::string(e.get_string().value_unsafe());
        return fast_parse::ok;
    case element_type::BOOL:
        out = e.get_bool().value_unsafe();
        return fast_parse::ok;
    case element_type::NULL_VALUE:
        out = nullptr;
        return fast_parse::ok;
    }
    return fast_parse::declined;
}

fast_parse parse_fast(std::string_view text, json& out) {
    if (text.size() > fast_parse_max_bytes) {
        return fast_parse::declined;
    }
    // One parser and one padded copy per thread, reused: no allocation once warm.
    thread_local simdjson::dom::parser parser;
    thread_local std::string padded;
    padded.assign(text);
    padded.append(simdjson::SIMDJSON_PADDING, '\0');
    simdjson::dom::element root;
    if (parser.parse(padded.data(), text.size(), false).get(root) != simdjson::SUCCESS) {
        return fast_parse::declined;
    }
    return convert(root, out, 0);
}

// Appends the dump of `j`: the shared DOM-free writer, or nlohmann's dump with replacement
// where that declines (bad UTF-8).
void append_dump(const json& j, std::string& out) {
    const std::size_t mark = out.size();
    if (!detail::put_value(out, j)) {
        out.resize(mark);
        out += j.dump(-1, ' ', false, json::error_handler_t::replace);
    }
}

} // namespace

std::optional<std::int64_t>
oversized_response_id(std::string_view head, std::string_view tail) noexcept {
    const head_scan h = prefix_scanner(head).members();
    if (!h.response || h.request) {
        return std::nullopt;
    }
    if (h.id_seen) {
        return h.id;
    }
    return tail_id(tail);
}

bool nesting_within(std::string_view text, std::size_t limit) noexcept {
    std::size_t depth = 0;
    bool in_string = false;
    for (std::size_t i = 0; i < text.size(); ++i) {
        const char c = text[i];
        if (in_string) {
            if (c == '\\') {
                ++i;
            } else if (c == '"') {
                in_string = false;
            }
            continue;
        }
        if (c == '"') {
            in_string = true;
        } else if (c == '[' || c == '{') {
            if (++depth > limit) {
                return false;
            }
        } else if ((c == ']' || c == '}') && depth > 0) {
            --depth;
        }
    }
    return true;
}

std::optional<rpc_message> read_message(std::string_view text, std::string* why) {
    json j;
    const fast_parse fast = parse_fast(text, j);
    if (fast == fast_parse::too_deep) {
        return refuse(why, "nested deeper than 512 levels");
    }
    if (fast == fast_parse::declined) {
        if (!nesting_within(text, max_nesting)) {
            return refuse(why, "nested deeper than 512 levels");
        }
        j = json::parse(text, nullptr, false);
        if (j.is_discarded()) {
            return refuse(why, "not JSON (or not UTF-8)");
        }
    }
    if (j.is_array()) {
        return refuse(why, "a batch (MCP has no batches)");
    }
    if (!j.is_object()) {
        return refuse(why, "not a JSON object");
    }
    const auto version = j.find("jsonrpc");
    if (version == j.end() || !version->is_string() || version->get<std::string>() != "2.0") {
        return refuse(why, "\"jsonrpc\" is not \"2.0\"");
    }
    rpc_message m;
    const auto method = j.find("method");
    const auto id = j.find("id");
    if (method != j.end()) {
        if (!method->is_string()) {
            return refuse(why, "\"method\" is not a string");
        }
        m.method = method->get<std::string>();
        if (const auto p = j.find("params"); p != j.end()) {
            if (!p->is_object() && !p->is_array()) {
                return refuse(why, "\"params\" is neither an object nor an array");
            }
            m.params = std::move(*p);
        }
        if (id == j.end()) {
            m.type = rpc_message::kind::notification;
            return m;
        }
        rpc_id rid;
        if (!read_id(*id, rid)) {
            return refuse(why, "a request id that is not an integer or a string");
        }
        m.type = rpc_message::kind::request;
        m.id = std::move(rid);
        return m;
    }
    const auto result = j.find("result");
    const auto error = j.find("error");
    if ((result == j.end()) == (error == j.end())) {
        return refuse(why, "a response needs exactly one of \"result\" and \"error\"");
    }
    if (id == j.end() || id->is_null()) {
        if (result != j.end()) {
            return refuse(why, "a result without an id");
        }
    } else {
        rpc_id rid;
        if (!read_id(*id, rid)) {
            return refuse(why, "a response id that is not an integer or a string");
        }
        m.id = std::move(rid);
    }
    if (result != j.end()) {
        m.type = rpc_message::kind::result;
        m.result = std::move(*result);
        return m;
    }
    const auto code = error->is_object() ? error->find("code") : error->end();
    const auto message = error->is_object() ? error->find("message") : error->end();
    if (!error->is_object() || code == error->end() || !code->is_number_integer() ||
        message == error->end() || !message->is_string()) {
        return refuse(why, "an error without an integer \"code\" and a string \"message\"");
    }
    if (code->is_number_unsigned() &&
        code->get<std::uint64_t>() >
            static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max())) {
        return refuse(why, "an error code out of range");
    }
    m.type = rpc_message::kind::error;
    m.error.code = code->get<std::int64_t>();
    m.error.message = message->get<std::string>();
    if (const auto d = error->find("data"); d != error->end()) {
        m.error.data = *d;
    }
    return m;
}

std::string write_message(const rpc_message& m) {
    json j = {{"jsonrpc", "2.0"}};
    switch (m.type) {
    case rpc_message::kind::request:
    case rpc_message::kind::notification:
        if (m.type == rpc_message::kind::request && m.id) {
            j["id"] = id_json(*m.id);
        }
        j["method"] = m.method;
        if (!m.params.is_null()) {
            j["params"] = m.params;
        }
        break;
    case rpc_message::kind::result:
        j["id"] = m.id ? id_json(*m.id) : json(nullptr);
        j["result"] = m.result;
        break;
    case rpc_message::kind::error: {
        j["id"] = m.id ? id_json(*m.id) : json(nullptr);
        json e = {{"code", m.error.code}, {"message", m.error.message}};
        if (m.error.data) {
            e["data"] = *m.error.data;
        }
        j["error"] = std::move(e);
        break;
    }
    }
    return j.dump(-1, ' ', false, json::error_handler_t::replace);
}

std::string write_request(const rpc_id& id, std::string_view method, json params) {
    // The envelope written directly, its members in the order nlohmann would sort them; only
    // the params go through the serializer.
    std::string out = "{\"id\":";
    append_dump(id_json(id), out);
    out += ",\"jsonrpc\":\"2.0\",\"method\":";
    append_dump(json(method), out);
    if (!params.is_null()) {
        out += ",\"params\":";
        append_dump(params, out);
    }
    out += '}';
    return out;
}

std::string write_notification(std::string_view method, json params) {
    rpc_message m;
    m.type = rpc_message::kind::notification;
    m.method = std::string(method);
    m.params = std::move(params);
    return write_message(m);
}

std::string write_result(const rpc_id& id, json result) {
    rpc_message m;
    m.type = rpc_message::kind::result;
    m.id = id;
    m.result = std::move(result);
    return write_message(m);
}

std::string write_error(const rpc_id& id, rpc_error error) {
    rpc_message m;
    m.type = rpc_message::kind::error;
    m.id = id;
    m.error = std::move(error);
    return write_message(m);
}

} // namespace wafer::tools::mcp
