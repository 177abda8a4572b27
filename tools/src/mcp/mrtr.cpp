#include <wafer/tools/mcp/mrtr.hpp>

namespace wafer::tools::mcp {

using nlohmann::json;

std::optional<input_required>
read_input_required(const json& result, bool& malformed, std::string* why) {
    malformed = false;
    if (!result.is_object()) {
        return std::nullopt;
    }
    const auto type = result.find("resultType");
    if (type == result.end() || *type != "input_required") {
        return std::nullopt;
    }
    const auto refuse = [&](std::string reason) -> std::optional<input_required> {
        malformed = true;
        if (why) {
            *why = std::move(reason);
        }
        return std::nullopt;
    };
    input_required out;
    const auto requests = result.find("inputRequests");
    if (requests != result.end() && !requests->is_null()) {
        if (!requests->is_object()) {
            return refuse("inputRequests is not an object");
        }
        for (const auto& [key, entry] : requests->items()) {
            const auto method = entry.is_object() ? entry.find("method") : entry.end();
            if (method == entry.end() || !method->is_string()) {
                return refuse("input request \"" + key + "\" has no method");
            }
            input_request r;
            r.key = key;
            r.method = method->get<std::string>();
            r.params = entry.value("params", json::object());
            out.requests.push_back(std::move(r));
        }
    }
    if (const auto state = result.find("requestState"); state != result.end()) {
        if (!state->is_string()) {
            return refuse("requestState is not a string");
        }
        out.request_state = state->get<std::string>();
    }
    if (out.requests.empty() && !out.request_state) {
        return refuse("an input_required result with neither inputRequests nor requestState");
    }
    return out;
}

json retry_params(
    json original, json input_responses, const std::optional<std::string>& request_state
) {
    if (!original.is_object()) {
        original = json::object();
    }
    if (!input_responses.is_null() && !input_responses.empty()) {
        original["inputResponses"] = std::move(input_responses);
    }
    if (request_state) {
        original["requestState"] = *request_state;
    }
    return original;
}

} // namespace wafer::tools::mcp
