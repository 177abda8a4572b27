// wafer-fake: the fake Cerebras server as a process, for `make demo`, benchmarks and users'
// tests in other languages. See tests/support/README.md.
#include <wafer/testing/fake_server.hpp>
#include <wafer/testing/offline_model.hpp>
#include <wafer/testing/offline_session.hpp>
#include <wafer/testing/script.hpp>

#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>

#include <charconv>
#include <chrono>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <string>
#include <string_view>

namespace {

constexpr std::string_view usage_text =
    "usage: wafer-fake [--port N] [--tls-cert FILE --tls-key FILE] [--api-key KEY]\n"
    "                  [--script FILE.json | --session] [--done] [--chunk-delay-ms N]\n"
    "                  [--bench-chunks N] [--tokens-per-minute N] [--requests-per-minute N]\n"
    "                  [--requests-per-day N] [--minute-ms N]\n"
    "\n"
    "Serves a Cerebras-compatible Chat Completions API on 127.0.0.1 until SIGINT/SIGTERM.\n"
    "Prints one line 'listening on http(s)://127.0.0.1:PORT' when ready.\n"
    "  --port N            port to bind (default 0: a free port)\n"
    "  --tls-cert/--tls-key  PEM certificate chain and key: serve HTTPS\n"
    "  --api-key KEY       require 'Authorization: Bearer KEY' (401/403 otherwise)\n"
    "  --script FILE       JSON array of replies, used in order; then 500 (see README)\n"
    "  --session           the offline coding session of `wafer run` (fixes examples/sample_repo)\n"
    "  --done              end every stream with 'data: [DONE]'\n"
    "  --chunk-delay-ms N  pause N ms between streamed chunks (when the reply sets none)\n"
    "  --bench-chunks N    streaming replies are N one-token content chunks (\" tok\")\n"
    "  --tokens-per-minute N, --requests-per-minute N, --requests-per-day N\n"
    "                      enforce Cerebras-style rate limits (429 with Cerebras's body)\n"
    "  --minute-ms N       length of the rate limits' minute (default 60000)\n"
    "With a limit, prints 'wafer-fake: N requests, M rate-limited, T tokens counted' on stderr\n"
    "at exit.\n"
    "Without --script or --bench-chunks the offline stand-in model answers.\n";

struct options {
    wafer::testing::fake_server_config server;
    std::string script;
    bool done = false;
    bool session = false;
    std::size_t chunk_delay_ms = 0;
    std::size_t bench_chunks = 0;
};

[[noreturn]] void usage_error(const std::string& message) {
    std::fprintf(stderr, "wafer-fake: %s\n%s", message.c_str(), usage_text.data());
    std::exit(2);
}

std::size_t parse_count(std::string_view flag, std::string_view value, std::size_t max) {
    std::size_t n = 0;
    const auto* end = value.data() + value.size();
    const auto [ptr, ec] = std::from_chars(value.data(), end, n);
    if (ec != std::errc{} || ptr != end || n > max) {
        usage_error(std::string(flag) + " needs a number up to " + std::to_string(max));
    }
    return n;
}

options parse(int argc, char** argv) {
    options o;
    for (int i = 1; i < argc; ++i) {
        const std::string_view flag = argv[i];
        if (flag == "--help" || flag == "-h") {
            std::fputs(usage_text.data(), stdout);
            std::exit(0);
        }
        if (flag == "--done") {
            o.done = true;
            continue;
        }
        if (flag == "--session") {
            o.session = true;
            continue;
        }
        if (i + 1 >= argc) {
            usage_error("missing value after " + std::string(flag));
        }
        const std::string_view value = argv[++i];
        if (flag == "--port") {
            o.server.port = static_cast<unsigned short>(parse_count(flag, value, 65535));
        } else if (flag == "--tls-cert") {
            o.server.tls_cert_file = value;
        } else if (flag == "--tls-key") {
            o.server.tls_key_file = value;
        } else if (flag == "--api-key") {
            o.server.api_key = std::string(value);
        } else if (flag == "--script") {
            o.script = value;
        } else if (flag == "--chunk-delay-ms") {
            o.chunk_delay_ms = parse_count(flag, value, 600000);
        } else if (flag == "--bench-chunks") {
            o.bench_chunks = parse_count(flag, value, 100000000);
        } else if (flag == "--tokens-per-minute") {
            o.server.limits.tokens_per_minute =
                static_cast<std::int64_t>(parse_count(flag, value, 1'000'000'000'000));
        } else if (flag == "--requests-per-minute") {
            o.server.limits.requests_per_minute =
                static_cast<std::int64_t>(parse_count(flag, value, 1'000'000'000));
        } else if (flag == "--requests-per-day") {
            o.server.limits.requests_per_day =
                static_cast<std::int64_t>(parse_count(flag, value, 1'000'000'000));
        } else if (flag == "--minute-ms") {
            o.server.limits.minute = std::chrono::milliseconds(parse_count(flag, value, 3'600'000));
            if (o.server.limits.minute.count() == 0) {
                usage_error("--minute-ms must be at least 1");
            }
        } else {
            usage_error("unknown option " + std::string(flag));
        }
    }
    if (o.server.tls_cert_file.empty() != o.server.tls_key_file.empty()) {
        usage_error("--tls-cert and --tls-key go together");
    }
    if (int{!o.script.empty()} + int{o.bench_chunks > 0} + int{o.session} > 1) {
        usage_error("--script, --session and --bench-chunks exclude each other");
    }
    return o;
}

/// The delivery flags apply to every reply that does not set its own.
wafer::testing::reply with_flags(wafer::testing::reply r, bool done, std::size_t delay_ms) {
    if (done) {
        r.how.done_marker = true;
    }
    if (delay_ms > 0 && r.how.chunk_delay.count() == 0) {
        r.how.chunk_delay = std::chrono::milliseconds(delay_ms);
    }
    return r;
}

/// Responder for the streaming benchmark: N content chunks of one short token each.
struct bench_responder {
    std::string content;
    bool done = false;
    std::size_t delay_ms = 0;

    wafer::testing::reply operator()(const wafer::api::chat_request&) const {
        wafer::testing::delivery how;
        how.chunk_chars = 4; // " tok": one token per chunk
        return with_flags(
            wafer::testing::reply::of({.content = content, .model = {}}, how), done, delay_ms
        );
    }
};

struct offline_responder {
    bool done = false;
    bool session = false;
    std::size_t delay_ms = 0;

    wafer::testing::reply operator()(const wafer::api::chat_request& req) const {
        return with_flags(
            session ? wafer::testing::offline_session_reply(req)
                    : wafer::testing::offline_reply(req),
            done,
            delay_ms
        );
    }
};

} // namespace

int main(int argc, char** argv) {
    const options opts = parse(argc, argv);
    try {
        boost::asio::io_context ioc(1);
        wafer::testing::fake_server server(ioc.get_executor(), opts.server);

        if (!opts.script.empty()) {
            for (auto& r : wafer::testing::load_script(opts.script)) {
                server.enqueue(with_flags(std::move(r), opts.done, opts.chunk_delay_ms));
            }
        } else if (opts.bench_chunks > 0) {
            bench_responder bench;
            bench.content.reserve(opts.bench_chunks * 4);
            for (std::size_t i = 0; i < opts.bench_chunks; ++i) {
                bench.content += " tok";
            }
            bench.done = opts.done;
            bench.delay_ms = opts.chunk_delay_ms;
            server.set_responder(std::move(bench));
        } else {
            server.set_responder(offline_responder{opts.done, opts.session, opts.chunk_delay_ms});
        }

        boost::asio::signal_set signals(ioc, SIGINT, SIGTERM);
        signals.async_wait([&](const boost::system::error_code&, int) {
            server.stop();
            ioc.stop();
        });

        std::printf("listening on %s\n", server.base_url().c_str());
        std::fflush(stdout);
        ioc.run();
        const auto& l = opts.server.limits;
        if (l.tokens_per_minute || l.requests_per_minute || l.requests_per_day) {
            // What the limits did, for benchmarks that count 429s (bench/admission_bench.cpp).
            std::fprintf(
                stderr,
                "wafer-fake: %zu requests, %zu rate-limited, %lld tokens counted\n",
                server.requests().size(),
                server.rate_limited_count(),
                static_cast<long long>(server.tokens_counted())
            );
        }
    } catch (const std::exception& e) {
        std::fprintf(stderr, "wafer-fake: %s\n", e.what());
        return 1;
    }
    return 0;
}
