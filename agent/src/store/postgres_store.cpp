// postgres_store: the run_store operations as statements (most of them calls of the server-side
// functions in postgres/schema.hpp), run through the shared client's pool on its strand.
#include <wafer/store/error.hpp>
#include <wafer/store/postgres_store.hpp>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <limits>
#include <utility>

#include "store/postgres/client.hpp"
#include "store/postgres/schema.hpp"
#include "store/store_rules.hpp"

namespace wafer::store {

namespace asio = boost::asio;
using postgres::client;
using postgres::param;
using postgres::result;

namespace {

using client_ptr = std::shared_ptr<client>;

constexpr const char* run_columns =
    "id, parent_id, agent, task, scope, status, stop_reason, turns, prompt_tokens, "
    "completion_tokens, created_ms, updated_ms, setup, lease_owner, lease_expires_ms";

std::int64_t to_int64(std::uint64_t v) noexcept {
    return v > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max())
               ? std::numeric_limits<std::int64_t>::max()
               : static_cast<std::int64_t>(v);
}

run_info read_run(const client& c, const result& r, int row) {
    run_info info;
    info.id = r.text(row, 0);
    info.parent_id = r.text(row, 1);
    info.agent = r.text(row, 2);
    info.task = r.bytes(row, 3);
    info.scope = r.text(row, 4);
    const auto st = parse_run_status(r.text(row, 5));
    if (!st) {
        c.fail(
            errc::corrupt,
            "run \"" + info.id + "\" has the unknown status \"" + r.text(row, 5) + "\""
        );
    }
    info.status = *st;
    info.stop_reason = r.text(row, 6);
    info.turns = static_cast<std::size_t>(std::max<std::int64_t>(r.integer(row, 7), 0));
    info.prompt_tokens = r.integer(row, 8);
    info.completion_tokens = r.integer(row, 9);
    info.created_ms = r.integer(row, 10);
    info.updated_ms = r.integer(row, 11);
    info.setup = r.bytes(row, 12);
    info.lease_owner = r.text(row, 13);
    info.lease_expires_ms = r.integer(row, 14);
    return info;
}

template <class T>
param opt(const std::optional<T>& v) {
    if (!v) {
        return param::null();
    }
    if constexpr (std::is_same_v<T, std::string>) {
        return param::text(*v);
    } else {
        return param::integer(static_cast<std::int64_t>(*v));
    }
}

/// Runs one statement on a connection the caller holds; throws on failure. (GCC 12: callers pass
/// named strings and vectors, no temporaries inside the co_await expression.)
asio::awaitable<result>
run_on(client& c, postgres::connection& conn, std::string sql, std::vector<param> params) {
    const std::string what = sql.substr(0, 60);
    result r = co_await conn.async_exec(std::move(sql), std::move(params));
    postgres::check(c, r, "opening the store (" + what + ")");
    co_return r;
}

asio::awaitable<void> rollback(postgres::connection& conn) {
    std::string sql = "ROLLBACK";
    std::vector<param> none;
    co_await conn.async_exec(std::move(sql), std::move(none));
}

asio::awaitable<bool> migrate(client_ptr c) {
    const auto deadline = std::chrono::steady_clock::now() + c->opts.connect_timeout;
    const auto slot = co_await c->async_acquire(deadline);
    bool ok = false;
    try {
        auto& conn = *c->connections.at(slot);
        const std::vector<param> none;
        std::string q = "BEGIN";
        co_await run_on(*c, conn, q, none);
        // One opener at a time per schema (CREATE SCHEMA IF NOT EXISTS races otherwise).
        std::vector<param> key{param::text(c->opts.schema)};
        q = "SELECT pg_advisory_xact_lock(hashtext('wafer schema ' || $1::text))";
        co_await run_on(*c, conn, q, key);
        std::string quoted = "\"";
        for (char ch : c->opts.schema) {
            quoted += ch;
            if (ch == '"') {
                quoted += '"';
            }
        }
        quoted += '"';
        q = "CREATE SCHEMA IF NOT EXISTS " + quoted;
        co_await run_on(*c, conn, q, none);
        q = "SELECT to_regclass('wafer_meta') IS NOT NULL, to_regclass('runs') IS NOT NULL";
        result have = co_await run_on(*c, conn, q, none);
        int version = 0;
        if (have.boolean(0, 0)) {
            q = "SELECT value FROM wafer_meta WHERE key = 'schema_version'";
            result v = co_await run_on(*c, conn, q, none);
            if (v.rows != 1) {
                co_await rollback(conn);
                c->fail(errc::corrupt, "wafer_meta has no schema_version");
            }
            version = static_cast<int>(v.integer(0, 0));
            if (version > postgres_store::schema_version) {
                co_await rollback(conn);
                c->fail(
                    errc::schema_too_new,
                    "the schema is version " + v.text(0, 0) +
                        ", written by a newer wafer; this build reads versions up to " +
                        std::to_string(postgres_store::schema_version)
                );
            }
            if (version < 1) {
                co_await rollback(conn);
                c->fail(errc::corrupt, "wafer_meta has the schema version " + v.text(0, 0));
            }
        } else if (have.boolean(0, 1)) {
            co_await rollback(conn);
            c->fail(errc::corrupt, "the schema has a runs table but no wafer_meta: not wafer's");
        }
        for (int v = version; v < postgres_store::schema_version; ++v) {
            q = postgres::migrations[static_cast<std::size_t>(v)];
            co_await run_on(*c, conn, q, none);
        }
        if (version < postgres_store::schema_version) {
            std::vector<param> ver{param::integer(postgres_store::schema_version)};
            q = "INSERT INTO wafer_meta (key, value) VALUES ('schema_version', $1::text)"
                " ON CONFLICT (key) DO UPDATE SET value = excluded.value";
            co_await run_on(*c, conn, q, ver);
        }
        q = "COMMIT";
        co_await run_on(*c, conn, q, none);
        ok = true;
    } catch (...) {
        c->release(slot, false);
        throw;
    }
    c->release(slot, ok);
    co_return ok;
}

asio::awaitable<bool> create_run(client_ptr c, run_info run) {
    // One clock reading for both times (clock_timestamp() moves within a statement).
    std::string sql = "WITH ins AS (INSERT INTO runs (" + std::string(run_columns) +
                      ", create_token) SELECT $1::text, $2::text, $3::text, $4::bytea, $5::text,"
                      " $6::text, $7::text, $8::bigint, $9::bigint, $10::bigint, n.now, n.now,"
                      " $11::bytea, $12::text, $13::bigint, $14::text"
                      " FROM (SELECT wafer_now_ms() AS now) n"
                      " ON CONFLICT (id) DO NOTHING RETURNING id)"
                      " SELECT (SELECT count(*) FROM ins),"
                      " (SELECT create_token FROM runs WHERE id = $1::text)";
    const std::string token = c->make_token();
    std::vector<param> p{
        param::text(run.id),
        param::text(run.parent_id),
        param::text(run.agent),
        param::bytes(run.task),
        param::text(run.scope),
        param::text(std::string(to_string(run.status))),
        param::text(run.stop_reason),
        param::integer(to_int64(run.turns)),
        param::integer(run.prompt_tokens),
        param::integer(run.completion_tokens),
        param::bytes(run.setup),
        param::text(run.lease_owner),
        param::integer(run.lease_expires_ms),
        param::text(token),
    };
    result r = co_await c->async_exec(std::move(sql), std::move(p));
    check(*c, r, detail::run_message(c->name, run.id, "create"));
    // Inserted now, or by an earlier attempt of this call whose reply was lost.
    if (r.integer(0, 0) != 1 && r.text(0, 1) != token) {
        throw_error(errc::run_exists, detail::run_message(c->name, run.id, "the id is taken"));
    }
    co_return true;
}

asio::awaitable<std::uint64_t> append(
    client_ptr c,
    std::string run_id,
    std::string owner,
    std::vector<journal_entry> entries,
    run_update update
) {
    std::vector<param> p{
        param::text(run_id),
        param::text(owner),
        param::text(c->make_token()),
        update.status ? param::text(std::string(to_string(*update.status))) : param::null(),
        opt(update.stop_reason),
        opt(update.turns),
        opt(update.prompt_tokens),
        opt(update.completion_tokens),
        param::text(update.release_lease ? "true" : "false"),
        param::text("false"),
    };
    constexpr int retry_flag = 9;
    std::string kinds = "ARRAY[";
    std::string bodies = "ARRAY[";
    for (std::size_t i = 0; i < entries.size(); ++i) {
        if (i > 0) {
            kinds += ',';
            bodies += ',';
        }
        p.push_back(param::text(std::move(entries[i].kind)));
        kinds += "$" + std::to_string(p.size()) + "::text";
        p.push_back(param::bytes(std::move(entries[i].body)));
        bodies += "$" + std::to_string(p.size()) + "::bytea";
    }
    kinds += "]::text[]";
    bodies += "]::bytea[]";
    std::string sql = "SELECT o_outcome, o_seq, o_holder, o_expires, o_now FROM wafer_append("
                      "$1::text, $2::text, $3::text, " +
                      kinds + ", " + bodies +
                      ", $4::text, $5::text, $6::bigint, $7::bigint, $8::bigint, $9::boolean,"
                      " $10::boolean)";
    result r = co_await c->async_exec(std::move(sql), std::move(p), retry_flag);
    check(*c, r, detail::run_message(c->name, run_id, "append"));
    const std::string outcome = r.text(0, 0);
    if (outcome == "not_found") {
        detail::throw_run_not_found(c->name, run_id);
    }
    if (outcome == "refused") {
        auto why = detail::append_refusal(r.text(0, 2), r.integer(0, 3), owner, r.integer(0, 4));
        if (why.empty()) {
            why = "refused by the lease";
        }
        throw_error(errc::lease_held, detail::run_message(c->name, run_id, why));
    }
    co_return static_cast<std::uint64_t>(r.integer(0, 1));
}

asio::awaitable<std::optional<run_info>> find_run(client_ptr c, std::string run_id) {
    std::string sql = "SELECT " + std::string(run_columns) + " FROM runs WHERE id = $1::text";
    std::vector<param> p{param::text(run_id)};
    result r = co_await c->async_exec(std::move(sql), std::move(p));
    check(*c, r, detail::run_message(c->name, run_id, "find"));
    if (r.rows == 0) {
        co_return std::nullopt;
    }
    co_return read_run(*c, r, 0);
}

asio::awaitable<std::vector<journal_entry>>
read_journal(client_ptr c, std::string run_id, std::uint64_t after_seq) {
    // One row with NULLs when the run has no entries after after_seq; none if there is no run.
    std::string sql = "SELECT j.seq, j.kind, j.at_ms, j.body FROM runs r"
                      " LEFT JOIN journal j ON j.run_id = r.id AND j.seq > $2::bigint"
                      " WHERE r.id = $1::text ORDER BY j.seq";
    std::vector<param> p{param::text(run_id), param::integer(to_int64(after_seq))};
    result r = co_await c->async_exec(std::move(sql), std::move(p));
    check(*c, r, detail::run_message(c->name, run_id, "read the journal"));
    if (r.rows == 0) {
        detail::throw_run_not_found(c->name, run_id);
    }
    std::vector<journal_entry> out;
    for (int i = 0; i < r.rows; ++i) {
        if (!r.at(i, 0)) {
            continue;
        }
        journal_entry e;
        e.seq = static_cast<std::uint64_t>(r.integer(i, 0));
        e.kind = r.text(i, 1);
        e.at_ms = r.integer(i, 2);
        e.body = r.bytes(i, 3);
        out.push_back(std::move(e));
    }
    co_return out;
}

asio::awaitable<std::vector<run_info>> list_runs(client_ptr c, run_filter filter) {
    std::string sql = "SELECT " + std::string(run_columns) +
                      " FROM runs WHERE ($1::text = '' OR scope = $1::text)"
                      " AND ($2::text IS NULL OR status = $2::text)"
                      " AND (NOT $3::boolean OR parent_id = '')"
                      " ORDER BY updated_ms DESC, row_order DESC LIMIT $4::bigint";
    std::vector<param> p{
        param::text(filter.scope),
        filter.status ? param::text(std::string(to_string(*filter.status))) : param::null(),
        param::text(filter.top_level_only ? "true" : "false"),
        filter.limit == 0 ? param::null() : param::integer(to_int64(filter.limit)),
    };
    result r = co_await c->async_exec(std::move(sql), std::move(p));
    check(*c, r, "list runs");
    std::vector<run_info> out;
    out.reserve(static_cast<std::size_t>(r.rows));
    for (int i = 0; i < r.rows; ++i) {
        out.push_back(read_run(*c, r, i));
    }
    co_return out;
}

asio::awaitable<bool> acquire_lease(
    client_ptr c,
    std::string run_id,
    std::string owner,
    std::chrono::milliseconds ttl,
    std::string take_over_from
) {
    std::string sql = "SELECT wafer_acquire_lease($1::text, $2::text, $3::bigint, $4::text)";
    std::vector<param> p{
        param::text(run_id),
        param::text(owner),
        param::integer(static_cast<std::int64_t>(ttl.count())),
        param::text(take_over_from),
    };
    result r = co_await c->async_exec(std::move(sql), std::move(p));
    check(*c, r, detail::run_message(c->name, run_id, "acquire the lease"));
    const std::string outcome = r.text(0, 0);
    if (outcome == "not_found") {
        detail::throw_run_not_found(c->name, run_id);
    }
    co_return outcome == "ok";
}

asio::awaitable<bool> release_lease(client_ptr c, std::string run_id, std::string owner) {
    if (owner.empty()) {
        co_return true;
    }
    std::string sql = "UPDATE runs SET lease_owner = '', lease_expires_ms = 0"
                      " WHERE id = $1::text AND lease_owner = $2::text";
    std::vector<param> p{param::text(run_id), param::text(owner)};
    result r = co_await c->async_exec(std::move(sql), std::move(p));
    check(*c, r, detail::run_message(c->name, run_id, "release the lease"));
    co_return true;
}

} // namespace

