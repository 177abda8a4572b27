#include <wafer/store/memory_store.hpp>

#include <algorithm>
#include <map>
#include <mutex>
#include <utility>

#include "store/store_rules.hpp"

namespace wafer::store {

namespace {
constexpr std::string_view store_name = "(memory)";
} // namespace

struct memory_store::state {
    struct run {
        run_info info;
        std::vector<journal_entry> journal;
        /// Creation order: breaks ties of updated_ms in listings, as sqlite_store's rowid does.
        std::uint64_t order = 0;
    };
    std::mutex mutex;
    std::map<std::string, run, std::less<>> runs;
    std::uint64_t created = 0;

    run& get(const std::string& id) {
        auto it = runs.find(id);
        if (it == runs.end()) {
            detail::throw_run_not_found(store_name, id);
        }
        return it->second;
    }
};

memory_store::memory_store() : state_(std::make_unique<state>()) {}
memory_store::~memory_store() = default;

boost::asio::awaitable<void> memory_store::async_create_run(run_info run) {
    std::lock_guard lock(state_->mutex);
    if (state_->runs.contains(run.id)) {
        throw_error(errc::run_exists, detail::run_message(store_name, run.id, "the id is taken"));
    }
    run.created_ms = run.updated_ms = detail::now_ms();
    auto id = run.id;
    state_->runs.emplace(std::move(id), state::run{std::move(run), {}, ++state_->created});
    co_return;
}

boost::asio::awaitable<std::uint64_t> memory_store::async_append(
    std::string run_id, std::string owner, std::vector<journal_entry> entries, run_update update
) {
    std::lock_guard lock(state_->mutex);
    auto& r = state_->get(run_id);
    const auto now = detail::now_ms();
    if (auto why = detail::append_refusal(r.info.lease_owner, r.info.lease_expires_ms, owner, now);
        !why.empty()) {
        throw_error(errc::lease_held, detail::run_message(store_name, run_id, why));
    }
    for (auto& e : entries) {
        e.seq = r.journal.size() + 1;
        e.at_ms = now;
        r.journal.push_back(std::move(e));
    }
    if (update.status) {
        r.info.status = *update.status;
    }
    if (update.stop_reason) {
        r.info.stop_reason = std::move(*update.stop_reason);
    }
    if (update.turns) {
        r.info.turns = *update.turns;
    }
    if (update.prompt_tokens) {
        r.info.prompt_tokens = *update.prompt_tokens;
    }
    if (update.completion_tokens) {
        r.info.completion_tokens = *update.completion_tokens;
    }
    r.info.updated_ms = now;
    if (update.release_lease && !owner.empty() && r.info.lease_owner == owner) {
        r.info.lease_owner.clear();
        r.info.lease_expires_ms = 0;
    }
    co_return r.journal.size();
}

boost::asio::awaitable<std::optional<run_info>> memory_store::async_find_run(std::string run_id) {
    std::lock_guard lock(state_->mutex);
    auto it = state_->runs.find(run_id);
    if (it == state_->runs.end()) {
        co_return std::nullopt;
    }
    co_return it->second.info;
}

boost::asio::awaitable<std::vector<journal_entry>>
memory_store::async_read_journal(std::string run_id, std::uint64_t after_seq) {
    std::lock_guard lock(state_->mutex);
    const auto& journal = state_->get(run_id).journal;
    std::vector<journal_entry> out;
    if (after_seq < journal.size()) {
        out.assign(journal.begin() + static_cast<std::ptrdiff_t>(after_seq), journal.end());
    }
    co_return out;
}

boost::asio::awaitable<std::vector<run_info>> memory_store::async_list_runs(run_filter filter) {
    std::vector<const state::run*> hits;
    {
        std::lock_guard lock(state_->mutex);
        for (const auto& [id, r] : state_->runs) {
            if (!filter.scope.empty() && r.info.scope != filter.scope) {
                continue;
            }
            if (filter.status && r.info.status != *filter.status) {
                continue;
            }
            if (filter.top_level_only && !r.info.parent_id.empty()) {
                continue;
            }
            hits.push_back(&r);
        }
        std::sort(hits.begin(), hits.end(), [](const state::run* a, const state::run* b) {
            if (a->info.updated_ms != b->info.updated_ms) {
                return a->info.updated_ms > b->info.updated_ms;
            }
            return a->order > b->order;
        });
        if (filter.limit != 0 && hits.size() > filter.limit) {
            hits.resize(filter.limit);
        }
        std::vector<run_info> out;
        out.reserve(hits.size());
        for (const auto* r : hits) {
            out.push_back(r->info);
        }
        co_return out;
    }
}

boost::asio::awaitable<bool> memory_store::async_acquire_lease(
    std::string run_id, std::string owner, std::chrono::milliseconds ttl, std::string take_over_from
) {
    std::lock_guard lock(state_->mutex);
    auto& info = state_->get(run_id).info;
    const auto now = detail::now_ms();
    if (detail::held_by_other(info.lease_owner, info.lease_expires_ms, owner, now) &&
        (take_over_from.empty() || info.lease_owner != take_over_from)) {
        co_return false;
    }
    info.lease_owner = std::move(owner);
    info.lease_expires_ms = detail::lease_end(now, ttl);
    co_return true;
}

boost::asio::awaitable<void>
memory_store::async_release_lease(std::string run_id, std::string owner) {
    std::lock_guard lock(state_->mutex);
    auto it = state_->runs.find(run_id);
    if (it != state_->runs.end() && !owner.empty() && it->second.info.lease_owner == owner) {
        it->second.info.lease_owner.clear();
        it->second.info.lease_expires_ms = 0;
    }
    co_return;
}

} // namespace wafer::store
