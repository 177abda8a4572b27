#include <wafer/verdict.hpp>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cctype>

namespace wafer {

using nlohmann::json;

const json& verdict_schema() {
    static const json schema = json::parse(R"({
        "type": "object",
        "properties": {
            "decision": {"type": "string", "enum": ["approve", "revise", "deny"]},
            "reasons": {"type": "array", "items": {"type": "string"}},
            "suggested_fix": {"anyOf": [{"type": "string"}, {"type": "null"}]},
            "corrected_arguments": {"anyOf": [{"type": "string"}, {"type": "null"}]}
        },
        "required": ["decision", "reasons", "suggested_fix", "corrected_arguments"],
        "additionalProperties": false
    })");
    return schema;
}

namespace {

bool fail(std::string* why, std::string text) {
    if (why) {
        *why = std::move(text);
    }
    return false;
}

// A nullable string field: absent or null is fine; any other non-string is an error.
bool read_optional_text(
    const json& j, const char* key, std::optional<std::string>& out, std::string* why
) {
    auto it = j.find(key);
    if (it == j.end() || it->is_null()) {
        return true;
    }
    if (it->is_string()) {
        if (!it->get_ref<const std::string&>().empty()) {
            out = it->get<std::string>();
        }
        return true;
    }
    if (it->is_object() || it->is_array()) {
        // Models sometimes give corrected arguments as an object instead of its JSON text.
        out = it->dump();
        return true;
    }
    return fail(why, std::string("'") + key + "' must be a string or null");
}

} // namespace

std::optional<verdict> parse_verdict(const json& j, std::string* why) {
    if (!j.is_object()) {
        fail(why, "the verdict is not a JSON object");
        return std::nullopt;
    }
    verdict v;
    auto d = j.find("decision");
    if (d == j.end() || !d->is_string()) {
        fail(why, "the verdict has no 'decision' string");
        return std::nullopt;
    }
    std::string decision = d->get<std::string>();
    std::transform(decision.begin(), decision.end(), decision.begin(), [](unsigned char c) {
        return static_cast<char>(std::tolower(c));
    });
    auto parsed = events::critic_decision_from_string(decision);
    if (!parsed) {
        fail(
            why, "'decision' must be approve, revise or deny, not '" + d->get<std::string>() + "'"
        );
        return std::nullopt;
    }
    v.decision = *parsed;
    if (auto r = j.find("reasons"); r != j.end() && !r->is_null()) {
        if (r->is_string()) {
            v.reasons.push_back(r->get<std::string>());
        } else if (r->is_array()) {
            for (const auto& item : *r) {
                v.reasons.push_back(item.is_string() ? item.get<std::string>() : item.dump());
            }
        } else {
            fail(why, "'reasons' must be an array of strings");
            return std::nullopt;
        }
    }
    if (!read_optional_text(j, "suggested_fix", v.suggested_fix, why) ||
        !read_optional_text(j, "corrected_arguments", v.corrected_arguments, why)) {
        return std::nullopt;
    }
    return v;
}

std::optional<verdict> parse_verdict_text(std::string_view text, std::string* why) {
    // Tolerate a Markdown fence around the JSON (models without constrained decoding add one).
    if (auto open = text.find("```"); open != std::string_view::npos) {
        auto body = text.find('\n', open);
        auto close = body == std::string_view::npos ? body : text.find("```", body);
        if (close != std::string_view::npos) {
            text = text.substr(body + 1, close - body - 1);
        }
    }
    json j = json::parse(text, nullptr, false);
    if (j.is_discarded()) {
        fail(why, "the critic's reply is not valid JSON");
        return std::nullopt;
    }
    return parse_verdict(j, why);
}

json to_json_value(const verdict& v) {
    json j;
    j["decision"] = events::to_string(v.decision);
    j["reasons"] = v.reasons;
    j["suggested_fix"] = v.suggested_fix ? json(*v.suggested_fix) : json(nullptr);
    j["corrected_arguments"] = v.corrected_arguments ? json(*v.corrected_arguments) : json(nullptr);
    return j;
}

} // namespace wafer
