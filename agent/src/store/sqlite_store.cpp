// sqlite_store: one SQLite connection on one thread, fed by a queue, with group commit.
//
// Schema (version 1, kept in PRAGMA user_version; PRAGMA application_id marks the file as
// wafer's). See SCHEMA.md next to this file for what each column means.
//
//   runs(id TEXT PRIMARY KEY, parent_id, agent, task, scope, status, stop_reason, turns,
//        prompt_tokens, completion_tokens, created_ms, updated_ms, setup, lease_owner,
//        lease_expires_ms)
//   journal(run_id, seq, kind, at_ms, body, PRIMARY KEY (run_id, seq))
//
// journal is a rowid table on purpose: bodies of a few KB stay in the table's leaf pages, where
// a WITHOUT ROWID table (an index b-tree, ~1 KB of payload per cell on 4 KB pages) would spill
// every entry to overflow pages.
//
// Version 0 is a new, empty file: it is created. A newer version is refused (schema_too_new).
// An upgrade from version N runs migrations[N] .. migrations[schema_version - 1] in one
// transaction.
#include <wafer/store/error.hpp>
#include <wafer/store/sqlite_store.hpp>

#include <boost/asio/any_completion_handler.hpp>
#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/associated_executor.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/execution/outstanding_work.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/prefer.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <algorithm>
#include <array>
#include <condition_variable>
#include <cstring>
#include <exception>
#include <fstream>
#include <future>
#include <limits>
#include <map>
#include <mutex>
#include <sqlite3.h>
#include <string_view>
#include <system_error>
#include <thread>
#include <unordered_map>
#include <utility>
#include <variant>

#include "store/store_rules.hpp"

namespace wafer::store {

namespace asio = boost::asio;
namespace fs = std::filesystem;

namespace {

/// PRAGMA application_id of a wafer run store ("wafr").
constexpr int application_id = 0x77616672;

// One step per version: migrations[v] upgrades a file of version v to v + 1.
constexpr std::array<const char*, sqlite_store::schema_version> migrations = {
    // 0 -> 1: the empty file gets both tables.
    "CREATE TABLE runs ("
    " id TEXT PRIMARY KEY NOT NULL,"
    " parent_id TEXT NOT NULL,"
    " agent TEXT NOT NULL,"
    " task TEXT NOT NULL,"
    " scope TEXT NOT NULL,"
    " status TEXT NOT NULL,"
    " stop_reason TEXT NOT NULL,"
    " turns INTEGER NOT NULL,"
    " prompt_tokens INTEGER NOT NULL,"
    " completion_tokens INTEGER NOT NULL,"
    " created_ms INTEGER NOT NULL,"
    " updated_ms INTEGER NOT NULL,"
    " setup TEXT NOT NULL,"
    " lease_owner TEXT NOT NULL,"
    " lease_expires_ms INTEGER NOT NULL);"
    "CREATE INDEX runs_by_update ON runs (updated_ms DESC);"
    "CREATE TABLE journal ("
    " run_id TEXT NOT NULL,"
    " seq INTEGER NOT NULL,"
    " kind TEXT NOT NULL,"
    " at_ms INTEGER NOT NULL,"
    " body TEXT NOT NULL,"
    " PRIMARY KEY (run_id, seq));",
};

#define WAFER_RUN_COLUMNS                                                                          \
    "id, parent_id, agent, task, scope, status, stop_reason, turns, prompt_tokens, "               \
    "completion_tokens, created_ms, updated_ms, setup, lease_owner, lease_expires_ms"

constexpr const char* sql_find_run = "SELECT " WAFER_RUN_COLUMNS " FROM runs WHERE id = ?1";
constexpr const char* sql_insert_run = "INSERT INTO runs (" WAFER_RUN_COLUMNS
                                       ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, "
                                       "?12, ?13, ?14, ?15)";
constexpr const char* sql_list_runs =
    "SELECT " WAFER_RUN_COLUMNS " FROM runs"
    " WHERE (?1 = '' OR scope = ?1) AND (?2 IS NULL OR status = ?2) AND (?3 = 0 OR parent_id = '')"
    " ORDER BY updated_ms DESC, rowid DESC LIMIT ?4";
#undef WAFER_RUN_COLUMNS
constexpr const char* sql_run_exists = "SELECT 1 FROM runs WHERE id = ?1";
constexpr const char* sql_lease_of = "SELECT lease_owner, lease_expires_ms FROM runs WHERE id = ?1";
constexpr const char* sql_last_seq = "SELECT coalesce(max(seq), 0) FROM journal WHERE run_id = ?1";
constexpr const char* sql_insert_entry =
    "INSERT INTO journal (run_id, seq, kind, at_ms, body) VALUES (?1, ?2, ?3, ?4, ?5)";
constexpr const char* sql_update_run =
    "UPDATE runs SET status = coalesce(?2, status), stop_reason = coalesce(?3, stop_reason),"
    " turns = coalesce(?4, turns), prompt_tokens = coalesce(?5, prompt_tokens),"
    " completion_tokens = coalesce(?6, completion_tokens), updated_ms = ?7 WHERE id = ?1";
constexpr const char* sql_read_journal =
    "SELECT seq, kind, at_ms, body FROM journal WHERE run_id = ?1 AND seq > ?2 ORDER BY seq";
constexpr const char* sql_set_lease =
    "UPDATE runs SET lease_owner = ?2, lease_expires_ms = ?3 WHERE id = ?1";
constexpr const char* sql_release_lease =
    "UPDATE runs SET lease_owner = '', lease_expires_ms = 0 WHERE id = ?1 AND lease_owner = ?2";
constexpr const char* sql_begin_read = "BEGIN";
constexpr const char* sql_begin_write = "BEGIN IMMEDIATE";
constexpr const char* sql_commit = "COMMIT";
constexpr const char* sql_rollback = "ROLLBACK";
constexpr const char* sql_savepoint = "SAVEPOINT op";
constexpr const char* sql_release = "RELEASE op";
constexpr const char* sql_rollback_to = "ROLLBACK TO op";

/// Every statement the store runs after opening, prepared once (a missing table or column in a
/// file that claims our schema shows up here, as corrupt).
constexpr std::array<const char*, 18> cached_statements = {
    sql_find_run,
    sql_insert_run,
    sql_list_runs,
    sql_run_exists,
    sql_lease_of,
    sql_last_seq,
    sql_insert_entry,
    sql_update_run,
    sql_read_journal,
    sql_set_lease,
    sql_release_lease,
    sql_begin_read,
    sql_begin_write,
    sql_commit,
    sql_rollback,
    sql_savepoint,
    sql_release,
    sql_rollback_to,
};

std::int64_t to_int64(std::uint64_t v) noexcept {
    return v > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max())
               ? std::numeric_limits<std::int64_t>::max()
               : static_cast<std::int64_t>(v);
}

errc code_of(int rc) noexcept {
    switch (rc & 0xff) {
    case SQLITE_CORRUPT:
    case SQLITE_NOTADB:
        return errc::corrupt;
    default:
        return errc::io;
    }
}

/// The single connection, used only by the store's thread.
class connection {
public:
    connection(const fs::path& file, const sqlite_options& opts);
    ~connection();
    connection(const connection&) = delete;
    connection& operator=(const connection&) = delete;

