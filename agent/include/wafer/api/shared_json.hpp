// An immutable JSON value shared by its copies, with its wire text rendered once.
#pragma once

#include <nlohmann/json.hpp>

#include <memory>
#include <string>

namespace wafer::api {

/// An immutable JSON value whose copies share one instance (a copy costs a reference count) and
/// its compact wire text, rendered once. Request parts that repeat every turn, such as tool
/// schemas, use it so that building and sending a request neither copies nor re-renders them.
///
/// It reads like the `std::optional<nlohmann::json>` it stands for: empty by default, assigned
/// from a json, tested with `if (v)`, read with `*v` and `v->`.
///
/// Thread safety: const members may be used concurrently; copies may live on any thread.
class shared_json {
public:
    /// No value.
    shared_json() noexcept = default;

    /// Takes `value` and renders its wire text.
    shared_json(nlohmann::json value); // NOLINT(google-explicit-constructor): optional-like

    bool has_value() const noexcept { return static_cast<bool>(state_); }
    explicit operator bool() const noexcept { return has_value(); }

    /// The value. Precondition: has_value().
    const nlohmann::json& operator*() const noexcept { return state_->value; }
    const nlohmann::json* operator->() const noexcept { return &state_->value; }

    /// The value, or `fallback` when there is none.
    nlohmann::json value_or(nlohmann::json fallback) const {
        return state_ ? state_->value : std::move(fallback);
    }

    /// The compact JSON text the request serialiser writes for the value (object keys in
    /// nlohmann's sorted order). Empty when there is no value, or when the value cannot be sent
    /// (a string in it is not UTF-8); the serialiser then reports the error.
    const std::string& wire_text() const noexcept;

    friend bool operator==(const shared_json& a, const shared_json& b) noexcept {
        if (a.state_ == b.state_) {
            return true;
        }
        return a.state_ && b.state_ && a.state_->value == b.state_->value;
    }

private:
    struct state {
        nlohmann::json value;
        std::string text;
    };
    std::shared_ptr<const state> state_;
};

} // namespace wafer::api
