// OTLP/HTTP JSON export of spans and GenAI client metrics: a bounded queue the runs never wait
// on, batches sent from the exporter's own thread with timeouts, drops counted.
#pragma once

#include <wafer/telemetry/tracer.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace wafer::telemetry {

struct otlp_config {
    /// Where spans go: a full URL (OTEL_EXPORTER_OTLP_TRACES_ENDPOINT, used as given) ...
    std::string traces_endpoint = "http://localhost:4318/v1/traces";
    /// ... and metrics (OTEL_EXPORTER_OTLP_METRICS_ENDPOINT). Empty: no metrics are sent.
    std::string metrics_endpoint = "http://localhost:4318/v1/metrics";
    /// Extra request headers (OTEL_EXPORTER_OTLP_HEADERS, e.g. an API key of the collector).
    std::vector<std::pair<std::string, std::string>> headers;
    /// Bound on one export request: connect, write and the reply (OTEL_EXPORTER_OTLP_TIMEOUT).
    std::chrono::milliseconds timeout{10'000};
    /// Resource attributes: service.name (OTEL_SERVICE_NAME) and OTEL_RESOURCE_ATTRIBUTES.
    std::string service_name = "wafer";
    std::vector<std::pair<std::string, std::string>> resource_attributes;
    /// Batch span processor: queue bound (OTEL_BSP_MAX_QUEUE_SIZE; a full queue drops new
    /// spans), time between exports (OTEL_BSP_SCHEDULE_DELAY), spans per request
    /// (OTEL_BSP_MAX_EXPORT_BATCH_SIZE; a full batch is sent at once).
    std::size_t max_queue_size = 2048;
    std::chrono::milliseconds schedule_delay{5'000};
    std::size_t max_export_batch_size = 512;
    /// How long shutdown() waits for the last export (OTEL_BSP_EXPORT_TIMEOUT bounds it too).
    std::chrono::milliseconds shutdown_timeout{5'000};

    /// The configuration the OTEL_* environment variables describe, or nullopt when tracing is
    /// off: OTEL_SDK_DISABLED=true, OTEL_TRACES_EXPORTER=none, or neither
    /// OTEL_EXPORTER_OTLP_ENDPOINT nor OTEL_EXPORTER_OTLP_TRACES_ENDPOINT set. A base endpoint
    /// gets /v1/traces and /v1/metrics appended; signal endpoints are used as given;
    /// OTEL_METRICS_EXPORTER=none turns metrics off. Unparsable numbers keep the defaults.
    /// Only http:// endpoints are supported (an https:// one is reported in `problems`).
    static std::optional<otlp_config> from_env(std::vector<std::string>* problems = nullptr);
};

/// What the exporter did so far. Spans: every span the runs finished is queued, dropped_full
/// (the queue was full) or, once sent, exported or dropped_failed (the collector refused it,
/// was unreachable or too slow).
struct otlp_stats {
    std::uint64_t spans_queued = 0;
    std::uint64_t spans_exported = 0;
    std::uint64_t spans_dropped_full = 0;
    std::uint64_t spans_dropped_failed = 0;
    std::uint64_t export_requests = 0;
    std::uint64_t export_failures = 0;
    std::uint64_t metric_exports = 0;
    std::uint64_t metric_failures = 0;
    /// The last failure, e.g. "POST /v1/traces: connection refused" (empty if none).
    std::string last_error;

    std::uint64_t dropped() const noexcept { return spans_dropped_full + spans_dropped_failed; }
};

/// The OTLP/HTTP JSON exporter: a span_sink for telemetry::tracer. on_span writes the span's
/// OTLP JSON on the caller's thread (so the span's memory is freed where it was allocated) and
/// appends it to the batch being filled under a mutex; on_chat takes the mutex too. Neither
/// waits on the network: a collector that is down or slow costs the runs nothing; what cannot
/// be sent is dropped and counted (stats()).
///
/// The exporter thread wakes every schedule_delay (or when a batch is full), sends up to
/// max_export_batch_size spans per POST, and sends the cumulative metric histograms when
/// measurements changed. shutdown() (also the destructor) sends what is queued, waiting at most
/// shutdown_timeout, then stops the thread.
///
/// Thread safety: every member function is safe to call from any thread.
class otlp_exporter final : public span_sink {
public:
    explicit otlp_exporter(otlp_config cfg);
    ~otlp_exporter() override;
    otlp_exporter(const otlp_exporter&) = delete;
    otlp_exporter& operator=(const otlp_exporter&) = delete;

    void on_span(span_data&& span) noexcept override;
    void on_chat(const chat_measurement& m) noexcept override;

    /// Sends what is queued now, and the metrics, and waits until that one attempt ended or
    /// `bound` passed. Returns whether it ended in time and every export in it succeeded (false
    /// at once, not at `bound`, when the collector is down).
    bool flush(std::chrono::milliseconds bound);
    /// Flushes (bounded by shutdown_timeout) and stops the thread; later spans are dropped.
    void shutdown();

    otlp_stats stats() const;
    const otlp_config& config() const noexcept;

private:
    struct impl;
    std::unique_ptr<impl> impl_;
};

/// The OTLP JSON bodies (ExportTraceServiceRequest / ExportMetricsServiceRequest, the protocol's
/// JSON mapping: lowerCamelCase names, hex ids, 64-bit integers as strings).
std::string otlp_traces_json(const otlp_config& cfg, const std::vector<span_data>& spans);

/// One cumulative histogram point per attribute set.
struct histogram_point {
    std::vector<attribute> attributes;
    std::vector<std::uint64_t> bucket_counts;
    std::uint64_t count = 0;
    double sum = 0;
    double min = 0;
    double max = 0;
};
struct histogram_metric {
    std::string_view name;
    std::string_view description;
    std::string_view unit;
    const std::vector<double>* bounds = nullptr;
    std::vector<histogram_point> points;
};
std::string otlp_metrics_json(
    const otlp_config& cfg,
    const std::vector<histogram_metric>& metrics,
    std::int64_t start_ns,
    std::int64_t now_ns
);

/// The conventions' advisory bucket boundaries.
const std::vector<double>& token_usage_buckets();
const std::vector<double>& operation_duration_buckets();

} // namespace wafer::telemetry
