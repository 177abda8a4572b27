// Fan-out: children are co_spawned on the caller's executor, each with its own cancellation
// signal, and report into a shared state; the coroutine waits on a timer used as a condition
// variable, decides what starts next and whom to cancel, and returns once none runs.
#include <wafer/event_emitter.hpp>
#include <wafer/fan_out.hpp>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <memory>
#include <stdexcept>

#include "compose/child_run.hpp"

namespace wafer {

namespace asio = boost::asio;

std::string_view to_string(fan_out_status s) noexcept {
    switch (s) {
    case fan_out_status::succeeded:
        return "succeeded";
    case fan_out_status::failed:
        return "failed";
    case fan_out_status::cancelled:
        return "cancelled";
    case fan_out_status::skipped:
        return "skipped";
    }
    return "failed";
}

namespace {

std::int64_t tokens(const api::usage& u) {
    return u.prompt_tokens + u.completion_tokens;
}

struct fan_state {
    explicit fan_state(asio::any_io_executor ex, std::size_t n)
        : wake(std::move(ex)), children(n), live(n), signals(n) {}

    asio::steady_timer wake;
    std::vector<fan_out_child> children;
    // Usage seen in turn_finished events of a child still running (its and its children's).
    std::vector<api::usage> live;
    // Alive until the end: co_spawn (1.81) touches the slot while the completion runs.
    std::vector<std::unique_ptr<asio::cancellation_signal>> signals;
    std::vector<std::size_t> ended; // in the order they ended
    std::size_t running = 0;
    api::usage spent; // of the children that ended
    std::function<void(const event&)> on_event;