    const std::string& name() const noexcept { return name_; }

    [[noreturn]] void fail(errc e, std::string_view what) const {
        throw_error(e, "run store " + name_ + ": " + std::string(what));
    }
    [[noreturn]] void fail_sqlite(int rc, std::string_view what) const {
        std::string m(what);
        m += ": ";
        m += db_ ? sqlite3_errmsg(db_) : sqlite3_errstr(rc);
        if ((rc & 0xff) == SQLITE_BUSY || (rc & 0xff) == SQLITE_LOCKED) {
            m += " (waited " + std::to_string(busy_ms_) + " ms for another connection)";
        }
        fail(code_of(rc), m);
    }

    sqlite3_stmt* cached(const char* sql) {
        auto it = cache_.find(sql);
        if (it != cache_.end()) {
            return it->second;
        }
        sqlite3_stmt* s = nullptr;
        const int rc = sqlite3_prepare_v3(db_, sql, -1, SQLITE_PREPARE_PERSISTENT, &s, nullptr);
        if (rc != SQLITE_OK) {
            sqlite3_finalize(s);
            // A file claiming our schema without our tables: not a store we can use.
            fail(
                (rc & 0xff) == SQLITE_ERROR ? errc::corrupt : code_of(rc),
                std::string("the schema does not match version ") +
                    std::to_string(sqlite_store::schema_version) + ": " + sqlite3_errmsg(db_)
            );
        }
        cache_.emplace(sql, s);
        return s;
    }

    /// Runs a statement without parameters nor result rows (BEGIN, COMMIT, ...).
    void run(const char* sql);

    /// Begins a write transaction without waiting for another connection: false if another
    /// one holds the write lock (SQLITE_BUSY), nothing begun. Throws on other errors.
    bool try_begin_write();
    /// Begins a write transaction (waiting up to the busy timeout for another connection).
    void begin_write();
    /// Commits; `writes`: the transaction was a write transaction (begun by begin_write or
    /// try_begin_write).
    void commit(bool writes);
    /// Outside a transaction: whether the next commits sync (sqlite_durability::full only; a
    /// normal store never syncs at commit). Changed only when it differs.
    void sync_commits(bool sync);
    /// Rolls the transaction back, if there is one (errors ignored).
    void rollback() noexcept;
    /// Undoes the current job's savepoint.
    void rollback_to_savepoint();

    /// What an append needs of a run: its lease and the last seq of its journal.
    struct run_state {
        std::string holder;
        std::int64_t expires = 0;
        std::int64_t last_seq = 0;
    };
    /// The run's state, inside a write transaction: remembered from this connection's earlier
    /// write transactions while no other connection has written to the file since (SQLite's
    /// data version tells), else read. Throws run_not_found.
    const run_state& state_of(const std::string& run_id);
    /// Whether the run is known to exist (inside a write transaction; false: unknown).
    bool known(const std::string& run_id) const { return runs_.contains(run_id); }
    /// Records what this write transaction leaves the run as (forgotten if it does not commit).
    void remember(const std::string& run_id, run_state st);
    /// Records a release of `owner`'s lease, if the run is remembered.
    void remember_release(const std::string& run_id, const std::string& owner);

