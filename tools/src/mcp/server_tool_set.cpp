#include <wafer/tools/mcp/server_tool_set.hpp>
#include <wafer/tools/schema.hpp>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/post.hpp>

#include <algorithm>
#include <atomic>
#include <exception>
#include <limits>
#include <set>
#include <utility>

namespace wafer::tools::mcp {

tool_set_plan plan_tool_set(
    const registry& reg, const std::vector<std::string>& owned, std::vector<tool> candidates
) {
    tool_set_plan p;
    p.remove = owned;
    const std::set<std::string, std::less<>> mine(owned.begin(), owned.end());
    std::set<std::string, std::less<>> kept;
    for (auto& t : candidates) {
        if (reg.find(t.name) != nullptr && mine.count(t.name) == 0) {
            p.update.skipped.push_back(
                t.name + ": another tool of the registry has that name (a built-in tool or "
                         "another server's)"
            );
            continue;
        }
        if (kept.count(t.name) != 0) {
            p.update.skipped.push_back(
                t.name + ": an earlier tool of the server has that name once mapped"
            );
            continue;
        }
        try {
            static_cast<void>(schema::compile(t.parameters));
        } catch (const schema_error& e) {
            p.update.skipped.push_back(t.name + ": its inputSchema cannot be used: " + e.what());
            continue;
        }
        kept.insert(t.name);
        if (mine.count(t.name) == 0) {
            p.update.added.push_back(t.name);
        }
        p.add.push_back(std::move(t));
    }
    for (const auto& name : owned) {
        if (kept.count(name) == 0) {
            p.update.removed.push_back(name);
        }
    }
    return p;
}

namespace {
using steady = std::chrono::steady_clock;
constexpr std::int64_t never = std::numeric_limits<std::int64_t>::max();
constexpr std::chrono::seconds longest_retry{60};

std::int64_t ticks(steady::time_point t) noexcept {
    return t.time_since_epoch().count();
}
} // namespace

// Shared with the registry's turn hook, which may run on another thread: it reads the
// time the listing goes stale and, once, posts the refresh to the set's executor.
struct server_tool_set::staleness {
    boost::asio::any_io_executor ex;
    std::weak_ptr<server_tool_set> owner;
    std::atomic<std::int64_t> at{never};

