// Where the wafer CLI journals its runs: one SQLite file, by default in the XDG state directory.
#pragma once

#include <wafer/error.hpp>
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

namespace wafer::cli {

/// The store file: `flag` if given, else `$XDG_STATE_HOME/wafer/runs.db` (when XDG_STATE_HOME is
/// an absolute path), else `$HOME/.local/state/wafer/runs.db`. Throws cli_error (exit_usage)
/// when neither variable is usable and no flag is given.
std::filesystem::path store_path(const std::string& flag);

/// Opens the store at `file`, creating it (and its directory) if missing. Any failure (a path
/// that cannot be created, a file that is not a run store, a newer schema) throws cli_error with
/// one line and exit_usage.
std::shared_ptr<store::run_store> open_store(const std::filesystem::path& file);

/// The store that should hold run `run_id`, for a command on an existing run (resume, approve,
/// deny): a missing file is "run ID does not exist" (cli_error), not created by the lookup, so
/// that a mistyped --store leaves no empty store behind.
std::shared_ptr<store::run_store> store_of_run(const std::string& flag, const std::string& run_id);

/// The one line for a store or resume failure: the error's detail (which names the store and
/// the run), else its message.
std::string store_failure_line(const wafer::error& e);

/// " --store PATH" when the store is not the default one (for the hints the CLI prints), else
/// empty.
std::string store_flag_hint(const std::string& flag);

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