    bool in_transaction() const noexcept { return sqlite3_get_autocommit(db_) == 0; }

    /// Whether the write-ahead log has grown past the checkpoint threshold since the last
    /// checkpoint (set by commits; SQLite's own automatic checkpoint is off).
    bool checkpoint_due() const noexcept { return checkpoint_due_; }
    /// A passive checkpoint, as SQLite's automatic one: copies what no reader needs any more
    /// into the database file, waiting for nobody. Failures are left to the next one.
    void checkpoint() noexcept;

private:
    friend class query;
    void open(const fs::path& file, const sqlite_options& opts);
    void migrate();
    std::int64_t pragma_int(const char* sql);
    void exec_script(const char* sql, std::string_view what);
    void close() noexcept;

    static int on_wal_commit(void* self, sqlite3* db, const char* schema, int frames);

    /// SQLite's data version of the file: changes with every commit, of any connection.
    unsigned data_version() noexcept;
    /// After a write transaction began: forgets the runs if anyone wrote since the last commit.
    void check_runs() noexcept;
    void forget_runs() noexcept {
        runs_.clear();
        runs_version_.reset();
    }

    std::string name_;
    sqlite3* db_ = nullptr;
    int busy_ms_ = 0;
    bool full_ = false;    // sqlite_durability::full
    bool syncing_ = false; // synchronous is FULL now
    bool checkpoint_due_ = false;
    std::map<const char*, sqlite3_stmt*> cache_;
    /// Runs as this connection's last committed write transaction left them, valid while the
    /// file's data version is still runs_version_ (nobody else wrote).
    std::unordered_map<std::string, run_state> runs_;
    std::optional<unsigned> runs_version_;
};

/// One use of a cached statement: binds, steps, reads columns, resets when done.
class query {
public:
    query(connection& c, const char* sql) : c_(c), s_(c.cached(sql)) {}
    ~query() { sqlite3_reset(s_); }
    query(const query&) = delete;
    query& operator=(const query&) = delete;

    query& bind(int i, std::string_view v) {
        // A null pointer would bind SQL NULL; an empty text is not NULL.
        check(sqlite3_bind_text64(
            s_, i, v.data() ? v.data() : "", v.size(), SQLITE_STATIC, SQLITE_UTF8
        ));
        return *this;
    }
    query& bind(int i, std::int64_t v) {
        check(sqlite3_bind_int64(s_, i, v));
        return *this;
    }
    query& bind_null(int i) {
        check(sqlite3_bind_null(s_, i));
        return *this;
    }
    template <class T>
    query& bind(int i, const std::optional<T>& v) {
        return v ? bind(i, *v) : bind_null(i);
    }

    /// True if a row is ready, false when done.
    bool step() {
        const int rc = sqlite3_step(s_);
        if (rc == SQLITE_ROW) {
            return true;
        }
        if (rc == SQLITE_DONE) {
            return false;
        }
        c_.fail_sqlite(rc, sqlite3_sql(s_));
    }

