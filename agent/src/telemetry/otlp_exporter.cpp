// The exporter thread: a bounded queue filled by the runs, drained by one thread that POSTs
// OTLP/HTTP JSON to the collector with a deadline on every request.
#include <wafer/telemetry/otlp_exporter.hpp>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/connect.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read_until.hpp>
#include <boost/asio/streambuf.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>

#include <algorithm>
#include <array>
#include <condition_variable>
#include <cstdlib>
#include <deque>
#include <mutex>
#include <thread>

#include "telemetry/otlp_encode.hpp"

namespace wafer::telemetry {

namespace asio = boost::asio;
using steady = std::chrono::steady_clock;

namespace {

struct http_target {
    std::string host;
    std::string port = "80";
    std::string path = "/";
};

// http://host[:port][/path]; nullopt for anything else (https is not supported).
std::optional<http_target> parse_http_url(std::string_view url) {
    constexpr std::string_view scheme = "http://";
    if (url.substr(0, scheme.size()) != scheme) {
        return std::nullopt;
    }
    url.remove_prefix(scheme.size());
    http_target t;
    const auto slash = url.find('/');
    std::string_view authority = url.substr(0, slash);
    if (slash != std::string_view::npos) {
        t.path = std::string(url.substr(slash));
    }
    if (!authority.empty() && authority.front() == '[') { // [::1]:4318
        const auto close = authority.find(']');
        if (close == std::string_view::npos) {
            return std::nullopt;
        }
        t.host = std::string(authority.substr(1, close - 1));
        authority.remove_prefix(close + 1);
        if (!authority.empty()) {
            if (authority.front() != ':') {
                return std::nullopt;
            }
            t.port = std::string(authority.substr(1));
        }
    } else if (const auto colon = authority.rfind(':'); colon != std::string_view::npos) {
        t.host = std::string(authority.substr(0, colon));
        t.port = std::string(authority.substr(colon + 1));
    } else {
        t.host = std::string(authority);
    }
    if (t.host.empty() || t.port.empty() ||
        !std::all_of(t.port.begin(), t.port.end(), [](char c) { return c >= '0' && c <= '9'; })) {
        return std::nullopt;
    }
    return t;
}

struct post_result {
    bool done = false;
    bool ok = false;
    std::string error;
};

asio::awaitable<void> post_once(
    asio::ip::tcp::resolver& resolver,
    asio::ip::tcp::socket& socket,
    const http_target& t,
    std::string head,
    const std::string& body,
    post_result& result
) {
    try {
        auto endpoints = co_await resolver.async_resolve(t.host, t.port, asio::use_awaitable);
        co_await asio::async_connect(socket, endpoints, asio::use_awaitable);
        const std::array<asio::const_buffer, 2> request{asio::buffer(head), asio::buffer(body)};
        co_await asio::async_write(socket, request, asio::use_awaitable);
        asio::streambuf buf(64 * 1024);
        co_await asio::async_read_until(socket, buf, "\r\n", asio::use_awaitable);
        std::istream in(&buf);
        std::string version;
        int status = 0;
        in >> version >> status;
        result.ok = status >= 200 && status < 300;
        if (!result.ok) {
            result.error = "HTTP status " + std::to_string(status);
        }
    } catch (const boost::system::system_error& e) {
        result.error = e.code().message();
    } catch (const std::exception& e) {
        result.error = e.what();
    }
    result.done = true;
}

// One series of the client metrics: the attribute set of a chat measurement.
struct series {
    std::string provider, request_model, response_model, server_address, error_type;
    std::int64_t server_port = 0;
    histogram_point duration, input, output;
};

void observe(histogram_point& p, const std::vector<double>& bounds, double v) {
    if (p.bucket_counts.empty()) {
        p.bucket_counts.assign(bounds.size() + 1, 0);
        p.min = p.max = v;
    }
    const auto b = std::lower_bound(bounds.begin(), bounds.end(), v) - bounds.begin();
    ++p.bucket_counts[static_cast<std::size_t>(b)];
    ++p.count;
    p.sum += v;
    p.min = std::min(p.min, v);
    p.max = std::max(p.max, v);
}

std::vector<attribute> series_attributes(const series& s, std::string_view token_type) {
    std::vector<attribute> a;
    a.push_back({"gen_ai.operation.name", std::string("chat")});
    a.push_back({"gen_ai.provider.name", s.provider});
    a.push_back({"gen_ai.request.model", s.request_model});
    if (!s.response_model.empty()) {
        a.push_back({"gen_ai.response.model", s.response_model});
    }
    if (!s.server_address.empty()) {
        a.push_back({"server.address", s.server_address});
    }
    if (s.server_port > 0) {
        a.push_back({"server.port", s.server_port});
    }
    if (!s.error_type.empty()) {
        a.push_back({"error.type", s.error_type});
    }
    if (!token_type.empty()) {
        a.push_back({"gen_ai.token.type", std::string(token_type)});
    }
    return a;
}

} // namespace

// Spans as they wait for the collector: already encoded, one span object after another
// (comma-separated), so that a run's thread frees its own span and only one buffer per batch
// crosses to the exporter's thread.
struct encoded_batch {
    std::string spans;
    std::size_t count = 0;
};

struct otlp_exporter::impl {
    otlp_config cfg;
    std::optional<http_target> traces_target;
    std::optional<http_target> metrics_target;
    std::int64_t start_ns = unix_nanos(std::chrono::system_clock::now());