asio::awaitable<std::unique_ptr<postgres_store>>
postgres_store::async_open(asio::any_io_executor ex, std::string conninfo, postgres_options opts) {
    auto c = std::make_shared<postgres::client>(ex, std::move(conninfo), std::move(opts));
    co_await postgres::async_on_strand(*c, migrate(c));
    co_return std::unique_ptr<postgres_store>(new postgres_store(std::move(c)));
}

postgres_store::postgres_store(std::shared_ptr<postgres::client> c) : client_(std::move(c)) {}

postgres_store::~postgres_store() {
    asio::dispatch(client_->strand, [c = client_] { c->close(); });
}

const std::string& postgres_store::name() const noexcept {
    return client_->name;
}

asio::awaitable<void> postgres_store::async_create_run(run_info run) {
    co_await postgres::async_on_strand(*client_, create_run(client_, std::move(run)));
}

asio::awaitable<std::uint64_t> postgres_store::async_append(
    std::string run_id, std::string owner, std::vector<journal_entry> entries, run_update update
) {
    co_return co_await postgres::async_on_strand(
        *client_,
        append(client_, std::move(run_id), std::move(owner), std::move(entries), std::move(update))
    );
}

asio::awaitable<std::optional<run_info>> postgres_store::async_find_run(std::string run_id) {
    co_return co_await postgres::async_on_strand(*client_, find_run(client_, std::move(run_id)));
}

asio::awaitable<std::vector<journal_entry>>
postgres_store::async_read_journal(std::string run_id, std::uint64_t after_seq) {
    co_return co_await postgres::async_on_strand(
        *client_, read_journal(client_, std::move(run_id), after_seq)
    );
}

asio::awaitable<std::vector<run_info>> postgres_store::async_list_runs(run_filter filter) {
    co_return co_await postgres::async_on_strand(*client_, list_runs(client_, std::move(filter)));
}

asio::awaitable<bool> postgres_store::async_acquire_lease(
    std::string run_id, std::string owner, std::chrono::milliseconds ttl, std::string take_over_from
) {
    co_return co_await postgres::async_on_strand(
        *client_,
        acquire_lease(client_, std::move(run_id), std::move(owner), ttl, std::move(take_over_from))
    );
}

asio::awaitable<void> postgres_store::async_release_lease(std::string run_id, std::string owner) {
    co_await postgres::async_on_strand(
        *client_, release_lease(client_, std::move(run_id), std::move(owner))
    );
}

} // namespace wafer::store
