#include <wafer/event.hpp>

#include <nlohmann/json.hpp>

#include <array>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <stdexcept>

#include "detail/json_util.hpp"

namespace wafer {

using nlohmann::json;

namespace events {

namespace {
constexpr std::array<std::string_view, 3> decision_names{"approve", "revise", "deny"};
} // namespace

std::string_view to_string(critic_decision d) noexcept {
    return decision_names[static_cast<std::size_t>(d)];
}

std::optional<critic_decision> critic_decision_from_string(std::string_view s) noexcept {
    for (std::size_t i = 0; i < decision_names.size(); ++i) {
        if (decision_names[i] == s) {
            return static_cast<critic_decision>(i);
        }
    }
    return std::nullopt;
}

} // namespace events

namespace {

using namespace events;

// Type names in variant order.
constexpr std::array<std::string_view, std::variant_size_v<event_data>> type_names{
    "run_started",
    "model_request",
    "history_repaired",
    "context_compacted",
    "reasoning_delta",
    "content_delta",
    "tool_call_started",
    "tool_call_progress",
    "tool_call_finished",
    "turn_finished",
    "critic_verdict",
    "approval_requested",
    "approval_decided",
    "handoff",
    "run_finished",
};

double to_ms(std::chrono::microseconds d) {
    return static_cast<double>(d.count()) / 1000.0;
}

std::chrono::microseconds from_ms(const json& j, std::string_view key) {
    if (auto* v = detail::member(j, key); v && v->is_number()) {
        // Clamped to about +-292,000 years: llround of 1e300 has no defined result.
        const double us = v->get<double>() * 1000.0;
        constexpr double limit = 9.2e18;
        if (!(us > -limit)) {
            return std::chrono::microseconds{us < 0 ? -static_cast<std::int64_t>(limit) : 0};
        }
        return std::chrono::microseconds{
            us >= limit ? static_cast<std::int64_t>(limit) : std::llround(us)};
    }
    return std::chrono::microseconds{0};
}

// RFC 3339 UTC with microseconds: 2026-01-02T03:04:05.678901Z.
std::string format_time(std::chrono::system_clock::time_point t) {
    using namespace std::chrono;
    const auto us = duration_cast<microseconds>(t.time_since_epoch()).count();
    auto secs = static_cast<std::time_t>(us / 1000000);
    auto frac = us % 1000000;
    if (frac < 0) {
        frac += 1000000;
        --secs;
    }
    std::tm tm{};
    gmtime_r(&secs, &tm);
    char buf[96]; // room for any int fields, so -Wformat-truncation is satisfied
    std::snprintf(
        buf,
        sizeof buf,
        "%04d-%02d-%02dT%02d:%02d:%02d.%06lldZ",
        tm.tm_year + 1900,
        tm.tm_mon + 1,
        tm.tm_mday,
        tm.tm_hour,
        tm.tm_min,
        tm.tm_sec,
        static_cast<long long>(frac)
    );
    return buf;
}

std::chrono::system_clock::time_point parse_time(const std::string& s) {
    std::tm tm{};
    long long frac = 0;
    int consumed = 0;
    const int got = std::sscanf(
        s.c_str(),
        "%4d-%2d-%2dT%2d:%2d:%2d.%6lldZ%n",
        &tm.tm_year,
        &tm.tm_mon,
        &tm.tm_mday,
        &tm.tm_hour,
        &tm.tm_min,
        &tm.tm_sec,
        &frac,
        &consumed
    );
    if (got != 7 || static_cast<std::size_t>(consumed) != s.size()) {
        throw std::invalid_argument("event: bad time '" + s + "'");
    }
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    const std::time_t secs = timegm(&tm);
    return std::chrono::system_clock::time_point{
        std::chrono::duration_cast<std::chrono::system_clock::duration>(
            std::chrono::seconds{secs} + std::chrono::microseconds{frac}
        )};
}

template <class T>
void write_opt(json& j, const char* key, const std::optional<T>& v) {
    if (v) {
        j[key] = *v;
    }
}

// ---- payload writers --------------------------------------------------------------------------

void write(json& j, const run_started& e) {
    j["model"] = e.model;
    j["input"] = e.input;
}
void write(json& j, const model_request& e) {
    j["turn"] = e.turn;
    j["model"] = e.model;
    j["message_count"] = e.message_count;
    j["tool_count"] = e.tool_count;
    j["context_tokens"] = e.context_tokens;
    j["context_window"] = e.context_window;
}
void write(json& j, const context_compacted& e) {
    j["turn"] = e.turn;
    j["strategy"] = e.strategy;
    j["trigger"] = e.trigger;
    j["first"] = e.first;
    j["replaced"] = e.replaced;
    j["replacement"] = e.replacement;
    j["tokens_before"] = e.tokens_before;
    j["tokens_after"] = e.tokens_after;
    j["window"] = e.window;
    j["digest"] = e.digest;
}
void write(json& j, const history_repaired& e) {
    j["turn"] = e.turn;
    j["repairs"] = e.repairs;
}
void write(json& j, const reasoning_delta& e) {
    j["turn"] = e.turn;
    j["text"] = e.text;
}
void write(json& j, const content_delta& e) {
    j["turn"] = e.turn;
    j["text"] = e.text;
}
void write(json& j, const tool_call_started& e) {
    j["turn"] = e.turn;
    j["call_id"] = e.call_id;
    j["name"] = e.name;
    j["arguments"] = e.arguments;
}
void write(json& j, const tool_call_progress& e) {
    j["turn"] = e.turn;
    j["call_id"] = e.call_id;
    j["name"] = e.name;
    j["progress"] = e.progress;
    write_opt(j, "total", e.total);
    j["message"] = e.message;
}
void write(json& j, const tool_call_finished& e) {
    j["turn"] = e.turn;
    j["call_id"] = e.call_id;
    j["name"] = e.name;
    j["duration_ms"] = to_ms(e.duration);
    j["is_error"] = e.is_error;
    j["output"] = e.output;
}
void write(json& j, const turn_finished& e) {
    j["turn"] = e.turn;
    j["finish_reason"] = api::to_string(e.finish_reason);
    write_opt(j, "usage", e.usage);
    write_opt(j, "time_info", e.time_info);
    j["tool_calls"] = e.tool_calls;
    j["duration_ms"] = to_ms(e.duration);
    if (e.queue_wait.count() != 0) {
        j["queue_wait_ms"] = to_ms(e.queue_wait);
    }
}
void write(json& j, const critic_verdict& e) {
    j["turn"] = e.turn;
    j["critic"] = e.critic;
    j["gate"] = e.gate;
    write_opt(j, "call_id", e.call_id);
    j["decision"] = to_string(e.decision);
    j["reasons"] = e.reasons;
    write_opt(j, "error", e.error);
    j["latency_ms"] = to_ms(e.latency);
    write_opt(j, "usage", e.usage);
}
void write(json& j, const approval_requested& e) {
    j["turn"] = e.turn;
    j["call_id"] = e.call_id;
    j["name"] = e.name;
    j["arguments"] = e.arguments;
}
void write(json& j, const approval_decided& e) {
    j["turn"] = e.turn;
    j["call_id"] = e.call_id;
    j["name"] = e.name;
    j["approved"] = e.approved;
    write_opt(j, "arguments", e.arguments);
    j["message"] = e.message;
}
void write(json& j, const handoff& e) {
    j["from"] = e.from;
    j["to"] = e.to;
    j["from_run_id"] = e.from_run_id;
    j["to_run_id"] = e.to_run_id;
    j["message"] = e.message;
    j["messages_passed"] = e.messages_passed;
}
void write(json& j, const run_finished& e) {
    j["stop_reason"] = e.stop_reason;
    j["final_text"] = e.final_text;
    write_opt(j, "error", e.error);
    j["usage"] = e.usage;
    j["turns"] = e.turns;
    j["duration_ms"] = to_ms(e.duration);
    if (e.queue_wait.count() != 0) {
        j["queue_wait_ms"] = to_ms(e.queue_wait);
    }
}

// ---- payload readers --------------------------------------------------------------------------

void read(const json& j, run_started& e) {
    detail::read_value(j, "model", e.model);
    detail::read_value(j, "input", e.input);
}
void read(const json& j, model_request& e) {
    detail::read_value(j, "turn", e.turn);
    detail::read_value(j, "model", e.model);
    detail::read_value(j, "message_count", e.message_count);
    detail::read_value(j, "tool_count", e.tool_count);
    detail::read_value(j, "context_tokens", e.context_tokens);
    detail::read_value(j, "context_window", e.context_window);
}
void read(const json& j, context_compacted& e) {
    detail::read_value(j, "turn", e.turn);
    detail::read_value(j, "strategy", e.strategy);
    detail::read_value(j, "trigger", e.trigger);
    detail::read_value(j, "first", e.first);
    detail::read_value(j, "replaced", e.replaced);
    detail::read_value(j, "replacement", e.replacement);
    detail::read_value(j, "tokens_before", e.tokens_before);
    detail::read_value(j, "tokens_after", e.tokens_after);
    detail::read_value(j, "window", e.window);
    detail::read_value(j, "digest", e.digest);
}
void read(const json& j, history_repaired& e) {
    detail::read_value(j, "turn", e.turn);
    detail::read_value(j, "repairs", e.repairs);
}
void read(const json& j, reasoning_delta& e) {
    detail::read_value(j, "turn", e.turn);
    detail::read_value(j, "text", e.text);
}
void read(const json& j, content_delta& e) {
    detail::read_value(j, "turn", e.turn);
    detail::read_value(j, "text", e.text);
}
void read(const json& j, tool_call_started& e) {
    detail::read_value(j, "turn", e.turn);
    detail::read_value(j, "call_id", e.call_id);
    detail::read_value(j, "name", e.name);
    detail::read_value(j, "arguments", e.arguments);
}
void read(const json& j, tool_call_progress& e) {
    detail::read_value(j, "turn", e.turn);
    detail::read_value(j, "call_id", e.call_id);
    detail::read_value(j, "name", e.name);
    detail::read_value(j, "progress", e.progress);
    detail::read_optional(j, "total", e.total);
    detail::read_value(j, "message", e.message);
}
void read(const json& j, tool_call_finished& e) {
    detail::read_value(j, "turn", e.turn);
    detail::read_value(j, "call_id", e.call_id);
    detail::read_value(j, "name", e.name);
    e.duration = from_ms(j, "duration_ms");
    detail::read_value(j, "is_error", e.is_error);
    detail::read_value(j, "output", e.output);
}
void read(const json& j, turn_finished& e) {
    detail::read_value(j, "turn", e.turn);
    std::string fr;
    detail::read_value(j, "finish_reason", fr);
    e.finish_reason = api::finish_reason_from_string(fr);
    detail::read_optional(j, "usage", e.usage);
    detail::read_optional(j, "time_info", e.time_info);
    detail::read_value(j, "tool_calls", e.tool_calls);
    e.duration = from_ms(j, "duration_ms");
    e.queue_wait = from_ms(j, "queue_wait_ms");
}
void read(const json& j, critic_verdict& e) {
    detail::read_value(j, "turn", e.turn);
    detail::read_value(j, "critic", e.critic);
    detail::read_value(j, "gate", e.gate);
    detail::read_optional(j, "call_id", e.call_id);
    std::string d;
    detail::read_value(j, "decision", d);
    auto decision = critic_decision_from_string(d);
    if (!decision) {
        throw std::invalid_argument("event: unknown critic decision '" + d + "'");
    }
    e.decision = *decision;
    detail::read_value(j, "reasons", e.reasons);
    detail::read_optional(j, "error", e.error);
    e.latency = from_ms(j, "latency_ms");
    detail::read_optional(j, "usage", e.usage);
}
void read(const json& j, approval_requested& e) {
    detail::read_value(j, "turn", e.turn);
    detail::read_value(j, "call_id", e.call_id);
    detail::read_value(j, "name", e.name);
    detail::read_value(j, "arguments", e.arguments);
}
void read(const json& j, approval_decided& e) {
    detail::read_value(j, "turn", e.turn);
    detail::read_value(j, "call_id", e.call_id);
    detail::read_value(j, "name", e.name);
    detail::read_value(j, "approved", e.approved);
    detail::read_optional(j, "arguments", e.arguments);
    detail::read_value(j, "message", e.message);
}
void read(const json& j, handoff& e) {
    detail::read_value(j, "from", e.from);
    detail::read_value(j, "to", e.to);
    detail::read_value(j, "from_run_id", e.from_run_id);
    detail::read_value(j, "to_run_id", e.to_run_id);
    detail::read_value(j, "message", e.message);
    detail::read_value(j, "messages_passed", e.messages_passed);
}
void read(const json& j, run_finished& e) {
    detail::read_value(j, "stop_reason", e.stop_reason);
    detail::read_value(j, "final_text", e.final_text);
    detail::read_optional(j, "error", e.error);
    detail::read_value(j, "usage", e.usage);
    detail::read_value(j, "turns", e.turns);
    e.duration = from_ms(j, "duration_ms");
    e.queue_wait = from_ms(j, "queue_wait_ms");
}

template <std::size_t I = 0>
event_data read_payload(std::string_view type, const json& j) {
    if constexpr (I == std::variant_size_v<event_data>) {
        throw std::invalid_argument("event: unknown type '" + std::string(type) + "'");
    } else {
        if (type == type_names[I]) {
            std::variant_alternative_t<I, event_data> payload;
            read(j, payload);
            return event_data{std::in_place_index<I>, std::move(payload)};
        }
        return read_payload<I + 1>(type, j);
    }
}

} // namespace

std::string_view type_name(const event_data& d) noexcept {
    return type_names[d.index()];
}

void to_json(json& j, const event& e) {
    j = {
        {"seq", e.seq},
        {"type", type_name(e.data)},
        {"run_id", e.run_id},
        {"agent", e.agent},
        {"time", format_time(e.time)}};
    if (!e.parent_run_id.empty()) {
        j["parent_run_id"] = e.parent_run_id;
    }
    std::visit([&j](const auto& payload) { write(j, payload); }, e.data);
}

void from_json(const json& j, event& e) {
    event out;
    out.seq = detail::get_checked<std::uint64_t>(j.at("seq"));
    out.run_id = j.at("run_id").get<std::string>();
    out.agent = j.at("agent").get<std::string>();
    detail::read_value(j, "parent_run_id", out.parent_run_id);
    out.time = parse_time(j.at("time").get<std::string>());
    out.data = read_payload(j.at("type").get<std::string>(), j);
    e = std::move(out);
}

std::string to_json_line(const event& e) {
    return json(e).dump(-1, ' ', false, json::error_handler_t::replace);
}

} // namespace wafer
