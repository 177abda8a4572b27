#include "compose/child_run.hpp"

#include <wafer/error.hpp>
#include <wafer/store/error.hpp>
#include <wafer/store/run_queue.hpp>
#include <wafer/store/run_store.hpp>
#include <wafer/worker.hpp>

#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <algorithm>

namespace wafer::detail {

namespace asio = boost::asio;

namespace {

// Resumes a child that has a row: reads a finished one back, continues any other here.
asio::awaitable<run_result>
resume_child(const agent& runner, run_options ro, child_journal j, bool finished) {
    resume_options o;
    o.store = j.store;
    o.read_back = finished;
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

// Tells the queue's on_wait while a call waits for its queued child, however the wait ends.
class waiting_mark {
public:
    explicit waiting_mark(const child_queue& q) : on_wait_(q.on_wait) {
        if (on_wait_) {
            on_wait_(+1);
        }
    }
    ~waiting_mark() {
        if (on_wait_) {
            on_wait_(-1);
        }
    }
    waiting_mark(const waiting_mark&) = delete;
    waiting_mark& operator=(const waiting_mark&) = delete;

private:
    std::function<void(int)> on_wait_;
};

// Where a queued child is once the parent stops waiting.
enum class child_end { finished, paused, failed };

asio::awaitable<std::pair<child_end, std::string>>
wait_for(const child_queue& q, store::run_store& st, const std::string& id) {
    const waiting_mark mark(q);
    const auto most = std::max(q.poll, std::chrono::milliseconds(1));
    auto delay = std::max(most / 10, std::chrono::milliseconds(1));
    asio::steady_timer timer(co_await asio::this_coro::executor);
    for (;;) {
        // The queue entry first: a worker finishes the run before it marks the entry done, so
        // a done entry read first means the row read next shows the run finished if it did.
        // (Read the other way round, a child that finished between the two reads looked
        // paused, and was then resumed as if it had not finished.)
        const std::optional<store::queue_entry> e = co_await q.queue->async_find(id);
        const std::optional<store::run_info> row = co_await st.async_find_run(id);
        if (row && row->status == store::run_status::finished) {
            // Finished, unless the queue failed it (as poison: its journal does not end).
            if (e && e->state == store::queue_state::failed) {
                co_return std::pair{child_end::failed, e->reason};
            }
            if (!e || e->state == store::queue_state::done) {
                co_return std::pair{child_end::finished, std::string()};
            }
            // Its entry still claimed: the worker marks it next, done or failed (a worker whose
            // driver threw stops the run first, and that journal does not end). Read as
            // finished now, such a child was read back and broke its parent (seen under load
            // in postgres/worker spread_children).
        }
        if (e && e->state == store::queue_state::failed) {
            co_return std::pair{child_end::failed, e->reason};
        }
        if (e && e->state == store::queue_state::done) {
            // Done but not finished: its worker stopped it awaiting approval.
            co_return std::pair{child_end::paused, std::string()};
        }
        timer.expires_after(delay);
        co_await timer.async_wait(asio::use_awaitable); // a cancelled call stops the wait here
        delay = std::min(delay * 2, most);
    }
}

run_result failed_in_queue(std::string id, std::string reason) {
    run_result r;
    r.run_id = std::move(id);
    r.stop_reason = stop_reason::error;
    diagnostics d;
    d.detail = "the child run failed in the run queue" + (reason.empty() ? "" : ": " + reason);
    r.error = run_error{make_error_code(boost::system::errc::owner_dead), std::move(d)};
    return r;
}

// A child spread over workers: submitted once, then waited for; its result read from its
// journal.
asio::awaitable<run_result> run_queued_child(
    const agent& runner, std::string input, run_options ro, child_journal j, bool has_row
) {
    const child_queue& q = *j.queue;
    if (!has_row) {
        queued_run qr;
        qr.run_id = ro.run_id;
        qr.input = std::move(input);
        qr.agent = runner.config().name;
        qr.max_attempts = std::max(q.max_attempts, 1);
        store::run_submission sub = make_submission(std::move(qr));
        sub.parent_id = ro.parent_run_id;
        try {
            co_await q.queue->async_submit(std::move(sub));
        } catch (const wafer::error& e) {
            // A submit that committed before its reply was lost: the child is queued.
            if (e.code() != store::errc::run_exists) {
                throw;
            }
        }
    }
    auto [end, reason] = co_await wait_for(q, *j.store, ro.run_id);
    if (end == child_end::failed) {
        // A child that ended as an error has its journal to read; one failed as poison
        // (its claims lapsed) does not.
        std::optional<store::run_info> row = co_await j.store->async_find_run(ro.run_id);
        if (row && row->status == store::run_status::finished) {
            try {
                co_return co_await resume_child(runner, ro, j, true);
            } catch (const wafer::error&) { // NOLINT(bugprone-empty-catch)
                // Its journal does not end: the queue's reason says why.
            }
        }
        co_return failed_in_queue(std::move(ro.run_id), std::move(reason));
    }
    co_return co_await resume_child(
        runner, std::move(ro), std::move(j), end == child_end::finished
    );
}

} // namespace

asio::awaitable<run_result>
async_run_child(const agent& runner, std::string input, run_options ro, child_journal j) {
    std::optional<store::run_info> row = co_await j.store->async_find_run(ro.run_id);
    if (j.queue && j.queue->queue) {
        // Queued before (or never started): wait for it in the queue. A child that started in
        // a process without a queue goes on as it began, below.
        // (A finished one too: the queue may have failed it, and then its journal does not end.)
        bool queued = !row;
        if (row) {
            queued = (co_await j.queue->queue->async_find(ro.run_id)).has_value();
        }
        if (queued) {
            co_return co_await run_queued_child(
                runner, std::move(input), std::move(ro), std::move(j), row.has_value()
            );
        }
    }
    if (!row) {
        ro.store = j.store;
        ro.lease_owner = j.owner;
        ro.lease_ttl = j.lease_ttl;
        co_return co_await runner.async_run(std::move(input), std::move(ro));
    }
    // It started before (an earlier process of the parent, or this one before a pause).
    const bool finished = row->status == store::run_status::finished;
    co_return co_await resume_child(runner, std::move(ro), std::move(j), finished);
}

} // namespace wafer::detail
