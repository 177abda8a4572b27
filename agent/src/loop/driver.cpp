// The driver owns the I/O of a run: every operation the machine starts is spawned on the run's
// executor with its own cancellation signal, and reports into an inbox that the driver drains
// into the machine whenever the machine has nothing else to do. Operations never throw: each
// turns its failures into the report the machine expects.
#include "loop/driver.hpp"

#include <wafer/agent.hpp>
#include <wafer/event_emitter.hpp>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <memory>
#include <variant>

#include "critics/critic_review.hpp"

namespace wafer::detail {

namespace asio = boost::asio;

namespace {

std::chrono::microseconds since(clock_type::time_point t) {
    return std::chrono::duration_cast<std::chrono::microseconds>(clock_type::now() - t);
}

std::string exception_text(const std::exception_ptr& e) {
    try {
        std::rethrow_exception(e);
    } catch (const std::exception& ex) {
        return ex.what();
    } catch (...) {
        return "an exception that is not a std::exception";
    }
}

// The reports operations make, as the driver queues them for the machine.
struct model_done {
    std::uint32_t op = 0;
    std::optional<model_reply> reply;
    std::chrono::microseconds took{0};
    model_failure why = model_failure::error;
    std::optional<run_error> error;
};
struct tool_started {
    std::uint32_t op = 0;
    std::size_t k = 0;
};
struct tool_finished {
    std::uint32_t op = 0;
    std::size_t k = 0;
    tools::tool_result result;
    std::chrono::microseconds took{0};
};
struct dispatch_done {
    std::uint32_t op = 0;
    bool cancelled = false;
    std::optional<std::string> failure;
};
struct review_done {
    std::uint32_t op = 0;
    critic_review review;
};
using report = std::variant<model_done, tool_started, tool_finished, dispatch_done, review_done>;

class run_driver;

// What a dispatch's observers use, owned by them. A dispatch that throws may leave calls running
// detached; when one of them reports later, it finds `driver` null instead of a finished run.
struct dispatch_watch {
    run_driver* driver = nullptr;
    std::uint32_t op = 0;
    std::vector<clock_type::time_point> starts;
};

class run_driver {
public:
    run_driver(
        asio::any_io_executor ex,
        const agent_config& cfg,
        const std::vector<agent>& critics,
        run_options& options,
        run_setup setup
    )
        : cfg_(cfg), critics_(critics), options_(options),
          emitter_(setup.run_id, cfg.name, forward_to(options), options.events),
          machine_(cfg, with_observed(std::move(setup), emitter_.observed())), ex_(std::move(ex)),
          wake_(ex_) {}

    asio::awaitable<run_result> run() {
        asio::cancellation_state cs = co_await asio::this_coro::cancellation_state;
        std::exception_ptr failure;
        for (;;) {
            if (!cancel_seen_ && cs.cancelled() != asio::cancellation_type::none) {
                cancel_seen_ = true;
                machine_.on_cancelled();
            }
            run_action a = machine_.next(clock_type::now());
            if (a.type == run_action_type::done) {
                break;
            }
            switch (a.type) {
            case run_action_type::emit:
                try {
                    // Bound to a name: GCC 12 may destroy a temporary in co_await twice.
                    event_data ev = std::move(a.event());
                    co_await emitter_.async_emit(std::move(ev));
                } catch (const wafer::error& e) {
                    // Cancelled while waiting for room in the channel: the run stops as
                    // cancelled runs do; anything else ends it.
                    if (e.code() != make_error_code(errc::cancelled)) {
                        failure = std::current_exception();
                    }
                } catch (...) {
                    failure = std::current_exception();
                }
                break;
            case run_action_type::call_model: {
                // Nothing else is in flight during a model call: it is awaited here, and the
                // caller's cancellation reaches it directly.
                report r = co_await model_op(a.op, std::move(a.model()));
                feed(std::move(r));
                break;
            }
            case run_action_type::dispatch:
                if (machine_.in_flight() == 1 && !emitter_.observed()) {
                    // Alone and unobserved: no event has to go out while it runs, so it is
                    // awaited here; what its observers reported is drained with its end.
                    report r = co_await dispatch_op(a.op, std::move(a.dispatch()), false);
                    drain_inbox();
                    feed(std::move(r));
                } else {
                    start_dispatch(a.op, std::move(a.dispatch()));
                }
                break;
            case run_action_type::review:
                start_review(a.op, std::move(a.review()));
                break;
            case run_action_type::cancel_ops:
                cancel_all();
                break;
            case run_action_type::wait:
                co_await wait_for_reports();
                break;
            case run_action_type::done:
                break;
            }
            if (failure) {
                break;
            }
        }
        if (failure) {
            // Nothing may outlive the run's frame: stop what runs, await it, then rethrow.
            cancel_all();
            while (!ops_.empty()) {
                co_await wait_for_reports();
            }
            std::rethrow_exception(failure);
        }
        if (options_.events) {
            co_await options_.events->async_finish();
        }
        co_return std::move(machine_).take_result();
    }

