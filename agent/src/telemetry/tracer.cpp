#include <wafer/api/chat_request.hpp>
#include <wafer/error.hpp>
#include <wafer/model.hpp>
#include <wafer/telemetry/tracer.hpp>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <array>

namespace wafer::telemetry {

namespace {

using clock = std::chrono::system_clock;

// The conventions' message shape (gen_ai.input.messages / gen_ai.output.messages): role and
// typed parts. Only built when content capture is on.
nlohmann::json message_parts(const api::message& m) {
    nlohmann::json parts = nlohmann::json::array();
    if (m.role == api::role::tool) {
        parts.push_back(
            {{"type", "tool_call_response"},
             {"id", m.tool_call_id.value_or("")},
             {"response", m.text()}}
        );
        return parts;
    }
    if (m.reasoning && !m.reasoning->empty()) {
        parts.push_back({{"type", "reasoning"}, {"content", *m.reasoning}});
    }
    if (std::string text = m.text(); !text.empty()) {
        parts.push_back({{"type", "text"}, {"content", std::move(text)}});
    }
    for (const auto& c : m.tool_calls) {
        nlohmann::json args = nlohmann::json::parse(c.arguments, nullptr, false);
        if (args.is_discarded()) {
            args = c.arguments;
        }
        parts.push_back(
            {{"type", "tool_call"}, {"id", c.id}, {"name", c.name}, {"arguments", std::move(args)}}
        );
    }
    return parts;
}

std::string input_messages(const api::chat_request& req) {
    nlohmann::json out = nlohmann::json::array();
    for (const auto& m : req.messages) {
        if (m.role != api::role::system) {
            out.push_back({{"role", api::to_string(m.role)}, {"parts", message_parts(m)}});
        }
    }
    return out.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

std::string system_instructions(const api::chat_request& req) {
    nlohmann::json out = nlohmann::json::array();
    for (const auto& m : req.messages) {
        if (m.role == api::role::system) {
            out.push_back({{"type", "text"}, {"content", m.text()}});
        }
    }
    return out.empty() ? std::string()
                       : out.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

std::string output_messages(const model_reply& r) {
    nlohmann::json m = {
        {"role", "assistant"},
        {"parts", message_parts(r.message)},
        {"finish_reason", api::to_string(r.finish_reason)}};
    return nlohmann::json::array({std::move(m)})
        .dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

void set_error(span_data& s, std::string_view type, std::string_view message) {
    s.error = true;
    s.status_message = message.empty() ? std::string(type) : std::string(message);
    s.attributes.push_back({"error.type", std::string(type)});
}

void add_usage(
    std::vector<attribute>& a,
    std::int64_t input,
    std::int64_t output,
    std::int64_t cached,
    std::int64_t reasoning
) {
    a.push_back({"gen_ai.usage.input_tokens", input});
    a.push_back({"gen_ai.usage.output_tokens", output});
    if (cached > 0) {
        a.push_back({"gen_ai.usage.cache_read.input_tokens", cached});
    }
    if (reasoning > 0) {
        a.push_back({"gen_ai.usage.reasoning.output_tokens", reasoning});
    }
}

} // namespace

tracer::tracer(tracer_config cfg, std::shared_ptr<span_sink> sink)
    : cfg_(std::move(cfg)), sink_(std::move(sink)) {
    if (!sink_) {
        throw std::invalid_argument("wafer::telemetry::tracer: a sink is required");
    }
}

std::string_view error_type_of(const boost::system::error_code& ec) noexcept {
    static constexpr std::array<std::string_view, 24> names = {
        "_OTHER",
        "invalid_request",
        "bad_request",
        "authentication_failed",
        "permission_denied",
        "not_found",
        "request_timeout",
        "conflict",
        "unprocessable_entity",
        "rate_limited",
        "server_error",
        "http_status",
        "resolve_failed",
        "connection_failed",
        "tls_failed",
        "timeout",
        "stream_truncated",
        "invalid_response",
        "response_too_large",
        "cancelled",
        "proxy_failed",
        "provider_error",
        "admission_timeout",
        "_OTHER"};
    if (ec.category() != error_category()) {
        return "_OTHER";
    }
    const auto v = static_cast<std::size_t>(ec.value());
    return v < names.size() ? names[v] : names[0];
}

std::int64_t unix_nanos(clock::time_point t) noexcept {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count();
}

run_trace::run_trace(
    const tracer& t,
    std::string_view agent_name,
    std::string_view run_id,
    std::string_view model,
    std::optional<span_context> parent,
    clock::time_point now
)
    : tracer_(&t) {
    if (parent && parent->valid()) {
        agent_.context.trace = parent->trace;
        agent_.context.sampled = parent->sampled;
        agent_.parent = parent->span;
    } else {
        agent_.context.trace = new_trace_id();
    }
    agent_.context.span = new_span_id();
    agent_.name.reserve(13 + agent_name.size());
    agent_.name.append("invoke_agent ").append(agent_name);
    agent_.kind = span_kind::internal;
    agent_.start_ns = unix_nanos(now);
    const tracer_config& c = t.config();
    agent_.attributes.reserve(12);
    agent_.attributes.push_back({"gen_ai.operation.name", std::string("invoke_agent")});
    agent_.attributes.push_back({"gen_ai.provider.name", c.provider});
    agent_.attributes.push_back({"gen_ai.agent.name", std::string(agent_name)});
    agent_.attributes.push_back({"gen_ai.conversation.id", std::string(run_id)});
    if (!model.empty()) {
        agent_.attributes.push_back({"gen_ai.request.model", std::string(model)});
    }
}

run_trace::open_chat* run_trace::find_chat(std::uint32_t op) noexcept {
    for (auto& c : chats_) {
        if (c.op == op) {
            return &c;
        }
    }
    return nullptr;
}

span_context
run_trace::begin_chat(std::uint32_t op, const api::chat_request& req, clock::time_point now) {
    const tracer_config& c = tracer_->config();
    open_chat& chat = chats_.emplace_back();
    chat.op = op;
    chat.model = req.model;
    span_data& s = chat.span;
    s.context.trace = agent_.context.trace;
    s.context.sampled = agent_.context.sampled;
    s.context.span = new_span_id();
    s.parent = agent_.context.span;
    s.name.reserve(5 + req.model.size());
    s.name.append("chat ").append(req.model);
    s.kind = span_kind::client;
    s.start_ns = unix_nanos(now);
    auto& a = s.attributes;
    a.reserve(20);
    a.push_back({"gen_ai.operation.name", std::string("chat")});
    a.push_back({"gen_ai.provider.name", c.provider});
    a.push_back({"gen_ai.request.model", req.model});
    a.push_back({"gen_ai.conversation.id", std::get<std::string>(agent_.attributes[3].value)});
    // gen_ai.request.stream is left out: whether a request streams is the model's choice
    // (cerebras_model's stream flag), which the loop does not see.
    if (req.max_completion_tokens) {
        a.push_back({"gen_ai.request.max_tokens", *req.max_completion_tokens});
    }
    if (req.temperature) {
        a.push_back({"gen_ai.request.temperature", *req.temperature});
    }
    if (req.top_p) {
        a.push_back({"gen_ai.request.top_p", *req.top_p});
    }
    if (req.frequency_penalty) {
        a.push_back({"gen_ai.request.frequency_penalty", *req.frequency_penalty});
    }
    if (req.presence_penalty) {
        a.push_back({"gen_ai.request.presence_penalty", *req.presence_penalty});
    }
    if (req.seed) {
        a.push_back({"gen_ai.request.seed", *req.seed});
    }
    if (!req.stop.empty()) {
        a.push_back({"gen_ai.request.stop_sequences", req.stop});
    }
    if (!c.server_address.empty()) {
        a.push_back({"server.address", c.server_address});
    }
    if (c.server_port > 0) {
        a.push_back({"server.port", c.server_port});
    }
    if (c.capture_content) {
        a.push_back({"gen_ai.input.messages", input_messages(req)});
        if (std::string sys = system_instructions(req); !sys.empty()) {
            a.push_back({"gen_ai.system_instructions", std::move(sys)});
        }
    }
    return s.context;
}

bool run_trace::wants_first_chunk(std::uint32_t op) const noexcept {
    for (const auto& c : chats_) {
        if (c.op == op) {
            return !c.first_chunk_ns;
        }
    }
    return false;
}

void run_trace::first_chunk(std::uint32_t op, clock::time_point now) {
    if (open_chat* c = find_chat(op); c && !c->first_chunk_ns) {
        c->first_chunk_ns = unix_nanos(now);
    }
}

void run_trace::end_chat(
    std::uint32_t op,
    const model_reply* reply,
    std::string_view error_type,
    std::string_view message,
    clock::time_point now
) {
    open_chat* c = find_chat(op);
    if (!c) {
        return;
    }
    span_data& s = c->span;
    s.end_ns = unix_nanos(now);
    auto& a = s.attributes;
    chat_measurement m;
    const tracer_config& cfg = tracer_->config();
    m.provider = cfg.provider;
    m.request_model = c->model;
    m.server_address = cfg.server_address;
    m.server_port = cfg.server_port;
    m.duration_s = static_cast<double>(s.end_ns - s.start_ns) / 1e9;
    if (reply) {
        if (!reply->response_id.empty()) {
            a.push_back({"gen_ai.response.id", reply->response_id});
        }
        const std::string& rmodel = reply->model_id.empty() ? c->model : reply->model_id;
        a.push_back({"gen_ai.response.model", rmodel});
        m.response_model = rmodel;
        if (reply->finish_reason != api::finish_reason::none) {
            a.push_back(
                {"gen_ai.response.finish_reasons",
                 std::vector<std::string>{std::string(api::to_string(reply->finish_reason))}}
            );
        }
        if (c->first_chunk_ns) {
            a.push_back(
                {"gen_ai.response.time_to_first_chunk",
                 static_cast<double>(*c->first_chunk_ns - s.start_ns) / 1e9}
            );
        }
        if (reply->usage) {
            const api::usage& u = *reply->usage;
            add_usage(a, u.prompt_tokens, u.completion_tokens, u.cached_tokens, u.reasoning_tokens);
            input_tokens_ += u.prompt_tokens;
            output_tokens_ += u.completion_tokens;
            cached_tokens_ += u.cached_tokens;
            reasoning_tokens_ += u.reasoning_tokens;
            any_usage_ = true;
            m.input_tokens = u.prompt_tokens;
            m.output_tokens = u.completion_tokens;
        }
        if (cfg.capture_content) {
            a.push_back({"gen_ai.output.messages", output_messages(*reply)});
        }
    } else {
        set_error(s, error_type, message);
        m.error_type = error_type;
    }
    tracer_->sink().on_chat(m);
    tracer_->sink().on_span(std::move(s));
    chats_.erase(chats_.begin() + (c - chats_.data()));
}

void run_trace::tool_call(
    std::string_view name,
    std::string_view call_id,
    std::string_view arguments,
    bool is_error,
    std::string_view output,
    clock::time_point start,
    clock::time_point end
) {
    span_data s;
    s.context.trace = agent_.context.trace;
    s.context.sampled = agent_.context.sampled;
    s.context.span = new_span_id();
    s.parent = agent_.context.span;
    s.name.reserve(13 + name.size());
    s.name.append("execute_tool ").append(name);
    s.kind = span_kind::internal;
    s.start_ns = unix_nanos(start);
    s.end_ns = unix_nanos(end);
    auto& a = s.attributes;
    a.reserve(8);
    a.push_back({"gen_ai.operation.name", std::string("execute_tool")});
    a.push_back({"gen_ai.provider.name", tracer_->config().provider});
    a.push_back({"gen_ai.tool.name", std::string(name)});
    a.push_back({"gen_ai.tool.call.id", std::string(call_id)});
    a.push_back({"gen_ai.tool.type", std::string("function")});
    if (tracer_->config().capture_content) {
        a.push_back({"gen_ai.tool.call.arguments", std::string(arguments)});
        a.push_back({"gen_ai.tool.call.result", std::string(output)});
    }
    if (is_error) {
        // The tool's own words stay out of the status unless content capture is on.
        set_error(s, "tool_error", tracer_->config().capture_content ? output : "tool_error");
    }
    tracer_->sink().on_span(std::move(s));
}

void run_trace::end_run(
    std::string_view stop_reason,
    std::string_view error_type,
    std::string_view message,
    std::size_t turns,
    clock::time_point now
) {
    if (ended_) {
        return;
    }
    ended_ = true;
    // Requests still open (a cancelled run) end with the run.
    while (!chats_.empty()) {
        end_chat(chats_.front().op, nullptr, "cancelled", "the run ended", now);
    }
    agent_.end_ns = unix_nanos(now);
    auto& a = agent_.attributes;
    if (any_usage_) {
        add_usage(a, input_tokens_, output_tokens_, cached_tokens_, reasoning_tokens_);
    }
    a.push_back({"wafer.stop_reason", std::string(stop_reason)});
    a.push_back({"wafer.turns", static_cast<std::int64_t>(turns)});
    if (!error_type.empty()) {
        set_error(agent_, error_type, message);
    }
    tracer_->sink().on_span(std::move(agent_));
}

} // namespace wafer::telemetry
