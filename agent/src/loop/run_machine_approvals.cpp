// The run machine's approvals: calls held for a person's decision (tool_options::needs_approval),
// asked for once the rest of their step has settled, released into a dispatch of their own or
// refused. Part of run_machine (run_machine.hpp); kept apart from the loop's other phases.
#include <algorithm>

#include "loop/run_machine.hpp"

namespace wafer::detail {

bool run_machine::hold(std::size_t i) {
    if (!slots_[i].needs_approval) {
        return false;
    }
    slots_[i].held = true;
    return true;
}

void run_machine::request_approvals() {
    for (std::size_t i = 0; i < slots_.size(); ++i) {
        call_slot& s = slots_[i];
        if (!s.held || s.decision || s.requested) {
            continue;
        }
        s.requested = true;
        if (observed()) {
            const api::tool_call& c = step_calls_[i];
            emit(events::approval_requested{turn_, c.id, c.name, c.arguments});
        }
    }
}

std::vector<pending_approval> run_machine::undecided() const {
    std::vector<pending_approval> out;
    for (std::size_t i = 0; i < slots_.size(); ++i) {
        if (slots_[i].held && !slots_[i].decision) {
            const api::tool_call& c = step_calls_[i];
            out.push_back({c.id, c.name, c.arguments, turn_, {}});
        }
    }
    // Then what children wait for (each names its run): the run stops for them too.
    for (const auto& s : slots_) {
        out.insert(out.end(), s.child_pending.begin(), s.child_pending.end());
    }
    return out;
}

std::vector<std::string> run_machine::paused_children() const {
    std::vector<std::string> out;
    if (phase_ != phase::tool_step) {
        return out;
    }
    for (std::size_t i = 0; i < slots_.size(); ++i) {
        if (!slots_[i].child_pending.empty()) {
            out.push_back(step_calls_[i].id);
        }
    }
    return out;
}

void run_machine::on_child_resumed(const std::string& call_id) {
    if (phase_ != phase::tool_step) {
        return;
    }
    for (std::size_t i = 0; i < slots_.size(); ++i) {
        if (step_calls_[i].id != call_id || slots_[i].child_pending.empty()) {
            continue;
        }
        slots_[i].child_pending.clear();
        slots_[i].rerun = true; // dispatched by release_decided, which knows the time
        asked_ = false;
        return;
    }
}

bool run_machine::awaiting_approval() const noexcept {
    if (phase_ != phase::tool_step || !before_tools_settled_ || in_flight_ > 0) {
        return false;
    }
    return std::any_of(slots_.begin(), slots_.end(), [](const call_slot& s) {
        return (s.held && !s.decision) || !s.child_pending.empty();
    });
}

void run_machine::abandon_undecided(std::string_view why) {
    for (std::size_t i = 0; i < slots_.size(); ++i) {
        if ((slots_[i].held && !slots_[i].decision) || !slots_[i].child_pending.empty()) {
            slots_[i].held = false;
            slots_[i].child_pending.clear();
            give_result(i, tools::result_status::cancelled, std::string(why));
        }
    }
}

void run_machine::release_decided(clock_type::time_point now) {
    std::vector<std::size_t> again; // calls whose paused children continue
    for (std::size_t i = 0; i < slots_.size(); ++i) {
        if (!slots_[i].rerun) {
            continue;
        }
        slots_[i].rerun = false;
        if (cancelled_) {
            give_result(
                i,
                tools::result_status::cancelled,
                "cancelled: the run was cancelled before this call's sub-agent could continue"
            );
        } else {
            again.push_back(i);
        }
    }
    if (!again.empty()) {
        // Its own batch deadline, as a released call: the wait was a person's, not the tool's.
        start_dispatch(std::move(again), run_deadline_.cap(cfg_.limits.tool_batch_timeout, now));
    }
    std::vector<std::size_t> go;
    for (std::size_t i = 0; i < slots_.size(); ++i) {
        call_slot& s = slots_[i];
        if (!s.held || !s.decision) {
            continue;
        }
        s.held = false;
        const approval_decision& d = *s.decision;
        const api::tool_call& c = step_calls_[i];
        if (observed()) {
            emit(events::approval_decided{turn_, c.id, c.name, d.approved, d.arguments, d.message});
        }
        if (!d.approved) {
            std::string text = "denied: the user declined this " + c.name +
                               " call; it did not run. Do not retry the same call; explain what "
                               "you wanted to do or try a different approach.";
            if (!d.message.empty()) {
                text += " The user said: " + d.message;
            }
            give_result(i, tools::result_status::refused, std::move(text));
        } else if (cancelled_) {
            give_result(
                i,
                tools::result_status::cancelled,
                "cancelled: the run was cancelled before this call started"
            );
        } else if (run_deadline_.passed(now)) {
            give_result(
                i,
                tools::result_status::cancelled,
                "not run: the run's deadline passed before this call could start"
            );
        } else {
            if (d.arguments) {
                step_calls_[i].arguments = *d.arguments;
                result_.conversation.set_call_arguments(c.id, *d.arguments);
            }
            go.push_back(i);
        }
    }
    if (!go.empty()) {
        // Its own batch deadline: the time a person took to decide is not the tools'.
        start_dispatch(std::move(go), run_deadline_.cap(cfg_.limits.tool_batch_timeout, now), true);
    }
}

void run_machine::on_approval(const std::string& call_id, approval_decision decision) {
    if (phase_ != phase::tool_step) {
        return;
    }
    for (std::size_t i = 0; i < step_calls_.size(); ++i) {
        call_slot& s = slots_[i];
        if (step_calls_[i].id != call_id || !s.needs_approval || s.decision || s.result) {
            continue;
        }
        s.decision = std::move(decision);
        asked_ = false; // what is still undecided is asked for again at the next wait
        return;
    }
}

void run_machine::on_paused() {
    paused_ = true;
}

void run_machine::on_resumed() {
    asked_ = false;
    if (phase_ != phase::tool_step) {
        return;
    }
    for (auto& s : slots_) {
        s.requested = false;
    }
    request_approvals();
}

} // namespace wafer::detail