    void report_in(report r) {
        inbox_.push_back(std::move(r));
        wake_.cancel();
    }

private:
    // One operation in flight. The signal stays alive until the driver drains the op's report:
    // co_spawn (1.81) still touches the slot's state while the completion handler runs.
    struct op_entry {
        std::uint32_t op = 0;
        asio::cancellation_signal signal;
        bool finished = false;
    };

    static run_setup with_observed(run_setup s, bool observed) {
        s.observed = observed;
        return s;
    }

    // The emitter calls the caller's callback object itself, not a copy: a stateful callback
    // must see every event.
    static event_emitter::callback forward_to(run_options& o) {
        if (!o.on_event) {
            return {};
        }
        return [&o](const event& e) {
            o.on_event(e);
        };
    }

    op_entry& add_op(std::uint32_t op) {
        auto& e = ops_.emplace_back(std::make_unique<op_entry>());
        e->op = op;
        return *e;
    }

    void op_finished(std::uint32_t op) {
        for (auto& e : ops_) {
            if (e->op == op) {
                e->finished = true;
            }
        }
    }

    void cancel_all() {
        for (auto& e : ops_) {
            if (!e->finished) {
                e->signal.emit(asio::cancellation_type::terminal);
            }
        }
    }

    asio::awaitable<void> wait_for_reports() {
        if (inbox_.empty()) {
            wake_.expires_at(clock_type::time_point::max());
            auto [ec] = co_await wake_.async_wait(asio::as_tuple(asio::use_awaitable));
            (void)ec; // a report, or the caller's cancellation: the loop looks at both
        }
        drain_inbox();
        // Reports drained: their ops' signals are no longer touched.
        std::erase_if(ops_, [](const std::unique_ptr<op_entry>& e) { return e->finished; });
    }

    void drain_inbox() {
        // Swapped with a spare, so that the vectors' storage is reused from turn to turn.
        std::swap(inbox_, draining_);
        for (auto& r : draining_) {
            feed(std::move(r));
        }
        draining_.clear();
    }

    void feed(report r) {
        std::visit(
            [this](auto&& x) {
                using T = std::decay_t<decltype(x)>;
                if constexpr (std::is_same_v<T, model_done>) {
                    if (x.reply) {
                        machine_.on_model_reply(x.op, std::move(*x.reply), x.took);
                    } else {
                        machine_.on_model_failed(x.op, x.why, std::move(x.error));
                    }
                } else if constexpr (std::is_same_v<T, tool_started>) {
                    machine_.on_tool_started(x.op, x.k);
                } else if constexpr (std::is_same_v<T, tool_finished>) {
                    machine_.on_tool_finished(x.op, x.k, std::move(x.result), x.took);
                } else if constexpr (std::is_same_v<T, dispatch_done>) {
                    machine_.on_dispatch_done(x.op, x.cancelled, std::move(x.failure));
                } else {
                    machine_.on_review(x.op, std::move(x.review));
                }
            },
            std::move(r)
        );
    }

    // Each operation completes with its report; the handler queues it. Reporting from the
    // handler, not from inside the operation, means the report is drained only after co_spawn
    // is done with the operation (and with its cancellation signal). `fallback` is the report
    // if the operation threw after all (it catches what it expects).
    struct op_done {
        run_driver* self;
        std::uint32_t op;
        std::shared_ptr<report> fallback;
        void operator()(std::exception_ptr e, report r) const {
            self->op_finished(op);
            self->report_in(e ? std::move(*fallback) : std::move(r));
        }
    };

    template <class Op>
    void spawn(std::uint32_t op, asio::awaitable<report> body, Op fallback) {
        op_entry& e = add_op(op);
        asio::co_spawn(
            ex_,
            std::move(body),
            asio::bind_cancellation_slot(
                e.signal.slot(), op_done{this, op, std::make_shared<report>(std::move(fallback))}
            )
        );
    }

    void start_dispatch(std::uint32_t op, dispatch_job job) {
        spawn(
            op,
            dispatch_op(op, std::move(job), true),
            dispatch_done{op, false, "an unexpected failure"}
        );
    }

    void start_review(std::uint32_t op, review_job job) {
        const critic& c = cfg_.critics[job.critic_index];
        review_done fallback{
            op,
            failed_review(
                c, job.gate, job.turn, job.call_id, "the review failed unexpectedly", {}
            )};
        spawn(op, review_op(op, std::move(job)), std::move(fallback));
    }

