// OpenTelemetry traces from the CLI: with OTEL_EXPORTER_OTLP_ENDPOINT (or the traces endpoint)
// set, `wafer run`, `ask` and `chat` export their runs' spans and metrics over OTLP/HTTP JSON.
#pragma once

#include <wafer/api/client_config.hpp>
#include <wafer/telemetry/tracer.hpp>

#include <memory>

namespace wafer::cli {

/// The tracer for agents talking to `client` (null when the OTEL_* environment turns tracing
/// off). The first call starts the process's one exporter; problems with the variables are
/// printed once on stderr.
std::shared_ptr<const telemetry::tracer> cli_tracer(const api::client_config& client);

/// Sends what is queued (bounded by OTEL_BSP_EXPORT_TIMEOUT, default 5 s) and stops the
/// exporter; says on stderr how many spans were dropped, if any. No-op without tracing.
void finish_tracing();

} // namespace wafer::cli
