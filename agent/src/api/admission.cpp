// The admission limiter's rules (sans-io). See wafer/api/admission.hpp.
#include <wafer/api/admission.hpp>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <limits>

#include "detail/header_value.hpp"

namespace wafer::api {

namespace {

constexpr std::chrono::milliseconds max_reset{2LL * 24 * 3600 * 1000};
constexpr std::int64_t max_count = std::int64_t{1} << 50;

bool ends_with_cerebras(std::string_view host) noexcept {
    // Host names are case-insensitive; compare lower-cased.
    constexpr std::string_view suffix = ".cerebras.ai";
    std::string lower(host);
    for (char& c : lower) {
        c = (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
    }
    if (!lower.empty() && lower.back() == '.') {
        lower.pop_back();
    }
    return lower == "cerebras.ai" ||
           (lower.size() > suffix.size() && std::string_view(lower).ends_with(suffix));
}

bool contains(std::string_view hay, std::string_view needle) noexcept {
    return hay.find(needle) != std::string_view::npos;
}

} // namespace

bool admission_enabled_for(const admission_config& cfg, std::string_view host) noexcept {
    if (cfg.enabled) {
        return *cfg.enabled;
    }
    return ends_with_cerebras(host);
}

std::optional<std::int64_t> parse_rate_count(std::string_view v) noexcept {
    v = detail::trim_ows(v);
    if (v.empty()) {
        return std::nullopt;
    }
    std::int64_t n = 0;
    const char* end = v.data() + v.size();
    auto [ptr, ec] = std::from_chars(v.data(), end, n);
    if (ec != std::errc{} || ptr != end || n < 0 || n > max_count) {
        return std::nullopt;
    }
    return n;
}

std::optional<std::chrono::milliseconds> parse_rate_reset(std::string_view v) noexcept {
    v = detail::trim_ows(v);
    if (v.empty() || v.front() == '-' || v.front() == '+') {
        return std::nullopt;
    }
    double s = 0;
    const char* end = v.data() + v.size();
    auto [ptr, ec] = std::from_chars(v.data(), end, s, std::chars_format::general);
    if (ec != std::errc{} || ptr != end || !std::isfinite(s) || s < 0 ||
        s * 1000.0 > static_cast<double>(max_reset.count())) {
        return std::nullopt;
    }
    // Round up: waking a little late is harmless, a little early meets the old window.
    return std::chrono::milliseconds(static_cast<std::int64_t>(std::ceil(s * 1000.0)));
}

bool admission_controller::rate_reading::read(
    std::string_view name, std::string_view value
) noexcept {
    constexpr std::string_view prefix = "x-ratelimit-";
    if (!name.starts_with(prefix)) {
        return false;
    }
    name.remove_prefix(prefix.size());
    enum { limit, remaining, reset } what;
    if (name.starts_with("limit-")) {
        what = limit;
        name.remove_prefix(6);
    } else if (name.starts_with("remaining-")) {
        what = remaining;
        name.remove_prefix(10);
    } else if (name.starts_with("reset-")) {
        what = reset;
        name.remove_prefix(6);
    } else {
        return false;
    }
    figures* f = nullptr;
    if (name == "tokens-minute") {
        f = &tokens_minute;
    } else if (name == "requests-minute") {
        f = &requests_minute;
    } else if (name == "requests-day") {
        f = &requests_day;
    } else {
        return false;
    }
    switch (what) {
    case limit:
        f->limit = parse_rate_count(value);
        if (f->limit && *f->limit == 0) {
            f->limit.reset(); // a limit of nothing is nonsense; waiting for it would never end
        }
        return f->limit.has_value();
    case remaining:
        f->remaining = parse_rate_count(value);
        return f->remaining.has_value();
    case reset:
        f->reset = parse_rate_reset(value);
        return f->reset.has_value();
    }
    return false;
}

admission_controller::admission_controller(const admission_config& cfg) : cfg_(cfg) {
    if (cfg_.minute.count() <= 0) {
        cfg_.minute = std::chrono::milliseconds(60'000);
    }
    if (cfg_.day.count() <= 0) {
        cfg_.day = std::chrono::milliseconds(86'400'000);
    }
    cfg_.unset_completion_reserve = std::max<std::int64_t>(cfg_.unset_completion_reserve, 0);
    const auto positive = [](std::optional<std::int64_t> v) {
        return v && *v > 0 ? v : std::nullopt;
    };
    budgets_[tokens_min].limit = positive(cfg_.tokens_per_minute);
    budgets_[tokens_min].window = cfg_.minute;
    budgets_[requests_min].limit = positive(cfg_.requests_per_minute);
    budgets_[requests_min].window = cfg_.minute;
    budgets_[requests_d].limit = positive(cfg_.requests_per_day);
    budgets_[requests_d].window = cfg_.day;
}

// A new window: what the server has counted is gone; requests still on their way may land in
// the new window, so they move over.
void admission_controller::turn_over(budget& b) {
    ++b.epoch;
    b.exhausted = false;
    b.used = 0;
    b.in_flight = 0;
    const bool tokens = &b == &budgets_[tokens_min];
    for (auto& [t, r] : admitted_) {
        if (r.acknowledged) {
            continue;
        }
        b.used += tokens ? r.tokens : 1;
        if (tokens) {
            b.in_flight += r.tokens;
            r.token_epoch = b.epoch;
        }
    }
}

void admission_controller::roll(budget& b, time_point now) {
    if (b.reset_at && now >= *b.reset_at) {
        turn_over(b);
        // The next admission starts the next window, unless requests carried over already did.
        b.reset_at.reset();
        if (b.used > 0) {
            b.reset_at = now + b.window;
        }
    }
}

void admission_controller::acknowledge(ticket t) noexcept {
    if (auto it = admitted_.find(t); it != admitted_.end()) {
        it->second.acknowledged = true;
    }
}

void admission_controller::apply(budget& b, const rate_reading::figures& f, time_point now) {
    if (f.limit) {
        b.limit = f.limit;
    }
    if (f.reset) {
        const time_point server_reset = now + *f.reset;
        // A reset well after ours means the server's window already turned over: what we count
        // belongs to the window that ended.
        if (b.reset_at && server_reset > *b.reset_at + b.window / 4) {
            turn_over(b);
        }
        b.reset_at = server_reset;
    }
    if (f.remaining && b.limit) {
        const std::int64_t seen_used = *b.limit - std::min(*f.remaining, *b.limit);
        b.used = std::max(b.used, seen_used);
        if (!b.reset_at) {
            b.reset_at = now + b.window;
        }
    }
}

void admission_controller::observe(const rate_reading& r, time_point now) {
    for (auto& b : budgets_) {
        roll(b, now);
    }
    apply(budgets_[tokens_min], r.tokens_minute, now);
    apply(budgets_[requests_min], r.requests_minute, now);
    apply(budgets_[requests_d], r.requests_day, now);
    pump(now);
}

admission_controller::exhausted
admission_controller::classify_429(std::string_view code, std::string_view message) noexcept {
    const bool per_day = contains(message, "per day") || contains(message, "daily");
    if (code == "request_quota_exceeded" || message.starts_with("Requests")) {
        return per_day ? exhausted::requests_day : exhausted::requests_minute;
    }
    return exhausted::tokens;
}

void admission_controller::observe_rate_limited(
    exhausted which, std::optional<std::chrono::milliseconds> retry_after, time_point now
) {
    budget& b = budgets_
        [which == exhausted::tokens            ? tokens_min
         : which == exhausted::requests_minute ? requests_min
                                               : requests_d];
    roll(b, now);
    b.exhausted = true;
    if (!b.reset_at || *b.reset_at <= now) {
        b.reset_at = now + std::clamp(
                               retry_after.value_or(b.window),
                               std::chrono::milliseconds(1),
                               std::max(b.window, std::chrono::milliseconds(1))
                           );
    }
    pump(now);
}

bool admission_controller::fits(std::int64_t tokens) const {
    for (int i = 0; i < budget_count; ++i) {
        const budget& b = budgets_[i];
        if (b.exhausted) {
            return false;
        }
        if (!b.limit) {
            continue;
        }
        const std::int64_t cost = i == tokens_min ? tokens : 1;
        // Alone in an empty window, even an oversized request goes (the server then decides).
        if (b.used > 0 && b.used + cost > *b.limit) {
            return false;
        }
    }
    return true;
}

bool admission_controller::can_fit_before(std::int64_t tokens, time_point deadline) const {
    for (int i = 0; i < budget_count; ++i) {
        const budget& b = budgets_[i];
        if (!b.reset_at || *b.reset_at <= deadline) {
            continue; // a reset comes first (or none is known): it may fit then
        }
        if (b.exhausted) {
            return false;
        }
        if (!b.limit) {
            continue;
        }
        // At best every reservation in flight settles at nothing; requests stay counted.
        const std::int64_t floor = i == tokens_min ? b.used - b.in_flight : b.used;
        const std::int64_t cost = i == tokens_min ? tokens : 1;
        if (floor > 0 && floor + cost > *b.limit) {
            return false;
        }
    }
    return true;
}

void admission_controller::admit(ticket t, std::int64_t tokens, time_point now) {
    for (int i = 0; i < budget_count; ++i) {
        budget& b = budgets_[i];
        const std::int64_t cost = i == tokens_min ? tokens : 1;
        b.used += cost;
        if (i == tokens_min) {
            b.in_flight += cost;
        }
        if (!b.reset_at) {
            b.reset_at = now + b.window;
        }
    }
    admitted_[t] = reservation{tokens, budgets_[tokens_min].epoch};
}

void admission_controller::remove_waiter(ticket t) {
    auto it = waiting_.find(t);
    if (it == waiting_.end()) {
        return;
    }
    auto lv = levels_.find(it->second.priority);
    if (lv != levels_.end()) {
        auto& lvl = lv->second;
        auto k = lvl.by_key.find(it->second.key);
        if (k != lvl.by_key.end()) {
            auto& q = k->second;
            q.erase(std::remove(q.begin(), q.end(), t), q.end());
            if (q.empty()) {
                lvl.turn.erase(
                    std::remove(lvl.turn.begin(), lvl.turn.end(), k->first), lvl.turn.end()
                );
                lvl.by_key.erase(k);
            }
        }
        if (lvl.turn.empty()) {
            levels_.erase(lv);
        }
    }
    waiting_.erase(it);
}

void admission_controller::pump(time_point now) {
    for (auto& b : budgets_) {
        roll(b, now);
    }
    if (waiting_.empty()) {
        return;
    }
    // Deadlines: passed, or known to come before the request can fit.
    std::vector<ticket> late;
    for (const auto& [t, w] : waiting_) {
        if (w.deadline && (now >= *w.deadline || !can_fit_before(w.tokens, *w.deadline))) {
            late.push_back(t);
        }
    }
    std::sort(late.begin(), late.end()); // tickets grow with arrival: decide in that order
    for (ticket t : late) {
        remove_waiter(t);
        decided_.push_back({t, outcome::timed_out});
    }
    // Highest priority first; the head of the queue is never overtaken.
    while (!levels_.empty()) {
        auto& lvl = levels_.begin()->second;
        const std::string key = lvl.turn.front();
        auto& q = lvl.by_key[key];
        const ticket t = q.front();
        const waiter& w = waiting_.at(t);
        if (!fits(w.tokens)) {
            return;
        }
        admit(t, w.tokens, now);
        decided_.push_back({t, outcome::admitted});
        q.pop_front();
        lvl.turn.pop_front();
        if (q.empty()) {
            lvl.by_key.erase(key);
        } else {
            lvl.turn.push_back(key); // the next key takes its turn
        }
        waiting_.erase(t);
        if (lvl.turn.empty()) {
            levels_.erase(levels_.begin());
        }
    }
}

admission_controller::outcome admission_controller::request(
    ticket t, const request_options& opts, std::int64_t tokens, time_point now
) {
    tokens = std::clamp<std::int64_t>(tokens, 0, max_count);
    waiting_[t] = waiter{opts.run_key, opts.priority, tokens, opts.deadline};
    auto& lvl = levels_[opts.priority];
    auto& q = lvl.by_key[opts.run_key];
    if (q.empty()) {
        lvl.turn.push_back(opts.run_key);
    }
    q.push_back(t);
    pump(now);
    // Decided at once: not a decision to hand out later.
    for (auto it = decided_.rbegin(); it != decided_.rend(); ++it) {
        if (it->id == t) {
            const outcome o = it->result;
            decided_.erase(std::next(it).base());
            return o;
        }
    }
    return outcome::queued;
}

void admission_controller::settle(ticket t, std::optional<std::int64_t> used, time_point now) {
    auto it = admitted_.find(t);
    if (it == admitted_.end()) {
        return;
    }
    const reservation r = it->second;
    admitted_.erase(it);
    budget& b = budgets_[tokens_min];
    roll(b, now);
    if (r.token_epoch == b.epoch) {
        b.in_flight = std::max<std::int64_t>(b.in_flight - r.tokens, 0);
        if (used) {
            const std::int64_t actual = std::clamp<std::int64_t>(*used, 0, max_count);
            b.used = std::max<std::int64_t>(b.used + actual - r.tokens, 0);
            if (b.used > 0 && !b.reset_at) {
                b.reset_at = now + b.window; // what is counted must end with some window
            }
        }
    }
    pump(now);
}

void admission_controller::cancel(ticket t, time_point now) {
    if (waiting_.count(t)) {
        remove_waiter(t);
        pump(now); // the head may have changed
        return;
    }
    settle(t, 0, now);
}

std::optional<admission_controller::time_point> admission_controller::next_wakeup() const {
    if (waiting_.empty()) {
        return std::nullopt;
    }
    std::optional<time_point> at;
    const auto earlier = [&at](time_point t) {
        if (!at || t < *at) {
            at = t;
        }
    };
    for (const auto& b : budgets_) {
        if (b.reset_at) {
            earlier(*b.reset_at);
        }
    }
    for (const auto& [t, w] : waiting_) {
        if (w.deadline) {
            earlier(*w.deadline);
        }
    }
    return at;
}

std::vector<admission_controller::decision> admission_controller::take_decisions() {
    std::vector<decision> out;
    out.swap(decided_);
    return out;
}

} // namespace wafer::api
