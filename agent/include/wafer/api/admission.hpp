// Admission control: a sans-io limiter that keeps a client's requests inside the server's rate
// limits (reference: cerebras-api.md §6, "Rate-limit headers"). It learns the limits and what
// remains from the x-ratelimit-* headers of every reply, reserves a request's estimated prompt
// tokens plus its max_completion_tokens before it is sent, settles the reservation with the
// reported usage, and queues what does not fit: by priority, then round-robin by run key.
// No I/O: every call takes the current time; api::client does the waiting.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

namespace wafer::api {

/// Options of one request that only the client looks at (nothing of it is sent).
struct request_options {
    /// Fairness key: queued requests are admitted round-robin across keys of one priority. The
    /// agent loop passes its run id. Empty: all such requests share one key.
    std::string run_key;
    /// Higher is admitted first; within a priority, the order of arrival per key.
    int priority = 0;
    /// The latest time the request may still be sent. A request that waits past it, or that the
    /// limiter knows cannot fit before it, fails with errc::admission_timeout.
    std::optional<std::chrono::steady_clock::time_point> deadline;
    /// The caller's estimate of the prompt's tokens (the agent's context estimate); without it
    /// the client estimates from the serialised body (bytes / 4).
    std::optional<std::int64_t> prompt_tokens;
    /// Sent as the W3C `traceparent` header on every attempt (the agent loop puts its chat
    /// span's context here when tracing is on; telemetry::format_traceparent). Empty: none.
    std::string traceparent;
};

/// client_config::admission.
struct admission_config {
    /// nullopt: on for Cerebras hosts (api.cerebras.ai and other *.cerebras.ai), off elsewhere.
    std::optional<bool> enabled;
    /// Limits known before the first reply (the headers of every reply replace them).
    std::optional<std::int64_t> tokens_per_minute;
    std::optional<std::int64_t> requests_per_minute;
    std::optional<std::int64_t> requests_per_day;
    /// Tokens reserved for the completion of a request without max_completion_tokens (the
    /// server reserves up to the model's sequence length; a guess is all a client has).
    std::int64_t unset_completion_reserve = 8192;
    /// Length of the "minute" and "day" windows when no reset header says otherwise (tests
    /// shorten them together with the fake server's).
    std::chrono::milliseconds minute{60'000};
    std::chrono::milliseconds day{86'400'000};
};

/// True when admission applies to `host` under `cfg` (see admission_config::enabled).
bool admission_enabled_for(const admission_config& cfg, std::string_view host) noexcept;

/// Parses a header value the way the limiter reads it: a whole number >= 0 (limits and
/// remaining) or a finite number of seconds >= 0 (resets, e.g. "33011.382867097855"), at most
/// two days. Anything else ("abc", "-1", "nan", "1e400", "") is nullopt and ignored.
std::optional<std::int64_t> parse_rate_count(std::string_view v) noexcept;
std::optional<std::chrono::milliseconds> parse_rate_reset(std::string_view v) noexcept;

/// The sans-io core. Every member takes `now`; nothing blocks or reads a clock.
///
/// Budgets: tokens per minute, requests per minute, requests per day, each known once configured
/// or reported (`x-ratelimit-{limit,remaining,reset}-{tokens,requests}-{minute,day}`). A budget
/// counts what was used in its current window (reservations of requests in flight included) and
/// restarts at its reset time. A reply's `remaining` can only raise what is counted as used (the
/// server saw work of other clients; requests of ours still in flight are not in its figure), and
/// its reset time replaces the budget's. A 429 marks the budget used up until its reset. At a
/// reset, requests sent but not yet answered stay counted (they may land in the new window).
///
/// Queue: a request that does not fit waits. The head of the highest priority is served first
/// and never overtaken: while it does not fit nothing else is admitted. Within a priority, keys
/// take turns (round-robin), each key's requests in arrival order. A request larger than a whole
/// budget is admitted alone into an empty window (the server then decides).
///
/// Thread safety: none; one owner (the client's executor).
class admission_controller {
public:
    using clock = std::chrono::steady_clock;
    using time_point = clock::time_point;
    using ticket = std::uint64_t;

    explicit admission_controller(const admission_config& cfg = {});

    enum class outcome { admitted, queued, timed_out };

    /// Asks to send a request of `tokens` estimated tokens (prompt + completion reserve).
    /// admitted: reserved now, send it and settle() later. queued: wait for take_decisions() to
    /// name `t`. timed_out: it cannot be admitted before `opts.deadline`.
    outcome request(ticket t, const request_options& opts, std::int64_t tokens, time_point now);

