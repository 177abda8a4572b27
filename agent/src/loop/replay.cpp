#include "loop/replay.hpp"

#include <wafer/error.hpp>
#include <wafer/store/error.hpp>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <map>

#include "loop/child_runs.hpp"

namespace wafer::detail {

void journal_mismatch(
    const std::string& run_id, const store::journal_entry& e, const std::string& why
) {
    diagnostics d;
    d.detail = "run " + run_id + ": journal entry " + std::to_string(e.seq) + " (" + e.kind + ") " +
               why +
               "; the run was journaled by an agent configured differently (model, tools, "
               "critics or limits)";
    throw wafer::error(errc::invalid_request, std::move(d));
}

void journal_corrupt(
    const std::string& run_id, const store::journal_entry& e, const std::string& why
) {
    store::throw_error(
        store::errc::corrupt,
        "run " + run_id + ": journal entry " + std::to_string(e.seq) + " (" + e.kind +
            ") does not parse: " + why
    );
}

std::vector<open_op> replay_entries(
    run_machine& machine,
    const std::vector<store::journal_entry>& entries,
    const std::string& run_id,
    const std::function<void(report)>& feed
) {
    const auto now = clock_type::now();
    std::map<std::uint32_t, run_action> open; // started, and not ended by the journal
    std::map<std::uint32_t, std::vector<bool>> reported;
    std::set<std::uint32_t> dispatched;
    std::map<std::uint32_t, std::set<std::string>> children; // calls that start child runs
    auto drain = [&] {
        for (;;) {
            run_action a = machine.next(now);
            switch (a.type) {
            case run_action_type::emit: // what was replayed is not sent again
            case run_action_type::cancel_ops:
            case run_action_type::await_approval: // asked again once resumed
                continue;
            case run_action_type::wait:
            case run_action_type::done:
                return;
            default:
                if (a.type == run_action_type::dispatch) {
                    reported[a.op].assign(a.dispatch().calls.size(), false);
                }
                const std::uint32_t op = a.op;
                open.emplace(op, std::move(a));
            }
        }
    };
    for (const auto& e : entries) {
        if (e.kind == journal_kind::stopped || e.kind == journal_kind::follow_up) {
            continue;
        }
        drain();
        if (e.kind == journal_kind::approval || e.kind == journal_kind::child_resumed) {
            try {
                feed(report_of(e));
            } catch (const std::exception& x) {
                journal_corrupt(run_id, e, x.what());
            }
            continue;
        }
        if (e.kind == journal_kind::dispatch) {
            std::uint32_t op = 0;
            std::vector<std::string> ids;
            try {
                const nlohmann::json body = nlohmann::json::parse(e.body);
                op = body.at("op").get<std::uint32_t>();
                ids = body.at("calls").get<std::vector<std::string>>();
                children[op].merge(children_of(body));
            } catch (const std::exception& x) {
                journal_corrupt(run_id, e, x.what());
            }
            auto it = open.find(op);
            if (it == open.end() || it->second.type != run_action_type::dispatch) {
                journal_mismatch(run_id, e, "records a dispatch the agent did not ask for");
            }
            // The same calls (a resumed dispatch records again the subset it reruns): an
            // agent that decides differently which calls wait for approval does not match.
            const auto& requests = it->second.dispatch().requests;
            const bool first = !dispatched.contains(op);
            bool same = !first || ids.size() == requests.size();
            for (const auto& id : ids) {
                same = same && std::any_of(requests.begin(), requests.end(), [&](const auto& r) {
                           return r.id == id;
                       });
            }
            if (!same) {
                journal_mismatch(run_id, e, "records other calls than the agent dispatches");
            }
            dispatched.insert(op);
            continue;
        }
        report r;
        try {
            r = report_of(e);
        } catch (const std::exception& x) {
            journal_corrupt(run_id, e, x.what());
        }
        const std::uint32_t op = std::visit(
            [](const auto& x) -> std::uint32_t {
                using T = std::decay_t<decltype(x)>;
                if constexpr (std::is_same_v<T, approval_given> || std::is_same_v<T, child_resumed>) {
                    return 0; // not reached: approvals and child_resumed are fed above
                } else {
                    return x.op;
                }
            },
            r
        );
        auto it = open.find(op);
        const run_action_type want =
            std::holds_alternative<model_done>(r)    ? run_action_type::call_model
            : std::holds_alternative<review_done>(r) ? run_action_type::review
                                                     : run_action_type::dispatch;
        if (it == open.end() || it->second.type != want) {
            journal_mismatch(run_id, e, "answers an operation the agent did not start");
        }
        if (const auto* t = std::get_if<tool_finished>(&r)) {
            auto& seen = reported[op];
            if (t->k >= seen.size()) {
                journal_mismatch(run_id, e, "answers a call the dispatch does not have");
            }
            seen[t->k] = true;
        } else {
            open.erase(it);
        }
        feed(std::move(r));
    }
    drain();
    std::vector<open_op> out;
    for (auto& [op, a] : open) {
        out.push_back({std::move(a), dispatched.contains(op), reported[op], children[op]});
    }
    return out;
}

std::optional<tools::tool_result> in_doubt_outcome(
    const in_doubt_call& c,
    bool child,
    const std::function<reconcile_decision(const in_doubt_call&)>& hook
) {
    if (c.read_only || child) {
        return std::nullopt;
    }
    reconcile_decision d = reconcile_decision::unknown();
    if (hook) {
        try {
            d = hook(c);
        } catch (const std::exception&) { // NOLINT(bugprone-empty-catch)
            // A hook that fails decides nothing: the outcome stays unknown.
        }
    }
    if (d.action == reconcile_decision::kind::run_again) {
        return std::nullopt;
    }
    tools::tool_result r;
    r.tool_call_id = c.call_id;
    r.name = c.tool;
    if (d.action == reconcile_decision::kind::use_result) {
        r.content = std::move(d.content);
        r.is_error = d.is_error;
        r.status = d.is_error ? tools::result_status::tool_error : tools::result_status::ok;
    } else {
        r.is_error = true;
        r.status = tools::result_status::in_doubt;
        r.content = "the outcome of this call is unknown: the run was interrupted while it ran, "
                    "and it was not run again. Check whether it took effect before you retry it.";
    }
    return r;
}

} // namespace wafer::detail
