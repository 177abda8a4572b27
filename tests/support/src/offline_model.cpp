#include <wafer/testing/offline_model.hpp>

#include <nlohmann/json.hpp>

#include <string_view>

namespace wafer::testing {

namespace {

using nlohmann::json;

constexpr std::size_t echo_limit = 200;

/// At most `limit` bytes of `s`, cut on a UTF-8 boundary, with "…" when cut.
std::string truncated(std::string_view s, std::size_t limit = echo_limit) {
    if (s.size() <= limit) {
        return std::string(s);
    }
    std::size_t end = limit;
    while (end > 0 && (static_cast<unsigned char>(s[end]) & 0xC0U) == 0x80U) {
        --end;
    }
    return std::string(s.substr(0, end)) + "\xE2\x80\xA6";
}

std::string lower(std::string_view s) {
    std::string out(s);
    for (auto& ch : out) {
        if (ch >= 'A' && ch <= 'Z') {
            ch = static_cast<char>(ch - 'A' + 'a');
        }
    }
    return out;
}

bool contains(std::string_view haystack, std::string_view needle) {
    return haystack.find(needle) != std::string_view::npos;
}

const api::message* last_user(const api::chat_request& req) {
    for (auto it = req.messages.rbegin(); it != req.messages.rend(); ++it) {
        if (it->role == api::role::user) {
            return &*it;
        }
    }
    return nullptr;
}

/// A minimal instance of `schema` (see offline_model.hpp for the rules).
json instance_of(const json& schema, std::string_view name, const std::string& text, int depth) {
    if (!schema.is_object() || depth > 8) {
        return nullptr;
    }
    if (auto e = schema.find("enum"); e != schema.end() && e->is_array() && !e->empty()) {
        return e->front();
    }
    if (auto c = schema.find("const"); c != schema.end()) {
        return *c;
    }
    for (const char* key : {"anyOf", "oneOf"}) {
        if (auto alt = schema.find(key); alt != schema.end() && alt->is_array() && !alt->empty()) {
            return instance_of(alt->front(), name, text, depth + 1);
        }
    }
    std::string type;
    if (auto t = schema.find("type"); t != schema.end()) {
        if (t->is_string()) {
            type = t->get<std::string>();
        } else if (t->is_array() && !t->empty() && t->front().is_string()) {
            type = t->front().get<std::string>();
        }
    }
    if (type.empty() && schema.contains("properties")) {
        type = "object";
    }
    if (type == "object") {
        json out = json::object();
        const auto props = schema.find("properties");
        const auto required = schema.find("required");
        if (props == schema.end() || !props->is_object() || required == schema.end() ||
            !required->is_array()) {
            return out;
        }
        for (const auto& r : *required) {
            if (!r.is_string()) {
                continue;
            }
            const auto& key = r.get_ref<const std::string&>();
            if (auto p = props->find(key); p != props->end()) {
                out[key] = instance_of(*p, key, text, depth + 1);
            }
        }
        return out;
    }
    if (type == "array") {
        return json::array();
    }
    if (type == "integer" || type == "number") {
        return 0;
    }
    if (type == "boolean") {
        return false;
    }
    if (type == "null") {
        return nullptr;
    }
    const auto lname = lower(name);
    if (contains(lname, "path") || contains(lname, "dir") || contains(lname, "file")) {
        return ".";
    }
    if (lname == "command" || lname == "cmd") {
        return "echo offline stand-in";
    }
    return text;
}

const api::function_tool* pick_tool(const api::chat_request& req, std::string_view user_text) {
    if (req.tools.empty()) {
        return nullptr;
    }
    using mode = api::tool_choice::mode;
    const auto choice = req.tool_choice.value_or(api::tool_choice::automatic());
    switch (choice.choice) {
    case mode::none:
        return nullptr;
    case mode::required:
        return &req.tools.front();
    case mode::function:
        for (const auto& t : req.tools) {
            if (t.name == choice.function_name) {
                return &t;
            }
        }
        return &req.tools.front();
    case mode::auto_:
        break;
    }
    const auto text = lower(user_text);
    for (const auto& t : req.tools) {
        if (!t.name.empty() && contains(text, lower(t.name))) {
            return &t;
        }
    }
    return nullptr;
}

std::string tool_name_for(const api::chat_request& req, const std::string& call_id) {
    for (const auto& m : req.messages) {
        for (const auto& c : m.tool_calls) {
            if (c.id == call_id) {
                return c.name;
            }
        }
    }
    return "the tool";
}

bool reasoning_off(const api::chat_request& req) {
    return req.reasoning_effort == api::reasoning_effort::none || req.disable_reasoning == true;
}

} // namespace

reply offline_reply(const api::chat_request& req) {
    scripted_turn turn;
    const api::message* user = last_user(req);
    const std::string user_text = user ? truncated(user->text()) : std::string();
    const bool after_tool = !req.messages.empty() && req.messages.back().role == api::role::tool;

    std::string answer;
    if (after_tool) {
        const auto& result = req.messages.back();
        const std::string name = tool_name_for(req, result.tool_call_id.value_or(""));
        turn.reasoning = "The tool " + name +
                         " has returned its result. I should report it to the user plainly.";
        answer = "The tool " + name + " returned: " + truncated(result.text()) +
                 "\n\n(This is wafer's offline stand-in model: its replies are canned, no real "
                 "model was called.)";
    } else {
        if (const auto* tool = pick_tool(req, user_text)) {
            const json schema = tool->parameters.value_or(json::object());
            json args = instance_of(schema, "", user_text, 0);
            if (!args.is_object()) {
                args = json::object();
            }
            turn.reasoning = "The user wants me to use " + tool->name +
                             ". I will call it with minimal arguments.";
            turn.tool_calls.push_back({.id = {}, .name = tool->name, .arguments = args.dump()});
        } else {
            turn.reasoning = user ? "The user said: \"" + user_text +
                                        "\". I am the offline stand-in, so I answer without a "
                                        "real model and say so plainly."
                                  : "There is no user message. I will introduce myself.";
            answer = "I am wafer's offline stand-in model: this reply is canned and no real "
                     "model was called.";
            if (user) {
                answer += " You said: \"" + user_text + "\"";
            }
        }
    }

    if (turn.tool_calls.empty() && req.response_format) {
        using kind = api::response_format::kind;
        if (req.response_format->type == kind::json_schema) {
            turn.content =
                instance_of(req.response_format->schema.value_or(json::object()), "", answer, 0)
                    .dump();
        } else if (req.response_format->type == kind::json_object) {
            turn.content = json{{"answer", answer}}.dump();
        } else {
            turn.content = answer;
        }
    } else {
        turn.content = answer;
    }
    if (reasoning_off(req)) {
        turn.reasoning.clear();
    }
    return reply::of(std::move(turn));
}

} // namespace wafer::testing
