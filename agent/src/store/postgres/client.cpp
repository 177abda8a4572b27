#include "store/postgres/client.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <algorithm>
#include <cstdio>
#include <libpq-fe.h>
#include <random>
#include <unistd.h>
#include <utility>

namespace wafer::store::postgres {

namespace asio = boost::asio;
using clock = std::chrono::steady_clock;

namespace {

std::string quote_identifier(const std::string& s) {
    std::string q = "\"";
    for (char c : s) {
        q += c;
        if (c == '"') {
            q += '"';
        }
    }
    return q + "\"";
}

std::string ms_text(clock::duration d) {
    return std::to_string(std::chrono::duration_cast<std::chrono::milliseconds>(d).count()) + " ms";
}

} // namespace

client::client(asio::any_io_executor ex, std::string info, postgres_options o)
    : strand(asio::make_strand(ex)), conninfo(std::move(info)), opts(std::move(o)),
      pool(pool_params{opts.max_connections, opts.reconnect_backoff, opts.reconnect_backoff_max}) {
    // The name errors give the store: what identifies the server, never the password.
    std::string described;
    char* err = nullptr;
    if (PQconninfoOption* parsed = PQconninfoParse(conninfo.c_str(), &err)) {
        for (const char* key : {"host", "hostaddr", "port", "dbname", "user"}) {
            for (PQconninfoOption* o2 = parsed; o2->keyword; ++o2) {
                if (std::string_view(o2->keyword) == key && o2->val && *o2->val) {
                    if (!described.empty()) {
                        described += ' ';
                    }
                    described += key;
                    described += '=';
                    described += o2->val;
                }
            }
        }
        PQconninfoFree(parsed);
    } else {
        described = "an invalid connection string";
    }
    if (err) {
        PQfreemem(err);
    }
    name = "postgresql (" + described + ", schema " + opts.schema + ")";
    session_sql = "SET search_path TO " + quote_identifier(opts.schema) +
                  "; SET bytea_output TO hex; SET client_min_messages TO warning";
    std::random_device rd;
    char buf[40];
    std::snprintf(buf, sizeof buf, "%08x%08x-%d-", rd(), rd(), static_cast<int>(::getpid()));
    token_prefix_ = buf;
}

std::string client::make_token() {
    return token_prefix_ + std::to_string(++token_counter_);
}

std::string client::scrub(std::string message) const {
    char* err = nullptr;
    PQconninfoOption* parsed = PQconninfoParse(conninfo.c_str(), &err);
    if (err) {
        PQfreemem(err);
    }
    if (!parsed) {
        return message;
    }
    for (PQconninfoOption* o = parsed; o->keyword; ++o) {
        if (std::string_view(o->keyword) == "password" && o->val && *o->val) {
            const std::string pw = o->val;
            for (auto at = message.find(pw); at != std::string::npos; at = message.find(pw, at)) {
                message.replace(at, pw.size(), "***");
            }
        }
    }
    PQconninfoFree(parsed);
    return message;
}

void client::fail(errc e, const std::string& what) const {
    throw_error(e, scrub("run store " + name + ": " + what));
}

void check(const client& c, const result& r, std::string_view what) {
    if (r.ok) {
        return;
    }
    std::string m(what);
    m += ": ";
    if (!r.sqlstate.empty()) {
        m += "SQLSTATE " + r.sqlstate + ": ";
    }
    m += r.message;
    if (r.connection_lost) {
        c.fail(errc::unavailable, m);
    }
    // 42P01/42883: a table or function of our schema is missing.
    if (r.sqlstate == "42P01" || r.sqlstate == "42883" || r.sqlstate == "42703") {
        c.fail(errc::corrupt, m);
    }
    c.fail(errc::io, m);
}

asio::awaitable<std::unique_ptr<connection>>
client::async_connect(clock::time_point deadline, std::string& why) {
    auto conn = std::make_unique<connection>(strand);
    why = co_await conn->async_connect(conninfo, deadline);
    if (why.empty()) {
        std::string sql = session_sql;
        std::vector<param> none;
        result r = co_await conn->async_exec(std::move(sql), std::move(none));
        if (!r.ok) {
            why = "setting up the session: " + r.message;
        }
    }
    if (!why.empty()) {
        conn.reset();
    }
    co_return conn;
}

asio::awaitable<pool_state::slot_id> client::async_acquire(clock::time_point deadline) {
    const auto start = clock::now();
    std::string last_error;
    for (;;) {
        if (closed) {
            fail(errc::unavailable, "the store is closed");
        }
        const auto d = pool.acquire();
        if (d.what == pool_state::decision::use) {
            co_return d.slot;
        }
        if (d.what == pool_state::decision::open) {
            if (const auto pause = pool.backoff(); pause.count() > 0) {
                asio::steady_timer t(strand);
                t.expires_at(std::min<clock::time_point>(clock::now() + pause, deadline));
                co_await t.async_wait(asio::as_tuple(asio::use_awaitable));
            }
            std::string why;
            auto conn = co_await async_connect(deadline, why);
            if (conn) {
                pool.opened(d.slot);
                connections[d.slot] = std::move(conn);
                co_return d.slot;
            }
            if (pool.open_failed(d.slot)) {
                if (auto* w = static_cast<asio::steady_timer*>(pool.next_waiter())) {
                    w->cancel();
                }
            }
            last_error = why;
            if (clock::now() >= deadline) {
                fail(
                    errc::unavailable,
                    "cannot connect to the server (tried " +
                        std::to_string(pool.consecutive_failures()) + " times in " +
                        ms_text(clock::now() - start) + "): " + last_error
                );
            }
            continue;
        }
        asio::steady_timer t(strand);
        t.expires_at(deadline);
        pool.add_waiter(&t);
        auto [ec] = co_await t.async_wait(asio::as_tuple(asio::use_awaitable));
        if (!ec) {
            pool.remove_waiter(&t);
            // A connection freed for us as the time ran out goes to the next waiter.
            if (pool.count(pool_state::slot_state::idle) > 0) {
                if (auto* w = static_cast<asio::steady_timer*>(pool.next_waiter())) {
                    w->cancel();
                }
            }
            fail(
                errc::unavailable,
                "no connection became free within " + ms_text(clock::now() - start) +
                    (last_error.empty() ? std::string() : ": " + last_error)
            );
        }
    }
}

void client::release(pool_state::slot_id slot, bool reusable) {
    if (!reusable || closed) {
        connections.erase(slot);
        reusable = false;
    }
    if (pool.release(slot, reusable)) {
        if (auto* w = static_cast<asio::steady_timer*>(pool.next_waiter())) {
            w->cancel();
        }
    }
}

asio::awaitable<result>
client::async_exec(std::string sql, std::vector<param> params, int retry_flag) {
    const auto start = clock::now();
    const auto deadline = start + opts.connect_timeout;
    for (int attempt = 1;; ++attempt) {
        const auto slot = co_await async_acquire(deadline);
        if (attempt > 1 && retry_flag >= 0) {
            params[static_cast<std::size_t>(retry_flag)] = param::text("true");
        }
        auto s = sql;
        auto p = params;
        result r = co_await connections.at(slot)->async_exec(std::move(s), std::move(p));
        if (!r.connection_lost) {
            release(slot, true);
            co_return r;
        }
        release(slot, false);
        if (clock::now() >= deadline) {
            fail(
                errc::unavailable,
                "the connection to the server was lost and could not be restored (" +
                    std::to_string(attempt) + " attempts in " + ms_text(clock::now() - start) +
                    "): " + r.message
            );
        }
    }
}

void client::close() {
    // The store is destroyed with no operation in flight: every connection is idle.
    closed = true;
    connections.clear();
    while (auto* w = static_cast<asio::steady_timer*>(pool.next_waiter())) {
        w->cancel();
    }
}

} // namespace wafer::store::postgres
