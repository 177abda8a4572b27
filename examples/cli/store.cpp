#include "store.hpp"

#include <wafer/store/postgres_store.hpp>
#include <wafer/store/sqlite_store.hpp>

#include <cstdlib>
#include <cstring>
#include <libpq-fe.h>
#include <string_view>
#include <vector>

#include "failure.hpp"

namespace fs = std::filesystem;

namespace wafer::cli {

namespace {

/// An environment variable that holds an absolute path (the XDG rules ignore relative ones).
std::optional<fs::path> absolute_env(const char* name) {
    const char* v = std::getenv(name);
    if (v == nullptr || *v != '/') {
        return std::nullopt;
    }
    return fs::path(v);
}

/// How long a CLI command waits for the database (the library's default is for servers).
constexpr std::chrono::milliseconds database_timeout{5'000};
// A command that drives one run: a connection for the run and one for lease renewals beside it.
constexpr std::size_t single_run_connections = 2;

/// Where passwords are in a database URI, as libpq reads it: the user part ends at the first '@'
/// before any '/', its password after its first ':'; then `password=` among the parameters.
struct password_spans {
    struct span {
        std::size_t at = 0;
        std::size_t size = 0;
    };
    /// The user part's ":password" (colon included), if any.
    std::optional<span> user_part;
    /// The values of the `password=` parameters.
    std::vector<span> parameters;
    /// The query's place ('?' included), npos when there is none.
    std::size_t query = std::string::npos;

    explicit password_spans(std::string_view uri) {
        const std::size_t scheme = uri.find("://");
        if (scheme == std::string_view::npos) {
            return;
        }
        const std::size_t start = scheme + 3;
        std::size_t host = start;
        const std::size_t stop = uri.find_first_of("@/", start);
        if (stop != std::string_view::npos && uri[stop] == '@') {
            const std::size_t colon = uri.find(':', start);
            if (colon < stop) {
                user_part = span{colon, stop - colon};
            }
            host = stop + 1;
        }
        query = uri.find('?', host);
        for (std::size_t p = query; p != std::string_view::npos && p < uri.size();) {
            const std::size_t begin = p + 1;
            const std::size_t end = std::min(uri.find('&', begin), uri.size());
            constexpr std::string_view key = "password=";
            if (uri.substr(begin, end - begin).starts_with(key)) {
                parameters.push_back(span{begin + key.size(), end - begin - key.size()});
            }
            p = end < uri.size() ? end : std::string_view::npos;
        }
    }

    /// The passwords as written in `uri` (for scrubbing messages that may quote it).
    std::vector<std::string> secrets(std::string_view uri) const {
        std::vector<std::string> out;
        if (user_part && user_part->size > 1) {
            out.emplace_back(uri.substr(user_part->at + 1, user_part->size - 1));
        }
        for (const auto& p : parameters) {
            if (p.size > 0) {
                out.emplace_back(uri.substr(p.at, p.size));
            }
        }
        return out;
    }
};

/// `message` with every password of `uri` replaced by "***".
std::string scrubbed(std::string message, const std::string& uri) {
    for (const std::string& pw : password_spans(uri).secrets(uri)) {
        for (auto at = message.find(pw); at != std::string::npos; at = message.find(pw, at)) {
            message.replace(at, pw.size(), "***");
        }
    }
    return message;
}

/// `s` on one line: each run of line breaks and tabs becomes one space, none at the end.
std::string one_line(std::string s) {
    std::string out;
    bool gap = false;
    for (char c : s) {
        if (c == '\n' || c == '\r' || c == '\t') {
            gap = true;
            continue;
        }
        if (gap && !out.empty() && out.back() != ' ') {
            out += ' ';
        }
        gap = false;
        out += c;
    }
    while (!out.empty() && out.back() == ' ') {
        out.pop_back();
    }
    return out;
}

/// `s` as one word of a POSIX shell: as it is when it holds only the usual path characters,
/// else in single quotes.
std::string shell_word(const std::string& s) {
    const bool plain =
        s.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789/._-+,"
        ) == std::string::npos;
    if (plain) {
        return s;
    }
    std::string quoted = "'";
    for (char c : s) {
        quoted += c == '\'' ? std::string("'\\''") : std::string(1, c);
    }
    return quoted + "'";
}

/// --store-schema applies to a database only.
void check_schema_flag(const store_flags& where) {
    if (!where.store_schema.empty() && !is_database_url(where.store)) {
        throw cli_error(
            "--store-schema applies to a PostgreSQL store (--store postgresql://...)", exit_usage
        );
    }
}

} // namespace

std::shared_ptr<store::postgres_store>
open_database(boost::asio::io_context& ioc, const store_flags& where, std::size_t max_connections) {
    const std::string& uri = where.store;
    // A URI libpq cannot read fails here, at once, rather than after the connect timeout.
    char* err = nullptr;
    PQconninfoOption* parsed = PQconninfoParse(uri.c_str(), &err);
    if (parsed) {
        PQconninfoFree(parsed);
    }
    if (err || !parsed) {
        std::string why = err ? err : "out of memory";
        if (err) {
            PQfreemem(err);
        }
        throw cli_error(
            scrubbed(
                "--store " + without_password(uri) +
                    " is not a PostgreSQL URI libpq accepts: " + one_line(why),
                uri
            ),
            exit_usage
        );
    }
    store::postgres_options o;
    if (!where.store_schema.empty()) {
        o.schema = where.store_schema;
    }
    o.connect_timeout = database_timeout;
    o.max_connections = max_connections;
    try {
        std::unique_ptr<store::postgres_store> st =
            wait_for(ioc, store::postgres_store::async_open(ioc.get_executor(), uri, o));
        return std::shared_ptr<store::postgres_store>(std::move(st));
    } catch (const wafer::error& e) {
        throw cli_error(scrubbed(store_failure_line(e), uri), exit_usage);
    } catch (const std::exception& e) {
        throw cli_error(
            scrubbed("cannot open the run store " + without_password(uri) + ": " + e.what(), uri),
            exit_usage
        );
    }
}

bool is_database_url(const std::string& flag) {
    return flag.starts_with("postgresql://") || flag.starts_with("postgres://");
}

std::string without_password(const std::string& uri) {
    const password_spans spans(uri);
    std::string head = uri.substr(0, spans.query);
    if (spans.user_part) {
        head.erase(spans.user_part->at, spans.user_part->size);
    }
    if (spans.query == std::string::npos) {
        return head;
    }
    // The parameters but password=.
    std::string kept;
    const std::string_view query = std::string_view(uri).substr(spans.query + 1);
    for (std::size_t p = 0; p <= query.size();) {
        const std::size_t end = std::min(query.find('&', p), query.size());
        const std::string_view param = query.substr(p, end - p);
        if (!param.starts_with("password=") && !param.empty()) {
            kept += (kept.empty() ? "" : "&") + std::string(param);
        }
        p = end + 1;
    }
    return kept.empty() ? head : head + "?" + kept;
}

void hide_passwords_in_argv(int argc, char** argv) {
    for (int i = 1; i < argc; ++i) {
        const std::string arg = argv[i];
        // The value of --store=URI as well as of --store URI.
        const std::size_t at = arg.find("postgres");
        if (at == std::string::npos || !is_database_url(arg.substr(at))) {
            continue;
        }
        const password_spans spans(std::string_view(arg).substr(at));
        if (spans.user_part && spans.user_part->size > 1) {
            std::memset(argv[i] + at + spans.user_part->at + 1, '*', spans.user_part->size - 1);
        }
        for (const auto& p : spans.parameters) {
            std::memset(argv[i] + at + p.at, '*', p.size);
        }
    }
}

std::optional<fs::path> wafer_state_dir() {
    if (auto state = absolute_env("XDG_STATE_HOME")) {
        return *state / "wafer";
    }
    if (auto home = absolute_env("HOME")) {
        return *home / ".local" / "state" / "wafer";
    }
    return std::nullopt;
}

fs::path store_path(const std::string& flag) {
    if (!flag.empty()) {
        return fs::absolute(flag);
    }
    if (auto dir = wafer_state_dir()) {
        return *dir / "runs.db";
    }
    throw cli_error(
        "no place for the run store: neither XDG_STATE_HOME nor HOME is set; give --store PATH or "
        "--no-store",
        exit_usage
    );
}

std::shared_ptr<store::run_store> open_store(const fs::path& file) {
    try {
        // One run per process: committing on the run's own thread saves the hand-off to the
        // store's thread and back, and there is no other run to share commits with.
        store::sqlite_options o;
        o.threading = store::sqlite_threading::caller_when_idle;
        return std::make_shared<store::sqlite_store>(file, o);
    } catch (const wafer::error& e) {
        throw cli_error(store_failure_line(e), exit_usage);
    } catch (const std::exception& e) {
        throw cli_error("cannot open the run store " + file.string() + ": " + e.what(), exit_usage);
    }
}

std::string store_name(const store_flags& where) {
    if (!is_database_url(where.store)) {
        return store_path(where.store).string();
    }
    const std::string uri = without_password(where.store);
    return where.store_schema.empty() ? uri : uri + " (schema " + where.store_schema + ")";
}

std::shared_ptr<store::run_store>
open_store(boost::asio::io_context& ioc, const store_flags& where) {
    check_schema_flag(where);
    if (is_database_url(where.store)) {
        return open_database(ioc, where, single_run_connections);
    }
    return open_store(store_path(where.store));
}

std::shared_ptr<store::run_store>
existing_store(boost::asio::io_context& ioc, const store_flags& where) {
    check_schema_flag(where);
    if (is_database_url(where.store)) {
        return open_database(ioc, where, single_run_connections);
    }
    const fs::path file = store_path(where.store);
    std::error_code ec;
    if (!fs::exists(file, ec)) {
        return nullptr;
    }
    return open_store(file);
}

std::shared_ptr<store::run_store>
store_of_run(boost::asio::io_context& ioc, const store_flags& where, const std::string& run_id) {
    check_schema_flag(where);
    if (is_database_url(where.store)) {
        return open_database(ioc, where, single_run_connections);
    }
    const fs::path file = store_path(where.store);
    std::error_code ec;
    if (!fs::exists(file, ec)) {
        throw cli_error(
            "run " + run_id + " does not exist (there is no run store at " + file.string() + ")"
        );
    }
    return open_store(file);
}

std::string store_failure_line(const wafer::error& e) {
    const std::string& detail = e.diag().detail;
    return one_line(detail.empty() ? std::string(e.what()) : detail);
}

std::string store_flag_hint(const store_flags& where) {
    if (where.store.empty()) {
        return {};
    }
    if (!is_database_url(where.store)) {
        return " --store " + shell_word(fs::absolute(where.store).string());
    }
    std::string hint = " --store " + shell_word(without_password(where.store));
    if (!where.store_schema.empty()) {
        hint += " --store-schema " + shell_word(where.store_schema);
    }
    return hint;
}

bool lease_is_live(const store::run_info& run) {
    const auto now = std::chrono::duration_cast<std::chrono::milliseconds>(
                         std::chrono::system_clock::now().time_since_epoch()
    )
                         .count();
    return !run.lease_owner.empty() && run.lease_expires_ms > now;
}

} // namespace wafer::cli
