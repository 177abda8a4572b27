// A worker process for the queue's chaos test (integration/test_chaos.cpp) and benchmark
// (bench/queue_bench.cpp): wafer::worker on a PostgreSQL store, against a chat server given by
// --base-url (the test's fake server), with two agents chosen by the run's agent name:
//   single    calls "record" once, then answers;
//   pipeline  calls "delegate" (a child agent, a durable child run) which calls "record".
// "record" is the side effect whose repetition the test looks for: it inserts (call key,
// worker) into the table `side` of the schema, halfway through --work-ms. Each claim is
// printed as "claim RUN MS" (system clock, ms) on stdout, each end as "end RUN OUTCOME".
//
// wafer_queue_worker --store CONNINFO --schema S --base-url URL --name NAME
//                    [--concurrency N] [--ttl-ms T] [--work-ms W]
// SIGTERM drains (then exits 0).
#include <wafer/agent.hpp>
#include <wafer/api/client.hpp>
#include <wafer/cerebras_model.hpp>
#include <wafer/store/postgres_queue.hpp>
#include <wafer/store/postgres_store.hpp>
#include <wafer/tools/registry.hpp>
#include <wafer/worker.hpp>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>

#include <nlohmann/json.hpp>

#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <libpq-fe.h>
#include <map>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>

namespace asio = boost::asio;
namespace store = wafer::store;
using nlohmann::json;

