// The run's side of an approval_channel: a driver attaches to it, is notified of decisions and
// takes them.
#pragma once

#include <wafer/approval_channel.hpp>

#include <functional>
#include <string>
#include <utility>
#include <vector>

namespace wafer::detail {

class approval_port {
public:
    using decisions = std::vector<std::pair<std::string, approval_decision>>;

    /// Attaches a run. `notify` is called after each decision (and at once if decisions are
    /// waiting), from the deciding thread, under the channel's lock: it must only post.
    /// Throws std::invalid_argument if another run is attached.
    static void attach(approval_channel& c, std::function<void()> notify);
    /// The decisions not taken yet, in the order they came.
    static decisions take(approval_channel& c);
    /// Detaches the run: once this returns, `notify` is never called again.
    static void detach(approval_channel& c) noexcept;
};

} // namespace wafer::detail