    std::int64_t integer(int col) const { return sqlite3_column_int64(s_, col); }
    std::string text(int col) const {
        const auto* p = static_cast<const char*>(sqlite3_column_blob(s_, col));
        const int n = sqlite3_column_bytes(s_, col);
        return p ? std::string(p, static_cast<std::size_t>(n)) : std::string();
    }

private:
    void check(int rc) {
        if (rc != SQLITE_OK) {
            c_.fail_sqlite(rc, "bind");
        }
    }
    connection& c_;
    sqlite3_stmt* s_;
};

connection::connection(const fs::path& file, const sqlite_options& opts) : name_(file.string()) {
    busy_ms_ = static_cast<int>(std::clamp<std::int64_t>(opts.busy_timeout.count(), 0, INT32_MAX));
    open(file, opts);
}

connection::~connection() {
    close();
}

void connection::close() noexcept {
    for (auto& [sql, s] : cache_) {
        sqlite3_finalize(s);
    }
    cache_.clear();
    if (db_) {
        sqlite3_close_v2(db_);
        db_ = nullptr;
    }
}

void connection::run(const char* sql) {
    query q(*this, sql);
    q.step();
}

bool connection::try_begin_write() {
    sqlite3_busy_timeout(db_, 0);
    sqlite3_stmt* s = cached(sql_begin_write);
    const int rc = sqlite3_step(s);
    sqlite3_reset(s);
    sqlite3_busy_timeout(db_, busy_ms_);
    if (rc == SQLITE_DONE) {
        check_runs();
        return true;
    }
    if ((rc & 0xff) == SQLITE_BUSY) {
        return false;
    }
    fail_sqlite(rc, sqlite3_sql(s));
}

void connection::begin_write() {
    run(sql_begin_write);
    check_runs();
}

void connection::commit(bool writes) {
    try {
        run(sql_commit);
    } catch (...) {
        forget_runs();
        throw;
    }
    if (writes) {
        runs_version_ = data_version();
    }
}

void connection::sync_commits(bool sync) {
    // Set between transactions only. In WAL mode a later synced commit syncs the log up to
    // itself, so what was committed before it without a sync is durable with it.
    const bool want = full_ && sync;
    if (want != syncing_) {
        run(want ? "PRAGMA synchronous=FULL" : "PRAGMA synchronous=NORMAL");
        syncing_ = want;
    }
}

void connection::rollback() noexcept {
    forget_runs();
    if (in_transaction()) {
        try {
            run(sql_rollback);
        } catch (...) { // NOLINT(bugprone-empty-catch)
        }
    }
}

void connection::rollback_to_savepoint() {
    forget_runs();
    run(sql_rollback_to);
}

unsigned connection::data_version() noexcept {
    unsigned v = 0;
    sqlite3_file_control(db_, "main", SQLITE_FCNTL_DATA_VERSION, &v);
    return v;
}

void connection::check_runs() noexcept {
    // The write lock is held and the transaction sees the latest commit: if that commit is not
    // this connection's last one, another connection (another store, another process) wrote.
    if (!runs_version_ || *runs_version_ != data_version()) {
        forget_runs();
    }
}

const connection::run_state& connection::state_of(const std::string& run_id) {
    if (auto it = runs_.find(run_id); it != runs_.end()) {
        return it->second;
    }
    run_state st;
    {
        query q(*this, sql_lease_of);
        q.bind(1, run_id);
        if (!q.step()) {
            detail::throw_run_not_found(name_, run_id);
        }
        st.holder = q.text(0);
        st.expires = q.integer(1);
    }
    {
        query q(*this, sql_last_seq);
        q.bind(1, run_id);
        q.step();
        st.last_seq = q.integer(0);
    }
    remember(run_id, std::move(st));
    return runs_.at(run_id);
}

void connection::remember(const std::string& run_id, run_state st) {
    // A bound on memory for stores with many runs: start over.
    constexpr std::size_t most = 4096;
    if (runs_.size() >= most && !runs_.contains(run_id)) {
        runs_.clear();
    }
    runs_.insert_or_assign(run_id, std::move(st));
}

void connection::remember_release(const std::string& run_id, const std::string& owner) {
    if (auto it = runs_.find(run_id); it != runs_.end() && it->second.holder == owner) {
        it->second.holder.clear();
        it->second.expires = 0;
    }
}

int connection::on_wal_commit(void* self, sqlite3*, const char*, int frames) {
    // SQLite's automatic checkpoint threshold (pages in the log).
    constexpr int threshold = 1000;
    if (frames >= threshold) {
        static_cast<connection*>(self)->checkpoint_due_ = true;
    }
    return SQLITE_OK;
}

void connection::checkpoint() noexcept {
    checkpoint_due_ = false;
    sqlite3_wal_checkpoint_v2(db_, nullptr, SQLITE_CHECKPOINT_PASSIVE, nullptr, nullptr);
}

std::int64_t connection::pragma_int(const char* sql) {
    sqlite3_stmt* s = nullptr;
    int rc = sqlite3_prepare_v2(db_, sql, -1, &s, nullptr);
    if (rc == SQLITE_OK) {
        rc = sqlite3_step(s);
    }
    if (rc != SQLITE_ROW) {
        sqlite3_finalize(s);
        fail_sqlite(
            rc, code_of(rc) == errc::corrupt ? "damaged or truncated" : "reading the header"
        );
    }
    const auto v = sqlite3_column_int64(s, 0);
    sqlite3_finalize(s);
    return v;
}

void connection::exec_script(const char* sql, std::string_view what) {
    char* err = nullptr;
    const int rc = sqlite3_exec(db_, sql, nullptr, nullptr, &err);
    if (rc != SQLITE_OK) {
        std::string m(what);
        m += ": ";
        m += err ? err : sqlite3_errstr(rc);
        sqlite3_free(err);
        fail(code_of(rc), m);
    }
}

void connection::open(const fs::path& file, const sqlite_options& opts) {
    std::error_code ec;
    if (file.has_parent_path()) {
        fs::create_directories(file.parent_path(), ec);
        if (ec) {
            fail(
                errc::io,
                "cannot create directory " + file.parent_path().string() + ": " + ec.message()
            );
        }
    }
    // A non-empty file must start with SQLite's header; SQLite itself would take a file shorter
    // than a page for an empty database and overwrite it.
    const auto size = fs::file_size(file, ec);
    const bool existed = !ec;
    if (existed && size > 0) {
        std::array<char, 16> magic{};
        std::ifstream in(file, std::ios::binary);
        in.read(magic.data(), magic.size());
        if (!in) {
            if (in.gcount() > 0 || size < magic.size()) {
                fail(errc::corrupt, "not a SQLite database (" + std::to_string(size) + " bytes)");
            }
            fail(errc::io, "cannot read the file");
        }
        if (std::memcmp(magic.data(), "SQLite format 3", 16) != 0) {
            fail(errc::corrupt, "not a SQLite database");
        }
        if (size < 100) {
            fail(errc::corrupt, "truncated (" + std::to_string(size) + " bytes)");
        }
    }
    const fs::path wal = name_ + "-wal";
    const fs::path shm = name_ + "-shm";
    const bool had_wal = fs::exists(wal, ec);
    const bool had_shm = fs::exists(shm, ec);

    const int flags =
        SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX | SQLITE_OPEN_EXRESCODE;
    const int rc =
        sqlite3_open_v2(name_.c_str(), &db_, flags, opts.vfs.empty() ? nullptr : opts.vfs.c_str());
    if (rc != SQLITE_OK) {
        std::string m = "cannot open: ";
        m += db_ ? sqlite3_errmsg(db_) : sqlite3_errstr(rc);
        close();
        fail(code_of(rc), m);
    }
    sqlite3_busy_timeout(db_, busy_ms_);
    try {
        // Reads only, until the file is known to be ours: a damaged or foreign file is left as
        // it was.
        const auto tables = pragma_int("SELECT count(*) FROM sqlite_master");
        const auto version = pragma_int("PRAGMA user_version");
        const auto app = pragma_int("PRAGMA application_id");
        if (version > sqlite_store::schema_version) {
            fail(
                errc::schema_too_new,
                "written by a newer wafer (schema " + std::to_string(version) +
                    "; this build reads up to " + std::to_string(sqlite_store::schema_version) + ")"
            );
        }
        if (version < 0 || (version == 0 && tables > 0) || (version > 0 && app != application_id)) {
            fail(errc::corrupt, "not a wafer run store (a SQLite database with other contents)");
        }
        {
            query jm(*this, "PRAGMA journal_mode=WAL");
            if (!jm.step() || jm.text(0) != "wal") {
                fail(errc::io, "cannot switch to WAL journal mode");
            }
        }
        full_ = opts.durability == sqlite_durability::full;
        syncing_ = full_;
        exec_script(
            full_ ? "PRAGMA synchronous=FULL" : "PRAGMA synchronous=NORMAL", "setting synchronous"
        );
        // Replaces SQLite's automatic checkpoint, which would run inside the commit that crosses
        // the threshold, on whichever thread made it: the store runs it on its own thread.
        sqlite3_wal_hook(db_, &connection::on_wal_commit, this);
        if (version < sqlite_store::schema_version) {
            migrate();
        }
        for (const char* sql : cached_statements) {
            cached(sql);
        }
    } catch (const wafer::error& e) {
        close();
        if (e.code() == errc::corrupt) {
            // SQLite may have created the sidecar files of a WAL-mode file while looking at it.
            if (!had_wal) {
                fs::remove(wal, ec);
            }
            if (!had_shm) {
                fs::remove(shm, ec);
            }
        }
        throw;
    }
}

void connection::migrate() {
    exec_script("BEGIN IMMEDIATE", "starting the schema upgrade");
    try {
        // Another connection may have upgraded the file while this one waited for the lock.
        const auto version = pragma_int("PRAGMA user_version");
        if (version > sqlite_store::schema_version) {
            fail(
                errc::schema_too_new,
                "written by a newer wafer (schema " + std::to_string(version) +
                    "; this build reads up to " + std::to_string(sqlite_store::schema_version) + ")"
            );
        }
        for (auto v = version; v < sqlite_store::schema_version; ++v) {
            exec_script(
                migrations[static_cast<std::size_t>(v)],
                "upgrading the schema from version " + std::to_string(v)
            );
        }
        if (version < sqlite_store::schema_version) {
            // PRAGMAs take no parameters; both values are constants of this file.
            exec_script(
                ("PRAGMA user_version=" + std::to_string(sqlite_store::schema_version) +
                 ";PRAGMA application_id=" + std::to_string(application_id))
                    .c_str(),
                "recording the schema version"
            );
        }
        exec_script("COMMIT", "committing the schema upgrade");
    } catch (...) {
        sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
        throw;
    }
}

run_info read_run(const query& q, const connection& c) {
    run_info r;
    r.id = q.text(0);
    r.parent_id = q.text(1);
    r.agent = q.text(2);
    r.task = q.text(3);
    r.scope = q.text(4);
    const auto status = q.text(5);
    if (auto s = parse_run_status(status)) {
        r.status = *s;
    } else {
        c.fail(errc::corrupt, "run \"" + r.id + "\" has an unknown status \"" + status + "\"");
    }
    r.stop_reason = q.text(6);
    r.turns = static_cast<std::size_t>(std::max<std::int64_t>(q.integer(7), 0));
    r.prompt_tokens = q.integer(8);
    r.completion_tokens = q.integer(9);
    r.created_ms = q.integer(10);
    r.updated_ms = q.integer(11);
    r.setup = q.text(12);
    r.lease_owner = q.text(13);
    r.lease_expires_ms = q.integer(14);
    return r;
}

/// The run's lease (owner, expiry); run_not_found if there is no such run.
std::pair<std::string, std::int64_t> lease_of(connection& c, const std::string& run_id) {
    query q(c, sql_lease_of);
    q.bind(1, run_id);
    if (!q.step()) {
        detail::throw_run_not_found(c.name(), run_id);
    }
    return {q.text(0), q.integer(1)};
}

// --- Jobs: one queued operation, its result, and where the result goes. ------------------------

struct job {
    job(bool w, bool s) : writes(w), sync(s) {}
    virtual ~job() = default;
    job(const job&) = delete;
    job& operator=(const job&) = delete;