namespace {

struct options {
    std::string conninfo;
    std::string schema;
    std::string base_url;
    std::string name;
    std::size_t concurrency = 4;
    std::chrono::milliseconds ttl{2'000};
    std::chrono::milliseconds work{0};
    /// worker_options::spread_children: pipeline steps go through the queue.
    bool spread = false;
};

options parse(int argc, char** argv) {
    options o;
    for (int i = 1; i + 1 < argc; i += 2) {
        const std::string k = argv[i];
        const std::string v = argv[i + 1];
        if (k == "--store") {
            o.conninfo = v;
        } else if (k == "--schema") {
            o.schema = v;
        } else if (k == "--base-url") {
            o.base_url = v;
        } else if (k == "--name") {
            o.name = v;
        } else if (k == "--concurrency") {
            o.concurrency = std::stoul(v);
        } else if (k == "--ttl-ms") {
            o.ttl = std::chrono::milliseconds(std::stol(v));
        } else if (k == "--spread") {
            o.spread = v == "1";
        } else if (k == "--work-ms") {
            o.work = std::chrono::milliseconds(std::stol(v));
        } else {
            throw std::invalid_argument("unknown option " + k);
        }
    }
    if (o.conninfo.empty() || o.schema.empty() || o.base_url.empty() || o.name.empty()) {
        throw std::invalid_argument("--store, --schema, --base-url and --name are required");
    }
    return o;
}

/// Inserts one row into `side` (a connection per call: this is a test's side effect, not a
/// fast path).
void record(const options& o, const std::string& key) {
    PGconn* c = PQconnectdb(o.conninfo.c_str());
    if (PQstatus(c) != CONNECTION_OK) {
        const std::string why = PQerrorMessage(c);
        PQfinish(c);
        throw std::runtime_error("side table: " + why);
    }
    const std::string sql =
        "INSERT INTO \"" + o.schema + "\".side (call_key, worker) VALUES ($1, $2)";
    const char* params[2] = {key.c_str(), o.name.c_str()};
    PGresult* r = PQexecParams(c, sql.c_str(), 2, nullptr, params, nullptr, nullptr, 0);
    const bool ok = PQresultStatus(r) == PGRES_COMMAND_OK;
    const std::string why = ok ? "" : PQerrorMessage(c);
    PQclear(r);
    PQfinish(c);
    if (!ok) {
        throw std::runtime_error("side table: " + why);
    }
}

wafer::tools::tool record_tool(const options& o) {
    return wafer::tools::make_blocking_tool<json>(
        "record",
        "Records that the step ran",
        json{{"type", "object"}},
        [o](json, const wafer::tools::call_context& ctx) {
            std::this_thread::sleep_for(o.work / 2);
            record(o, ctx.idempotency_key);
            std::this_thread::sleep_for(o.work / 2);
            return std::string("recorded");
        }
    );
}

} // namespace

int main(int argc, char** argv) try {
    const options o = parse(argc, argv);
    asio::io_context ioc(1);
    store::postgres_options po;
    po.schema = o.schema;
    po.connect_timeout = std::chrono::seconds(30);
    std::shared_ptr<store::postgres_store> st;
    asio::co_spawn(
        ioc,
        store::postgres_store::async_open(ioc.get_executor(), o.conninfo, po),
        [&st](std::exception_ptr e, std::unique_ptr<store::postgres_store> s) {
            if (e) {
                std::rethrow_exception(e);
            }
            st = std::move(s);
        }
    );
    ioc.run();
    ioc.restart();
    store::postgres_queue_options qo;
    qo.poll_interval = std::chrono::milliseconds(250);
    auto queue = std::make_shared<store::postgres_queue>(*st, qo);

    wafer::api::client_config cc;
    cc.base_url = o.base_url;
    auto client = std::make_shared<wafer::api::client>(ioc.get_executor(), cc);
    auto model = std::make_shared<wafer::cerebras_model>(client, "zai-glm-4.7");

    wafer::agent_config child_cfg;
    child_cfg.name = "step";
    child_cfg.model = model;
    auto child_tools = std::make_shared<wafer::tools::registry>();
    child_tools->add(record_tool(o));
    child_cfg.tools = child_tools;
    const wafer::agent child(child_cfg);

    wafer::agent_config single_cfg = child_cfg;
    single_cfg.name = "single";
    const wafer::agent single(single_cfg);

    wafer::agent_config pipeline_cfg;
    pipeline_cfg.name = "pipeline";
    pipeline_cfg.model = model;
    auto pipeline_tools = std::make_shared<wafer::tools::registry>();
    pipeline_tools->add(child.as_tool("delegate", "Hands the step to a sub-agent"));
    pipeline_cfg.tools = pipeline_tools;
    const wafer::agent pipeline(pipeline_cfg);

    wafer::run_driver driver = [&](const store::run_claim& c, wafer::resume_options opts) {
        const wafer::agent& a = c.agent == "pipeline" ? pipeline
                                : c.agent == "step"   ? child
                                                      : single;
        return a.async_resume(c.run_id, std::move(opts));
    };
    wafer::worker_options wo;
    wo.name = o.name;
    wo.concurrency = o.concurrency;
    wo.lease_ttl = o.ttl;
    wo.claim_wait = std::chrono::milliseconds(500);
    wo.drain_timeout = std::chrono::seconds(5);
    wo.spread_children = o.spread;
    wo.child_max_attempts = 20; // as the test's own submissions: kills are not poison here
    wo.on_claim = [](const store::run_claim& c) {
        const auto now = std::chrono::duration_cast<std::chrono::milliseconds>(
                             std::chrono::system_clock::now().time_since_epoch()
        )
                             .count();
        std::printf("claim %s %lld\n", c.run_id.c_str(), static_cast<long long>(now));
        std::fflush(stdout);
    };
    wo.on_report = [](const wafer::worker_report& r) {
        std::printf(
            "end %s %s %s\n",
            r.run_id.c_str(),
            std::string(wafer::to_string(r.outcome)).c_str(),
            r.reason.c_str()
        );
        std::fflush(stdout);
    };
    wafer::worker w(st, queue, driver, wo);
    asio::signal_set signals(ioc, SIGTERM, SIGINT);
    signals.async_wait([&w](boost::system::error_code ec, int) {
        if (!ec) {
            w.drain();
        }
    });
    asio::co_spawn(ioc, w.async_run(), [&](std::exception_ptr e, wafer::worker_stats) {
        signals.cancel();
        if (e) {
            std::rethrow_exception(e);
        }
        ioc.stop();
    });
    ioc.run();
    return 0;
} catch (const std::exception& e) {
    std::fprintf(stderr, "wafer_queue_worker: %s\n", e.what());
    return 1;
}
