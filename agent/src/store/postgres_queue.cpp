// postgres_queue: the run_queue statements (server-side functions in postgres/schema.hpp) on the
// store's client, plus one LISTEN connection whose notifications wake waiting claims.
#include <wafer/store/error.hpp>
#include <wafer/store/postgres_queue.hpp>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <algorithm>
#include <utility>
#include <vector>

#include "store/postgres/client.hpp"
#include "store/store_rules.hpp"

namespace wafer::store {

namespace asio = boost::asio;
using postgres::param;
using postgres::result;
using clock = std::chrono::steady_clock;

struct postgres_queue::state : std::enable_shared_from_this<postgres_queue::state> {
    std::shared_ptr<postgres::client> c;
    postgres_queue_options opts;
    /// Claims waiting for a notification (their timers, cancelled to wake them).
    std::vector<asio::steady_timer*> waiters;
    /// Counts notifications (and listener restarts): a claim that saw it change while it
    /// looked at the queue looks again before it waits.
    std::uint64_t wakeups = 0;
    bool listening = false;
    bool stopped = false;
    std::unique_ptr<postgres::connection> listener;

    void wake_all() {
        ++wakeups;
        for (auto* t : waiters) {
            t->cancel();
        }
    }

    std::string channel() const {
        std::string q = "\"";
        for (char ch : c->opts.schema + ".run_queue") {
            q += ch;
            if (ch == '"') {
                q += '"';
            }
        }
        return q + "\"";
    }
};

namespace {

using state_ptr = std::shared_ptr<postgres_queue::state>;

asio::awaitable<void> listen_loop(state_ptr st) {
    auto pause = st->c->opts.reconnect_backoff;
    while (!st->stopped) {
        if (!st->listener || st->listener->broken()) {
            st->listener.reset();
            std::string why;
            auto conn =
                co_await st->c->async_connect(clock::now() + st->c->opts.connect_timeout, why);
            if (st->stopped) {
                break;
            }
            if (conn) {
                std::string sql = "LISTEN " + st->channel();
                std::vector<param> none;
                result r = co_await conn->async_exec(std::move(sql), std::move(none));
                if (r.ok) {
                    st->listener = std::move(conn);
                    pause = st->c->opts.reconnect_backoff;
                    // Notifications sent while nobody listened are lost: let the waiters look.
                    st->wake_all();
                    continue;
                }
            }
            asio::steady_timer t(st->c->strand);
            t.expires_after(pause);
            co_await t.async_wait(asio::as_tuple(asio::use_awaitable));
            pause = std::min(pause * 2, st->c->opts.reconnect_backoff_max);
            continue;
        }
        auto got = co_await st->listener->async_wait_notifications(st->opts.poll_interval);
        if (!got.empty()) {
            st->wake_all();
        }
    }
    st->listener.reset();
    st->listening = false;
}

void ensure_listener(const state_ptr& st) {
    if (!st->listening && !st->stopped) {
        st->listening = true;
        asio::co_spawn(st->c->strand, listen_loop(st), asio::detached);
    }
}

asio::awaitable<bool> submit(state_ptr st, run_submission run) {
    auto& c = *st->c;
    const std::string token = c.make_token();
    std::string sql = "SELECT wafer_submit($1::text, $2::text, $3::text, $4::bytea, $5::text,"
                      " $6::bytea, $7::integer, $8::text)";
    std::vector<param> p{
        param::text(run.id),
        param::text(run.parent_id),
        param::text(run.agent),
        param::bytes(run.task),
        param::text(run.scope),
        param::bytes(run.setup),
        param::integer(run.max_attempts),
        param::text(token),
    };
    result r = co_await c.async_exec(std::move(sql), std::move(p));
    postgres::check(c, r, detail::run_message(c.name, run.id, "submit"));
    if (r.text(0, 0) != "ok") {
        throw_error(errc::run_exists, detail::run_message(c.name, run.id, "the id is taken"));
    }
    co_return true;
}

asio::awaitable<std::optional<run_claim>>
try_claim(state_ptr st, std::string worker, std::chrono::milliseconds ttl) {
    auto& c = *st->c;
    std::string sql =
        "SELECT o_run, o_owner, o_generation, o_attempt, o_expires, o_task, o_setup,"
        " o_agent, o_parent, o_scope FROM wafer_claim($1::text, $2::bigint, $3::text)";
    std::vector<param> p{
        param::text(worker),
        param::integer(static_cast<std::int64_t>(ttl.count())),
        param::text(c.make_token()),
    };
    result r = co_await c.async_exec(std::move(sql), std::move(p));
    postgres::check(c, r, "run store " + c.name + ": claim for \"" + worker + "\"");
    if (r.rows == 0) {
        co_return std::nullopt;
    }
    run_claim out;
    out.run_id = r.text(0, 0);
    out.owner = r.text(0, 1);
    out.generation = static_cast<std::uint64_t>(r.integer(0, 2));
    out.attempt = static_cast<int>(r.integer(0, 3));
    out.lease_expires_ms = r.integer(0, 4);
    out.task = r.bytes(0, 5);
    out.setup = r.bytes(0, 6);
    out.agent = r.text(0, 7);
    out.parent_id = r.text(0, 8);
    out.scope = r.text(0, 9);
    co_return out;
}

asio::awaitable<std::optional<run_claim>> claim(
    state_ptr st, std::string worker, std::chrono::milliseconds ttl, std::chrono::milliseconds wait
) {
    const auto deadline = clock::now() + wait;
    if (wait.count() > 0) {
        ensure_listener(st);
    }
    for (;;) {
        const auto seen = st->wakeups;
        if (auto got = co_await try_claim(st, worker, ttl)) {
            co_return got;
        }
        const auto now = clock::now();
        if (now >= deadline || st->stopped) {
            co_return std::nullopt;
        }
        if (st->wakeups != seen) {
            continue; // a notification arrived while we looked
        }
        asio::steady_timer t(st->c->strand);
        t.expires_at(std::min<clock::time_point>(deadline, now + st->opts.poll_interval));
        st->waiters.push_back(&t);
        co_await t.async_wait(asio::as_tuple(asio::use_awaitable));
        st->waiters.erase(
            std::remove(st->waiters.begin(), st->waiters.end(), &t), st->waiters.end()
        );
    }
}

asio::awaitable<std::int64_t>
heartbeat(state_ptr st, std::string run_id, std::string owner, std::chrono::milliseconds ttl) {
    auto& c = *st->c;
    std::string sql = "SELECT wafer_heartbeat($1::text, $2::text, $3::bigint)";
    std::vector<param> p{
        param::text(run_id),
        param::text(owner),
        param::integer(static_cast<std::int64_t>(ttl.count()))};
    result r = co_await c.async_exec(std::move(sql), std::move(p));
    postgres::check(c, r, detail::run_message(c.name, run_id, "heartbeat"));
    co_return r.integer(0, 0);
}

asio::awaitable<bool>
finish(state_ptr st, std::string run_id, std::string owner, std::string to, std::string reason) {
    auto& c = *st->c;
    std::string sql = "SELECT wafer_finish($1::text, $2::text, $3::text, $4::text)";
    std::vector<param> p{
        param::text(run_id), param::text(owner), param::text(to), param::text(reason)};
    result r = co_await c.async_exec(std::move(sql), std::move(p));
    postgres::check(c, r, detail::run_message(c.name, run_id, "finish the claim"));
    co_return r.boolean(0, 0);
}

asio::awaitable<std::optional<queue_entry>> find(state_ptr st, std::string run_id) {
    auto& c = *st->c;
    std::string sql = "SELECT state, attempts, max_attempts, owner, lease_expires_ms, reason"
                      " FROM run_queue WHERE run_id = $1::text";
    std::vector<param> p{param::text(run_id)};
    result r = co_await c.async_exec(std::move(sql), std::move(p));
    postgres::check(c, r, detail::run_message(c.name, run_id, "find the queue entry"));
    if (r.rows == 0) {
        co_return std::nullopt;
    }
    queue_entry e;
    e.run_id = run_id;
    const auto s = r.text(0, 0);
    e.state = s == "claimed"  ? queue_state::claimed
              : s == "done"   ? queue_state::done
              : s == "failed" ? queue_state::failed
                              : queue_state::queued;
    e.attempts = static_cast<int>(r.integer(0, 1));
    e.max_attempts = static_cast<int>(r.integer(0, 2));
    e.owner = r.text(0, 3);
    e.lease_expires_ms = r.integer(0, 4);
    e.reason = r.text(0, 5);
    co_return e;
}

} // namespace

postgres_queue::postgres_queue(postgres_store& store, postgres_queue_options opts)
    : state_(std::make_shared<state>()) {
    state_->c = store.shared_client();
    state_->opts = opts;
}

postgres_queue::~postgres_queue() {
    asio::dispatch(state_->c->strand, [st = state_] {
        st->stopped = true;
        if (st->listener) {
            st->listener->cancel();
        }
        st->wake_all();
    });
}

asio::awaitable<void> postgres_queue::async_submit(run_submission run) {
    co_await postgres::async_on_strand(*state_->c, submit(state_, std::move(run)));
}

asio::awaitable<std::optional<run_claim>> postgres_queue::async_claim(
    std::string worker, std::chrono::milliseconds ttl, std::chrono::milliseconds wait
) {
    co_return co_await postgres::async_on_strand(
        *state_->c, claim(state_, std::move(worker), ttl, wait)
    );
}

asio::awaitable<bool>
postgres_queue::async_heartbeat(run_claim& claim, std::chrono::milliseconds ttl) {
    const auto expires = co_await postgres::async_on_strand(
        *state_->c, heartbeat(state_, claim.run_id, claim.owner, ttl)
    );
    if (expires == 0) {
        co_return false;
    }
    claim.lease_expires_ms = expires;
    co_return true;
}

asio::awaitable<bool> postgres_queue::async_complete(run_claim claim) {
    return async_finish(std::move(claim), "done", {});
}

asio::awaitable<bool> postgres_queue::async_fail(run_claim claim, std::string reason) {
    return async_finish(std::move(claim), "failed", std::move(reason));
}

asio::awaitable<bool> postgres_queue::async_release(run_claim claim) {
    return async_finish(std::move(claim), "queued", {});
}

asio::awaitable<bool>
postgres_queue::async_finish(run_claim claim, std::string to, std::string reason) {
    co_return co_await postgres::async_on_strand(
        *state_->c,
        finish(
            state_,
            std::move(claim.run_id),
            std::move(claim.owner),
            std::move(to),
            std::move(reason)
        )
    );
}

asio::awaitable<std::optional<queue_entry>> postgres_queue::async_find(std::string run_id) {
    co_return co_await postgres::async_on_strand(*state_->c, find(state_, std::move(run_id)));
}

} // namespace wafer::store
