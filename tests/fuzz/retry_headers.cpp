// The retry decision from a response's status and retry headers.
//
// Input: four lines: "STATUS" (or "T" for a transport error), then the values of x-should-retry,
// retry-after-ms and retry-after; a missing line or a line that is exactly "-" means the header
// was not sent. The rest of the input is ignored.
// Properties: nothing overflows (UBSan); the delay is never negative, a retry never waits longer
// than the larger of the backoff cap and the server-delay cap, a retry happens only within budget
// and for a retryable outcome, and everything is deterministic.
#include <wafer/api/retry_policy.hpp>

#include <algorithm>
#include <array>
#include <charconv>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>

#include "fuzz_check.hpp"

using namespace wafer::api;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    std::string_view in(reinterpret_cast<const char*>(data), size);
    std::array<std::optional<std::string_view>, 4> lines;
    for (auto& line : lines) {
        if (in.empty()) {
            break;
        }
        auto nl = in.find('\n');
        std::string_view l = in.substr(0, nl);
        in = nl == std::string_view::npos ? std::string_view{} : in.substr(nl + 1);
        if (l != "-") {
            line = l;
        }
    }

    attempt_outcome o;
    if (lines[0]) {
        if (*lines[0] == "T") {
            o.transport_error = true;
        } else {
            std::from_chars(lines[0]->data(), lines[0]->data() + lines[0]->size(), o.status);
        }
    }
    o.should_retry = lines[1];
    o.retry_after_ms = lines[2];
    o.retry_after = lines[3];

    const auto now = std::chrono::system_clock::time_point{} + std::chrono::seconds(1'780'000'000);
    const retry_config cfg;
    const auto cap = std::max(
        std::chrono::milliseconds(static_cast<long long>(cfg.max_delay_s * 1000.0)),
        cfg.max_server_delay
    );

    const bool retryable = is_retryable(o);
    const auto server = server_retry_delay(o.retry_after_ms, o.retry_after, now);
    WAFER_FUZZ_CHECK(server == server_retry_delay(o.retry_after_ms, o.retry_after, now));
    if (o.retry_after) {
        (void)parse_http_date(*o.retry_after);
    }
    for (int taken = 0; taken <= cfg.max_retries; ++taken) {
        for (double u : {0.0, 0.5, 0.999999}) {
            const auto delay = retry_delay(cfg, taken, o, u, now);
            WAFER_FUZZ_CHECK(delay.count() >= 0);
            WAFER_FUZZ_CHECK(delay <= cap);
            const retry_decision d = decide_retry(cfg, taken, o, u, now);
            WAFER_FUZZ_CHECK(d.retry == (retryable && taken < cfg.max_retries));
            if (d.retry) {
                WAFER_FUZZ_CHECK(d.delay == delay);
            }
        }
    }
    return 0;
}
