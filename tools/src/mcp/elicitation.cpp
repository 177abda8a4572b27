#include <wafer/tools/mcp/elicitation.hpp>

#include <algorithm>
#include <cmath>
#include <string>

namespace wafer::tools::mcp {

using nlohmann::json;

namespace {

// Whether `value` may stand for a property of schema `prop`.
bool fits(const json& prop, const json& value) {
    if (const auto e = prop.find("enum"); e != prop.end() && e->is_array()) {
        return std::find(e->begin(), e->end(), value) != e->end();
    }
    if (const auto one = prop.find("oneOf"); one != prop.end() && one->is_array()) {
        return std::any_of(one->begin(), one->end(), [&value](const json& option) {
            const auto c = option.is_object() ? option.find("const") : option.end();
            return c != option.end() && *c == value;
        });
    }
    const auto t = prop.find("type");
    if (t == prop.end() || !t->is_string()) {
        return false;
    }
    const auto& type = t->get_ref<const std::string&>();
    if (type == "string") {
        return value.is_string();
    }
    if (type == "boolean") {
        return value.is_boolean();
    }
    if (type == "number") {
        return value.is_number();
    }
    if (type == "integer") {
        if (value.is_number_integer()) {
            return true;
        }
        return value.is_number_float() && std::isfinite(value.get<double>()) &&
               std::floor(value.get<double>()) == value.get<double>();
    }
    if (type == "array") {
        return value.is_array();
    }
    return false;
}

} // namespace

json elicitation_defaults(const json& requested_schema) {
    json out = json::object();
    if (!requested_schema.is_object()) {
        return out;
    }
    const auto props = requested_schema.find("properties");
    if (props == requested_schema.end() || !props->is_object()) {
        return out;
    }
    for (const auto& [name, prop] : props->items()) {
        if (!prop.is_object()) {
            continue;
        }
        const auto d = prop.find("default");
        if (d == prop.end() || !fits(prop, *d)) {
            continue;
        }
        if (d->is_number_float() && prop.value("type", "") == "integer") {
            out[name] = static_cast<std::int64_t>(d->get<double>());
        } else {
            out[name] = *d;
        }
    }
    return out;
}

json elicitation_answer(std::string_view action, json content) {
    json out = json::object();
    out["action"] = std::string(action);
    if (action == "accept" && !content.is_null()) {
        out["content"] = std::move(content);
    }
    return out;
}

} // namespace wafer::tools::mcp
