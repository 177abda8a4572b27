#include <wafer/gate.hpp>

namespace wafer {

std::string_view to_string(gate g) noexcept {
    switch (g) {
    case gate::before_tools:
        return "before_tools";
    case gate::after_step:
        return "after_step";
    case gate::final_answer:
        return "final_answer";
    }
    return "final_answer";
}

std::optional<gate> gate_from_string(std::string_view s) noexcept {
    for (gate g : {gate::before_tools, gate::after_step, gate::final_answer}) {
        if (to_string(g) == s) {
            return g;
        }
    }
    return std::nullopt;
}

std::string_view to_string(gate_policy p) noexcept {
    switch (p) {
    case gate_policy::all:
        return "all";
    case gate_policy::any:
        return "any";
    case gate_policy::majority:
        return "majority";
    }
    return "all";
}

critic_decision
combine_decisions(std::span<const critic_decision> decisions, gate_policy policy) noexcept {
    std::size_t approve = 0, revise = 0, deny = 0;
    for (critic_decision d : decisions) {
        switch (d) {
        case critic_decision::approve:
            ++approve;
            break;
        case critic_decision::revise:
            ++revise;
            break;
        case critic_decision::deny:
            ++deny;
            break;
        }
    }
    if (decisions.empty()) {
        return critic_decision::approve;
    }
    switch (policy) {
    case gate_policy::all:
        if (deny > 0) {
            return critic_decision::deny;
        }
        return revise > 0 ? critic_decision::revise : critic_decision::approve;
    case gate_policy::any:
        if (approve > 0) {
            return critic_decision::approve;
        }
        return deny > 0 ? critic_decision::deny : critic_decision::revise;
    case gate_policy::majority:
        if (approve * 2 > decisions.size()) {
            return critic_decision::approve;
        }
        return deny >= revise ? critic_decision::deny : critic_decision::revise;
    }
    return critic_decision::deny;
}

} // namespace wafer