    asio::awaitable<report> model_op(std::uint32_t op, model_call call) {
        model_done d;
        d.op = op;
        const auto started = clock_type::now();
        delta_forwarder forwarder(emitter_, call.turn);
        try {
            // Unobserved runs take no deltas: the model then copies none.
            asio::awaitable<model_reply> c = cfg_.model->async_complete(
                std::move(call.request), emitter_.observed() ? &forwarder : nullptr
            );
            if (call.call_deadline) {
                auto r = co_await async_with_deadline(std::move(c), call.call_deadline.at());
                if (r) {
                    d.reply = std::move(*r);
                } else {
                    d.why = call.run_deadline.passed(clock_type::now())
                                ? model_failure::run_deadline
                                : model_failure::turn_timeout;
                }
            } else {
                d.reply = co_await std::move(c);
            }
        } catch (const wafer::error& e) {
            d.why = e.code() == make_error_code(errc::cancelled) ? model_failure::cancelled
                                                                 : model_failure::error;
            d.error = run_error{e.code(), e.diag()};
        } catch (const boost::system::system_error& e) {
            d.why = e.code() == asio::error::operation_aborted ? model_failure::cancelled
                                                               : model_failure::error;
            d.error = run_error{e.code(), {}};
            d.error->diagnostics.detail = e.what();
        } catch (const std::exception& e) {
            d.error = run_error{errc::invalid_response, {}};
            d.error->diagnostics.detail = e.what();
        }
        d.took = since(started);
        co_return d;
    }

    // Runs one dispatch. With `live`, each call reports as it starts and finishes (observers);
    // without, the results are reported from the dispatch's own result when it ends, which
    // spares the observers and a copy of every result.
    asio::awaitable<report> dispatch_op(std::uint32_t op, dispatch_job job, bool live) {
        const std::size_t n = job.requests.size();
        std::shared_ptr<dispatch_watch> watch;
        if (live) {
            watch = std::make_shared<dispatch_watch>();
            watch->driver = this;
            watch->op = op;
            watch->starts.resize(n);
            job.options.observer.on_start = [watch](std::size_t k) {
                if (!watch->driver || k >= watch->starts.size()) {
                    return;
                }
                watch->starts[k] = clock_type::now();
                watch->driver->report_in(tool_started{watch->op, k});
            };
            job.options.observer.on_finish = [watch](std::size_t k, const tools::tool_result& r) {
                if (!watch->driver || k >= watch->starts.size()) {
                    return;
                }
                const auto begun = watch->starts[k] == clock_type::time_point{} ? clock_type::now()
                                                                                : watch->starts[k];
                watch->driver->report_in(tool_finished{watch->op, k, r, since(begun)});
            };
        }
        dispatch_done d;
        d.op = op;
        try {
            tools::dispatch_result res = co_await cfg_.tools->async_dispatch(
                std::move(job.requests), std::move(job.options)
            );
            d.cancelled = res.cancelled;
            if (res.results.size() != n) {
                d.failure = "results are missing";
            } else if (!live) {
                for (std::size_t k = 0; k < n; ++k) {
                    const auto took = std::chrono::duration_cast<std::chrono::microseconds>(
                        res.timings[k].duration()
                    );
                    inbox_.push_back(tool_finished{op, k, std::move(res.results[k]), took});
                }
            }
        } catch (...) {
            // The dispatch failed as a whole: calls still running report to nobody.
            d.failure = exception_text(std::current_exception());
        }
        if (watch) {
            watch->driver = nullptr;
        }
        co_return d;
    }

    asio::awaitable<report> review_op(std::uint32_t op, review_job job) {
        const critic& c = cfg_.critics[job.critic_index];
        const agent& sub = critics_[job.critic_index];
        const auto started = clock_type::now();
        std::optional<critic_review> r;
        try {
            asio::awaitable<critic_review> review =
                run_review(sub, c, job.gate, job.turn, std::move(job.input), job.call_id);
            if (job.until) {
                r = co_await async_with_deadline(std::move(review), job.until.at());
                if (!r) {
                    r = failed_review(
                        c,
                        job.gate,
                        job.turn,
                        job.call_id,
                        "the run's deadline passed during the review",
                        since(started)
                    );
                }
            } else {
                r = co_await std::move(review);
            }
        } catch (...) {
            r = failed_review(
                c,
                job.gate,
                job.turn,
                job.call_id,
                "the critic failed: " + exception_text(std::current_exception()),
                since(started)
            );
        }
        co_return review_done{op, std::move(*r)};
    }

    const agent_config& cfg_;
    const std::vector<agent>& critics_;
    run_options& options_;
    event_emitter emitter_;
    run_machine machine_;
    asio::any_io_executor ex_;
    asio::steady_timer wake_;
    std::vector<report> inbox_;
    std::vector<report> draining_;
    std::vector<std::unique_ptr<op_entry>> ops_;
    bool cancel_seen_ = false;
};

} // namespace

asio::awaitable<run_result> async_drive(
    const agent_config& cfg,
    const std::vector<agent>& critic_agents,
    run_options& options,
    run_setup setup
) {
    // Cancellation is looked at between steps, so that the run can always finish its
    // bookkeeping (a valid history, usage, the run_finished event) after the caller cancelled.
    co_await asio::this_coro::throw_if_cancelled(false);
    auto ex = co_await asio::this_coro::executor;
    run_driver d(ex, cfg, critic_agents, options, std::move(setup));
    co_return co_await d.run();
}

} // namespace wafer::detail
