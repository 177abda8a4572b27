// The tools of one MCP server in a registry, kept as the server lists them: registered once,
// then replaced whenever the server says its list changed (notifications/tools/list_changed).
#pragma once

#include <wafer/tools/mcp/client.hpp>
#include <wafer/tools/mcp/server_tools.hpp>
#include <wafer/tools/registry.hpp>
#include <wafer/tools/tool.hpp>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace wafer::tools::mcp {

/// What one listing changed in the registry.
struct tool_set_update {
    /// Registry names new in this listing, and those it no longer has.
    std::vector<std::string> added;
    std::vector<std::string> removed;
    /// Tools of the server left out, each with why ("name: reason"): a name another tool of the
    /// registry has, a name too long, a schema wafer cannot compile, an unreadable entry.
    std::vector<std::string> skipped;
    /// Set when the listing failed (the server's error): the set's tools stay as they were.
    std::string failure;
    /// Tools of the set after it.
    std::size_t count = 0;
    /// False for the first listing (start), true for those after a list_changed.
    bool refresh = false;
    /// A refresh because the last listing's TTL ran out (2026), not because of a list_changed.
    bool expired = false;
    /// The listing's caching hints (2026; for a failed listing, those of the one kept).
    list_freshness freshness;
};

/// What a listing would change, decided without I/O: the registry tools built from the
/// server's tools (make_registry_tools) minus those that cannot go in, and the names to
/// remove.
struct tool_set_plan {
    /// To register (replacing `remove`).
    std::vector<tool> add;
    /// The set's names before (all of them go; those listed again come back in `add`).
    std::vector<std::string> remove;
    /// `update` without failure and count filled in.
    tool_set_update update;
};

/// Plans the replacement of `owned` (the set's registry names now) by `candidates` in `reg`:
/// a candidate whose name a tool outside the set has, whose name repeats an earlier candidate,
/// or whose schema does not compile is skipped with a reason. The rest can be passed to
/// registry::replace, which then does not throw.
tool_set_plan plan_tool_set(
    const registry& reg, const std::vector<std::string>& owned, std::vector<tool> candidates
);

/// How a server_tool_set builds its tools.
struct tool_set_options {
    /// Prefix, per-call limits, approval of destructive tools (see make_registry_tools).
    registry_tool_options tools;
    list_limits limits;
    /// Applied to each registry tool before it is registered (e.g. an application's approval
    /// policy), on every listing.
    std::function<void(tool&)> prepare;
    /// After each listing, the first one included (also when it failed).
    std::function<void(const tool_set_update&)> on_update;
};

/// The tools of one server in one registry.
///
/// Typical use:
/// @code
/// auto set = mcp::server_tool_set::create(executor, options);
/// mcp::client_options co;
/// co.on_list_changed = set->list_changed_handler();
/// auto c = co_await mcp::client::async_connect(server, co);
/// co_await set->async_start(registry, c);   // tools/list, then registered
/// // an agent with `registry` now offers the server's tools; after a list_changed the next
/// // turn offers the new list
/// @endcode
///
/// After start, each notifications/tools/list_changed lists the tools again (tools/list, every
/// page) and replaces the set's tools in the registry in one registry::replace: a turn of an
/// agent sees the old list or the new one, never a mix, and a dispatch already running keeps
/// the tools it started with. Notifications that come while a listing runs lead to one more
/// listing after it. A listing that fails leaves the tools as they were (on_update says why).
///
/// A 2026 server's listing is fresh for its `ttlMs` (0 when absent: stale at once). The set
/// does not poll: when a turn starts (registry::turn_starting, which the agent calls) and the
/// listing is stale, it lists again in the background; that turn offers the tools as
/// they were, the next one the new list. A listing that failed is tried again at the next
/// turn after 1 s, then 2, 4, ... up to 60 s, the old tools offered meanwhile.
///
/// Thread safety: use it, its client and the registry on one single-threaded executor (the
/// client's): the registry changes there, between the steps of whatever else uses it.
///
/// Object lifetimes: a shared_ptr; the handler and refreshes in flight hold it weakly or keep
/// it alive until they end. stop() (or the client's end) ends the following.
class server_tool_set : public std::enable_shared_from_this<server_tool_set> {
public:
    /// Refreshes run on `ex` (the client's executor).
    static std::shared_ptr<server_tool_set>
    create(boost::asio::any_io_executor ex, tool_set_options options);

    /// For client_options::on_list_changed (holds the set weakly). A "tools" list_changed that
    /// comes before start is remembered: start lists again after registering.
    std::function<void(const list_changed_event&)> list_changed_handler();

    /// Registers `listing` (tools of `c`, e.g. from async_list_tools) in `reg` and follows
    /// list_changed from then on. Calls on_update and returns the same update.
    /// `freshness`: the listing's caching hints (async_list_tools gives them; the default,
    /// without a TTL, holds until a list_changed).
    tool_set_update start(
        std::shared_ptr<registry> reg,
        std::shared_ptr<client> c,
        std::vector<tool_info> listing,
        list_freshness freshness = {}
    );
    /// Lists the tools of `c`, then start. Throws mcp::error when the listing fails (nothing
    /// is registered then).
    boost::asio::awaitable<tool_set_update>
    async_start(std::shared_ptr<registry> reg, std::shared_ptr<client> c);

    /// Lists the tools again and replaces them now (what a list_changed does). Never throws:
    /// a failed listing is tool_set_update::failure. After stop, or before start, changes
    /// nothing.
    boost::asio::awaitable<tool_set_update> async_refresh();

    /// The registry names of its tools, in the server's order.
    const std::vector<std::string>& names() const noexcept { return names_; }
    /// Follows list_changed and TTLs no more (the tools stay registered; a listing in flight
    /// changes nothing when it ends).
    void stop() noexcept;
    /// Whether the tools offered are past their listing's TTL (a refresh is due, running or,
    /// after a failure, waiting to be tried again).
    bool stale() const noexcept;

    server_tool_set(boost::asio::any_io_executor ex, tool_set_options options);
    ~server_tool_set();
    server_tool_set(const server_tool_set&) = delete;
    server_tool_set& operator=(const server_tool_set&) = delete;

private:
    tool_set_update apply(std::vector<tool_info> listing, std::vector<std::string> skipped);
    void notify(const tool_set_update& u) const;
    void on_list_changed();
    void spawn_refresh();
    void keep_fresh(const list_freshness& f);
    void stale_in(std::chrono::milliseconds d);
    void on_expired();
    static boost::asio::awaitable<void> refresh_loop(std::shared_ptr<server_tool_set> self);

    boost::asio::any_io_executor ex_;
    tool_set_options options_;
    std::shared_ptr<registry> registry_;
    std::shared_ptr<client> client_;
    std::vector<std::string> names_;
    bool started_ = false;
    bool stopped_ = false;
    bool changed_early_ = false; // a list_changed before start
    bool listing_ = false;       // a refresh runs
    bool again_ = false;         // a list_changed came while it ran
    bool expired_ = false;       // the refresh due is for the TTL
    // When the listing goes stale, read by the registry's turn hook on any thread.
    struct staleness;
    std::shared_ptr<staleness> staleness_;
    std::uint64_t hook_ = 0;
    list_freshness freshness_;
    std::chrono::steady_clock::time_point fresh_until_;
    std::chrono::seconds retry_after_{0}; // after a failed listing
};

} // namespace wafer::tools::mcp
