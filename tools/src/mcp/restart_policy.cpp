#include <wafer/tools/mcp/restart_policy.hpp>

namespace wafer::tools::mcp {

void restart_policy::started(clock::time_point now) noexcept {
    if (starts_++ > 0) {
        ++restarts_;
    }
    last_start_ = now;
    running_ = true;
}

void restart_policy::ended(clock::time_point now) noexcept {
    if (!running_) {
        return;
    }
    running_ = false;
    last_uptime_ = std::chrono::duration_cast<std::chrono::milliseconds>(now - last_start_);
    // The first start may be slow to crash or quick; a restart that ends quickly again is a loop.
    if (restarts_ > 0 && last_uptime_ < limits_.min_uptime) {
        looping_ = true;
    }
}

std::optional<std::string> restart_policy::decide() const {
    if (running_) {
        return "it is running";
    }
    if (limits_.max_restarts == 0) {
        return "restarts are off";
    }
    if (looping_) {
        return "it exited again " + std::to_string(last_uptime_.count()) +
               " ms after its restart (under " + std::to_string(limits_.min_uptime.count()) +
               " ms: not restarted again)";
    }
    if (restarts_ >= limits_.max_restarts) {
        return "it was restarted " + std::to_string(restarts_) + " times already (the limit)";
    }
    return std::nullopt;
}

} // namespace wafer::tools::mcp
