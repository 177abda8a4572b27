#include "store/postgres/connection.hpp"

#include <boost/asio/deferred.hpp>
#include <boost/asio/experimental/parallel_group.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <array>
#include <charconv>
#include <libpq-fe.h>
#include <utility>

namespace wafer::store::postgres {

namespace asio = boost::asio;
using namespace std::chrono_literals;

namespace {

/// How long a wait for results lasts before libpq is asked again anyway. The reactor is
/// edge-triggered and an async_wait does not look at readiness it saw before the wait began, so
/// with several threads on the executor a reply that lands between PQconsumeInput and the wait
/// could be noticed only with the next bytes; this bounds that case to a short delay.
constexpr auto recheck_after = 500ms;

std::string trimmed(const char* s) {
    std::string m = s ? s : "";
    while (!m.empty() && (m.back() == '\n' || m.back() == ' ')) {
        m.pop_back();
    }
    return m;
}

int hex_value(char c) noexcept {
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }
    if (c >= 'A' && c <= 'F') {
        return c - 'A' + 10;
    }
    return -1;
}

/// SQLSTATEs after which the connection is gone: class 08 (connection exception) and 57P0x
/// (the server shuts down, crashed, or cannot take connections now).
bool connection_state(std::string_view sqlstate) noexcept {
    return sqlstate.starts_with("08") || sqlstate.starts_with("57P");
}

} // namespace

std::int64_t result::integer(int row, int col) const {
    const auto& c = at(row, col);
    std::int64_t v = 0;
    if (c) {
        std::from_chars(c->data(), c->data() + c->size(), v);
    }
    return v;
}

std::string result::bytes(int row, int col) const {
    const auto& c = at(row, col);
    return c ? decode_bytea(*c) : std::string();
}

std::string decode_bytea(std::string_view text) {
    if (text.size() < 2 || text[0] != '\\' || text[1] != 'x') {
        return std::string(text);
    }
    std::string out;
    out.reserve((text.size() - 2) / 2);
    for (std::size_t i = 2; i + 1 < text.size(); i += 2) {
        const int hi = hex_value(text[i]);
        const int lo = hex_value(text[i + 1]);
        out.push_back(static_cast<char>((hi << 4) | lo));
    }
    return out;
}

connection::connection(asio::any_io_executor ex) : ex_(ex), socket_(ex), timer_(ex) {}

connection::~connection() {
    detach_socket();
    if (conn_) {
        PQfinish(conn_);
    }
}

int connection::backend_pid() const noexcept {
    return conn_ ? PQbackendPID(conn_) : 0;
}

void connection::detach_socket() noexcept {
    if (socket_.is_open()) {
        socket_.release(); // libpq owns the descriptor and closes it
    }
}

void connection::attach_socket() {
    // Re-registered on every change: while connecting, libpq may close its socket and open
    // another, possibly with the same number, which the reactor would no longer watch.
    detach_socket();
    const int fd = PQsocket(conn_);
    if (fd >= 0) {
        boost::system::error_code ec;
        socket_.assign(fd, ec);
    }
}

std::string connection::error_message() const {
    return conn_ ? trimmed(PQerrorMessage(conn_)) : std::string("no connection");
}

void connection::cancel() {
    timer_.cancel();
}

asio::awaitable<bool> connection::wait(wait_for what, std::chrono::steady_clock::duration timeout) {
    if (!socket_.is_open()) {
        co_return true; // let libpq find out
    }
    timer_.expires_after(timeout);
    const auto type = what == wait_for::read ? asio::posix::descriptor_base::wait_read
                                             : asio::posix::descriptor_base::wait_write;
    auto [order, socket_ec, timer_ec] =
        co_await asio::experimental::make_parallel_group(
            socket_.async_wait(type, asio::deferred), timer_.async_wait(asio::deferred)
        )
            .async_wait(asio::experimental::wait_for_one(), asio::use_awaitable);
    (void)socket_ec;
    (void)timer_ec;
    co_return order[0] == 0;
}

bool connection::consume() {
    if (!conn_ || broken_) {
        return false;
    }
    if (PQconsumeInput(conn_) == 0) {
        broken_ = true;
        return false;
    }
    return true;
}

