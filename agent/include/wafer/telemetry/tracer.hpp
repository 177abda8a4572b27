// The tracing layer's front: a tracer (what a run's spans say and where they go) and run_trace,
// the sans-io builder that turns one run's lifecycle into OpenTelemetry GenAI spans.
#pragma once

#include <wafer/telemetry/span.hpp>

#include <boost/system/error_code.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace wafer {
struct model_reply;
namespace api {
struct chat_request;
struct usage;
} // namespace api
} // namespace wafer

namespace wafer::telemetry {

/// One model request as the client metrics see it (gen_ai.client.operation.duration and
/// gen_ai.client.token.usage).
struct chat_measurement {
    std::string_view provider;
    std::string_view request_model;
    std::string_view response_model;
    std::string_view server_address;
    std::int64_t server_port = 0;
    /// Empty on success; else the error.type the chat span carries.
    std::string_view error_type;
    double duration_s = 0;
    std::optional<std::int64_t> input_tokens;
    std::optional<std::int64_t> output_tokens;
};

/// Where finished spans and measurements go. Implementations must not block or throw: they are
/// called on the run's executor, in the middle of a run (otlp_exporter queues and drops).
class span_sink {
public:
    virtual ~span_sink() = default;
    virtual void on_span(span_data&& span) noexcept = 0;
    virtual void on_chat(const chat_measurement& m) noexcept = 0;

protected:
    span_sink() = default;
    span_sink(const span_sink&) = default;
    span_sink& operator=(const span_sink&) = default;
};

struct tracer_config {
    /// gen_ai.provider.name: "cerebras" for Cerebras, "openai" for other OpenAI-compatible
    /// servers unless the application knows better.
    std::string provider = "openai";
    /// server.address / server.port of the chat spans (the model endpoint; empty/0: left out).
    std::string server_address;
    std::int64_t server_port = 0;
    /// Opt-in content capture (the conventions' opt-in attributes): the request's messages
    /// (gen_ai.input.messages), the reply (gen_ai.output.messages), tool arguments and results
    /// (gen_ai.tool.call.arguments / .result). Off by default: content may be sensitive.
    bool capture_content = false;
};

/// What a run reports about its trace: the config and the sink, shared by every run of the
/// agents it is attached to (agent_config::tracer). Immutable; safe to share across threads.
class tracer {
public:
    tracer(tracer_config cfg, std::shared_ptr<span_sink> sink);

    const tracer_config& config() const noexcept { return cfg_; }
    span_sink& sink() const noexcept { return *sink_; }

private:
    tracer_config cfg_;
    std::shared_ptr<span_sink> sink_;
};

/// The error.type of a failure: wafer::errc's name ("timeout", "rate_limited", ...), else
/// "_OTHER" (the conventions' fallback).
std::string_view error_type_of(const boost::system::error_code& ec) noexcept;

/// Unix epoch nanoseconds of a system_clock time.
std::int64_t unix_nanos(std::chrono::system_clock::time_point t) noexcept;

/// The spans of one run, built from its lifecycle (sans-io: the caller passes the time). The
/// driver of a run calls it; tests drive it directly.
///
/// Span tree: `invoke_agent {agent}` (INTERNAL; child of `parent` when given, else a new trace)
/// with children `chat {model}` (CLIENT) per model request and `execute_tool {tool}` (INTERNAL)
/// per tool call. A critic's review is its own run, traced with the reviewing agent's span as
/// its parent: an `invoke_agent {critic}` span with its own chat spans.
///
/// Usage rule (no double counting): a chat span carries its request's usage; an agent span
/// carries the sum of its own chat spans only. A critic's usage is on the critic's agent span,
/// never on the parent's. Summing gen_ai.usage.* over chat spans gives the trace's total.
///
/// Thread safety: one run, one executor (unsafe to share); finished spans go to the sink.
class run_trace {
public:
    run_trace(
        const tracer& t,
        std::string_view agent_name,
        std::string_view run_id,
        std::string_view model,
        std::optional<span_context> parent,
        std::chrono::system_clock::time_point now
    );
    run_trace(const run_trace&) = delete;
    run_trace& operator=(const run_trace&) = delete;

    /// The agent span's context (the parent of everything the run does).
    const span_context& context() const noexcept { return agent_.context; }

    /// A model request `op` is sent: opens its chat span and returns its context (the request's
    /// traceparent).
    span_context begin_chat(
        std::uint32_t op, const api::chat_request& req, std::chrono::system_clock::time_point now
    );
    /// The first streamed piece of request `op` arrived (gen_ai.response.time_to_first_chunk).
    void first_chunk(std::uint32_t op, std::chrono::system_clock::time_point now);
    /// Request `op` ended: with its reply, or failed with `error_type` (and `message`).
    void end_chat(
        std::uint32_t op,
        const model_reply* reply,
        std::string_view error_type,
        std::string_view message,
        std::chrono::system_clock::time_point now
    );
    /// Whether request `op` still waits for its first chunk (the driver then watches deltas).
    bool wants_first_chunk(std::uint32_t op) const noexcept;

    /// A tool call ran from `start` to `end`.
    void tool_call(
        std::string_view name,
        std::string_view call_id,
        std::string_view arguments,
        bool is_error,
        std::string_view output,
        std::chrono::system_clock::time_point start,
        std::chrono::system_clock::time_point end
    );

    /// The run ended (exports the agent span; nothing may follow).
    void end_run(
        std::string_view stop_reason,
        std::string_view error_type,
        std::string_view message,
        std::size_t turns,
        std::chrono::system_clock::time_point now
    );

private:
    struct open_chat {
        std::uint32_t op = 0;
        span_data span;
        std::string model;
        std::optional<std::int64_t> first_chunk_ns;
    };
    open_chat* find_chat(std::uint32_t op) noexcept;

    const tracer* tracer_;
    span_data agent_;
    std::vector<open_chat> chats_;
    std::int64_t input_tokens_ = 0;
    std::int64_t output_tokens_ = 0;
    std::int64_t cached_tokens_ = 0;
    std::int64_t reasoning_tokens_ = 0;
    bool any_usage_ = false;
    bool ended_ = false;
};

} // namespace wafer::telemetry
