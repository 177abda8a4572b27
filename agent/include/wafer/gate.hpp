// Gates (where critics review a run) and how the verdicts of several critics combine.
#pragma once

#include <wafer/verdict.hpp>

#include <cstdint>
#include <optional>
#include <span>
#include <string_view>

namespace wafer {

/// The points of a run where critics review it.
enum class gate : std::uint8_t {
    /// The model proposed tool calls; none of the calls a critic covers has started.
    before_tools = 1,
    /// A step's tool results are in; the next model turn has not started.
    after_step = 2,
    /// The model gave an answer without tool calls; the run has not ended.
    final_answer = 4,
};

std::string_view to_string(gate g) noexcept;
std::optional<gate> gate_from_string(std::string_view s) noexcept;

/// A set of gates (bitwise or of gate values).
class gate_set {
public:
    constexpr gate_set() noexcept = default;
    constexpr gate_set(gate g) noexcept : bits_(static_cast<std::uint8_t>(g)) {}
    constexpr gate_set(std::initializer_list<gate> gs) noexcept {
        for (gate g : gs) {
            bits_ |= static_cast<std::uint8_t>(g);
        }
    }
    constexpr bool contains(gate g) const noexcept {
        return (bits_ & static_cast<std::uint8_t>(g)) != 0;
    }
    constexpr bool empty() const noexcept { return bits_ == 0; }
    friend constexpr gate_set operator|(gate_set a, gate_set b) noexcept {
        gate_set s;
        s.bits_ = static_cast<std::uint8_t>(a.bits_ | b.bits_);
        return s;
    }
    friend constexpr bool operator==(gate_set, gate_set) noexcept = default;

private:
    std::uint8_t bits_ = 0;
};

/// How the decisions of several critics on one gate combine.
enum class gate_policy {
    /// Approve only if every critic approves (default). Any deny denies; else any revise revises.
    all,
    /// Approve if at least one critic approves. Else deny if any denies, else revise.
    any,
    /// Approve if more than half approve. Else deny if denies are at least as many as revises,
    /// else revise.
    majority,
};

std::string_view to_string(gate_policy p) noexcept;

/// The combined decision of `decisions` under `policy`. No decisions: approve (nobody objected).
critic_decision combine_decisions(
    std::span<const critic_decision> decisions, gate_policy policy = gate_policy::all
) noexcept;

} // namespace wafer
