#include <wafer/store/run_store.hpp>

namespace wafer::store {

std::string_view to_string(run_status s) noexcept {
    switch (s) {
    case run_status::running:
        return "running";
    case run_status::awaiting_approval:
        return "awaiting_approval";
    case run_status::finished:
        return "finished";
    }
    return "running";
}

std::optional<run_status> parse_run_status(std::string_view s) noexcept {
    if (s == "running") {
        return run_status::running;
    }
    if (s == "awaiting_approval") {
        return run_status::awaiting_approval;
    }
    if (s == "finished") {
        return run_status::finished;
    }
    return std::nullopt;
}

} // namespace wafer::store
