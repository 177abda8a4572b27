// Where the wafer CLI journals its runs: one SQLite file, by default in the XDG state directory,
// or a PostgreSQL database (--store postgresql://...).
#pragma once

#include <wafer/error.hpp>
#include <wafer/store/postgres_store.hpp>
#include <wafer/store/run_store.hpp>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>

#include <chrono>
#include <exception>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>

#include "commands.hpp"

namespace wafer::cli {

/// Whether --store names a PostgreSQL database: a libpq URI, `postgresql://...` or
/// `postgres://...` (anything else is a SQLite file). Key=value conninfo is not taken: a path may
/// hold '=' too.
bool is_database_url(const std::string& flag);

/// `uri` without its password (the `:password` of the user part and any `password=` parameter):
/// what the CLI prints of a database URI (the user gives the password through PGPASSWORD or
/// ~/.pgpass instead).
std::string without_password(const std::string& uri);

/// Overwrites with '*', in place, the passwords of the database URIs among `argv` (once parsed),
/// so that /proc/PID/cmdline and ps no longer show them to the commands the agent runs.
void hide_passwords_in_argv(int argc, char** argv);

/// wafer's state directory: `$XDG_STATE_HOME/wafer` (when XDG_STATE_HOME is an absolute path),
/// else `$HOME/.local/state/wafer`; nullopt when neither variable is usable.
std::optional<std::filesystem::path> wafer_state_dir();

/// The store file: `flag` if given, else `$XDG_STATE_HOME/wafer/runs.db` (when XDG_STATE_HOME is
/// an absolute path), else `$HOME/.local/state/wafer/runs.db`. Throws cli_error (exit_usage)
/// when neither variable is usable and no flag is given. Not for a database URI.
std::filesystem::path store_path(const std::string& flag);

/// The store as messages name it: the SQLite file's absolute path, or the database URI without
/// its password (and the schema when it is not the default).
std::string store_name(const store_flags& where);

/// Opens the store at `file`, creating it (and its directory) if missing. Any failure (a path
/// that cannot be created, a file that is not a run store, a newer schema) throws cli_error with
/// one line and exit_usage.
std::shared_ptr<store::run_store> open_store(const std::filesystem::path& file);

/// Opens the store --store names: the SQLite file (as above) or, for a database URI, a
/// postgres_store whose I/O runs on `ioc` (which must outlive the store; its schema is created
/// if missing). A database that cannot be reached within 5 s, a bad URI, a newer schema or
/// --store-schema without a database URI throw cli_error with one line (never the password)
/// and exit_usage.
std::shared_ptr<store::run_store>
open_store(boost::asio::io_context& ioc, const store_flags& where);

/// The PostgreSQL store of a database URI (as open_store does it), with up to
/// `max_connections` connections: what `wafer worker` and `wafer submit` open, with the queue.
std::shared_ptr<store::postgres_store>
open_database(boost::asio::io_context& ioc, const store_flags& where, std::size_t max_connections);

/// As open_store, for commands that only read: nullptr when the SQLite file does not exist
/// (nothing was journaled yet), so that looking does not create it.
std::shared_ptr<store::run_store>
existing_store(boost::asio::io_context& ioc, const store_flags& where);

/// The store that should hold run `run_id`, for a command on an existing run (resume, approve,
/// deny): a missing SQLite file is "run ID does not exist" (cli_error), not created by the
/// lookup, so that a mistyped --store leaves no empty store behind.
std::shared_ptr<store::run_store>
store_of_run(boost::asio::io_context& ioc, const store_flags& where, const std::string& run_id);

/// The one line for a store or resume failure: the error's detail (which names the store and
/// the run), else its message; line breaks (libpq's) become spaces.
std::string store_failure_line(const wafer::error& e);

/// " --store PATH" (and " --store-schema NAME") when the store is not the default one, for the
/// hints the CLI prints, quoted for a POSIX shell; a database URI without its password. Else
/// empty.
std::string store_flag_hint(const store_flags& where);

/// Whether a run's lease is held by someone now (a live process drives it).
bool lease_is_live(const store::run_info& run);

/// Runs `op` on `ioc` to completion and returns its result (rethrows its exception).
template <class T>
T wait_for(boost::asio::io_context& ioc, boost::asio::awaitable<T> op) {
    std::optional<T> out;
    std::exception_ptr failure;
    boost::asio::co_spawn(ioc, std::move(op), [&](std::exception_ptr e, T value) {
        failure = e;
        if (!e) {
            out = std::move(value);
        }
    });
    ioc.restart();
    ioc.run();
    ioc.restart();
    if (failure) {
        std::rethrow_exception(failure);
    }
    return std::move(*out);
}

} // namespace wafer::cli
