#include <wafer/approval_channel.hpp>

#include <nlohmann/json.hpp>

#include <mutex>
#include <stdexcept>

#include "loop/approval_port.hpp"

namespace wafer {

struct approval_channel::state {
    std::mutex m;
    detail::approval_port::decisions queue;
    std::function<void()> notify;
};

approval_channel::approval_channel() : state_(std::make_shared<state>()) {}

approval_channel::~approval_channel() = default;

void approval_channel::decide(std::string call_id, approval_decision decision) {
    if (decision.arguments &&
        !nlohmann::json::parse(*decision.arguments, nullptr, false).is_object()) {
        throw std::invalid_argument(
            "wafer::approval_channel: edited arguments for call " + call_id +
            " are not a JSON object"
        );
    }
    std::lock_guard lock(state_->m);
    state_->queue.emplace_back(std::move(call_id), std::move(decision));
    if (state_->notify) {
        state_->notify();
    }
}

namespace detail {

void approval_port::attach(approval_channel& c, std::function<void()> notify) {
    std::lock_guard lock(c.state_->m);
    if (c.state_->notify) {
        throw std::invalid_argument(
            "wafer::run_options::approvals: the approval channel is in use by another run"
        );
    }
    c.state_->notify = std::move(notify);
    if (!c.state_->queue.empty()) {
        c.state_->notify();
    }
}

approval_port::decisions approval_port::take(approval_channel& c) {
    std::lock_guard lock(c.state_->m);
    decisions out;
    out.swap(c.state_->queue);
    return out;
}

void approval_port::detach(approval_channel& c) noexcept {
    std::lock_guard lock(c.state_->m);
    c.state_->notify = nullptr;
}

} // namespace detail

} // namespace wafer
