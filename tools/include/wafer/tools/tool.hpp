// A tool: name, description, parameter schema, options and a handler.
#pragma once

#include <wafer/tools/approval_rule.hpp>
#include <wafer/tools/tool_result.hpp>

#include <boost/asio/awaitable.hpp>

#include <nlohmann/json.hpp>

#include <chrono>
#include <cstddef>
#include <functional>
#include <memory>
#include <optional>
#include <stdexcept>
#include <stop_token>
#include <string>
#include <type_traits>
#include <utility>
#include <variant>

namespace wafer::tools {

/// What a running call says of its progress (an MCP server's notifications/progress, ...).
struct call_progress {
    double progress = 0;
    /// When known: `progress` out of `total`.
    std::optional<double> total;
    /// The tool's words, if any (an MCP server's text: untrusted, escape it before printing).
    std::string message;
};

/// What the dispatching side offers the runs a handler starts (an agent called as a tool:
/// wafer::agent::as_tool). Opaque to the registry, which only passes it along; the agent layer
/// defines what it holds (its run id, deadline, event sinks, and where child usage goes).
class call_host {
public:
    virtual ~call_host() = default;
};

/// What a handler knows about the call it serves.
struct call_context {
    /// tool_call_request::id of this call.
    std::string call_id;
    /// The tool's name.
    std::string tool_name;
    /// Requested when the call times out or the dispatch is cancelled. Blocking handlers should
    /// poll it (`stop.stop_requested()`) or register a std::stop_callback. Async handlers are
    /// cancelled through their Asio cancellation slot as well; this token fires at the same time.
    std::stop_token stop;
    /// The same for this call however often its run is resumed: "<scope>/<call_id>", the scope
    /// being dispatch_options::idempotency_scope (an agent passes its run id). A handler with
    /// effects outside the process can send it along (an Idempotency-Key header, a unique
    /// column) so that a call repeated after a crash takes effect once. Empty without a scope.
    std::string idempotency_key;
    /// A person approved this very call (tool_options::needs_approval): a tool may then allow
    /// what it would refuse otherwise (run_command_options::unconfined_if_approved).
    bool approved = false;
    /// Reports progress to the dispatch's observer (dispatch_observer::on_progress); empty when
    /// nobody listens. Callable from any thread; reports made after the call's result are
    /// dropped.
    std::function<void(call_progress)> report_progress;
    /// dispatch_options::host of the dispatch (null when none).
    std::shared_ptr<call_host> host;
};

/// Thrown by a handler (or by the typed-argument conversion) when the arguments passed schema
/// validation but are still unusable. The dispatcher turns it into an `invalid_arguments` result
/// carrying what(). Any other exception becomes a `handler_exception` result.
class argument_error : public std::invalid_argument {
public:
    using std::invalid_argument::invalid_argument;
};

/// Per-tool options.
struct tool_options {
    /// Deadline for one call of this tool. Unset: dispatch_options::call_timeout applies.
    std::optional<std::chrono::milliseconds> timeout;
    /// A sequential tool is a barrier: it starts after every earlier call of the batch has
    /// finished, and later calls start only after it has finished.
    bool sequential = false;
    /// Informational (the tool does not change the world); the agent and critics may use it.
    bool read_only = false;
    /// Which calls wait for a person's approval before they run (see approval_rule). The
    /// registry itself ignores it: the agent applies it (agent.hpp, "Approvals").
    approval_rule needs_approval;
    /// Maximum bytes of result content; longer output is cut at a UTF-8 boundary and a visible
    /// marker is appended. 0: dispatch_options::output_cap applies.
    std::size_t output_cap = 0;
    /// A call of this tool that succeeds ends the agent's run once its step has settled, with
    /// stop_reason::handoff (a handoff_team's transfer tools). The registry itself ignores it.
    bool ends_run = false;
    /// Each call starts a child run (agent::as_tool). A journaled caller records the child's run
    /// id when the call starts, and a resumed caller continues an unfinished child from its own
    /// journal (or reads a finished one's result back) instead of treating the call as in
    /// doubt. The registry itself ignores it.
    bool child_run = false;
};

/// Synchronous handler body: arguments already validated against the schema.
using sync_handler_fn = std::function<tool_output(const nlohmann::json& args, const call_context&)>;
/// Asynchronous handler body. Runs on the dispatching coroutine's executor.
using async_handler_fn =
    std::function<boost::asio::awaitable<tool_output>(nlohmann::json args, call_context ctx)>;

/// Runs inline on the io_context thread. For quick, non-blocking work only: it cannot be
/// interrupted, so per-call timeouts do not apply to it.
struct inline_handler {
    sync_handler_fn fn;
};
/// Runs on the registry's bounded blocking pool, never on the io_context thread. Several calls
/// of the same tool may run at once on different threads, so `fn` must be thread-safe.
/// A handler that ignores its stop token past its deadline keeps its pool thread until it
/// returns; the dispatch does not wait for it and drops its result.
struct blocking_handler {
    sync_handler_fn fn;
};
/// A coroutine; cancelled through its cancellation slot (terminal) on timeout or cancellation.
struct async_handler {
    async_handler_fn fn;
};

using handler = std::variant<inline_handler, blocking_handler, async_handler>;

/// What the model is told about a tool (the agent converts it to the wire `tools` entry).
struct tool_definition {
    std::string name;
    std::string description;
    nlohmann::json parameters;
    bool strict = false;
};

/// A tool as registered. Build one directly or with make_tool / make_blocking_tool /
/// make_async_tool.
struct tool {
    std::string name;
    std::string description;
    /// JSON Schema of the arguments object; compiled (and checked) at registration.
    nlohmann::json parameters = nlohmann::json{{"type", "object"}};
    /// Ask the provider for strict (schema-constrained) arguments.
    bool strict = false;
    tool_options options;
    handler fn;

