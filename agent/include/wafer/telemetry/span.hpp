// Trace data as the OpenTelemetry model has it: ids, span contexts (W3C traceparent), attributes
// and finished spans. Plain values; the tracer builds them and a span_sink exports them.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

namespace wafer::telemetry {

using trace_id = std::array<std::uint8_t, 16>;
using span_id = std::array<std::uint8_t, 8>;

/// Where a span sits: its trace, itself, and whether the trace is sampled (W3C trace-flags bit 0).
struct span_context {
    trace_id trace{};
    span_id span{};
    bool sampled = true;

    /// Neither id is all zeros (W3C: such ids are invalid).
    bool valid() const noexcept;
    friend bool operator==(const span_context&, const span_context&) = default;
};

/// Lowercase hex of an id (32 or 16 digits).
std::string to_hex(const trace_id& id);
std::string to_hex(const span_id& id);

/// The W3C traceparent value of a context: "00-<trace>-<span>-<flags>" (55 characters).
std::string format_traceparent(const span_context& ctx);
/// Parses a traceparent value (version 00, or a later version's first four fields as the
/// standard asks). nullopt for anything malformed: wrong lengths, uppercase or other non-hex
/// digits, version ff, all-zero ids.
std::optional<span_context> parse_traceparent(std::string_view value) noexcept;

/// Fresh random ids (never all zeros): a per-thread generator seeded from std::random_device.
trace_id new_trace_id() noexcept;
span_id new_span_id() noexcept;

/// OTLP span kinds (their numbers are the protocol's).
enum class span_kind : std::uint8_t { internal = 1, server = 2, client = 3 };

/// An attribute value: the OTLP AnyValue kinds wafer uses.
using attribute_value =
    std::variant<std::string, std::int64_t, double, bool, std::vector<std::string>>;

struct attribute {
    /// Keys are the conventions' names, string literals with static storage.
    std::string_view key;
    attribute_value value;
    friend bool operator==(const attribute&, const attribute&) = default;
};

/// A finished span. Times are Unix epoch nanoseconds.
struct span_data {
    span_context context;
    /// All zeros: a root span.
    span_id parent{};
    std::string name;
    span_kind kind = span_kind::internal;
    std::int64_t start_ns = 0;
    std::int64_t end_ns = 0;
    std::vector<attribute> attributes;
    /// OTLP status: unset unless the operation failed (error, with its message).
    bool error = false;
    std::string status_message;

    /// The attribute named `key`, or null.
    const attribute_value* find(std::string_view key) const noexcept;
};

} // namespace wafer::telemetry
