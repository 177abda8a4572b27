#include "approval.hpp"

#include <wafer/tools/tool.hpp>

#include <boost/asio/post.hpp>
#include <boost/asio/thread_pool.hpp>

#include <algorithm>
#include <cstdint>
#include <sys/eventfd.h>
#include <unistd.h>
#include <utility>

#include "terminal.hpp"
#include "visible.hpp"

namespace asio = boost::asio;

namespace wafer::cli {

namespace {

using nlohmann::json;
using tools::tool_output;

tool_output denied_nobody_to_ask(const std::string& tool) {
    return {
        "denied: " + tool +
            " changes the workspace and needs the user's approval, but wafer runs without --yes, "
            "its standard input is not a terminal and the run is not journaled (--no-store), so "
            "nobody can approve it. The call did not run. Do not retry it; say in your answer "
            "what you would have done instead.",
        true};
}

} // namespace

const std::vector<std::string>& gated_tools() {
    static const std::vector<std::string> names{"write_file", "edit_file", "run_command"};
    return names;
}

std::string describe_call(const std::string& tool, const json& args) {
    if (!args.is_object()) {
        return visible(tool);
    }
    const auto str = [&](const char* key) {
        const auto it = args.find(key);
        return it != args.end() && it->is_string() ? it->get<std::string>() : std::string();
    };
    // Everything shown is escaped (visible): a command must not be able to erase or disguise
    // itself on the terminal before the user answers.
    if (tool == "run_command") {
        // The whole command: what is approved is what was shown.
        return "run_command: " + visible(str("command"));
    }
    if (tool == "write_file") {
        return "write_file " + visible(str("path")) + " (" + std::to_string(str("content").size()) +
               " bytes)";
    }
    if (tool == "edit_file") {
        return "edit_file " + visible(str("path")) + ": replace \"" +
               visible(shortened(str("old_text"), 80)) + "\" with \"" +
               visible(shortened(str("new_text"), 80)) + "\"";
    }
    return visible(tool) + " " +
           visible(shortened(args.dump(-1, ' ', false, json::error_handler_t::replace), 200));
}

void gate_tool(tools::tool& t, approval_mode mode) {
    if (mode != approval_mode::deny) {
        t.options.needs_approval = true;
        return;
    }
    t.fn = tools::inline_handler{[name = t.name](const json&, const tools::call_context&) {
        return denied_nobody_to_ask(name);
    }};
}

std::shared_ptr<tools::registry> with_approval(
    const tools::registry& base,
    const std::vector<std::string>& gated,
    approval_mode mode,
    const std::function<void(tools::tool&)>& adjust_tool
) {
    auto out = std::make_shared<tools::registry>();
    for (const auto& name : base.names()) {
        tools::tool t = *base.find(name);
        if (std::find(gated.begin(), gated.end(), name) != gated.end()) {
            gate_tool(t, mode);
        }
        if (adjust_tool) {
            adjust_tool(t);
        }
        out->add(std::move(t));
    }
    return out;
}

live_approver::live_approver(approval_mode mode, std::string unconfined)
    : unconfined_(std::move(unconfined)), channel_(std::make_shared<approval_channel>()),
      prompt_thread_(mode == approval_mode::ask ? std::make_unique<asio::thread_pool>(1) : nullptr),
      asking_(std::make_shared<std::atomic<int>>(0)),
      cancel_fd_(mode == approval_mode::ask ? ::eventfd(0, EFD_CLOEXEC) : -1) {}

live_approver::~live_approver() {
    if (prompt_thread_) {
        // A question nobody answered (the run ended meanwhile: Ctrl-C, its deadline) stops
        // waiting for the terminal, so its thread ends.
        if (*asking_ > 0) {
            cancel_questions();
        }
        prompt_thread_->join();
    }
    if (cancel_fd_ >= 0) {
        ::close(cancel_fd_);
    }
}

void live_approver::cancel_questions() {
    if (cancel_fd_ >= 0) {
        const std::uint64_t one = 1;
        [[maybe_unused]] const ssize_t n = ::write(cancel_fd_, &one, sizeof one);
    }
}

void live_approver::on_event(const event& e) {
    const auto* q = e.get_if<events::approval_requested>();
    if (!q) {
        return;
    }
    const bool unconfined = q->name == "run_command" && !unconfined_.empty();
    if (!prompt_thread_) { // --yes
        if (unconfined) {
            channel_->deny(
                q->call_id,
                "the sandbox is unavailable here (" + unconfined_ +
                    "), and --yes does not let a command run unconfined: the user must approve "
                    "each such command at a terminal, or run wafer with --sandbox=off"
            );
        } else {
            channel_->approve(q->call_id);
        }
        return;
    }
    // One question at a time, on the prompt thread: the io thread keeps the run going.
    ++*asking_;
    asio::post(
        *prompt_thread_,
        [channel = channel_,
         asking = asking_,
         id = q->call_id,
         tool = q->name,
         text = q->arguments,
         cancel_fd = cancel_fd_,
         warning = unconfined ? " (UNCONFINED: no sandbox on this system)" : ""] {
            const json args = json::parse(text, nullptr, false);
            const auto answer =
                ask_yes_no("wafer: allow " + describe_call(tool, args) + warning + "?", cancel_fd);
            if (answer.value_or(false)) {
                channel->approve(id);
            } else {
                channel->deny(id);
            }
            --*asking;
        }
    );
}

} // namespace wafer::cli
