// Approval of the tools that change the workspace (write_file, edit_file, run_command). With a
// terminal the user answers y/N as each call comes up (a live approval channel, so the rest of
// the step goes on meanwhile); without one, a journaled run stops at the call and names the
// `wafer approve` / `wafer deny` commands that continue it; a run that is not journaled
// (--no-store) cannot wait, so its calls are denied and the model reads why. With --yes every
// call is approved as it comes: the tools need approval in every journaled mode, so that a run
// started with --yes and resumed without it (or the other way round) replays the same steps.
#pragma once

#include <wafer/approval_channel.hpp>
#include <wafer/event.hpp>
#include <wafer/tools/registry.hpp>

#include <atomic>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace boost::asio {
class thread_pool;
}

namespace wafer::cli {

enum class approval_mode {
    /// Every call runs (--yes): approved as it comes.
    allow,
    /// Each call is shown and runs only if the user answers y (stdin is a terminal).
    ask,
    /// The run stops at the call (awaiting_approval) for `wafer approve` / `wafer deny`.
    pause,
    /// Each call is refused with a result that tells the model why (nobody to ask and no
    /// journal to wait in).
    deny,
};

/// The tools that need approval: write_file, edit_file, run_command.
const std::vector<std::string>& gated_tools();

/// Puts `t` under `mode`: it needs approval (tool_options::needs_approval) with allow, ask and
/// pause; with deny its calls end as error results ("denied: ...") without running.
void gate_tool(tools::tool& t, approval_mode mode);

/// A registry with every tool of `base` (same names, schemas and options). The tools named in
/// `gated` need approval (tool_options::needs_approval) with allow, ask and pause; with deny
/// their calls end as error results ("denied: ...") without running.
/// `adjust_tool` (if set) may change each tool last (the session wraps the file tools).
std::shared_ptr<tools::registry> with_approval(
    const tools::registry& base,
    const std::vector<std::string>& gated,
    approval_mode mode,
    const std::function<void(tools::tool&)>& adjust_tool = {}
);

/// Answers the run's approval_requested events: approval_mode::ask from the terminal, one
/// question at a time, on a thread of its own (the run goes on meanwhile); approval_mode::allow
/// at once.
///
/// `unconfined`: non-empty when run_command's sandbox is required but missing here, so that an
/// approved command runs unconfined: the question says so, and --yes does not approve such
/// commands (nobody looked at them): they are denied with this text for the model.
class live_approver {
public:
    live_approver(approval_mode mode, std::string unconfined);
    ~live_approver();
    live_approver(const live_approver&) = delete;
    live_approver& operator=(const live_approver&) = delete;

    /// For run_options::approvals / resume_options::approvals.
    const std::shared_ptr<approval_channel>& channel() const noexcept { return channel_; }
    /// Call with every event of the run (on the run's thread).
    void on_event(const event& e);
    /// Gives up the questions not answered yet, and any later ones (the run has stopped): they
    /// end as denied, and the terminal is free for what comes next.
    void cancel_questions();

private:
    std::string unconfined_;
    std::shared_ptr<approval_channel> channel_;
    std::unique_ptr<boost::asio::thread_pool> prompt_thread_;
    std::shared_ptr<std::atomic<int>> asking_; // questions posted and not answered
    int cancel_fd_ = -1; // an eventfd, readable once the questions are given up
};

/// The question shown for a call: the tool and the essentials of its arguments (the command,
/// the path and sizes; never a whole file).
std::string describe_call(const std::string& tool, const nlohmann::json& args);

} // namespace wafer::cli
