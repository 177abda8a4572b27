#include "tracing.hpp"

#include <wafer/telemetry/otlp_exporter.hpp>

#include <iostream>
#include <string>
#include <vector>

#include "visible.hpp"

namespace wafer::cli {

namespace {

struct tracing_state {
    bool looked = false;
    std::shared_ptr<telemetry::otlp_exporter> exporter;
};

tracing_state& state() {
    static tracing_state s;
    return s;
}

} // namespace

std::shared_ptr<const telemetry::tracer> cli_tracer(const api::client_config& client) {
    tracing_state& s = state();
    if (!s.looked) {
        s.looked = true;
        std::vector<std::string> problems;
        if (auto cfg = telemetry::otlp_config::from_env(&problems)) {
            s.exporter = std::make_shared<telemetry::otlp_exporter>(std::move(*cfg));
        }
        for (const auto& p : problems) {
            std::cerr << "wafer: tracing: " << visible(p) << "\n";
        }
    }
    if (!s.exporter) {
        return nullptr;
    }
    telemetry::tracer_config t;
    boost::system::error_code ec;
    const api::endpoint ep = api::parse_base_url(client.base_url, ec);
    if (!ec) {
        t.provider = ep.host == "cerebras.ai" ||
                             (ep.host.size() > 12 &&
                              ep.host.compare(ep.host.size() - 12, 12, ".cerebras.ai") == 0)
                         ? "cerebras"
                         : "openai";
        t.server_address = ep.host;
        t.server_port = ep.port;
    }
    return std::make_shared<const telemetry::tracer>(std::move(t), s.exporter);
}

void finish_tracing() {
    tracing_state& s = state();
    if (!s.exporter) {
        return;
    }
    s.exporter->shutdown();
    const telemetry::otlp_stats st = s.exporter->stats();
    if (st.dropped() > 0) {
        std::cerr << "wafer: tracing: " << st.dropped() << " of "
                  << st.spans_queued + st.spans_dropped_full << " spans not exported ("
                  << st.spans_dropped_full
                  << " dropped from a full queue): " << visible(st.last_error) << "\n";
    }
    s.exporter.reset();
}

} // namespace wafer::cli