    /// Runs the operation inside the current transaction (throws on failure).
    virtual void run(connection& c) = 0;
    /// Posts the result (or `error`) to the caller's executor.
    virtual void complete() = 0;

    const bool writes;
    /// Its commit must be synced (run_update::sync).
    const bool sync;
    std::exception_ptr error;
};

template <class R, class Fn>
class job_of final : public job {
public:
    using handler_type = asio::any_completion_handler<void(std::exception_ptr, R)>;

    job_of(
        bool writes_to_store,
        bool synced_commit,
        Fn fn,
        handler_type handler,
        asio::any_io_executor work
    )
        : job(writes_to_store, synced_commit), fn_(std::move(fn)), handler_(std::move(handler)),
          work_(std::move(work)) {}

    void run(connection& c) override { value_ = fn_(c); }

    void complete() override {
        // Posted through an untracked copy, with the tracked one moved into the handler: the
        // work count drops on the caller's thread, after the handler ran. Dropping it here
        // instead could be the io_context's last unit of work while its owner, already resumed,
        // destroys it.
        auto ex = asio::prefer(work_, asio::execution::outstanding_work.untracked);
        asio::post(
            ex,
            [h = std::move(handler_), e = error, v = std::move(value_), work = std::move(work_)](
            ) mutable {
                auto keep = std::move(work);
                std::move(h)(e, e ? R{} : std::move(v));
            }
        );
    }

private:
    Fn fn_;
    handler_type handler_;
    /// The caller's executor, tracking outstanding work until the result is posted.
    asio::any_io_executor work_;
    R value_{};
};

} // namespace

