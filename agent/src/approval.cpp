// Decisions on a stopped run's pending calls, recorded in its journal for the next resume.
#include <wafer/approval.hpp>
#include <wafer/error.hpp>
#include <wafer/store/error.hpp>
#include <wafer/store/run_store.hpp>

#include <nlohmann/json.hpp>

#include <algorithm>

#include "loop/journal.hpp"

namespace wafer {

namespace asio = boost::asio;

namespace {

[[noreturn]] void refuse(std::string detail) {
    diagnostics d;
    d.detail = std::move(detail);
    throw wafer::error(errc::invalid_request, std::move(d));
}

asio::awaitable<store::run_info> existing_run(store::run_store& st, const std::string& run_id) {
    std::optional<store::run_info> info = co_await st.async_find_run(run_id);
    if (!info) {
        store::throw_error(store::errc::run_not_found, "run " + run_id + " does not exist");
    }
    co_return std::move(*info);
}

asio::awaitable<std::vector<pending_approval>>
pending_of(store::run_store& st, const std::string& run_id) {
    std::vector<store::journal_entry> journal = co_await st.async_read_journal(run_id);
    try {
        co_return detail::pending_in(journal);
    } catch (const std::exception& e) {
        store::throw_error(
            store::errc::corrupt,
            "run " + run_id + ": its journal's pending approvals do not parse: " + e.what()
        );
    }
}

std::string list_of(const std::vector<pending_approval>& pending) {
    std::string out;
    for (const auto& p : pending) {
        out += (out.empty() ? "" : ", ") + p.call_id + " (" + p.tool + ")";
    }
    return out.empty() ? "none" : out;
}

} // namespace

asio::awaitable<std::vector<pending_approval>>
async_pending_approvals(store::run_store& st, std::string run_id) {
    const store::run_info info = co_await existing_run(st, run_id);
    if (info.status != store::run_status::awaiting_approval) {
        co_return std::vector<pending_approval>{};
    }
    co_return co_await pending_of(st, run_id);
}

asio::awaitable<void> async_decide(
    store::run_store& st, std::string run_id, std::string call_id, approval_decision decision
) {
    if (decision.arguments &&
        !nlohmann::json::parse(*decision.arguments, nullptr, false).is_object()) {
        refuse("the edited arguments for call " + call_id + " are not a JSON object");
    }
    const store::run_info info = co_await existing_run(st, run_id);
    if (info.status != store::run_status::awaiting_approval) {
        refuse(
            "run " + run_id + " is not waiting for approval (" +
            (info.stop_reason.empty() ? std::string(store::to_string(info.status))
                                      : info.stop_reason) +
            ")"
        );
    }
    const std::vector<pending_approval> pending = co_await pending_of(st, run_id);
    const auto it = std::find_if(pending.begin(), pending.end(), [&](const auto& p) {
        return p.call_id == call_id;
    });
    if (it == pending.end()) {
        refuse(
            "run " + run_id + " has no pending call " + call_id + " (pending: " + list_of(pending) +
            ")"
        );
    }
    const std::string child = it->run_id;
    if (!child.empty()) {
        // A call of a child run (agent::as_tool) the run stopped for: the decision is the
        // child's, recorded in its journal (and on, for a grandchild's call). The parent notes
        // it too, so that the call is no longer listed as pending there.
        asio::awaitable<void> forward = async_decide(st, child, call_id, decision);
        co_await std::move(forward);
    }
    // No owner: refused while a process drives the run (it holds the lease).
    std::vector<store::journal_entry> entries;
    entries.push_back(detail::approval_entry(call_id, decision, child));
    asio::awaitable<std::uint64_t> append =
        st.async_append(std::move(run_id), {}, std::move(entries), {});
    co_await std::move(append);
}

asio::awaitable<void> async_approve(
    store::run_store& st,
    std::string run_id,
    std::string call_id,
    std::optional<std::string> edited_arguments
) {
    // Named: GCC 12 may destroy a temporary of a co_await expression twice.
    asio::awaitable<void> op = async_decide(
        st,
        std::move(run_id),
        std::move(call_id),
        approval_decision::approve(std::move(edited_arguments))
    );
    co_await std::move(op);
}

asio::awaitable<void>
async_deny(store::run_store& st, std::string run_id, std::string call_id, std::string message) {
    asio::awaitable<void> op = async_decide(
        st, std::move(run_id), std::move(call_id), approval_decision::deny(std::move(message))
    );
    co_await std::move(op);
}

} // namespace wafer