asio::awaitable<std::string>
connection::async_connect(std::string conninfo, std::chrono::steady_clock::time_point deadline) {
    conn_ = PQconnectStart(conninfo.c_str());
    if (!conn_) {
        broken_ = true;
        co_return "out of memory";
    }
    if (PQstatus(conn_) == CONNECTION_BAD) {
        broken_ = true;
        co_return error_message();
    }
    PQsetnonblocking(conn_, 1);
    // As the libpq manual says: start as if PQconnectPoll had returned PGRES_POLLING_WRITING.
    PostgresPollingStatusType poll = PGRES_POLLING_WRITING;
    for (;;) {
        if (poll == PGRES_POLLING_OK) {
            break;
        }
        if (poll == PGRES_POLLING_FAILED) {
            broken_ = true;
            co_return error_message();
        }
        attach_socket();
        const auto now = std::chrono::steady_clock::now();
        if (now >= deadline ||
            !co_await wait(
                poll == PGRES_POLLING_READING ? wait_for::read : wait_for::write, deadline - now
            )) {
            broken_ = true;
            std::string why = "timed out connecting";
            if (auto m = error_message(); !m.empty()) {
                why += " (" + m + ")";
            }
            co_return why;
        }
        poll = PQconnectPoll(conn_);
    }
    attach_socket();
    co_return std::string();
}

asio::awaitable<result> connection::async_exec(std::string sql, std::vector<param> params) {
    result r;
    auto lost = [&](std::string why) {
        broken_ = true;
        r.ok = false;
        r.connection_lost = true;
        r.message = why.empty() ? "connection lost" : std::move(why);
    };
    if (!conn_ || broken_ || PQstatus(conn_) != CONNECTION_OK) {
        lost(conn_ ? error_message() : "not connected");
        co_return r;
    }
    std::vector<const char*> values;
    std::vector<int> lengths;
    std::vector<int> formats;
    for (const auto& p : params) {
        values.push_back(p.value ? p.value->c_str() : nullptr);
        lengths.push_back(p.value ? static_cast<int>(p.value->size()) : 0);
        formats.push_back(p.binary ? 1 : 0);
    }
    const int sent = params.empty() ? PQsendQuery(conn_, sql.c_str())
                                    : PQsendQueryParams(
                                          conn_,
                                          sql.c_str(),
                                          static_cast<int>(params.size()),
                                          nullptr,
                                          values.data(),
                                          lengths.data(),
                                          formats.data(),
                                          0
                                      );
    if (sent == 0) {
        if (PQstatus(conn_) != CONNECTION_OK) {
            lost(error_message());
        } else {
            r.message = error_message();
        }
        co_return r;
    }
    for (;;) {
        const int f = PQflush(conn_);
        if (f == 0) {
            break;
        }
        if (f < 0) {
            lost(error_message());
            co_return r;
        }
        co_await wait(wait_for::write, recheck_after);
        if (!consume()) {
            lost(error_message());
            co_return r;
        }
    }
    bool failed = false;
    for (;;) {
        if (!consume()) {
            lost(error_message());
            co_return r;
        }
        bool done = false;
        while (PQisBusy(conn_) == 0) {
            PGresult* res = PQgetResult(conn_);
            if (!res) {
                done = true;
                break;
            }
            const auto st = PQresultStatus(res);
            if (st == PGRES_TUPLES_OK || st == PGRES_COMMAND_OK) {
                if (!failed) {
                    r.ok = true;
                    r.rows = PQntuples(res);
                    r.cols = PQnfields(res);
                    r.cells.clear();
                    r.cells.reserve(static_cast<std::size_t>(r.rows * r.cols));
                    for (int i = 0; i < r.rows; ++i) {
                        for (int j = 0; j < r.cols; ++j) {
                            if (PQgetisnull(res, i, j)) {
                                r.cells.emplace_back();
                            } else {
                                r.cells.emplace_back(
                                    std::in_place,
                                    PQgetvalue(res, i, j),
                                    static_cast<std::size_t>(PQgetlength(res, i, j))
                                );
                            }
                        }
                    }
                }
            } else if (!failed) {
                failed = true;
                r.ok = false;
                const char* state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
                const char* primary = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);
                r.sqlstate = state ? state : "";
                r.message = primary ? primary : trimmed(PQresultErrorMessage(res));
                r.rows = r.cols = 0;
                r.cells.clear();
            }
            PQclear(res);
            if (PQstatus(conn_) != CONNECTION_OK) {
                break;
            }
        }
        if (PQstatus(conn_) != CONNECTION_OK || connection_state(r.sqlstate)) {
            auto why = r.message.empty() ? error_message() : r.message;
            lost(std::move(why));
            co_return r;
        }
        if (done) {
            break;
        }
        co_await wait(wait_for::read, recheck_after);
    }
    co_return r;
}

asio::awaitable<std::vector<std::string>>
connection::async_wait_notifications(std::chrono::milliseconds timeout) {
    std::vector<std::string> out;
    auto drain = [&] {
        while (PGnotify* n = PQnotifies(conn_)) {
            out.emplace_back(n->extra ? n->extra : "");
            PQfreemem(n);
        }
    };
    if (!consume()) {
        co_return out;
    }
    drain();
    if (!out.empty()) {
        co_return out;
    }
    co_await wait(wait_for::read, timeout);
    if (consume()) {
        drain();
    }
    co_return out;
}

} // namespace wafer::store::postgres
