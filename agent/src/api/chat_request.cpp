#include <wafer/api/chat_request.hpp>
#include <wafer/tools/detail/json_write.hpp>

#include <charconv>
#include <cstdint>
#include <set>

#include "detail/json_util.hpp"

namespace wafer::api {

using detail::member;
using nlohmann::json;

namespace {

template <class Enum, std::size_t N>
std::optional<Enum> enum_from(std::string_view s, const std::array<std::string_view, N>& names) {
    for (std::size_t i = 0; i < N; ++i) {
        if (names[i] == s) {
            return static_cast<Enum>(i);
        }
    }
    return std::nullopt;
}

constexpr std::array<std::string_view, 4> effort_names{"none", "low", "medium", "high"};
constexpr std::array<std::string_view, 5> format_names{
    "none", "parsed", "text_parsed", "raw", "hidden"};
constexpr std::array<std::string_view, 4> tier_names{"auto", "default", "flex", "priority"};

template <class Enum, std::size_t N>
void read_enum(
    const json& j,
    std::string_view key,
    const std::array<std::string_view, N>& names,
    std::optional<Enum>& out
) {
    if (auto* v = member(j, key); v && v->is_string()) {
        out = enum_from<Enum>(v->get_ref<const std::string&>(), names);
    }
}

} // namespace

std::string_view to_string(reasoning_effort e) noexcept {
    return effort_names[static_cast<std::size_t>(e)];
}
std::string_view to_string(reasoning_format f) noexcept {
    return format_names[static_cast<std::size_t>(f)];
}
std::string_view to_string(service_tier t) noexcept {
    return tier_names[static_cast<std::size_t>(t)];
}

response_format response_format::json_schema_of(std::string name, json schema, bool strict) {
    response_format f;
    f.type = kind::json_schema;
    f.name = std::move(name);
    f.schema = std::move(schema);
    f.strict = strict;
    return f;
}

std::string validate(const chat_request& req) {
    if (req.model.empty()) {
        return "model: must not be empty";
    }
    if (req.messages.empty()) {
        return "messages: at least one message is required";
    }
    if (req.stop.size() > 4) {
        return "stop: at most 4 stop sequences are allowed";
    }
    if (req.temperature && (*req.temperature < 0 || *req.temperature > 2)) {
        return "temperature: must be between 0 and 2";
    }
    if (req.top_p && (*req.top_p < 0 || *req.top_p > 1)) {
        return "top_p: must be between 0 and 1";
    }
    if (req.top_logprobs) {
        if (*req.top_logprobs < 0 || *req.top_logprobs > 20) {
            return "top_logprobs: must be between 0 and 20";
        }
        if (!req.logprobs.value_or(false)) {
            return "top_logprobs: requires logprobs to be true";
        }
    }
    if (req.max_completion_tokens && *req.max_completion_tokens < -1) {
        return "max_completion_tokens: must be >= -1";
    }
    if (req.prompt_cache_key && req.prompt_cache_key->size() > 1024) {
        return "prompt_cache_key: at most 1024 characters";
    }
    if (req.tool_choice && req.tools.empty() &&
        req.tool_choice->choice != tool_choice::mode::none) {
        return "tool_choice: requires tools";
    }
    if (req.response_format && req.response_format->type == response_format::kind::json_schema &&
        req.response_format->name.empty()) {
        return "response_format.json_schema.name: required";
    }
    std::set<std::string_view> names;
    for (const auto& t : req.tools) {
        if (t.name.empty()) {
            return "tools: every function needs a name";
        }
        if (!names.insert(t.name).second) {
            return "tools: duplicate function name '" + t.name + "'";
        }
    }
    std::set<std::string_view> call_ids;
    for (const auto& m : req.messages) {
        for (const auto& c : m.tool_calls) {
            if (!call_ids.insert(c.id).second) {
                return "messages: duplicate tool call id '" + c.id + "'";
            }
        }
        if (m.role == role::tool && !m.tool_call_id) {
            return "messages: a tool message needs tool_call_id";
        }
    }
    return {};
}

void to_json(json& j, const function_tool& t) {
    json fn = {{"name", t.name}};
    detail::write_optional(fn, "description", t.description);
    if (t.parameters) {
        fn["parameters"] = *t.parameters;
    }
    detail::write_optional(fn, "strict", t.strict);
    j = {{"type", "function"}, {"function", std::move(fn)}};
}

void from_json(const json& j, function_tool& t) {
    t = function_tool{};
    const json* fn = member(j, "function");
    if (!fn) {
        return;
    }
    detail::read_value(*fn, "name", t.name);
    detail::read_optional(*fn, "description", t.description);
    if (auto* p = member(*fn, "parameters")) {
        t.parameters = *p;
    }
    detail::read_optional(*fn, "strict", t.strict);
}

void to_json(json& j, const tool_choice& c) {
    switch (c.choice) {
    case tool_choice::mode::none:
        j = "none";
        return;
    case tool_choice::mode::auto_:
        j = "auto";
        return;
    case tool_choice::mode::required:
        j = "required";
        return;
    case tool_choice::mode::function:
        j = {{"type", "function"}, {"function", {{"name", c.function_name}}}};
        return;
    }
}

void from_json(const json& j, tool_choice& c) {
    c = tool_choice{};
    if (j.is_string()) {
        const auto& s = j.get_ref<const std::string&>();
        c.choice = s == "none"       ? tool_choice::mode::none
                   : s == "required" ? tool_choice::mode::required
                                     : tool_choice::mode::auto_;
        return;
    }
    c.choice = tool_choice::mode::function;
    if (auto* fn = member(j, "function")) {
        detail::read_value(*fn, "name", c.function_name);
    }
}

void to_json(json& j, const response_format& f) {
    switch (f.type) {
    case response_format::kind::text:
        j = {{"type", "text"}};
        return;
    case response_format::kind::json_object:
        j = {{"type", "json_object"}};
        return;
    case response_format::kind::json_schema: {
        json spec = {{"name", f.name}};
        detail::write_optional(spec, "description", f.description);
        detail::write_optional(spec, "schema", f.schema);
        detail::write_optional(spec, "strict", f.strict);
        j = {{"type", "json_schema"}, {"json_schema", std::move(spec)}};
        return;
    }
    }
}

void from_json(const json& j, response_format& f) {
    f = response_format{};
    std::string type = "text";
    detail::read_value(j, "type", type);
    if (type == "json_object") {
        f.type = response_format::kind::json_object;
    } else if (type == "json_schema") {
        f.type = response_format::kind::json_schema;
        if (auto* spec = member(j, "json_schema")) {
            detail::read_value(*spec, "name", f.name);
            detail::read_optional(*spec, "description", f.description);
            if (auto* s = member(*spec, "schema")) {
                f.schema = *s;
            }
            detail::read_optional(*spec, "strict", f.strict);
        }
    }
}

void to_json(json& j, const chat_request& r) {
    j = json::object();
    j["model"] = r.model;
    j["messages"] = r.messages;
    detail::write_optional(j, "max_completion_tokens", r.max_completion_tokens);
    detail::write_optional(j, "min_completion_tokens", r.min_completion_tokens);
    detail::write_optional(j, "temperature", r.temperature);
    detail::write_optional(j, "top_p", r.top_p);
    detail::write_optional(j, "frequency_penalty", r.frequency_penalty);
    detail::write_optional(j, "presence_penalty", r.presence_penalty);
    detail::write_optional(j, "logprobs", r.logprobs);
    detail::write_optional(j, "top_logprobs", r.top_logprobs);
    detail::write_optional(j, "n", r.n);
    if (r.stop.size() == 1) {
        j["stop"] = r.stop.front();
    } else if (!r.stop.empty()) {
        j["stop"] = r.stop;
    }
    detail::write_optional(j, "seed", r.seed);
    detail::write_optional(j, "stream", r.stream);
    if (r.stream_options) {
        json so = json::object();
        detail::write_optional(so, "include_usage", r.stream_options->include_usage);
        j["stream_options"] = std::move(so);
    }
    detail::write_optional(j, "user", r.user);
    if (!r.tools.empty()) {
        j["tools"] = r.tools;
    }
    detail::write_optional(j, "tool_choice", r.tool_choice);
    detail::write_optional(j, "parallel_tool_calls", r.parallel_tool_calls);
    detail::write_optional(j, "response_format", r.response_format);
    if (r.reasoning_effort) {
        j["reasoning_effort"] = to_string(*r.reasoning_effort);
    }
    if (r.reasoning_format) {
        j["reasoning_format"] = to_string(*r.reasoning_format);
    }
    detail::write_optional(j, "clear_thinking", r.clear_thinking);
    detail::write_optional(j, "disable_reasoning", r.disable_reasoning);
    if (r.prediction) {
        j["prediction"] = {{"type", "content"}, {"content", r.prediction->content}};
    }
    if (r.service_tier) {
        j["service_tier"] = to_string(*r.service_tier);
    }
    detail::write_optional(j, "prompt_cache_key", r.prompt_cache_key);
    if (r.extra_body.is_object()) {
        for (const auto& [key, value] : r.extra_body.items()) {
            j[key] = value;
        }
    }
}

void from_json(const json& j, chat_request& r) {
    r = chat_request{};
    detail::read_value(j, "model", r.model);
    if (auto* m = member(j, "messages"); m && m->is_array()) {
        r.messages = m->get<std::vector<message>>();
    }
    // max_tokens is the deprecated alias; read it when the new name is absent.
    detail::read_optional(j, "max_completion_tokens", r.max_completion_tokens);
    if (!r.max_completion_tokens) {
        detail::read_optional(j, "max_tokens", r.max_completion_tokens);
    }
    detail::read_optional(j, "min_completion_tokens", r.min_completion_tokens);
    detail::read_optional(j, "temperature", r.temperature);
    detail::read_optional(j, "top_p", r.top_p);
    detail::read_optional(j, "frequency_penalty", r.frequency_penalty);
    detail::read_optional(j, "presence_penalty", r.presence_penalty);
    detail::read_optional(j, "logprobs", r.logprobs);
    detail::read_optional(j, "top_logprobs", r.top_logprobs);
    detail::read_optional(j, "n", r.n);
    if (auto* s = member(j, "stop")) {
        if (s->is_string()) {
            r.stop = {s->get<std::string>()};
        } else if (s->is_array()) {
            r.stop = s->get<std::vector<std::string>>();
        }
    }
    detail::read_optional(j, "seed", r.seed);
    detail::read_optional(j, "stream", r.stream);
    if (auto* so = member(j, "stream_options")) {
        r.stream_options.emplace();
        detail::read_optional(*so, "include_usage", r.stream_options->include_usage);
    }
    detail::read_optional(j, "user", r.user);
    if (auto* t = member(j, "tools"); t && t->is_array()) {
        r.tools = t->get<std::vector<function_tool>>();
    }
    detail::read_optional(j, "tool_choice", r.tool_choice);
    detail::read_optional(j, "parallel_tool_calls", r.parallel_tool_calls);
    detail::read_optional(j, "response_format", r.response_format);
    read_enum(j, "reasoning_effort", effort_names, r.reasoning_effort);
    read_enum(j, "reasoning_format", format_names, r.reasoning_format);
    detail::read_optional(j, "clear_thinking", r.clear_thinking);
    detail::read_optional(j, "disable_reasoning", r.disable_reasoning);
    if (auto* p = member(j, "prediction")) {
        r.prediction = prediction{detail::text_of(p->value("content", json{}))};
    }
    read_enum(j, "service_tier", tier_names, r.service_tier);
    detail::read_optional(j, "prompt_cache_key", r.prompt_cache_key);
}

namespace {

using wafer::detail::put_int;
using wafer::detail::put_string;
using wafer::detail::put_value;

// The request body is written straight into a string instead of building an nlohmann DOM and
// dumping it: that was about 40% of the client's CPU per agent turn. The output parses to the
// same JSON as to_json(); key order differs, which JSON does not care about.

void put_key(std::string& out, bool& first, std::string_view key) {
    out += first ? "\"" : ",\"";
    first = false;
    out += key; // keys are ASCII literals
    out += "\":";
}

void put_double(std::string& out, double v) {
    out += json(v).dump(); // nlohmann's shortest round-trip form; rare fields only
}

void put_bool(std::string& out, bool v) {
    out += v ? "true" : "false";
}

bool put_message(std::string& out, const message& m) {
    bool first = true;
    out += '{';
    put_key(out, first, "role");
    if (!put_string(out, to_string(m.role))) {
        return false;
    }
    if (!m.parts.empty()) {
        put_key(out, first, "content");
        out += '[';
        for (std::size_t i = 0; i < m.parts.size(); ++i) {
            const content_part& p = m.parts[i];
            out += i == 0 ? "{" : ",{";
            if (p.type == content_part::kind::text) {
                out += R"("type":"text","text":)";
                if (!put_string(out, p.text)) {
                    return false;
                }
            } else {
                out += R"("type":"image_url","image_url":{"url":)";
                if (!put_string(out, p.url)) {
                    return false;
                }
                if (p.detail) {
                    out += R"(,"detail":)";
                    if (!put_string(out, *p.detail)) {
                        return false;
                    }
                }
                out += '}';
            }
            out += '}';
        }
        out += ']';
    } else if (m.content) {
        put_key(out, first, "content");
        if (!put_string(out, *m.content)) {
            return false;
        }
    }
    if (m.reasoning) {
        put_key(out, first, "reasoning");
        if (!put_string(out, *m.reasoning)) {
            return false;
        }
    }
    if (!m.tool_calls.empty()) {
        put_key(out, first, "tool_calls");
        out += '[';
        for (std::size_t i = 0; i < m.tool_calls.size(); ++i) {
            const tool_call& c = m.tool_calls[i];
            out += i == 0 ? R"({"id":)" : R"(,{"id":)";
            if (!put_string(out, c.id)) {
                return false;
            }
            out += R"(,"type":"function","function":{"name":)";
            if (!put_string(out, c.name)) {
                return false;
            }
            out += R"(,"arguments":)";
            if (!put_string(out, c.arguments)) {
                return false;
            }
            out += "}}";
        }
        out += ']';
    }
    if (m.tool_call_id) {
        put_key(out, first, "tool_call_id");
        if (!put_string(out, *m.tool_call_id)) {
            return false;
        }
    }
    if (m.name) {
        put_key(out, first, "name");
        if (!put_string(out, *m.name)) {
            return false;
        }
    }
    out += '}';
    return true;
}

bool put_tool(std::string& out, const function_tool& t) {
    out += R"({"type":"function","function":{"name":)";
    if (!put_string(out, t.name)) {
        return false;
    }
    if (t.description) {
        out += R"(,"description":)";
        if (!put_string(out, *t.description)) {
            return false;
        }
    }
    if (t.parameters) {
        out += R"(,"parameters":)";
        if (const std::string& text = t.parameters.wire_text(); !text.empty()) {
            out += text;
        } else if (!put_value(out, *t.parameters)) {
            return false;
        }
    }
    if (t.strict) {
        out += R"(,"strict":)";
        put_bool(out, *t.strict);
    }
    out += "}}";
    return true;
}

// The whole body; false when a string is not valid UTF-8 or a value cannot be written.
bool write_request(std::string& out, const chat_request& r) {
    bool first = true;
    out += '{';
    put_key(out, first, "model");
    if (!put_string(out, r.model)) {
        return false;
    }
    put_key(out, first, "messages");
    out += '[';
    for (std::size_t i = 0; i < r.messages.size(); ++i) {
        if (i > 0) {
            out += ',';
        }
        if (!put_message(out, r.messages[i])) {
            return false;
        }
    }
    out += ']';
    const auto opt_int = [&](std::string_view key, const auto& v) {
        if (v) {
            put_key(out, first, key);
            put_int(out, *v);
        }
    };
    const auto opt_double = [&](std::string_view key, const std::optional<double>& v) {
        if (v) {
            put_key(out, first, key);
            put_double(out, *v);
        }
    };
    const auto opt_bool = [&](std::string_view key, const std::optional<bool>& v) {
        if (v) {
            put_key(out, first, key);
            put_bool(out, *v);
        }
    };
    opt_int("max_completion_tokens", r.max_completion_tokens);
    opt_int("min_completion_tokens", r.min_completion_tokens);
    opt_double("temperature", r.temperature);
    opt_double("top_p", r.top_p);
    opt_double("frequency_penalty", r.frequency_penalty);
    opt_double("presence_penalty", r.presence_penalty);
    opt_bool("logprobs", r.logprobs);
    opt_int("top_logprobs", r.top_logprobs);
    opt_int("n", r.n);
    if (r.stop.size() == 1) {
        put_key(out, first, "stop");
        if (!put_string(out, r.stop.front())) {
            return false;
        }
    } else if (!r.stop.empty()) {
        put_key(out, first, "stop");
        out += '[';
        for (std::size_t i = 0; i < r.stop.size(); ++i) {
            if (i > 0) {
                out += ',';
            }
            if (!put_string(out, r.stop[i])) {
                return false;
            }
        }
        out += ']';
    }
    opt_int("seed", r.seed);
    opt_bool("stream", r.stream);
    if (r.stream_options) {
        put_key(out, first, "stream_options");
        if (r.stream_options->include_usage) {
            out += R"({"include_usage":)";
            put_bool(out, *r.stream_options->include_usage);
            out += '}';
        } else {
            out += "{}";
        }
    }
    if (r.user) {
        put_key(out, first, "user");
        if (!put_string(out, *r.user)) {
            return false;
        }
    }
    if (!r.tools.empty()) {
        put_key(out, first, "tools");
        out += '[';
        for (std::size_t i = 0; i < r.tools.size(); ++i) {
            if (i > 0) {
                out += ',';
            }
            if (!put_tool(out, r.tools[i])) {
                return false;
            }
        }
        out += ']';
    }
    // The rarer structured fields go through their to_json (small DOMs).
    if (r.tool_choice) {
        put_key(out, first, "tool_choice");
        if (!put_value(out, json(*r.tool_choice))) {
            return false;
        }
    }
    opt_bool("parallel_tool_calls", r.parallel_tool_calls);
    if (r.response_format) {
        put_key(out, first, "response_format");
        if (!put_value(out, json(*r.response_format))) {
            return false;
        }
    }
    if (r.reasoning_effort) {
        put_key(out, first, "reasoning_effort");
        put_string(out, to_string(*r.reasoning_effort));
    }
    if (r.reasoning_format) {
        put_key(out, first, "reasoning_format");
        put_string(out, to_string(*r.reasoning_format));
    }
    opt_bool("clear_thinking", r.clear_thinking);
    opt_bool("disable_reasoning", r.disable_reasoning);
    if (r.prediction) {
        put_key(out, first, "prediction");
        out += R"({"type":"content","content":)";
        if (!put_string(out, r.prediction->content)) {
            return false;
        }
        out += '}';
    }
    if (r.service_tier) {
        put_key(out, first, "service_tier");
        put_string(out, to_string(*r.service_tier));
    }
    if (r.prompt_cache_key) {
        put_key(out, first, "prompt_cache_key");
        if (!put_string(out, *r.prompt_cache_key)) {
            return false;
        }
    }
    out += '}';
    return true;
}

} // namespace

std::string serialize(const chat_request& r) {
    // extra_body may override any field: merge it through the DOM. Invalid UTF-8 also takes that
    // path, so the error it reports is unchanged.
    if (!r.extra_body.is_object() || r.extra_body.empty()) {
        std::string out;
        out.reserve(512);
        if (write_request(out, r)) {
            return out;
        }
    }
    return json(r).dump();
}

// Here, beside the serialiser, so the text is exactly what a request carries.
shared_json::shared_json(json value) {
    auto st = std::make_shared<state>();
    st->value = std::move(value);
    if (!put_value(st->text, st->value)) {
        st->text.clear(); // the serialiser reports it when a request carries it
    }
    state_ = std::move(st);
}

const std::string& shared_json::wire_text() const noexcept {
    static const std::string none;
    return state_ ? state_->text : none;
}

} // namespace wafer::api
