// The worker: one claiming loop and a coroutine per claimed run (with its heartbeat beside
// it), all on the executor async_run runs on. Timers stand in for condition variables; what to
// record in the queue when a run ends is decided by decide_outcome (worker/outcome.hpp).
#include <wafer/child_queue.hpp>
#include <wafer/error.hpp>
#include <wafer/store/error.hpp>
#include <wafer/worker.hpp>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <algorithm>
#include <stdexcept>
#include <vector>

#include "loop/journal.hpp"
#include "worker/outcome.hpp"

namespace wafer {

namespace asio = boost::asio;

std::string_view to_string(worker_outcome o) noexcept {
    switch (o) {
    case worker_outcome::completed:
        return "completed";
    case worker_outcome::paused:
        return "paused";
    case worker_outcome::failed:
        return "failed";
    case worker_outcome::released:
        return "released";
    case worker_outcome::lost:
        return "lost";
    }
    return "failed";
}

store::run_submission make_submission(queued_run run) {
    if (run.run_id.empty()) {
        throw std::invalid_argument("wafer::make_submission: queued_run::run_id is required");
    }
    if (run.max_attempts < 1) {
        throw std::invalid_argument("wafer::make_submission: max_attempts must be at least 1");
    }
    detail::run_setup setup;
    setup.run_id = run.run_id;
    setup.input = run.input;
    setup.history = std::move(run.history);
    store::run_submission sub;
    sub.setup = detail::setup_text(setup, run.metadata);
    sub.id = std::move(run.run_id);
    sub.task = std::move(run.input);
    sub.scope = std::move(run.scope);
    sub.agent = std::move(run.agent);
    sub.max_attempts = run.max_attempts;
    return sub;
}

run_driver drive_with(const agent& runner) {
    return [&runner](const store::run_claim& claim, resume_options options) {
        return runner.async_resume(claim.run_id, std::move(options));
    };
}

namespace {

asio::awaitable<run_result> drive_named(
    std::shared_ptr<const std::vector<agent>> agents, store::run_claim claim, resume_options options
) {
    const auto it = std::find_if(agents->begin(), agents->end(), [&](const agent& a) {
        return a.config().name == claim.agent;
    });
    if (it == agents->end()) {
        throw std::runtime_error(
            "no agent named '" + claim.agent + "' in this worker for run " + claim.run_id
        );
    }
    co_return co_await it->async_resume(claim.run_id, std::move(options));
}

} // namespace

run_driver drive_with(std::vector<agent> agents) {
    if (agents.empty()) {
        throw std::invalid_argument("wafer::drive_with: no agents");
    }
    for (std::size_t i = 0; i < agents.size(); ++i) {
        for (std::size_t k = i + 1; k < agents.size(); ++k) {
            if (agents[i].config().name == agents[k].config().name) {
                throw std::invalid_argument(
                    "wafer::drive_with: two agents are named '" + agents[i].config().name + "'"
                );
            }
        }
    }
    auto shared = std::make_shared<const std::vector<agent>>(std::move(agents));
    return [shared](const store::run_claim& claim, resume_options options) {
        return drive_named(shared, claim, std::move(options));
    };
}

namespace {

/// One claimed run while the worker drives it.
struct run_slot {
    run_slot(asio::any_io_executor ex, store::run_claim c)
        : claim(std::move(c)), beat(ex), joined(std::move(ex)) {}

    store::run_claim claim;
    // Alive until the slot goes: co_spawn (1.81) touches the slot while the completion runs.
    asio::cancellation_signal cancel;
    asio::steady_timer beat;
    asio::steady_timer joined;
    bool ended = false;
    bool beat_done = false;
    bool lost = false;
    bool given_back = false;
    /// Calls of the run waiting for queued children (worker_options::spread_children): while
    /// any wait, the run does not count against the worker's concurrency.
    int waiting = 0;
};

/// Waits on `t` until something cancels it (a timer as a condition variable).
asio::awaitable<void> wait_signal(asio::steady_timer& t) {
    t.expires_at(asio::steady_timer::time_point::max());
    co_await t.async_wait(asio::as_tuple(asio::use_awaitable));
}

asio::awaitable<void> pause(std::chrono::milliseconds d) {
    asio::steady_timer t(co_await asio::this_coro::executor);
    t.expires_after(d);
    co_await t.async_wait(asio::as_tuple(asio::use_awaitable));
}

std::string text_of(const wafer::error& e) {
    return e.diag().detail.empty() ? std::string(e.what()) : e.diag().detail;
}

} // namespace

struct worker::state {
    state(
        std::shared_ptr<store::run_store> s,
        std::shared_ptr<store::run_queue> q,
        run_driver d,
        worker_options o
    )
        : store(std::move(s)), queue(std::move(q)), driver(std::move(d)), opts(std::move(o)) {}

