#include "store.hpp"

#include <wafer/store/sqlite_store.hpp>

#include <cstdlib>

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

} // namespace

fs::path store_path(const std::string& flag) {
    if (!flag.empty()) {
        return fs::absolute(flag);
    }
    if (auto state = absolute_env("XDG_STATE_HOME")) {
        return *state / "wafer" / "runs.db";
    }
    if (auto home = absolute_env("HOME")) {
        return *home / ".local" / "state" / "wafer" / "runs.db";
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

std::shared_ptr<store::run_store> store_of_run(const std::string& flag, const std::string& run_id) {
    const fs::path file = store_path(flag);
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
    return detail.empty() ? std::string(e.what()) : detail;
}

std::string store_flag_hint(const std::string& flag) {
    if (flag.empty()) {
        return {};
    }
    const std::string p = fs::absolute(flag).string();
    // Quoted for a POSIX shell when it holds anything but the usual path characters.
    const bool plain =
        p.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789/._-+,"
        ) == std::string::npos;
    if (plain) {
        return " --store " + p;
    }
    std::string quoted = "'";
    for (char c : p) {
        quoted += c == '\'' ? std::string("'\\''") : std::string(1, c);
    }
    return " --store " + quoted + "'";
}

bool lease_is_live(const store::run_info& run) {
    const auto now = std::chrono::duration_cast<std::chrono::milliseconds>(
                         std::chrono::system_clock::now().time_since_epoch()
    )
                         .count();
    return !run.lease_owner.empty() && run.lease_expires_ms > now;
}

} // namespace wafer::cli
