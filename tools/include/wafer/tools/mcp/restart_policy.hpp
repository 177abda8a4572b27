// Whether a stdio MCP server that exited during a run is started again, sans-io: once after a
// crash, but not in a loop (mcp::client asks it before the next request to the server).
#pragma once

#include <chrono>
#include <cstddef>
#include <optional>
#include <string>

namespace wafer::tools::mcp {

/// How often a stdio server that exited is started again (client_options::restart).
struct restart_limits {
    /// Restarts over the client's life; 0: never restarted.
    std::size_t max_restarts = 3;
    /// A server that exits sooner than this after a restart is not started again: it crashes
    /// at start, or on the very request that made it crash before.
    std::chrono::milliseconds min_uptime{30'000};
};

/// The restart decisions for one server. The client reports each (re)start and each end of the
/// connection that close() did not cause; before a request to a server whose connection ended,
/// decide() says whether to start it again or why not.
///
/// Thread safety: distinct objects safe; shared objects unsafe.
class restart_policy {
public:
    using clock = std::chrono::steady_clock;

    explicit restart_policy(restart_limits limits = {}) noexcept : limits_(limits) {}

    /// The server was started (the first start, or a restart) at `now`.
    void started(clock::time_point now) noexcept;
    /// Its connection ended at `now` (it exited, or broke its handshake).
    void ended(clock::time_point now) noexcept;

    /// Whether to start it again now: nullopt: yes (and started() follows); else why not, for
    /// the request's error.
    std::optional<std::string> decide() const;

    /// Restarts so far.
    std::size_t restarts() const noexcept { return restarts_; }

private:
    restart_limits limits_;
    std::size_t starts_ = 0;
    std::size_t restarts_ = 0;
    clock::time_point last_start_{};
    bool running_ = false;
    bool looping_ = false; // ended within min_uptime of a restart
    std::chrono::milliseconds last_uptime_{0};
};

} // namespace wafer::tools::mcp