    std::int64_t used() const {
        std::int64_t t = tokens(spent);
        for (const auto& u : live) {
            t += tokens(u);
        }
        return t;
    }
};

// Counts a child's usage as its turns finish, then hands the event on.
struct child_observer {
    std::shared_ptr<fan_state> st;
    std::size_t index;
    std::function<void(const event&)> own;
    void operator()(const event& e) const {
        if (const auto* t = e.get_if<events::turn_finished>(); t && t->usage) {
            st->live[index] += *t->usage;
        }
        if (own) {
            own(e);
        }
        if (st->on_event) {
            st->on_event(e);
        }
    }
};

struct child_done {
    std::shared_ptr<fan_state> st;
    std::size_t index;
    void operator()(std::exception_ptr e, run_result r) const {
        fan_out_child& c = st->children[index];
        st->live[index] = {};
        if (e) {
            try {
                std::rethrow_exception(e);
            } catch (const std::exception& x) {
                c.error = x.what();
            } catch (...) {
                c.error = "an exception that is not a std::exception";
            }
        } else {
            c.usage = r.total_usage();
            c.result = std::move(r);
        }
        st->spent += c.usage;
        --st->running;
        st->ended.push_back(index);
        st->wake.cancel();
    }
};

} // namespace

asio::awaitable<fan_out_result> async_fan_out(std::vector<fan_out_job> jobs, fan_out_options opts) {
    for (const auto& j : jobs) {
        if (j.runner == nullptr) {
            throw std::invalid_argument("wafer::async_fan_out: a job has no agent");
        }
    }
    if (opts.wait == fan_out_wait::quorum && opts.quorum == 0) {
        throw std::invalid_argument("wafer::async_fan_out: a quorum of 0");
    }
    if (opts.store && opts.run_id.empty()) {
        throw std::invalid_argument(
            "wafer::async_fan_out: a fan-out with a store needs a run_id (its children's ids)"
        );
    }
    // Cancellation is looked at between steps, so that every child is awaited after it.
    co_await asio::this_coro::throw_if_cancelled(false);
    asio::cancellation_state cs = co_await asio::this_coro::cancellation_state;
    auto ex = co_await asio::this_coro::executor;

    const std::size_t n = jobs.size();
    const std::size_t need = opts.wait == fan_out_wait::all     ? n
                             : opts.wait == fan_out_wait::first ? 1
                                                                : opts.quorum;
    const auto is_success = [&opts](const run_result& r) {
        return opts.succeeded ? opts.succeeded(r) : r.stop_reason == stop_reason::completed;
    };
    fan_out_result out;
    out.run_id = opts.run_id.empty() ? make_run_id() : opts.run_id;
    std::optional<std::chrono::steady_clock::time_point> until;
    if (opts.timeout) {
        until = std::chrono::steady_clock::now() + *opts.timeout;
    }
    auto st = std::make_shared<fan_state>(ex, n);
    st->on_event = std::move(opts.on_event);
    std::vector<bool> cancelled_by_us(n, false);
    std::size_t next = 0;
    std::size_t seen = 0; // of st->ended
    bool stop_starting = false;
    bool met = false;

    const auto cancel_running = [&] {
        for (std::size_t i = 0; i < next; ++i) {
            const bool over = st->children[i].result.has_value() || !st->children[i].error.empty();
            if (!over && !cancelled_by_us[i]) {
                cancelled_by_us[i] = true;
                st->signals[i]->emit(asio::cancellation_type::terminal);
            }
        }
    };

    for (;;) {
        for (; seen < st->ended.size(); ++seen) {
            const fan_out_child& c = st->children[st->ended[seen]];
            if (c.result && is_success(*c.result)) {
                ++out.succeeded;
            }
        }
        if (!out.cancelled && cs.cancelled() != asio::cancellation_type::none) {
            out.cancelled = true;
            stop_starting = true;
            cancel_running();
        }
        if (!met && out.succeeded >= need && need > 0) {
            met = true;
            stop_starting = true;
            cancel_running(); // the losers
        }
        while (!stop_starting && next < n &&
               (opts.max_concurrency == 0 || st->running < opts.max_concurrency)) {
            if (opts.token_budget && st->used() >= *opts.token_budget) {
                out.budget_exhausted = true;
                stop_starting = true;
                break;
            }
            const std::size_t i = next++;
            fan_out_job& job = jobs[i];
            run_options ro = std::move(job.options);
            if (ro.run_id.empty()) {
                ro.run_id = out.run_id + "/" + std::to_string(i);
            }
            if (ro.parent_run_id.empty()) {
                ro.parent_run_id = out.run_id;
            }
            if (until && (!ro.deadline || *until < *ro.deadline)) {
                ro.deadline = until;
            }
            ro.on_event = child_observer{st, i, std::move(ro.on_event)};
            st->signals[i] = std::make_unique<asio::cancellation_signal>();
            ++st->running;
            auto done = asio::bind_cancellation_slot(st->signals[i]->slot(), child_done{st, i});
            if (opts.store) {
                // Durable: a child that finished before is read back, one that did not goes
                // on from its journal (compose/child_run.hpp).
                detail::child_journal cj;
                cj.store = opts.store;
                cj.lease_ttl = ro.lease_ttl;
                cj.reconcile = opts.reconcile;
                cj.queue = opts.children;
                asio::co_spawn(
                    ex,
                    detail::async_run_child(
                        *job.runner, std::move(job.input), std::move(ro), std::move(cj)
                    ),
                    std::move(done)
                );
            } else {
                asio::co_spawn(
                    ex, job.runner->async_run(std::move(job.input), std::move(ro)), std::move(done)
                );
            }
        }
        if (st->running == 0 && seen == st->ended.size()) {
            break;
        }
        if (seen == st->ended.size()) {
            st->wake.expires_at(asio::steady_timer::time_point::max());
            auto [ec] = co_await st->wake.async_wait(asio::as_tuple(asio::use_awaitable));
            (void)ec; // a child ended, or the caller cancelled: the loop looks at both
        }
    }

    out.finish_order = st->ended;
    for (std::size_t i = 0; i < n; ++i) {
        fan_out_child& c = st->children[i];
        if (i >= next) {
            c.status = fan_out_status::skipped;
        } else if (!c.error.empty()) {
            c.status = fan_out_status::failed;
        } else if (is_success(*c.result)) {
            c.status = fan_out_status::succeeded;
        } else if (cancelled_by_us[i] && c.result->stop_reason == stop_reason::cancelled) {
            c.status = fan_out_status::cancelled;
        } else {
            c.status = fan_out_status::failed;
        }
        out.usage += c.usage;
    }
    out.satisfied = met || need == 0;
    out.children = std::move(st->children);
    co_return out;
}

} // namespace wafer