    mutable std::mutex mu;
    std::condition_variable wake;     // the worker: work, flush or stop
    std::condition_variable progress; // flush(): a batch ended
    // Batches of max_export_batch_size spans, then the one being filled; `queued` counts the
    // spans of both (the queue's bound).
    std::deque<encoded_batch> full;
    encoded_batch open;
    std::size_t queued = 0;
    // Buffers of sent batches, kept for the next ones (no page faults on a run's thread).
    std::vector<std::string> spare;
    std::string traces_prefix;
    std::string batch_body; // the worker's: one POST body at a time
    std::vector<series> metrics;
    bool metrics_dirty = false;
    std::size_t in_flight = 0;
    std::uint64_t flush_requests = 0;
    // Flush requests the worker has answered: sent what was queued and tried the metrics once.
    std::uint64_t flushes_done = 0;
    bool stopping = false;
    bool stopped = false;
    otlp_stats stats;
    std::thread worker;

    asio::io_context io;

    // The request's head (the body goes after it as a buffer of its own, not copied).
    std::string head_for(const http_target& t, const std::string& body) const {
        std::string r;
        r.reserve(256);
        r.append("POST ").append(t.path).append(" HTTP/1.1\r\nHost: ").append(t.host);
        r.append(":").append(t.port);
        r.append("\r\nContent-Type: application/json\r\nConnection: close\r\nContent-Length: ");
        r.append(std::to_string(body.size())).append("\r\n");
        for (const auto& [k, v] : cfg.headers) {
            r.append(k).append(": ").append(v).append("\r\n");
        }
        r.append("User-Agent: wafer-otlp/").append(WAFER_VERSION_STRING).append("\r\n\r\n");
        return r;
    }

    // One POST, bounded by `bound`. Runs on the worker thread only.
    post_result post(const http_target& t, const std::string& body, steady::duration bound) {
        post_result result;
        asio::ip::tcp::resolver resolver(io);
        asio::ip::tcp::socket socket(io);
        io.restart();
        asio::co_spawn(
            io, post_once(resolver, socket, t, head_for(t, body), body, result), asio::detached
        );
        io.run_for(std::max<steady::duration>(bound, std::chrono::milliseconds(1)));
        if (!result.done) {
            resolver.cancel();
            boost::system::error_code ignored;
            socket.close(ignored);
            io.restart();
            io.run(); // the aborted operations finish at once
            result.ok = false;
            result.error =
                "no reply within " +
                std::to_string(std::chrono::duration_cast<std::chrono::milliseconds>(bound).count()
                ) +
                " ms";
        }
        return result;
    }

