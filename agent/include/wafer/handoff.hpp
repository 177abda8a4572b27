// Handoffs: agents that pass the conversation to one another through transfer_to_<name> tools.
#pragma once

#include <wafer/agent.hpp>

#include <boost/asio/awaitable.hpp>

#include <cstddef>
#include <functional>
#include <map>
#include <string>
#include <vector>

namespace wafer {

/// Which part of the sender's conversation the receiving agent gets. The sender's system
/// prompt never passes (the receiver's own takes its place), nor does the step that made the
/// transfer (the transfer call and the results of its step).
class handoff_history {
public:
    /// Every message.
    static handoff_history all();
    /// None: the receiver starts from the user's request.
    static handoff_history none();
    /// The last `n` messages (a tool result whose call was cut off is dropped by history
    /// repair before the receiver's first request).
    static handoff_history last(std::size_t n);
    /// The messages `keep` says yes to.
    static handoff_history filter(std::function<bool(const api::message&)> keep);

    /// The policy applied to `history` (system messages are taken out first).
    std::vector<api::message> apply(const std::vector<api::message>& history) const;

private:
    enum class kind { all, none, last, filter };
    kind kind_ = kind::all;
    std::size_t n_ = 0;
    std::function<bool(const api::message&)> keep_;
};

/// How a handoff_team run went.
struct handoff_result {
    /// The run of the agent that finished (run_result::agent names it). Its stop_reason is
    /// handoff only when handoff_team::max_handoffs stopped the team.
    run_result result;
    /// Every run, in order (the first agent's first).
    std::vector<run_result> runs;
    /// The handoffs made, in order.
    std::vector<events::handoff> handoffs;
    /// Everything every run used (the sum of their run_result::total_usage).
    api::usage usage;
    /// The team's run id: its runs' parent_run_id and the run id of its handoff events.
    std::string run_id;
};

/// Agents that hand the conversation over to one another. Each route gives its sender a tool
/// `transfer_to_<receiver>` ({"message": string}, optional); a successful call ends the
/// sender's run after its step (stop_reason::handoff) and the receiver's run starts with its
/// own system prompt, the sender's history filtered by the route's policy, and a user message
/// that names the sender, repeats the sender model's message and the user's request. A step
/// with several transfer calls follows the first.
///
/// Events: every member's events go to the run_options' observers with parent_run_id = the
/// team's run id; between two runs the team sends an events::handoff (run_id: the team's).
///
/// Thread safety: configure it first (add, route), then run it; async_run may run
/// concurrently on one executor.
class handoff_team {
public:
    explicit handoff_team(std::string name = "team");

    /// Adds a member named by its agent_config::name (which must be usable in a tool name:
    /// [A-Za-z0-9_-]). Throws std::invalid_argument for a duplicate name.
    handoff_team& add(const agent& member);
    /// Lets `from` transfer to `to`. Throws std::invalid_argument for an unknown member.
    handoff_team& route(
        const std::string& from,
        const std::string& to,
        handoff_history history = handoff_history::all(),
        std::string description = {}
    );

    /// Handoffs one run may make; the transfer that would exceed it ends the team with the
    /// sender's result (stop_reason::handoff).
    std::size_t max_handoffs = 8;

    /// Runs `input` from member `first`. options.run_id is the team's id (generated when
    /// empty); each member's run gets "<team id>/<k>" (k from 0). Throws std::invalid_argument
    /// for an unknown member. Other errors as agent::async_run.
    boost::asio::awaitable<handoff_result>
    async_run(std::string first, std::string input, run_options options) const;

private:
    struct route_entry {
        std::string to;
        std::string description;
        handoff_history history;
    };
    struct member {
        agent base;
        std::vector<route_entry> routes;
        // The base agent with its transfer tools, rebuilt by route().
        agent running;
    };
    const member& find(const std::string& name) const;

    std::string name_;
    std::map<std::string, member> members_;
};

} // namespace wafer
