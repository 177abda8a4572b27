#include <wafer/gate.hpp>
#include <wafer/store/codec.hpp>
#include <wafer/store/error.hpp>

#include <nlohmann/json.hpp>

#include <string>

#include "detail/json_util.hpp"

namespace wafer::tools {

using nlohmann::json;

std::optional<result_status> parse_result_status(std::string_view s) noexcept {
    for (auto st :
         {result_status::ok,
          result_status::tool_error,
          result_status::invalid_arguments,
          result_status::unknown_tool,
          result_status::handler_exception,
          result_status::timeout,
          result_status::cancelled,
          result_status::refused,
          result_status::in_doubt}) {
        if (to_string(st) == s) {
            return st;
        }
    }
    return std::nullopt;
}

void to_json(json& j, const tool_result& r) {
    j = {
        {"tool_call_id", r.tool_call_id},
        {"name", r.name},
        {"content", r.content},
        {"is_error", r.is_error},
        {"status", to_string(r.status)},
        {"truncated", r.truncated}};
}

void from_json(const json& j, tool_result& r) {
    tool_result out;
    j.at("tool_call_id").get_to(out.tool_call_id);
    j.at("name").get_to(out.name);
    j.at("content").get_to(out.content);
    out.is_error = j.at("is_error").get<bool>();
    const auto& status = j.at("status").get_ref<const std::string&>();
    auto st = parse_result_status(status);
    if (!st) {
        throw json::other_error::create(501, "unknown tool result status \"" + status + "\"", &j);
    }
    out.status = *st;
    out.truncated = j.at("truncated").get<bool>();
    r = std::move(out);
}

} // namespace wafer::tools

