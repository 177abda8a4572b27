// The pieces of an OTLP JSON traces body, for the exporter: a run's thread writes each span
// object as it ends, and the exporter's thread wraps a batch of them in the envelope.
#pragma once

#include <wafer/telemetry/otlp_exporter.hpp>

#include <string>

namespace wafer::telemetry::detail {

/// Appends one span object (`{"traceId":...}`) to `out`.
void append_otlp_span(std::string& out, const span_data& s);

/// The body before the first span object and after the last (a batch's spans go between,
/// separated by commas).
std::string otlp_traces_prefix(const otlp_config& cfg);
inline constexpr std::string_view otlp_traces_suffix = "]}]}]}";

} // namespace wafer::telemetry::detail
