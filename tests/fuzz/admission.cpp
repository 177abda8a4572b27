// The admission limiter driven by arbitrary headers and operations.
//
// Input: lines, each one operation: "H NAME: VALUE" (a header of the next reply), "O" (observe
// the headers so far), "R KEY PRIORITY TOKENS [DEADLINE_MS]" (request), "S TICKET USED" (settle),
// "A TICKET" (its reply arrived), "C TICKET" (cancel), "L TOKENS|RPM|RPD RETRY_MS" (a 429), "T MS"
// (time passes). Properties: nothing overflows (UBSan); a ticket is decided at most once and only
// if it waited; counted use is never negative; something queued always has a wakeup; once every
// admitted request is settled, time passing empties the queue (no request waits forever).
#include <wafer/api/admission.hpp>

#include <algorithm>
#include <charconv>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "fuzz_check.hpp"

using namespace wafer::api;
using ctl = admission_controller;

namespace {

std::int64_t num(std::string_view& in) {
    while (!in.empty() && in.front() == ' ') {
        in.remove_prefix(1);
    }
    std::int64_t v = 0;
    auto [p, ec] = std::from_chars(in.data(), in.data() + in.size(), v);
    in.remove_prefix(static_cast<std::size_t>(p - in.data()));
    return ec == std::errc{} ? v : 0;
}

std::string_view word(std::string_view& in) {
    while (!in.empty() && in.front() == ' ') {
        in.remove_prefix(1);
    }
    auto sp = in.find(' ');
    std::string_view w = in.substr(0, sp);
    in = sp == std::string_view::npos ? std::string_view{} : in.substr(sp);
    return w;
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    std::string_view in(reinterpret_cast<const char*>(data), size);
    admission_config cfg;
    cfg.tokens_per_minute = 1000;
    cfg.minute = std::chrono::milliseconds(1000);
    cfg.day = std::chrono::milliseconds(10'000);
    ctl a(cfg);
    ctl::time_point now{std::chrono::hours(1)};
    std::vector<std::pair<std::string, std::string>> headers;
    std::set<ctl::ticket> waiting, admitted, decided;
    ctl::ticket next = 1;

    auto collect = [&] {
        for (const auto& d : a.take_decisions()) {
            WAFER_FUZZ_CHECK(waiting.count(d.id) == 1); // only waiters are decided, once
            WAFER_FUZZ_CHECK(decided.insert(d.id).second);
            waiting.erase(d.id);
            if (d.result == ctl::outcome::admitted) {
                admitted.insert(d.id);
            }
        }
        WAFER_FUZZ_CHECK(a.tokens_minute().used >= 0);
        WAFER_FUZZ_CHECK(a.queued() == waiting.size());
        WAFER_FUZZ_CHECK(a.in_flight() == admitted.size());
        WAFER_FUZZ_CHECK(a.queued() == 0 || a.next_wakeup().has_value());
    };

    for (int ops = 0; !in.empty() && ops < 500; ++ops) {
        auto nl = in.find('\n');
        std::string_view line = in.substr(0, nl);
        in = nl == std::string_view::npos ? std::string_view{} : in.substr(nl + 1);
        if (line.empty()) {
            continue;
        }
        const char op = line.front();
        line.remove_prefix(1);
        switch (op) {
        case 'H': {
            const auto colon = line.find(':');
            if (colon != std::string_view::npos) {
                std::string_view name = line.substr(0, colon);
                while (!name.empty() && name.front() == ' ') {
                    name.remove_prefix(1);
                }
                headers.emplace_back(std::string(name), std::string(line.substr(colon + 1)));
            }
            break;
        }
        case 'O':
            a.observe(headers, now);
            headers.clear();
            break;
        case 'R': {
            request_options o;
            o.run_key = std::string(word(line));
            o.priority = static_cast<int>(num(line) % 8);
            const std::int64_t tokens = num(line);
            const std::int64_t deadline = num(line);
            if (deadline > 0) {
                o.deadline = now + std::chrono::milliseconds(deadline % 100'000);
            }
            const ctl::ticket t = next++;
            const auto r = a.request(t, o, tokens, now);
            if (r == ctl::outcome::admitted) {
                admitted.insert(t);
            } else if (r == ctl::outcome::queued) {
                waiting.insert(t);
            }
            break;
        }
        case 'S': {
            const auto t = static_cast<ctl::ticket>(num(line) % static_cast<std::int64_t>(next));
            a.settle(t, num(line), now);
            admitted.erase(t);
            break;
        }
        case 'A':
            a.acknowledge(static_cast<ctl::ticket>(num(line) % static_cast<std::int64_t>(next)));
            break;
        case 'C': {
            const auto t = static_cast<ctl::ticket>(num(line) % static_cast<std::int64_t>(next));
            a.cancel(t, now);
            admitted.erase(t);
            waiting.erase(t);
            break;
        }
        case 'L': {
            const std::string_view which = word(line);
            const auto kind = which == "RPM"   ? ctl::exhausted::requests_minute
                              : which == "RPD" ? ctl::exhausted::requests_day
                                               : ctl::exhausted::tokens;
            const std::int64_t ms = num(line);
            a.observe_rate_limited(
                kind,
                ms > 0 ? std::optional(std::chrono::milliseconds(ms % 1'000'000)) : std::nullopt,
                now
            );
            break;
        }
        case 'T':
            now += std::chrono::milliseconds(num(line) % 1'000'000);
            a.advance(now);
            break;
        default:
            break;
        }
        collect();
    }
    // Liveness: with nothing in flight, resets come and the queue drains.
    for (auto t : std::set<ctl::ticket>(admitted)) {
        a.settle(t, 0, now);
    }
    admitted.clear();
    collect();
    for (int i = 0; i < 2000 && a.queued() > 0; ++i) {
        auto at = a.next_wakeup();
        WAFER_FUZZ_CHECK(at.has_value());
        now = std::max(now, *at);
        a.advance(now);
        collect();
        for (auto t : std::set<ctl::ticket>(admitted)) {
            a.settle(t, 0, now);
        }
        admitted.clear();
        collect();
    }
    WAFER_FUZZ_CHECK(a.queued() == 0);
    return 0;
}