namespace wafer {

using nlohmann::json;

namespace {

json optional_string(const std::optional<std::string>& s) {
    return s ? json(*s) : json(nullptr);
}

std::optional<std::string> read_optional_string(const json& j, const char* key) {
    const auto& v = j.at(key);
    if (v.is_null()) {
        return std::nullopt;
    }
    return v.get<std::string>();
}

/// The member `key`, which must be an object.
const json& object_at(const json& j, const char* key) {
    const auto& v = j.at(key);
    if (!v.is_object()) {
        throw json::type_error::create(
            302, std::string("\"") + key + "\" must be an object, not " + v.type_name(), &v
        );
    }
    return v;
}

} // namespace

void to_json(json& j, const model_reply& r) {
    j = json::object();
    j["message"] = r.message;
    j["finish_reason"] = api::to_string(r.finish_reason);
    if (r.usage) {
        j["usage"] = *r.usage;
    }
    if (r.time_info) {
        j["time_info"] = *r.time_info;
    }
    j["model_id"] = r.model_id;
    j["response_id"] = r.response_id;
}

void from_json(const json& j, model_reply& r) {
    model_reply out;
    out.message = object_at(j, "message").get<api::message>();
    out.finish_reason =
        api::finish_reason_from_string(j.at("finish_reason").get_ref<const std::string&>());
    if (auto it = j.find("usage"); it != j.end() && !it->is_null()) {
        out.usage = object_at(j, "usage").get<api::usage>();
    }
    if (auto it = j.find("time_info"); it != j.end() && !it->is_null()) {
        out.time_info = object_at(j, "time_info").get<api::time_info>();
    }
    j.at("model_id").get_to(out.model_id);
    j.at("response_id").get_to(out.response_id);
    r = std::move(out);
}

void to_json(json& j, const verdict& v) {
    j = to_json_value(v);
}

void from_json(const json& j, verdict& v) {
    verdict out;
    const auto& d = j.at("decision").get_ref<const std::string&>();
    auto decision = events::critic_decision_from_string(d);
    if (!decision) {
        throw json::other_error::create(501, "unknown critic decision \"" + d + "\"", &j);
    }
    out.decision = *decision;
    j.at("reasons").get_to(out.reasons);
    out.suggested_fix = read_optional_string(j, "suggested_fix");
    out.corrected_arguments = read_optional_string(j, "corrected_arguments");
    v = std::move(out);
}

void to_json(json& j, const critic_review& r) {
    j = {
        {"critic", r.critic},
        {"gate", to_string(r.gate)},
        {"turn", r.turn},
        {"call_id", optional_string(r.call_id)},
        {"verdict", r.verdict},
        {"error", optional_string(r.error)},
        {"latency_us", r.latency.count()},
        {"usage", r.usage}};
}

void from_json(const json& j, critic_review& r) {
    critic_review out;
    j.at("critic").get_to(out.critic);
    const auto& g = j.at("gate").get_ref<const std::string&>();
    auto parsed = gate_from_string(g);
    if (!parsed) {
        throw json::other_error::create(501, "unknown gate \"" + g + "\"", &j);
    }
    out.gate = *parsed;
    out.turn = detail::get_checked<std::size_t>(j.at("turn"));
    out.call_id = read_optional_string(j, "call_id");
    out.verdict = object_at(j, "verdict").get<verdict>();
    out.error = read_optional_string(j, "error");
    out.latency = std::chrono::microseconds(
        detail::get_checked<std::chrono::microseconds::rep>(j.at("latency_us"))
    );
    out.usage = object_at(j, "usage").get<api::usage>();
    r = std::move(out);
}

void to_json(json& j, const diagnostics& d) {
    json rate = json::array();
    for (const auto& [name, value] : d.rate_limit) {
        rate.push_back(json::array({name, value}));
    }
    j = {
        {"http_status", d.http_status},
        {"type", d.type},
        {"code", d.code},
        {"param", d.param},
        {"message", d.message},
        {"request_id", d.request_id},
        {"retry_after_ms", d.retry_after ? json(d.retry_after->count()) : json(nullptr)},
        {"rate_limit", std::move(rate)},
        {"attempts", d.attempts},
        {"detail", d.detail},
        {"refused", d.refused}};
}

void from_json(const json& j, diagnostics& d) {
    diagnostics out;
    out.http_status = detail::get_checked<int>(j.at("http_status"));
    j.at("type").get_to(out.type);
    j.at("code").get_to(out.code);
    j.at("param").get_to(out.param);
    j.at("message").get_to(out.message);
    j.at("request_id").get_to(out.request_id);
    if (const auto& ra = j.at("retry_after_ms"); !ra.is_null()) {
        out.retry_after =
            std::chrono::milliseconds(detail::get_checked<std::chrono::milliseconds::rep>(ra));
    }
    const auto& rate = j.at("rate_limit");
    if (!rate.is_array()) {
        throw json::type_error::create(302, "\"rate_limit\" must be an array", &rate);
    }
    for (const auto& pair : rate) {
        if (!pair.is_array() || pair.size() != 2) {
            throw json::type_error::create(302, "a rate_limit entry must be [name, value]", &pair);
        }
        out.rate_limit.emplace_back(pair[0].get<std::string>(), pair[1].get<std::string>());
    }
    out.attempts = detail::get_checked<int>(j.at("attempts"));
    j.at("detail").get_to(out.detail);
    out.refused = j.at("refused").get<bool>();
    d = std::move(out);
}

void to_json(json& j, const run_error& e) {
    j = {
        {"code",
         {{"category", e.code.category().name()},
          {"value", e.code.value()},
          {"message", e.code.message()}}},
        {"diagnostics", e.diagnostics}};
}

void from_json(const json& j, run_error& e) {
    run_error out;
    const auto& code = object_at(j, "code");
    const auto& category = code.at("category").get_ref<const std::string&>();
    const int value = detail::get_checked<int>(code.at("value"));
    const auto& message = code.at("message").get_ref<const std::string&>();
    out.diagnostics = object_at(j, "diagnostics").get<diagnostics>();
    if (category == error_category().name()) {
        out.code = boost::system::error_code(value, error_category());
    } else if (category == store::error_category().name()) {
        out.code = boost::system::error_code(value, store::error_category());
    } else {
        // The category itself cannot be found again by name: keep what it said.
        out.code = make_error_code(errc::invalid_response);
        std::string kept = category + " error " + std::to_string(value) + ": " + message;
        if (!out.diagnostics.detail.empty()) {
            kept += "; " + out.diagnostics.detail;
        }
        out.diagnostics.detail = std::move(kept);
    }
    e = std::move(out);
}

} // namespace wafer