    tool_definition definition() const { return {name, description, parameters, strict}; }
};

namespace detail {

inline tool_output to_tool_output(tool_output o) {
    return o;
}
inline tool_output to_tool_output(std::string s) {
    return {std::move(s), false};
}
inline tool_output to_tool_output(const char* s) {
    return {s, false};
}
/// A JSON string result is passed as its text; anything else is serialised.
inline tool_output to_tool_output(const nlohmann::json& j) {
    if (j.is_string()) {
        return {j.get<std::string>(), false};
    }
    return {j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace), false};
}

template <class Args>
Args convert_args(const nlohmann::json& j) {
    if constexpr (std::is_same_v<Args, nlohmann::json>) {
        return j;
    } else {
        try {
            return j.get<Args>();
        } catch (const nlohmann::json::exception& e) {
            throw argument_error(
                std::string("arguments do not fit the expected shape: ") + e.what()
            );
        }
    }
}

template <class Args, class F>
decltype(auto) invoke_typed(F& f, Args args, const call_context& ctx) {
    if constexpr (std::is_invocable_v<F&, Args, const call_context&>) {
        return std::invoke(f, std::move(args), ctx);
    } else {
        static_assert(
            std::is_invocable_v<F&, Args>,
            "a tool handler takes (Args) or (Args, const call_context&)"
        );
        return std::invoke(f, std::move(args));
    }
}

template <class Args, class F>
sync_handler_fn make_sync_fn(F f) {
    return [f = std::move(f)](const nlohmann::json& j, const call_context& ctx) mutable {
        return to_tool_output(invoke_typed<Args>(f, convert_args<Args>(j), ctx));
    };
}

// A named coroutine (not a capturing lambda, see cpp-style P9) owning a copy of the handler.
template <class Args, class F>
boost::asio::awaitable<tool_output> run_typed_async(F f, nlohmann::json j, call_context ctx) {
    Args args = convert_args<Args>(j);
    co_return to_tool_output(co_await invoke_typed<Args>(f, std::move(args), ctx));
}

} // namespace detail

/// A tool whose handler runs inline on the io_context thread.
///
/// `Args` is the argument type, built with nlohmann `from_json` (use nlohmann::json for raw
/// JSON). `f` is callable as `R(Args)` or `R(Args, const call_context&)`, where R is
/// std::string (text), nlohmann::json (a JSON string is sent as its text, anything else is
/// serialised) or tool_output (text plus an error flag).
template <class Args, class F>
tool make_tool(
    std::string name,
    std::string description,
    nlohmann::json parameters,
    F f,
    tool_options options = {}
) {
    return tool{
        std::move(name),
        std::move(description),
        std::move(parameters),
        false,
        options,
        inline_handler{detail::make_sync_fn<Args>(std::move(f))}};
}

/// Like make_tool, but the handler runs on the registry's blocking pool.
template <class Args, class F>
tool make_blocking_tool(
    std::string name,
    std::string description,
    nlohmann::json parameters,
    F f,
    tool_options options = {}
) {
    return tool{
        std::move(name),
        std::move(description),
        std::move(parameters),
        false,
        options,
        blocking_handler{detail::make_sync_fn<Args>(std::move(f))}};
}

/// Like make_tool, but `f` returns boost::asio::awaitable<R>. The handler is copied into the
/// coroutine frame, so a lambda coroutine with captures stays alive for the whole call.
template <class Args, class F>
tool make_async_tool(
    std::string name,
    std::string description,
    nlohmann::json parameters,
    F f,
    tool_options options = {}
) {
    async_handler_fn fn = [f = std::move(f)](nlohmann::json j, call_context ctx) {
        return detail::run_typed_async<Args>(f, std::move(j), std::move(ctx));
    };
    return tool{
        std::move(name),
        std::move(description),
        std::move(parameters),
        false,
        options,
        async_handler{std::move(fn)}};
}

} // namespace wafer::tools