struct sqlite_store::impl {
    fs::path file;
    sqlite_options opts;
    /// Opened and closed by the store's thread; used by whoever set `busy`.
    std::optional<connection> conn;
    std::mutex mutex;
    std::condition_variable wake;
    // Guarded by `mutex`:
    std::vector<std::unique_ptr<job>> queue;
    /// The connection is in use (by the store's thread, or by a caller running inline).
    bool busy = false;
    /// A commit crossed the checkpoint threshold: the store's thread checkpoints when idle.
    bool checkpoint_due = false;
    bool stopping = false;
    std::thread thread;

    void enqueue(std::unique_ptr<job> j) {
        {
            std::lock_guard lock(mutex);
            queue.push_back(std::move(j));
        }
        wake.notify_one();
    }

    /// Runs `fn` on the calling thread, in a transaction of its own, if the connection is idle,
    /// nothing is queued and no other connection holds the file's write lock (nothing would be
    /// waited for); nullopt (and `fn` untouched) otherwise. Throws what `fn` or the commit
    /// throws.
    template <class R, class Fn>
    std::optional<R> try_inline(Fn& fn, bool sync) {
        {
            std::lock_guard lock(mutex);
            // A checkpoint that is due goes first: writes that kept running inline would
            // starve the store's thread of it, and the log would grow without bound.
            if (busy || stopping || !queue.empty() || checkpoint_due) {
                return std::nullopt;
            }
            busy = true;
        }
        connection& c = *conn;
        auto release = [&] {
            bool notify = false;
            {
                std::lock_guard lock(mutex);
                busy = false;
                checkpoint_due = checkpoint_due || c.checkpoint_due();
                notify = !queue.empty() || checkpoint_due;
            }
            if (notify) {
                wake.notify_one();
            }
        };
        try {
            c.sync_commits(sync);
            if (!c.try_begin_write()) {
                release();
                return std::nullopt;
            }
            std::optional<R> v(std::in_place, fn(c));
            c.commit(true);
            release();
            return v;
        } catch (...) {
            c.rollback();
            release();
            throw;
        }
    }

    /// Runs `fn(connection&) -> R` (inline if the options allow and nothing would wait, else
    /// queued to the store's thread); resumes with its result on the caller's executor once its
    /// transaction has committed.
    template <class R, class Fn>
    asio::awaitable<R> submit(bool writes, Fn fn, bool sync = true) {
        // Reads stay on the store's thread: a read transaction starts at its first statement,
        // where it could wait for another connection (recovering the file after a crash, say).
        if (writes && opts.threading == sqlite_threading::caller_when_idle) {
            if (std::optional<R> v = try_inline<R>(fn, sync)) {
                co_return std::move(*v);
            }
        }
        asio::awaitable<R> queued =
            asio::async_initiate<const asio::use_awaitable_t<>&, void(std::exception_ptr, R)>(
                [this, writes, sync](auto handler, Fn f) {
                    auto ex = asio::get_associated_executor(handler);
                    asio::any_io_executor work =
                        asio::prefer(ex, asio::execution::outstanding_work.tracked);
                    enqueue(std::make_unique<job_of<R, Fn>>(
                        writes,
                        sync,
                        std::move(f),
                        typename job_of<R, Fn>::handler_type(std::move(handler)),
                        std::move(work)
                    ));
                },
                asio::use_awaitable,
                std::move(fn)
            );
        co_return co_await std::move(queued);
    }

    void thread_main(std::promise<void>& opened);
    void run_batch(connection& c, std::vector<std::unique_ptr<job>>& batch);
};

