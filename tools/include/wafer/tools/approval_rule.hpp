// Which calls of a tool need a person's approval before they run.
#pragma once

#include <nlohmann/json_fwd.hpp>

#include <concepts>
#include <functional>
#include <string_view>
#include <utility>

namespace wafer::tools {

/// tool_options::needs_approval: never (the default), always, or when a predicate on the
/// arguments says so. The agent asks before such a call runs (agent::async_run pauses with
/// stop_reason::awaiting_approval, or asks over a live approval channel).
///
///     opts.needs_approval = true;
///     opts.needs_approval = [](const nlohmann::json& args) { return args.value("force", false); };
///
/// Fail-safe: with a predicate, arguments that are not a JSON object need approval without the
/// predicate being asked, and a predicate that throws counts as "needs approval".
class approval_rule {
public:
    approval_rule() = default;
    // Implicit, so that a bool or a lambda can be assigned.
    approval_rule(bool always) : always_(always) {} // NOLINT(google-explicit-constructor)
    template <class F>
    requires(!std::same_as<std::decay_t<F>, bool> && !std::same_as<std::decay_t<F>, approval_rule> && std::is_invocable_r_v<bool, F&, const nlohmann::json&>)
        approval_rule(F&& when) // NOLINT(google-explicit-constructor)
        : when_(std::forward<F>(when)) {}

    /// Whether some call may need approval (the rule is not "never").
    bool may_apply() const noexcept { return always_ || static_cast<bool>(when_); }

    /// Whether a call with these arguments (the JSON text the model sent) needs approval.
    bool needs(std::string_view arguments) const;

private:
    bool always_ = false;
    std::function<bool(const nlohmann::json&)> when_;
};

} // namespace wafer::tools