    steady::duration bound_for(std::optional<steady::time_point> deadline) const {
        steady::duration b = cfg.timeout;
        if (deadline) {
            b = std::min<steady::duration>(b, *deadline - steady::now());
        }
        return b;
    }

    void send_spans(encoded_batch& batch, std::optional<steady::time_point> deadline) {
        post_result r;
        if (traces_target) {
            batch_body.clear();
            batch_body.reserve(traces_prefix.size() + batch.spans.size() + 8);
            batch_body.append(traces_prefix).append(batch.spans).append(detail::otlp_traces_suffix);
            r = post(*traces_target, batch_body, bound_for(deadline));
        } else {
            r.error = "the traces endpoint is not an http:// URL";
        }
        std::lock_guard lock(mu);
        ++stats.export_requests;
        if (r.ok) {
            stats.spans_exported += batch.count;
        } else {
            ++stats.export_failures;
            stats.spans_dropped_failed += batch.count;
            stats.last_error = "POST " +
                               (traces_target ? traces_target->path : cfg.traces_endpoint) + ": " +
                               r.error;
        }
        if (spare.size() < 2) {
            batch.spans.clear();
            spare.push_back(std::move(batch.spans));
        }
    }

    // The next batch to send: a full one, else the one being filled. Under `mu`.
    bool take_batch(encoded_batch& out) {
        if (!full.empty()) {
            out = std::move(full.front());
            full.pop_front();
        } else if (open.count > 0) {
            out = std::move(open);
            open = encoded_batch{};
        } else {
            return false;
        }
        queued -= out.count;
        return true;
    }

    void send_metrics(std::optional<steady::time_point> deadline) {
        std::vector<histogram_metric> m(2);
        {
            std::lock_guard lock(mu);
            if (!metrics_dirty) {
                return;
            }
            metrics_dirty = false;
            m[0].name = "gen_ai.client.operation.duration";
            m[0].description = "GenAI operation duration";
            m[0].unit = "s";
            m[0].bounds = &operation_duration_buckets();
            m[1].name = "gen_ai.client.token.usage";
            m[1].description = "Number of input and output tokens used";
            m[1].unit = "{token}";
            m[1].bounds = &token_usage_buckets();
            for (const auto& s : metrics) {
                if (s.duration.count) {
                    histogram_point p = s.duration;
                    p.attributes = series_attributes(s, {});
                    m[0].points.push_back(std::move(p));
                }
                for (auto [type, h] :
                     {std::pair{"input", &s.input}, std::pair{"output", &s.output}}) {
                    if (h->count) {
                        histogram_point p = *h;
                        p.attributes = series_attributes(s, type);
                        m[1].points.push_back(std::move(p));
                    }
                }
            }
        }
        post_result r;
        if (metrics_target) {
            const std::string body =
                otlp_metrics_json(cfg, m, start_ns, unix_nanos(std::chrono::system_clock::now()));
            r = post(*metrics_target, body, bound_for(deadline));
        } else {
            r.error = "the metrics endpoint is not an http:// URL";
        }
        std::lock_guard lock(mu);
        if (r.ok) {
            ++stats.metric_exports;
        } else {
            ++stats.metric_failures;
            metrics_dirty = true; // cumulative: the next export carries these points too
            stats.last_error = "POST metrics: " + r.error;
        }
    }