    void check() {
        std::int64_t due = at.load(std::memory_order_relaxed);
        if (due == never || ticks(steady::now()) < due) {
            return;
        }
        if (!at.compare_exchange_strong(due, never)) {
            return; // another turn took it
        }
        boost::asio::post(ex, [w = owner] {
            if (auto self = w.lock()) {
                self->on_expired();
            }
        });
    }
};

server_tool_set::server_tool_set(boost::asio::any_io_executor ex, tool_set_options options)
    : ex_(std::move(ex)), options_(std::move(options)), staleness_(std::make_shared<staleness>()) {
    staleness_->ex = ex_;
}

server_tool_set::~server_tool_set() {
    stop(); // the registry outlives the set: its hook goes with it
}

void server_tool_set::stop() noexcept {
    stopped_ = true;
    staleness_->at = never;
    if (registry_ && hook_ != 0) {
        registry_->remove_turn_hook(hook_);
        hook_ = 0;
    }
}

bool server_tool_set::stale() const noexcept {
    return freshness_.ttl && steady::now() >= fresh_until_;
}

// A listing came: it is offered as is until its TTL runs out.
void server_tool_set::keep_fresh(const list_freshness& f) {
    freshness_ = f;
    if (f.ttl) {
        fresh_until_ = steady::now() + *f.ttl;
        stale_in(*f.ttl);
    } else {
        staleness_->at = never;
    }
}

void server_tool_set::stale_in(std::chrono::milliseconds d) {
    if (stopped_) {
        return;
    }
    staleness_->at = ticks(steady::now() + d);
    if (hook_ == 0) {
        staleness_->owner = weak_from_this();
        hook_ = registry_->add_turn_hook([st = staleness_] { st->check(); });
    }
}

void server_tool_set::on_expired() {
    if (stopped_ || !started_) {
        return;
    }
    expired_ = true;
    if (listing_) {
        again_ = true; // the listing in flight may have begun before this turn
        return;
    }
    spawn_refresh();
}

std::shared_ptr<server_tool_set>
server_tool_set::create(boost::asio::any_io_executor ex, tool_set_options options) {
    return std::make_shared<server_tool_set>(std::move(ex), std::move(options));
}

std::function<void(const list_changed_event&)> server_tool_set::list_changed_handler() {
    return [weak = weak_from_this()](const list_changed_event& e) {
        if (e.list != "tools") {
            return;
        }
        if (auto self = weak.lock()) {
            self->on_list_changed();
        }
    };
}

tool_set_update server_tool_set::start(
    std::shared_ptr<registry> reg,
    std::shared_ptr<client> c,
    std::vector<tool_info> listing,
    list_freshness freshness
) {
    registry_ = std::move(reg);
    client_ = std::move(c);
    started_ = true;
    tool_set_update u = apply(std::move(listing), {});
    keep_fresh(freshness);
    u.freshness = freshness_;
    notify(u);
    if (changed_early_ && !stopped_) {
        changed_early_ = false;
        spawn_refresh();
    }
    return u;
}

boost::asio::awaitable<tool_set_update>
server_tool_set::async_start(std::shared_ptr<registry> reg, std::shared_ptr<client> c) {
    std::vector<std::string> skipped;
    list_limits limits = options_.limits;
    list_freshness freshness;
    std::vector<tool_info> listing = co_await async_list_tools(*c, limits, &skipped, &freshness);
    tool_set_update u = start(std::move(reg), std::move(c), std::move(listing), freshness);
    // What the listing itself left out comes first, as in a refresh.
    u.skipped.insert(u.skipped.begin(), skipped.begin(), skipped.end());
    co_return u;
}

boost::asio::awaitable<tool_set_update> server_tool_set::async_refresh() {
    const auto self = shared_from_this(); // alive until the listing ends
    tool_set_update u;
    u.refresh = true;
    u.expired = std::exchange(expired_, false);
    u.count = names_.size();
    u.freshness = freshness_;
    if (!started_ || stopped_) {
        co_return u;
    }
    std::vector<std::string> skipped;
    std::vector<tool_info> listing;
    list_freshness freshness;
    const std::shared_ptr<client> c = client_;
    list_limits limits = options_.limits;
    try {
        listing = co_await async_list_tools(*c, limits, &skipped, &freshness);
    } catch (const std::exception& e) {
        u.failure = e.what();
    }
    if (stopped_) {
        co_return u;
    }
    if (u.failure.empty()) {
        const bool expired = u.expired;
        u = apply(std::move(listing), std::move(skipped));
        u.refresh = true;
        u.expired = expired;
        retry_after_ = std::chrono::seconds(0);
        keep_fresh(freshness);
        u.freshness = freshness_;
    } else if (freshness_.ttl) {
        // Stale tools are offered while the server cannot list them; tried again, less often.
        retry_after_ = std::clamp(retry_after_ * 2, std::chrono::seconds(1), longest_retry);
        stale_in(retry_after_);
    }
    notify(u);
    co_return u;
}

tool_set_update
server_tool_set::apply(std::vector<tool_info> listing, std::vector<std::string> skipped) {
    tool_set_update u;
    std::vector<tool> candidates = make_registry_tools(client_, listing, options_.tools, &skipped);
    if (options_.prepare) {
        for (auto& t : candidates) {
            options_.prepare(t);
        }
    }
    tool_set_plan plan = plan_tool_set(*registry_, names_, std::move(candidates));
    std::vector<std::string> names;
    names.reserve(plan.add.size());
    for (const auto& t : plan.add) {
        names.push_back(t.name);
    }
    u = std::move(plan.update);
    u.skipped.insert(u.skipped.begin(), skipped.begin(), skipped.end());
    try {
        registry_->replace(plan.remove, std::move(plan.add));
        names_ = std::move(names);
    } catch (const std::exception& e) {
        // plan_tool_set leaves nothing for replace to refuse; if it did, nothing changed.
        u.failure = e.what();
        u.added.clear();
        u.removed.clear();
    }
    u.count = names_.size();
    return u;
}

void server_tool_set::notify(const tool_set_update& u) const {
    if (options_.on_update) {
        options_.on_update(u);
    }
}

void server_tool_set::on_list_changed() {
    if (stopped_) {
        return;
    }
    if (!started_) {
        changed_early_ = true;
    } else if (listing_) {
        again_ = true; // the listing in flight may predate the change
    } else {
        spawn_refresh();
    }
}

void server_tool_set::spawn_refresh() {
    listing_ = true;
    boost::asio::co_spawn(
        ex_,
        refresh_loop(shared_from_this()),
        [self = shared_from_this()](const std::exception_ptr&) { self->listing_ = false; }
    );
}

boost::asio::awaitable<void> server_tool_set::refresh_loop(std::shared_ptr<server_tool_set> self) {
    do {
        self->again_ = false;
        static_cast<void>(co_await self->async_refresh());
    } while (self->again_ && !self->stopped_);
}

} // namespace wafer::tools::mcp