    /// The response head of an admitted request arrived: the server has counted it in its current
    /// window. Until then a request may still land in the next window, so a reset keeps counting
    /// it.
    void acknowledge(ticket t) noexcept;
    /// Settles an admitted request: `used` tokens as reported by the server (nullopt: keep the
    /// reservation, e.g. a stream abandoned midway). Unknown tickets are ignored.
    void settle(ticket t, std::optional<std::int64_t> used, time_point now);
    /// Withdraws a queued request (the caller gave up); for an admitted one, as settle(t, 0).
    void cancel(ticket t, time_point now);

    /// What one reply's x-ratelimit-* headers said (nullopt: absent or nonsense).
    struct rate_reading {
        struct figures {
            std::optional<std::int64_t> limit;
            std::optional<std::int64_t> remaining;
            std::optional<std::chrono::milliseconds> reset;
        };
        figures tokens_minute, requests_minute, requests_day;
        /// Reads one header; false if it is no x-ratelimit-* field wafer knows.
        bool read(std::string_view lower_name, std::string_view value) noexcept;
    };

    /// Learns from a reply's headers (any status). Unknown and nonsense values are ignored.
    template <class HeaderList>
    void observe(const HeaderList& headers, time_point now) {
        rate_reading r;
        bool any = false;
        for (const auto& [name, value] : headers) {
            any = r.read(name, value) || any;
        }
        if (any) {
            observe(r, now);
        }
    }
    void observe(const rate_reading& r, time_point now);

    /// Which budget a 429 says ran out.
    enum class exhausted { tokens, requests_minute, requests_day };
    /// Reads Cerebras's 429 body (code and message): "Requests per minute limit exceeded",
    /// "Tokens per minute limit exceeded", a request quota per day; anything else (the queue is
    /// full) counts as tokens.
    static exhausted classify_429(std::string_view code, std::string_view message) noexcept;
    /// A 429: the budget is used up until its reset; `retry_after` stands in for a reset the
    /// headers did not give. Observe the reply's headers first.
    void observe_rate_limited(
        exhausted which, std::optional<std::chrono::milliseconds> retry_after, time_point now
    );

    /// Processes resets and deadlines up to `now` (call at next_wakeup()).
    void advance(time_point now) { pump(now); }
    /// When the queue next needs the core (a reset or a deadline), if anything waits.
    std::optional<time_point> next_wakeup() const;

    struct decision {
        ticket id;
        outcome result; ///< admitted or timed_out
    };
    /// Queued requests decided since the last call, in decision order.
    std::vector<decision> take_decisions();

    std::size_t queued() const noexcept { return waiting_.size(); }
    std::size_t in_flight() const noexcept { return admitted_.size(); }

    /// One budget as the limiter sees it (for tests and diagnostics).
    struct budget_view {
        std::optional<std::int64_t> limit;
        std::int64_t used = 0;
        std::optional<time_point> reset_at;
    };
    budget_view tokens_minute() const noexcept { return view(budgets_[tokens_min]); }
    budget_view requests_minute() const noexcept { return view(budgets_[requests_min]); }
    budget_view requests_day() const noexcept { return view(budgets_[requests_d]); }

private:
    struct budget {
        std::optional<std::int64_t> limit;
        std::int64_t used = 0;
        std::optional<time_point> reset_at; // when `used` drops to 0
        std::chrono::milliseconds window{};
        std::uint64_t epoch = 0;    // bumped at every reset
        std::int64_t in_flight = 0; // reservations of this epoch not settled yet
        bool exhausted = false;     // a 429 said so; until the reset
    };
    enum budget_index { tokens_min, requests_min, requests_d, budget_count };

    struct waiter {
        std::string key;
        int priority = 0;
        std::int64_t tokens = 0;
        std::optional<time_point> deadline;
    };
    struct reservation {
        std::int64_t tokens = 0;
        std::uint64_t token_epoch = 0;
        bool acknowledged = false;
    };
    // One priority level: keys in turn order, each with its tickets in arrival order.
    struct level {
        std::deque<std::string> turn;
        std::unordered_map<std::string, std::deque<ticket>> by_key;
    };

    static budget_view view(const budget& b) noexcept { return {b.limit, b.used, b.reset_at}; }
    void roll(budget& b, time_point now);
    void turn_over(budget& b);
    void apply(budget& b, const rate_reading::figures& f, time_point now);
    bool fits(std::int64_t tokens) const;
    bool can_fit_before(std::int64_t tokens, time_point deadline) const;
    void admit(ticket t, std::int64_t tokens, time_point now);
    void remove_waiter(ticket t);
    void pump(time_point now);

    admission_config cfg_;
    budget budgets_[budget_count];
    std::unordered_map<ticket, waiter> waiting_;
    std::map<int, level, std::greater<>> levels_;
    std::unordered_map<ticket, reservation> admitted_;
    std::vector<decision> decided_;
};

} // namespace wafer::api