    void run() {
        std::unique_lock lock(mu);
        auto next_metrics = steady::now() + cfg.schedule_delay;
        std::uint64_t flushes_seen = 0;
        for (;;) {
            wake.wait_for(lock, cfg.schedule_delay, [&] {
                return stopping || !full.empty() || flush_requests != flushes_seen;
            });
            const bool flushing = flush_requests != flushes_seen;
            flushes_seen = flush_requests;
            const std::uint64_t answering = flushes_seen;
            std::optional<steady::time_point> deadline;
            if (stopping) {
                deadline = steady::now() + cfg.shutdown_timeout;
            }
            // Everything queued goes out in full batches (a stopping exporter until its
            // deadline); metrics when due.
            encoded_batch batch;
            while ((!deadline || steady::now() < *deadline) && take_batch(batch)) {
                ++in_flight;
                lock.unlock();
                send_spans(batch, deadline);
                lock.lock();
                --in_flight;
                progress.notify_all();
            }
            if (stopping || flushing || steady::now() >= next_metrics) {
                next_metrics = steady::now() + cfg.schedule_delay;
                if (metrics_dirty && (!deadline || steady::now() < *deadline)) {
                    ++in_flight;
                    lock.unlock();
                    send_metrics(deadline);
                    lock.lock();
                    --in_flight;
                }
                if (flushing) {
                    flushes_done = answering;
                }
                progress.notify_all();
            }
            if (stopping) {
                stats.spans_dropped_failed += queued; // past the shutdown bound
                full.clear();
                open = encoded_batch{};
                queued = 0;
                stopped = true;
                progress.notify_all();
                return;
            }
        }
    }
};

otlp_exporter::otlp_exporter(otlp_config cfg) : impl_(std::make_unique<impl>()) {
    impl_->cfg = std::move(cfg);
    impl_->cfg.max_export_batch_size = std::max<std::size_t>(impl_->cfg.max_export_batch_size, 1);
    impl_->traces_target = parse_http_url(impl_->cfg.traces_endpoint);
    impl_->traces_prefix = detail::otlp_traces_prefix(impl_->cfg);
    if (!impl_->cfg.metrics_endpoint.empty()) {
        impl_->metrics_target = parse_http_url(impl_->cfg.metrics_endpoint);
    }
    impl_->worker = std::thread([p = impl_.get()] { p->run(); });
}

otlp_exporter::~otlp_exporter() {
    shutdown();
}

void otlp_exporter::on_span(span_data&& span) noexcept {
    // Encoded here, outside the lock, so that the span's memory is freed on the thread that
    // allocated it (the caller destroys it) and the lock is held for a copy only.
    thread_local std::string encoded;
    impl& p = *impl_;
    try {
        encoded.clear();
        detail::append_otlp_span(encoded, span);
    } catch (...) { // allocation: the span is lost, the run goes on
        std::lock_guard lock(p.mu);
        ++p.stats.spans_dropped_full;
        return;
    }
    std::lock_guard lock(p.mu);
    if (p.stopping || p.queued >= p.cfg.max_queue_size) {
        ++p.stats.spans_dropped_full;
        return;
    }
    try {
        std::string& out = p.open.spans;
        if (p.open.count == 0 && out.capacity() == 0 && !p.spare.empty()) {
            out = std::move(p.spare.back());
            p.spare.pop_back();
        }
        out.reserve(out.size() + 1 + encoded.size()); // the only step that can throw
        if (p.open.count > 0) {
            out += ',';
        }
        out += encoded;
    } catch (...) {
        ++p.stats.spans_dropped_full;
        return;
    }
    ++p.open.count;
    ++p.queued;
    ++p.stats.spans_queued;
    if (p.open.count >= p.cfg.max_export_batch_size) {
        p.full.push_back(std::move(p.open));
        p.open = encoded_batch{};
        p.wake.notify_one();
    }
}

void otlp_exporter::on_chat(const chat_measurement& m) noexcept {
    std::lock_guard lock(impl_->mu);
    if (impl_->cfg.metrics_endpoint.empty()) {
        return;
    }
    try {
        series* s = nullptr;
        for (auto& x : impl_->metrics) {
            if (x.request_model == m.request_model && x.response_model == m.response_model &&
                x.error_type == m.error_type && x.provider == m.provider &&
                x.server_address == m.server_address && x.server_port == m.server_port) {
                s = &x;
                break;
            }
        }
        if (!s) {
            if (impl_->metrics.size() >= 1024) { // a bound on attribute sets
                return;
            }
            s = &impl_->metrics.emplace_back();
            s->provider = m.provider;
            s->request_model = m.request_model;
            s->response_model = m.response_model;
            s->server_address = m.server_address;
            s->server_port = m.server_port;
            s->error_type = m.error_type;
        }
        observe(s->duration, operation_duration_buckets(), m.duration_s);
        if (m.input_tokens) {
            observe(s->input, token_usage_buckets(), static_cast<double>(*m.input_tokens));
        }
        if (m.output_tokens) {
            observe(s->output, token_usage_buckets(), static_cast<double>(*m.output_tokens));
        }
        impl_->metrics_dirty = true;
    } catch (...) { // allocation: the measurement is lost, the run goes on
    }
}

bool otlp_exporter::flush(std::chrono::milliseconds bound) {
    std::unique_lock lock(impl_->mu);
    if (impl_->stopped) {
        return impl_->queued == 0;
    }
    const std::uint64_t request = ++impl_->flush_requests;
    impl_->wake.notify_one();
    const std::uint64_t failures = impl_->stats.export_failures + impl_->stats.metric_failures;
    // One attempt: a collector that is down fails the flush at once rather than at `bound`
    // (failed metrics stay dirty for the next export, so waiting for them would never end).
    const bool answered = impl_->progress.wait_for(lock, bound, [&] {
        return impl_->stopped || impl_->flushes_done >= request;
    });
    return answered && impl_->queued == 0 && impl_->in_flight == 0 &&
           impl_->stats.export_failures + impl_->stats.metric_failures == failures;
}

void otlp_exporter::shutdown() {
    {
        std::lock_guard lock(impl_->mu);
        if (impl_->stopping) {
            return;
        }
        impl_->stopping = true;
        impl_->wake.notify_one();
    }
    impl_->worker.join();
}

otlp_stats otlp_exporter::stats() const {
    std::lock_guard lock(impl_->mu);
    return impl_->stats;
}

const otlp_config& otlp_exporter::config() const noexcept {
    return impl_->cfg;
}

namespace {

std::string env(const char* name) {
    const char* v = std::getenv(name);
    return v ? std::string(v) : std::string();
}

std::string trim(std::string_view s) {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) {
        s.remove_prefix(1);
    }
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) {
        s.remove_suffix(1);
    }
    return std::string(s);
}

