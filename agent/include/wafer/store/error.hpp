// Errors of the run stores: a code per failure a caller may branch on.
#pragma once

#include <wafer/error.hpp>

#include <boost/system/error_code.hpp>

#include <string>
#include <type_traits>

namespace wafer::store {

/// What went wrong in a run store. Thrown as wafer::error, whose diagnostics().detail names the
/// store (its file) and, where it helps, the run.
enum class errc {
    /// No run has this id.
    run_not_found = 1,
    /// async_create_run: a run with this id already exists.
    run_exists,
    /// Another owner holds an unexpired lease on the run, or the writer does not hold the lease it
    /// claims (a fenced append).
    lease_held,
    /// The store was written by a newer wafer whose schema this build cannot read.
    schema_too_new,
    /// The file is not a run store, or is damaged (not SQLite, truncated, malformed).
    corrupt,
    /// Reading or writing the store failed (disk full, permissions, locked longer than the busy
    /// timeout, ...).
    io,
    /// The store's server (PostgreSQL) could not be reached, or the connection was lost while
    /// an operation that could not be proven safe to repeat was in flight; the detail says which
    /// and for how long it was retried. Never carries the connection string's password.
    unavailable,
};

/// The error category of wafer::store::errc ("wafer.store").
const boost::system::error_category& error_category() noexcept;

inline boost::system::error_code make_error_code(errc e) noexcept {
    return {static_cast<int>(e), error_category()};
}

/// Throws wafer::error with code `e` and `detail` as diagnostics::detail.
[[noreturn]] void throw_error(errc e, std::string detail);

} // namespace wafer::store

namespace boost::system {
template <>
struct is_error_code_enum<wafer::store::errc> : std::true_type {};
} // namespace boost::system
