// The tool registry: registration (with schema compilation) and parallel dispatch of tool calls.
#pragma once

#include <wafer/tools/blocking_pool.hpp>
#include <wafer/tools/dispatch.hpp>
#include <wafer/tools/schema.hpp>
#include <wafer/tools/tool.hpp>
#include <wafer/tools/tool_result.hpp>

#include <boost/asio/awaitable.hpp>

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace wafer::tools {

/// Construction parameters of a registry.
struct registry_params {
    /// Threads of the blocking pool, created on the first blocking tool (0: hardware threads).
    std::size_t blocking_threads = 4;
    /// Use this pool instead of creating one (may be shared between registries).
    std::shared_ptr<blocking_pool> pool;
    /// Calls of one dispatch that run at once, unless dispatch_options::max_concurrency says
    /// otherwise (0: no cap).
    std::size_t max_concurrent_calls = default_max_concurrent_calls;
};

/// A set of tools, and the dispatcher that runs a batch of calls against them.
///
/// Thread safety: distinct objects are independent. add() and replace() must not run
/// concurrently with anything else on the same registry (on one single-threaded executor they
/// may run between the steps of running dispatches: see replace()); const member functions
/// (including async_dispatch) may be used concurrently from several coroutines.
///
/// Object lifetimes: the registry must outlive every dispatch it runs. Handlers that outlive
/// their dispatch (an async handler that ignores cancellation, a blocking handler that ignores
/// its stop token) keep the tool alive themselves; the blocking pool's destructor waits for
/// running blocking handlers.
class registry {
public:
    explicit registry(registry_params params = {});
    ~registry();
    registry(registry&&) noexcept;
    registry& operator=(registry&&) noexcept;

    /// Registers `t` and compiles its parameter schema.
    ///
    /// Errors: throws schema_error if the schema is malformed or uses an unsupported keyword,
    /// std::invalid_argument if the name is empty, already registered, or not of the form
    /// [A-Za-z0-9_-]{1,64} (what Chat Completions accepts), or if the handler is empty.
    void add(tool t);

    /// Removes the tools named in `remove` (names not registered are ignored) and registers
    /// `add`, as one change: on any error nothing changes. The added tools take the place of
    /// the first removed one (or go last), so a set of tools replaced in place keeps its order.
    ///
    /// For tool sets that change while the registry serves (an MCP server's
    /// notifications/tools/list_changed): a dispatch that already started keeps the tools it
    /// resolved (their handlers stay alive until they end), and snapshot() lets a caller keep
    /// one version for a whole step. The agent takes a snapshot per turn: a change shows from
    /// the next turn on, never in the middle of one.
    ///
    /// Errors: throws as add() does, std::invalid_argument naming the tool when an added name
    /// is taken by a tool that stays (or appears twice in `add`).
    void replace(const std::vector<std::string>& remove, std::vector<tool> add);

    /// The tools as they are now, unaffected by later add() or replace() calls, with the same
    /// blocking pool and limits (cheap: the tools themselves are shared). Its revision() is
    /// this registry's at the time.
    std::shared_ptr<const registry> snapshot() const;

    /// Called by turn_starting(): the moment a turn wants the tools. A tool set whose list went
    /// stale (an MCP server's 2026 list TTL) starts listing again there; the turn offers the
    /// tools as they are. Hooks must be cheap, thread-safe (turns may run on several threads)
    /// and must not throw. Snapshots and clone() do not carry them.
    using turn_hook = std::function<void()>;
    /// Adds a hook; the id removes it.
    std::uint64_t add_turn_hook(turn_hook hook);
    void remove_turn_hook(std::uint64_t id) noexcept;
    /// Runs the turn hooks, on the caller's thread. The agent calls it before each turn that
    /// offers this registry's tools (before it reads revision() or takes a snapshot).
    void turn_starting() const;

    /// A registry with the same tools, blocking pool and limits that can be changed on its own
    /// (add more tools to a copy of an agent's set: a handoff_team's transfer tools). Its
    /// revision() is its own.
    std::shared_ptr<registry> clone() const;

    /// Tool definitions in registration order, for the request's `tools` array.
    std::vector<tool_definition> definitions() const;
    /// Registered names in registration order.
    std::vector<std::string> names() const;
    /// The tool named `name`, or nullptr. Valid until replace() removes it (a snapshot that
    /// has it keeps it alive) or the registry goes.
    const tool* find(std::string_view name) const;
    /// The compiled schema of `name`, or nullptr.
    const schema* find_schema(std::string_view name) const;
    std::size_t size() const noexcept;
    bool empty() const noexcept { return size() == 0; }
    /// Changes with every add() and replace(); distinct registries never report the same value
    /// (a moved-to registry takes its source's, a snapshot its source's at the time). Lets users
    /// of definitions() cache what they build from them.
    std::uint64_t revision() const noexcept;

    /// Runs the calls of one assistant message and returns their results in emission order.
    ///
    /// Every call starts as soon as the concurrency cap and sequential barriers allow, in
    /// emission order. Each call is parsed, validated against its schema, then handled; every
    /// failure (malformed JSON, schema violations with their paths, unknown tool with the list of
    /// available ones, handler exception, timeout, cancellation) becomes a result with
    /// `is_error == true` and a text the model can act on. This function does not throw for
    /// tool failures: every exception from parsing (a number overflow such as `1e400`
    /// included), validation, typed-argument conversion or the handler becomes a result, and
    /// result texts are always valid UTF-8. Whole numbers that fit 64 bits (`1.0`, `1e3`)
    /// reach handlers as JSON integers, so converting them to a C++ integer is defined.
    ///
    /// At most dispatch_options::max_concurrency calls run at once, or the registry's
    /// registry_params::max_concurrent_calls (16 by default) when that is 0.
    ///
    /// The dispatch completes on time even if a handler ignores cancellation: a timed-out or
    /// cancelled call gets its result at once; the straggler's eventual output is dropped.
    /// Async stragglers keep running on the executor; blocking stragglers keep their pool
    /// thread (and an outstanding-work count on the executor, so io_context::run() returns only
    /// after they end). Do not destroy the io_context while blocking handlers still run: they
    /// post their (dropped) result to it when they return.
    ///
    /// Cancellation: terminal cancellation of the awaiting coroutine (its co_spawn slot)
    /// cancels every running call (async handlers through their cancellation slot, blocking ones
    /// through their stop token) and still *returns* a complete result: unfinished calls get a
    /// `cancelled` result and dispatch_result::cancelled is set. Nothing is thrown. Only
    /// terminal cancellation is honoured (the default filter of co_spawn's cancellation state).
    ///
    /// Thread safety: the awaiting coroutine's executor must not run handlers concurrently
    /// (a single-threaded io_context or a strand); async handlers run on it too.
    ///
    /// (GCC 12 miscompiles an option struct built in a co_await expression, `{}` defaults
    /// included: the overloads without options build theirs outside the caller's coroutine.
    /// Pass options as a named object.)
    boost::asio::awaitable<dispatch_result>
    async_dispatch(std::vector<tool_call_request> calls, dispatch_options options) const;
    boost::asio::awaitable<dispatch_result> async_dispatch(std::vector<tool_call_request> calls
    ) const;

    /// Runs one call (a batch of one). Same error and cancellation rules as async_dispatch.
    boost::asio::awaitable<tool_result>
    async_call(tool_call_request call, dispatch_options options) const;
    boost::asio::awaitable<tool_result> async_call(tool_call_request call) const;

private:
    struct impl;
    std::shared_ptr<impl> impl_;
};

} // namespace wafer::tools