std::string lower(std::string s) {
    for (auto& c : s) {
        c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    }
    return s;
}

// %XX decoding of the W3C baggage-style lists OTEL_EXPORTER_OTLP_HEADERS and
// OTEL_RESOURCE_ATTRIBUTES use.
int hex_digit(char c) {
    return c >= '0' && c <= '9'   ? c - '0'
           : c >= 'a' && c <= 'f' ? c - 'a' + 10
           : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                  : -1;
}

std::string percent_decode(std::string_view s) {
    std::string out;
    for (std::size_t i = 0; i < s.size(); ++i) {
        if (s[i] == '%' && i + 2 < s.size() && hex_digit(s[i + 1]) >= 0 &&
            hex_digit(s[i + 2]) >= 0) {
            out += static_cast<char>(hex_digit(s[i + 1]) * 16 + hex_digit(s[i + 2]));
            i += 2;
            continue;
        }
        out += s[i];
    }
    return out;
}

std::vector<std::pair<std::string, std::string>> key_values(std::string_view list) {
    std::vector<std::pair<std::string, std::string>> out;
    while (!list.empty()) {
        const auto comma = list.find(',');
        const std::string_view item = list.substr(0, comma);
        list = comma == std::string_view::npos ? std::string_view() : list.substr(comma + 1);
        const auto eq = item.find('=');
        if (eq == std::string_view::npos) {
            continue;
        }
        std::string k = trim(item.substr(0, eq));
        if (!k.empty()) {
            out.emplace_back(percent_decode(k), percent_decode(trim(item.substr(eq + 1))));
        }
    }
    return out;
}