void sqlite_store::impl::thread_main(std::promise<void>& opened) {
    try {
        conn.emplace(file, opts);
    } catch (...) {
        opened.set_exception(std::current_exception());
        return;
    }
    opened.set_value();
    connection& c = *conn;
    std::vector<std::unique_ptr<job>> batch;
    for (;;) {
        bool checkpoint = false;
        {
            std::unique_lock lock(mutex);
            wake.wait(lock, [this] {
                return !busy && (stopping || checkpoint_due || !queue.empty());
            });
            if (queue.empty() && !checkpoint_due) {
                break; // stopping, and everything queued is done
            }
            busy = true;
            batch.swap(queue);
            checkpoint = std::exchange(checkpoint_due, false);
        }
        if (!batch.empty()) {
            run_batch(c, batch);
            batch.clear();
        }
        if (checkpoint || c.checkpoint_due()) {
            c.checkpoint();
        }
        std::lock_guard lock(mutex);
        busy = false;
    }
    conn.reset();
}

void sqlite_store::impl::run_batch(connection& c, std::vector<std::unique_ptr<job>>& batch) {
    const bool writes =
        std::any_of(batch.begin(), batch.end(), [](const auto& j) { return j->writes; });
    // A job alone in its transaction needs no savepoint: its failure undoes the transaction.
    const bool alone = batch.size() == 1;
    // Every job that has not failed on its own fails with `e`: nothing of the batch landed.
    auto fail_rest = [&](std::exception_ptr e) {
        for (auto& j : batch) {
            if (!j->error) {
                j->error = e;
            }
        }
    };
    auto abandon = [&] {
        c.rollback();
    };
    bool lost = false;
    try {
        if (writes) {
            // One job that must be synced syncs the commit of the whole batch.
            c.sync_commits(std::any_of(batch.begin(), batch.end(), [](const auto& j) {
                return j->sync;
            }));
            c.begin_write();
        } else {
            c.run(sql_begin_read);
        }
    } catch (...) {
        fail_rest(std::current_exception());
        lost = true;
    }
    for (auto it = batch.begin(); !lost && it != batch.end(); ++it) {
        auto& j = **it;
        try {
            if (alone) {
                j.run(c);
                continue;
            }
            c.run(sql_savepoint);
            j.run(c);
            c.run(sql_release);
            continue;
        } catch (...) {
            j.error = std::current_exception();
        }
        // This job alone is undone; if that is impossible (SQLite already rolled the whole
        // transaction back on an I/O error, say), the batch is lost.
        try {
            if (!alone && c.in_transaction()) {
                c.rollback_to_savepoint();
                c.run(sql_release);
                continue;
            }
        } catch (...) { // NOLINT(bugprone-empty-catch)
        }
        fail_rest(j.error);
        lost = true;
    }
    if (lost) {
        abandon();
    } else {
        try {
            c.commit(writes);
        } catch (...) {
            fail_rest(std::current_exception());
            abandon();
        }
    }
    for (auto& j : batch) {
        j->complete();
    }
}

sqlite_store::sqlite_store(fs::path file, sqlite_options opts) : impl_(std::make_unique<impl>()) {
    impl_->file = std::move(file);
    impl_->opts = std::move(opts);
    // The promise lives in the thread's closure: set_value may still touch the shared state
    // after this constructor has seen the future ready and returned.
    std::promise<void> opened;
    auto ready = opened.get_future();
    impl_->thread =
        std::thread([i = impl_.get(), p = std::move(opened)]() mutable { i->thread_main(p); });
    try {
        ready.get();
    } catch (...) {
        impl_->thread.join();
        throw;
    }
}

sqlite_store::~sqlite_store() {
    {
        std::lock_guard lock(impl_->mutex);
        impl_->stopping = true;
    }
    impl_->wake.notify_one();
    impl_->thread.join();
}

const fs::path& sqlite_store::path() const noexcept {
    return impl_->file;
}

asio::awaitable<void> sqlite_store::async_create_run(run_info run) {
    auto fn = [run = std::move(run)](connection& c) {
        bool taken = c.known(run.id);
        if (!taken) {
            query q(c, sql_run_exists);
            q.bind(1, run.id);
            taken = q.step();
        }
        if (taken) {
            throw_error(errc::run_exists, detail::run_message(c.name(), run.id, "the id is taken"));
        }
        const auto now = detail::now_ms();
        query q(c, sql_insert_run);
        q.bind(1, run.id)
            .bind(2, run.parent_id)
            .bind(3, run.agent)
            .bind(4, run.task)
            .bind(5, run.scope)
            .bind(6, to_string(run.status))
            .bind(7, run.stop_reason)
            .bind(8, to_int64(run.turns))
            .bind(9, run.prompt_tokens)
            .bind(10, run.completion_tokens)
            .bind(11, now)
            .bind(12, now)
            .bind(13, run.setup)
            .bind(14, run.lease_owner)
            .bind(15, run.lease_expires_ms);
        q.step();
        c.remember(run.id, {run.lease_owner, run.lease_expires_ms, 0});
        return std::monostate{};
    };
    co_await impl_->submit<std::monostate>(true, std::move(fn));
}

