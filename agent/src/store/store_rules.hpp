// The rules both stores apply the same way: leases, clocks and messages.
#pragma once

#include <wafer/store/error.hpp>
#include <wafer/store/run_store.hpp>

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>

namespace wafer::store::detail {

/// Wall-clock milliseconds since the Unix epoch (leases are compared across processes).
inline std::int64_t now_ms() noexcept {
    using namespace std::chrono;
    return duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count();
}

/// The lease expiry for a ttl starting now (saturating; a negative ttl counts as zero).
inline std::int64_t lease_end(std::int64_t now, std::chrono::milliseconds ttl) noexcept {
    const std::int64_t t = ttl.count() < 0 ? 0 : static_cast<std::int64_t>(ttl.count());
    return t > INT64_MAX - now ? INT64_MAX : now + t;
}

/// Whether `holder`'s lease (ending at `expires`) is live and belongs to someone other than
/// `owner`.
inline bool held_by_other(
    std::string_view holder, std::int64_t expires, std::string_view owner, std::int64_t now
) noexcept {
    return !holder.empty() && holder != owner && expires > now;
}

/// Why an append by `owner` is refused, or empty if it may write. A non-empty owner must hold an
/// unexpired lease (fencing); an empty owner is refused only while someone holds a live lease.
inline std::string append_refusal(
    std::string_view holder, std::int64_t expires, std::string_view owner, std::int64_t now
) {
    if (owner.empty()) {
        if (!holder.empty() && expires > now) {
            return "the run's lease is held by \"" + std::string(holder) + "\"";
        }
        return {};
    }
    if (holder == owner && expires > now) {
        return {};
    }
    if (holder.empty()) {
        return "\"" + std::string(owner) + "\" does not hold the run's lease (nobody does)";
    }
    if (holder == owner) {
        return "the lease of \"" + std::string(owner) + "\" has expired";
    }
    return "\"" + std::string(owner) + "\" does not hold the run's lease (\"" +
           std::string(holder) + "\" does)";
}

/// "run store NAME, run ID: WHAT".
inline std::string
run_message(std::string_view store, std::string_view run, std::string_view what) {
    std::string m = "run store ";
    m += store;
    m += ", run \"";
    m += run;
    m += "\": ";
    m += what;
    return m;
}

[[noreturn]] inline void throw_run_not_found(std::string_view store, std::string_view run) {
    throw_error(errc::run_not_found, run_message(store, run, "no such run"));
}

} // namespace wafer::store::detail