template <class T>
void read_number(const char* name, T& out, std::vector<std::string>* problems) {
    const std::string v = trim(env(name));
    if (v.empty()) {
        return;
    }
    char* end = nullptr;
    const long long n = std::strtoll(v.c_str(), &end, 10);
    if (end == v.c_str() || *end != '\0' || n < 0) {
        if (problems) {
            problems->push_back(std::string(name) + ": not a number, the default is kept");
        }
        return;
    }
    if constexpr (std::is_same_v<T, std::chrono::milliseconds>) {
        out = std::chrono::milliseconds(n);
    } else {
        out = static_cast<T>(n);
    }
}

std::string with_path(std::string base, std::string_view path) {
    while (!base.empty() && base.back() == '/') {
        base.pop_back();
    }
    return base.append(path);
}

} // namespace

std::optional<otlp_config> otlp_config::from_env(std::vector<std::string>* problems) {
    if (lower(trim(env("OTEL_SDK_DISABLED"))) == "true" ||
        lower(trim(env("OTEL_TRACES_EXPORTER"))) == "none") {
        return std::nullopt;
    }
    const std::string base = trim(env("OTEL_EXPORTER_OTLP_ENDPOINT"));
    const std::string traces = trim(env("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"));
    if (base.empty() && traces.empty()) {
        return std::nullopt;
    }
    otlp_config c;
    c.traces_endpoint = !traces.empty() ? traces : with_path(base, "/v1/traces");
    const std::string metrics = trim(env("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT"));
    if (lower(trim(env("OTEL_METRICS_EXPORTER"))) == "none") {
        c.metrics_endpoint.clear();
    } else if (!metrics.empty()) {
        c.metrics_endpoint = metrics;
    } else if (!base.empty()) {
        c.metrics_endpoint = with_path(base, "/v1/metrics");
    } else {
        c.metrics_endpoint.clear();
    }
    const std::string protocol = lower(trim(env("OTEL_EXPORTER_OTLP_PROTOCOL")));
    if (!protocol.empty() && protocol != "http/json" && problems) {
        problems->push_back(
            "OTEL_EXPORTER_OTLP_PROTOCOL=" + protocol + ": wafer sends http/json only"
        );
    }
    for (const std::string* url : {&c.traces_endpoint, &c.metrics_endpoint}) {
        if (!url->empty() && !parse_http_url(*url) && problems) {
            problems->push_back(*url + ": only http:// endpoints are supported");
        }
    }
    c.headers = key_values(env("OTEL_EXPORTER_OTLP_HEADERS"));
    for (auto& kv : key_values(env("OTEL_EXPORTER_OTLP_TRACES_HEADERS"))) {
        c.headers.push_back(std::move(kv));
    }
    read_number("OTEL_EXPORTER_OTLP_TIMEOUT", c.timeout, problems);
    read_number("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT", c.timeout, problems);
    read_number("OTEL_BSP_MAX_QUEUE_SIZE", c.max_queue_size, problems);
    read_number("OTEL_BSP_SCHEDULE_DELAY", c.schedule_delay, problems);
    read_number("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", c.max_export_batch_size, problems);
    read_number("OTEL_BSP_EXPORT_TIMEOUT", c.shutdown_timeout, problems);
    c.resource_attributes = key_values(env("OTEL_RESOURCE_ATTRIBUTES"));
    for (const auto& [k, v] : c.resource_attributes) {
        if (k == "service.name") {
            c.service_name = v;
        }
    }
    if (std::string name = trim(env("OTEL_SERVICE_NAME")); !name.empty()) {
        c.service_name = std::move(name);
    }
    return c;
}

} // namespace wafer::telemetry
