// Client CPU per streamed chunk: opens one stream against a (fake) server and pulls every chunk,
// measuring getrusage(RUSAGE_SELF) around the streaming only (not connect or the request).
//
// usage: wafer_stream_bench <base_url> [--mode next|try_next] [--model M]
// prints: chunks=<n> client_cpu_us=<total> client_cpu_us_per_chunk=<x> wall_ms=<w>
#include <wafer/api/client.hpp>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <exception>
#include <string>
#include <sys/resource.h>

namespace {

double cpu_us() {
    rusage ru{};
    getrusage(RUSAGE_SELF, &ru);
    auto us = [](const timeval& tv) {
        return static_cast<double>(tv.tv_sec) * 1e6 + static_cast<double>(tv.tv_usec);
    };
    return us(ru.ru_utime) + us(ru.ru_stime);
}

struct result {
    std::size_t chunks = 0;
    std::size_t content_bytes = 0;
    double cpu = 0;
    double wall_ms = 0;
};

boost::asio::awaitable<void> run(wafer::api::client& c, std::string model, bool fast, result& r) {
    wafer::api::chat_request req;
    req.model = std::move(model);
    req.messages.push_back(wafer::api::message{.role = wafer::api::role::user, .content = "bench"});
    auto s = co_await c.async_stream(req);
    const double cpu0 = cpu_us();
    const auto t0 = std::chrono::steady_clock::now();
    boost::system::error_code ec;
    for (;;) {
        const wafer::api::chunk_view* ch = fast ? s.try_next(ec) : nullptr;
        if (!ch) {
            if (ec) {
                throw wafer::error(ec, s.diag());
            }
            ch = co_await s.next();
            if (!ch) {
                break;
            }
        }
        ++r.chunks;
        r.content_bytes += ch->content.size();
    }
    r.cpu = cpu_us() - cpu0;
    r.wall_ms =
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
}

} // namespace

int main(int argc, char** argv) {
    if (argc < 2) {
        std::fprintf(stderr, "usage: %s <base_url> [--mode next|try_next] [--model M]\n", argv[0]);
        return 2;
    }
    std::string base = argv[1];
    bool fast = true;
    std::string model = "zai-glm-4.7";
    for (int i = 2; i + 1 < argc; i += 2) {
        if (std::strcmp(argv[i], "--mode") == 0) {
            fast = std::strcmp(argv[i + 1], "next") != 0;
        } else if (std::strcmp(argv[i], "--model") == 0) {
            model = argv[i + 1];
        }
    }
    boost::asio::io_context ioc(1);
    wafer::api::client c(
        ioc.get_executor(),
        wafer::api::client_config{.base_url = base, .max_response_bytes = std::size_t(1) << 40}
    );
    result r;
    std::exception_ptr failure;
    boost::asio::co_spawn(ioc, run(c, model, fast, r), [&failure](std::exception_ptr e) {
        failure = e;
    });
    ioc.run();
    if (failure) {
        try {
            std::rethrow_exception(failure);
        } catch (const std::exception& e) {
            std::fprintf(stderr, "stream failed: %s\n", e.what());
            return 1;
        }
    }
    const double per = r.chunks ? r.cpu / static_cast<double>(r.chunks) : 0.0;
    std::printf(
        "chunks=%zu content_bytes=%zu client_cpu_us=%.0f client_cpu_us_per_chunk=%.3f wall_ms=%.1f "
        "mode=%s\n",
        r.chunks,
        r.content_bytes,
        r.cpu,
        per,
        r.wall_ms,
        fast ? "try_next" : "next"
    );
    return 0;
}