asio::awaitable<std::uint64_t> sqlite_store::async_append(
    std::string run_id, std::string owner, std::vector<journal_entry> entries, run_update update
) {
    const bool sync = update.sync;
    auto fn = [run_id = std::move(run_id),
               owner = std::move(owner),
               entries = std::move(entries),
               update = std::move(update)](connection& c) {
        const auto now = detail::now_ms();
        connection::run_state st = c.state_of(run_id);
        if (auto why = detail::append_refusal(st.holder, st.expires, owner, now); !why.empty()) {
            throw_error(errc::lease_held, detail::run_message(c.name(), run_id, why));
        }
        std::int64_t seq = st.last_seq;
        for (const auto& e : entries) {
            query q(c, sql_insert_entry);
            q.bind(1, run_id).bind(2, ++seq).bind(3, e.kind).bind(4, now).bind(5, e.body);
            q.step();
        }
        std::optional<std::int64_t> turns;
        if (update.turns) {
            turns = to_int64(*update.turns);
        }
        std::optional<std::string_view> status;
        if (update.status) {
            status = to_string(*update.status);
        }
        query q(c, sql_update_run);
        q.bind(1, run_id)
            .bind(2, status)
            .bind(3, update.stop_reason)
            .bind(4, turns)
            .bind(5, update.prompt_tokens)
            .bind(6, update.completion_tokens)
            .bind(7, now);
        q.step();
        if (update.release_lease && !owner.empty()) {
            query r(c, sql_release_lease);
            r.bind(1, run_id).bind(2, owner);
            r.step();
            if (st.holder == owner) {
                st.holder.clear();
                st.expires = 0;
            }
        }
        st.last_seq = seq;
        c.remember(run_id, std::move(st));
        return static_cast<std::uint64_t>(seq);
    };
    co_return co_await impl_->submit<std::uint64_t>(true, std::move(fn), sync);
}

asio::awaitable<std::optional<run_info>> sqlite_store::async_find_run(std::string run_id) {
    auto fn = [run_id = std::move(run_id)](connection& c) -> std::optional<run_info> {
        query q(c, sql_find_run);
        q.bind(1, run_id);
        if (!q.step()) {
            return std::nullopt;
        }
        return read_run(q, c);
    };
    co_return co_await impl_->submit<std::optional<run_info>>(false, std::move(fn));
}

asio::awaitable<std::vector<journal_entry>>
sqlite_store::async_read_journal(std::string run_id, std::uint64_t after_seq) {
    auto fn = [run_id = std::move(run_id), after_seq](connection& c) {
        lease_of(c, run_id); // run_not_found
        std::vector<journal_entry> out;
        query q(c, sql_read_journal);
        q.bind(1, run_id).bind(2, to_int64(after_seq));
        while (q.step()) {
            journal_entry e;
            e.seq = static_cast<std::uint64_t>(q.integer(0));
            e.kind = q.text(1);
            e.at_ms = q.integer(2);
            e.body = q.text(3);
            out.push_back(std::move(e));
        }
        return out;
    };
    co_return co_await impl_->submit<std::vector<journal_entry>>(false, std::move(fn));
}

asio::awaitable<std::vector<run_info>> sqlite_store::async_list_runs(run_filter filter) {
    auto fn = [filter = std::move(filter)](connection& c) {
        std::optional<std::string_view> status;
        if (filter.status) {
            status = to_string(*filter.status);
        }
        query q(c, sql_list_runs);
        q.bind(1, filter.scope)
            .bind(2, status)
            .bind(3, std::int64_t{filter.top_level_only ? 1 : 0})
            .bind(4, filter.limit == 0 ? std::int64_t{-1} : to_int64(filter.limit));
        std::vector<run_info> out;
        while (q.step()) {
            out.push_back(read_run(q, c));
        }
        return out;
    };
    co_return co_await impl_->submit<std::vector<run_info>>(false, std::move(fn));
}

asio::awaitable<bool> sqlite_store::async_acquire_lease(
    std::string run_id, std::string owner, std::chrono::milliseconds ttl, std::string take_over_from
) {
    auto fn = [run_id = std::move(run_id),
               owner = std::move(owner),
               ttl,
               take_over_from = std::move(take_over_from)](connection& c) {
        const auto now = detail::now_ms();
        connection::run_state st = c.state_of(run_id);
        if (detail::held_by_other(st.holder, st.expires, owner, now) &&
            (take_over_from.empty() || st.holder != take_over_from)) {
            return false;
        }
        st.holder = owner;
        st.expires = detail::lease_end(now, ttl);
        query q(c, sql_set_lease);
        q.bind(1, run_id).bind(2, st.holder).bind(3, st.expires);
        q.step();
        c.remember(run_id, std::move(st));
        return true;
    };
    co_return co_await impl_->submit<bool>(true, std::move(fn));
}

asio::awaitable<void> sqlite_store::async_release_lease(std::string run_id, std::string owner) {
    auto fn = [run_id = std::move(run_id), owner = std::move(owner)](connection& c) {
        if (!owner.empty()) {
            query q(c, sql_release_lease);
            q.bind(1, run_id).bind(2, owner);
            q.step();
            c.remember_release(run_id, owner);
        }
        return std::monostate{};
    };
    co_await impl_->submit<std::monostate>(true, std::move(fn));
}

} // namespace wafer::store
