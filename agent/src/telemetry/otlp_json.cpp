// The OTLP JSON encoding (opentelemetry-proto's JSON mapping), written by hand: the exporter
// thread builds one body per batch without a DOM.
#include <wafer/telemetry/otlp_exporter.hpp>
#include <wafer/tools/detail/json_write.hpp>

#include <charconv>
#include <cmath>
#include <cstdio>

#include "telemetry/hex.hpp"
#include "telemetry/otlp_encode.hpp"

namespace wafer::telemetry {

namespace {

using wafer::detail::put_int;

// The request writer's escaper; text that is not valid UTF-8 (a model-named tool, an error text)
// has its bad bytes replaced with U+FFFD, so one span cannot make a batch's body invalid JSON.
void put_escaped(std::string& out, std::string_view s) {
    const std::size_t mark = out.size();
    if (wafer::detail::put_string(out, s)) {
        return;
    }
    out.resize(mark);
    std::string clean;
    clean.reserve(s.size() + 8);
    for (std::size_t i = 0; i < s.size();) {
        const auto c = static_cast<unsigned char>(s[i]);
        const std::size_t n = c < 0x80 ? 1 : wafer::detail::utf8_sequence(s, i);
        if (n == 0) {
            clean += "\xEF\xBF\xBD";
            ++i;
        } else {
            clean.append(s.substr(i, n));
            i += n;
        }
    }
    wafer::detail::put_string(out, clean);
}

// int64 / uint64 / fixed64 fields are JSON strings in the mapping.
void put_int_string(std::string& out, std::int64_t v) {
    out += '"';
    put_int(out, v);
    out += '"';
}

void put_double(std::string& out, double v) {
    if (!std::isfinite(v)) {
        out += v != v ? "\"NaN\"" : (v > 0 ? "\"Infinity\"" : "\"-Infinity\"");
        return;
    }
    char buf[32];
    auto r = std::to_chars(buf, buf + sizeof buf, v);
    out.append(buf, r.ptr);
}

void put_any_value(std::string& out, const attribute_value& v) {
    out += '{';
    if (const auto* s = std::get_if<std::string>(&v)) {
        out += "\"stringValue\":";
        put_escaped(out, *s);
    } else if (const auto* i = std::get_if<std::int64_t>(&v)) {
        out += "\"intValue\":";
        put_int_string(out, *i);
    } else if (const auto* d = std::get_if<double>(&v)) {
        out += "\"doubleValue\":";
        put_double(out, *d);
    } else if (const auto* b = std::get_if<bool>(&v)) {
        out += "\"boolValue\":";
        out += *b ? "true" : "false";
    } else if (const auto* a = std::get_if<std::vector<std::string>>(&v)) {
        out += "\"arrayValue\":{\"values\":[";
        for (std::size_t k = 0; k < a->size(); ++k) {
            if (k) {
                out += ',';
            }
            out += "{\"stringValue\":";
            put_escaped(out, (*a)[k]);
            out += '}';
        }
        out += "]}";
    }
    out += '}';
}

void put_key_value(std::string& out, std::string_view key, const attribute_value& v) {
    out += "{\"key\":";
    put_escaped(out, key);
    out += ",\"value\":";
    put_any_value(out, v);
    out += '}';
}

void put_attributes(std::string& out, const std::vector<attribute>& attrs) {
    out += '[';
    for (std::size_t k = 0; k < attrs.size(); ++k) {
        if (k) {
            out += ',';
        }
        put_key_value(out, attrs[k].key, attrs[k].value);
    }
    out += ']';
}

void put_resource(std::string& out, const otlp_config& cfg) {
    out += "\"resource\":{\"attributes\":[";
    put_key_value(out, "service.name", attribute_value(cfg.service_name));
    out += ',';
    put_key_value(out, "telemetry.sdk.name", attribute_value(std::string("wafer")));
    out += ',';
    put_key_value(out, "telemetry.sdk.language", attribute_value(std::string("cpp")));
    out += ',';
    put_key_value(out, "telemetry.sdk.version", attribute_value(std::string(WAFER_VERSION_STRING)));
    for (const auto& [k, v] : cfg.resource_attributes) {
        if (k != "service.name") {
            out += ',';
            put_key_value(out, k, attribute_value(v));
        }
    }
    out += "]}";
}

void put_scope(std::string& out) {
    out += "\"scope\":{\"name\":\"wafer\",\"version\":";
    put_escaped(out, WAFER_VERSION_STRING);
    out += '}';
}

bool all_zero(const span_id& id) {
    for (auto b : id) {
        if (b) {
            return false;
        }
    }
    return true;
}

void put_span(std::string& out, const span_data& s) {
    out += "{\"traceId\":\"";
    detail::append_hex(out, s.context.trace);
    out += "\",\"spanId\":\"";
    detail::append_hex(out, s.context.span);
    out += '"';
    if (!all_zero(s.parent)) {
        out += ",\"parentSpanId\":\"";
        detail::append_hex(out, s.parent);
        out += '"';
    }
    out += ",\"name\":";
    put_escaped(out, s.name);
    out += ",\"kind\":";
    put_int(out, static_cast<int>(s.kind));
    out += ",\"startTimeUnixNano\":";
    put_int_string(out, s.start_ns);
    out += ",\"endTimeUnixNano\":";
    put_int_string(out, s.end_ns);
    out += ",\"attributes\":";
    put_attributes(out, s.attributes);
    out += ",\"status\":{";
    if (s.error) {
        out += "\"message\":";
        put_escaped(out, s.status_message);
        out += ",\"code\":2";
    }
    out += "}}";
}

} // namespace

namespace detail {

void append_otlp_span(std::string& out, const span_data& s) {
    put_span(out, s);
}

std::string otlp_traces_prefix(const otlp_config& cfg) {
    std::string out;
    out += "{\"resourceSpans\":[{";
    put_resource(out, cfg);
    out += ",\"scopeSpans\":[{";
    put_scope(out);
    out += ",\"spans\":[";
    return out;
}

} // namespace detail

std::string otlp_traces_json(const otlp_config& cfg, const std::vector<span_data>& spans) {
    std::string out = detail::otlp_traces_prefix(cfg);
    out.reserve(out.size() + spans.size() * 1536 + 8); // a chat span is about 1.2 KB
    for (std::size_t k = 0; k < spans.size(); ++k) {
        if (k) {
            out += ',';
        }
        put_span(out, spans[k]);
    }
    out += detail::otlp_traces_suffix;
    return out;
}

std::string otlp_metrics_json(
    const otlp_config& cfg,
    const std::vector<histogram_metric>& metrics,
    std::int64_t start_ns,
    std::int64_t now_ns
) {
    std::string out;
    out += "{\"resourceMetrics\":[{";
    put_resource(out, cfg);
    out += ",\"scopeMetrics\":[{";
    put_scope(out);
    out += ",\"metrics\":[";
    bool first_metric = true;
    for (const auto& m : metrics) {
        if (m.points.empty()) {
            continue;
        }
        if (!first_metric) {
            out += ',';
        }
        first_metric = false;
        out += "{\"name\":";
        put_escaped(out, m.name);
        out += ",\"description\":";
        put_escaped(out, m.description);
        out += ",\"unit\":";
        put_escaped(out, m.unit);
        // AGGREGATION_TEMPORALITY_CUMULATIVE = 2
        out += ",\"histogram\":{\"aggregationTemporality\":2,\"dataPoints\":[";
        for (std::size_t k = 0; k < m.points.size(); ++k) {
            const histogram_point& p = m.points[k];
            if (k) {
                out += ',';
            }
            out += "{\"attributes\":";
            put_attributes(out, p.attributes);
            out += ",\"startTimeUnixNano\":";
            put_int_string(out, start_ns);
            out += ",\"timeUnixNano\":";
            put_int_string(out, now_ns);
            out += ",\"count\":";
            put_int_string(out, static_cast<std::int64_t>(p.count));
            out += ",\"sum\":";
            put_double(out, p.sum);
            out += ",\"bucketCounts\":[";
            for (std::size_t b = 0; b < p.bucket_counts.size(); ++b) {
                if (b) {
                    out += ',';
                }
                put_int_string(out, static_cast<std::int64_t>(p.bucket_counts[b]));
            }
            out += "],\"explicitBounds\":[";
            for (std::size_t b = 0; b < m.bounds->size(); ++b) {
                if (b) {
                    out += ',';
                }
                put_double(out, (*m.bounds)[b]);
            }
            out += "],\"min\":";
            put_double(out, p.min);
            out += ",\"max\":";
            put_double(out, p.max);
            out += '}';
        }
        out += "]}}";
    }
    out += "]}]}]}";
    return out;
}

// Never destroyed: an exporter held by a static may still read them while it shuts down.
const std::vector<double>& token_usage_buckets() {
    static const auto* b = new std::vector<double>{
        1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216, 67108864};
    return *b;
}

const std::vector<double>& operation_duration_buckets() {
    static const auto* b = new std::vector<double>{
        0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92};
    return *b;
}

} // namespace wafer::telemetry
