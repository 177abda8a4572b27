#include "compose/child_run.hpp"

#include <wafer/store/run_store.hpp>

namespace wafer::detail {

namespace asio = boost::asio;

asio::awaitable<run_result>
async_run_child(const agent& runner, std::string input, run_options ro, child_journal j) {
    std::optional<store::run_info> row = co_await j.store->async_find_run(ro.run_id);
    if (!row) {
        ro.store = j.store;
        ro.lease_owner = j.owner;
        ro.lease_ttl = j.lease_ttl;
        co_return co_await runner.async_run(std::move(input), std::move(ro));
    }
    // It started before (an earlier process of the parent, or this one before a pause).
    resume_options o;
    o.store = j.store;
    o.read_back = row->status == store::run_status::finished;
    o.reconcile = std::move(j.reconcile);
    o.on_event = std::move(ro.on_event);
    o.events = std::move(ro.events);
    o.finish_events = ro.finish_events;
    o.lease_ttl = j.lease_ttl;
    o.lease_owner = std::move(j.owner);
    o.take_over_from = std::move(j.previous_owner);
    o.parent_run_id = std::move(ro.parent_run_id);
    o.deadline = ro.deadline;
    o.approvals = std::move(ro.approvals);
    std::string id = std::move(ro.run_id);
    co_return co_await runner.async_resume(std::move(id), std::move(o));
}

} // namespace wafer::detail