    std::shared_ptr<store::run_store> store;
    std::shared_ptr<store::run_queue> queue;
    run_driver driver;
    worker_options opts;
    std::string name;
    std::optional<asio::any_io_executor> ex;
    std::optional<asio::steady_timer> wake;
    std::optional<asio::steady_timer> drain_timer;
    std::vector<std::shared_ptr<run_slot>> running;
    bool draining = false;
    bool stopping = false;
    worker_stats stats;

    /// Runs that count against the concurrency: those not waiting for queued children.
    std::size_t busy() const {
        return static_cast<std::size_t>(std::count_if(
            running.begin(), running.end(), [](const auto& s) { return s->waiting == 0; }
        ));
    }

    void notify() {
        if (wake) {
            wake->cancel();
        }
    }

    void stop_all() {
        draining = true;
        stopping = true;
        for (const auto& s : running) {
            if (!s->ended && !s->given_back) {
                s->given_back = true;
                s->cancel.emit(asio::cancellation_type::terminal);
            }
        }
        notify();
    }
};

worker::worker(
    std::shared_ptr<store::run_store> store,
    std::shared_ptr<store::run_queue> queue,
    run_driver driver,
    worker_options options
) {
    if (!store || !queue || !driver) {
        throw std::invalid_argument("wafer::worker: a store, a queue and a driver are required");
    }
    if (options.concurrency == 0) {
        throw std::invalid_argument("wafer::worker: concurrency must be at least 1");
    }
    if (options.lease_ttl < std::chrono::milliseconds(30)) {
        throw std::invalid_argument("wafer::worker: lease_ttl must be at least 30 ms");
    }
    state_ = std::make_shared<state>(
        std::move(store), std::move(queue), std::move(driver), std::move(options)
    );
    state_->name = state_->opts.name.empty() ? detail::make_lease_owner() : state_->opts.name;
}

worker::~worker() = default;

const std::string& worker::name() const noexcept {
    return state_->name;
}

std::size_t worker::running() const noexcept {
    return state_->running.size();
}

void worker::stop() {
    state_->stop_all();
}

void worker::drain() {
    state& st = *state_;
    if (st.draining) {
        return;
    }
    st.draining = true;
    st.notify();
    if (!st.ex) {
        return; // not running yet: async_run returns at once
    }
    if (st.opts.drain_timeout <= std::chrono::milliseconds::zero()) {
        st.stop_all();
        return;
    }
    st.drain_timer.emplace(*st.ex);
    st.drain_timer->expires_after(st.opts.drain_timeout);
    st.drain_timer->async_wait([s = state_](boost::system::error_code ec) {
        if (!ec) {
            s->stop_all();
        }
    });
}

namespace {

asio::awaitable<void> heartbeat(std::shared_ptr<worker::state> st, std::shared_ptr<run_slot> s) {
    const auto ttl = st->opts.lease_ttl;
    const auto every = std::max(ttl / 3, std::chrono::milliseconds(10));
    for (;;) {
        s->beat.expires_after(every);
        co_await s->beat.async_wait(asio::as_tuple(asio::use_awaitable));
        if (s->ended) {
            co_return;
        }
        bool held = true;
        try {
            held = co_await st->queue->async_heartbeat(s->claim, ttl);
        } catch (const std::exception&) { // NOLINT(bugprone-empty-catch)
            // The store stayed out of reach for its whole retry window: try again at the next
            // beat. If the lease lapses meanwhile, the run's own appends are refused and the
            // next heartbeat says the claim is gone.
        }
        if (!held) {
            if (!s->ended) {
                s->lost = true;
                s->cancel.emit(asio::cancellation_type::terminal);
            }
            co_return;
        }
    }
}

asio::awaitable<void> drive_one(std::shared_ptr<worker::state> st, std::shared_ptr<run_slot> s) {
    const auto ex = co_await asio::this_coro::executor;
    asio::co_spawn(ex, heartbeat(st, s), [s](std::exception_ptr) {
        s->beat_done = true;
        s->joined.cancel();
    });
    detail::run_end end;
    try {
        resume_options o;
        o.store = st->store;
        o.lease_owner = s->claim.owner;
        o.lease_ttl = st->opts.lease_ttl;
        o.reconcile = st->opts.reconcile;
        // A run whose worker died after it finished but before the queue heard: its result
        // is read back, nothing runs again.
        o.read_back = true;
        if (st->opts.spread_children) {
            auto children = std::make_shared<child_queue>();
            children->queue = st->queue;
            children->max_attempts = st->opts.child_max_attempts;
            children->on_wait = [st, s](int delta) {
                s->waiting += delta;
                st->notify();
            };
            o.children = std::move(children);
        }
        auto op = st->driver(s->claim, std::move(o));
        end.result = co_await asio::co_spawn(
            ex, std::move(op), asio::bind_cancellation_slot(s->cancel.slot(), asio::use_awaitable)
        );
    } catch (const wafer::error& e) {
        end.thrown = e.code();
        end.thrown_text = text_of(e);
    } catch (const std::exception& e) {
        end.thrown_text = e.what();
    }
    s->ended = true;
    s->beat.cancel();
    while (!s->beat_done) {
        co_await wait_signal(s->joined);
    }
    end.claim_lost = s->lost;
    end.given_back = s->given_back;
    const detail::queue_decision d = detail::decide_outcome(end);

    worker_report report;
    report.run_id = s->claim.run_id;
    report.owner = s->claim.owner;
    report.attempt = s->claim.attempt;
    report.outcome = d.outcome;
    report.reason = d.reason;
    report.result = std::move(end.result);
    try {
        switch (d.outcome) {
        case worker_outcome::completed:
        case worker_outcome::paused:
            report.recorded = co_await st->queue->async_complete(s->claim);
            break;
        case worker_outcome::failed:
            report.recorded = co_await st->queue->async_fail(s->claim, d.reason);
            break;
        case worker_outcome::released:
            report.recorded = co_await st->queue->async_release(s->claim);
            break;
        case worker_outcome::lost:
            break;
        }
    } catch (const wafer::error& e) {
        report.reason += (report.reason.empty() ? "" : "; ") +
                         std::string("recording it in the queue failed: ") + text_of(e);
    } catch (const std::exception& e) {
        report.reason += (report.reason.empty() ? "" : "; ") +
                         std::string("recording it in the queue failed: ") + e.what();
    }
    switch (d.outcome) {
    case worker_outcome::completed:
        ++st->stats.completed;
        break;
    case worker_outcome::paused:
        ++st->stats.paused;
        break;
    case worker_outcome::failed:
        ++st->stats.failed;
        break;
    case worker_outcome::released:
        ++st->stats.released;
        break;
    case worker_outcome::lost:
        ++st->stats.lost;
        break;
    }
    if (st->opts.on_report) {
        st->opts.on_report(report);
    }
}

} // namespace

asio::awaitable<worker_stats> worker::async_run() {
    const std::shared_ptr<state> st = state_;
    const auto ex = co_await asio::this_coro::executor;
    // Cancellation from the caller stops the worker, which still waits for its runs to leave.
    co_await asio::this_coro::throw_if_cancelled(false);
    st->ex = ex;
    st->wake.emplace(ex);
    auto check_cancelled = [&st](asio::cancellation_state cs) {
        if (cs.cancelled() != asio::cancellation_type::none) {
            st->stop_all();
            return true;
        }
        return false;
    };

    while (!st->draining) {
        if (check_cancelled(co_await asio::this_coro::cancellation_state)) {
            co_await asio::this_coro::reset_cancellation_state();
            break;
        }
        if (st->busy() >= st->opts.concurrency) {
            co_await wait_signal(*st->wake);
            continue;
        }
        std::optional<store::run_claim> claim;
        bool claim_failed = false;
        try {
            claim =
                co_await st->queue->async_claim(st->name, st->opts.lease_ttl, st->opts.claim_wait);
        } catch (const std::exception&) {
            claim_failed = true;
        }
        if (claim_failed) {
            // The store out of reach past its own retries: wait, then claim again.
            if (!st->draining) {
                co_await pause(st->opts.retry_pause);
            }
            continue;
        }
        if (!claim) {
            continue;
        }
        if (st->draining) {
            // Claimed while a drain began: back to the queue at once, not counted.
            try {
                co_await st->queue->async_release(*claim);
            } catch (const std::exception&) { // NOLINT(bugprone-empty-catch)
                // It lapses after its lease instead.
            }
            break;
        }
        ++st->stats.claimed;
        if (st->opts.on_claim) {
            st->opts.on_claim(*claim);
        }
        auto slot = std::make_shared<run_slot>(ex, std::move(*claim));
        st->running.push_back(slot);
        asio::co_spawn(ex, drive_one(st, slot), [st, slot](std::exception_ptr) {
            std::erase(st->running, slot);
            st->notify();
        });
    }
    co_await asio::this_coro::reset_cancellation_state();
    while (!st->running.empty()) {
        co_await wait_signal(*st->wake);
        if (check_cancelled(co_await asio::this_coro::cancellation_state)) {
            co_await asio::this_coro::reset_cancellation_state();
        }
    }
    if (st->drain_timer) {
        st->drain_timer->cancel();
    }
    co_return st->stats;
}

} // namespace wafer
