// Admission control against a rate-limited server: the same 200 concurrent one-turn runs through
// one client against `wafer-fake --tokens-per-minute L --minute-ms M`, first with admission off
// (SDK-style: the default retry policy, honouring Retry-After, real waits), then on. Prints wall
// time, 429 replies (as the fake counted them), failed runs, and tokens/s of the completed runs
// as a fraction of the limit, for each, and the ratio on/off.
//
// usage: wafer_admission_bench [--fake PATH] [--runs N] [--tokens-per-minute L] [--minute-ms M]
#include <wafer/agent.hpp>
#include <wafer/api/client.hpp>
#include <wafer/cerebras_model.hpp>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>

#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <exception>
#include <memory>
#include <spawn.h>
#include <stdexcept>
#include <string>
#include <sys/wait.h>
#include <unistd.h>
#include <vector>

#include "concurrent_runs.hpp"

extern char** environ;

namespace asio = boost::asio;

namespace {

/// Completion tokens of every reply (wafer-fake --bench-chunks: one token per chunk) and the
/// max_completion_tokens each request reserves: the same, so reservations match usage.
constexpr int completion_tokens = 20;

/// wafer-fake in its own process, for one phase (its windows start fresh); stop() reads the
/// counts it prints at exit.
struct fake_process {
    pid_t pid = -1;
    int err_fd = -1;
    std::string url;

    fake_process(const std::string& path, long long tokens_per_minute, long long minute_ms) {
        int out[2];
        int err[2];
        if (::pipe(out) != 0 || ::pipe(err) != 0) {
            throw std::runtime_error("pipe failed");
        }
        posix_spawn_file_actions_t fa;
        posix_spawn_file_actions_init(&fa);
        posix_spawn_file_actions_adddup2(&fa, out[1], STDOUT_FILENO);
        posix_spawn_file_actions_adddup2(&fa, err[1], STDERR_FILENO);
        for (int fd : {out[0], out[1], err[0], err[1]}) {
            posix_spawn_file_actions_addclose(&fa, fd);
        }
        std::vector<std::string> args{
            path,
            "--bench-chunks",
            std::to_string(completion_tokens),
            "--tokens-per-minute",
            std::to_string(tokens_per_minute),
            "--minute-ms",
            std::to_string(minute_ms)};
        std::vector<char*> argv;
        for (auto& a : args) {
            argv.push_back(a.data());
        }
        argv.push_back(nullptr);
        const int rc = ::posix_spawn(&pid, path.c_str(), &fa, nullptr, argv.data(), environ);
        posix_spawn_file_actions_destroy(&fa);
        ::close(out[1]);
        ::close(err[1]);
        err_fd = err[0];
        if (rc != 0) {
            ::close(out[0]);
            pid = -1;
            throw std::runtime_error("cannot start " + path + ": " + std::strerror(rc));
        }
        std::string line;
        char c = 0;
        while (::read(out[0], &c, 1) == 1 && c != '\n') {
            line += c;
        }
        ::close(out[0]);
        const std::string prefix = "listening on ";
        if (line.rfind(prefix, 0) != 0) {
            throw std::runtime_error(path + " did not report its port: '" + line + "'");
        }
        url = line.substr(prefix.size());
    }

    /// Stops the server; returns its "N requests, M rate-limited, T tokens counted" figures.
    struct counts {
        long long requests = -1, rate_limited = -1, tokens = -1;
    };
    counts stop() {
        counts c;
        if (pid <= 0) {
            return c;
        }
        ::kill(pid, SIGTERM);
        std::string text;
        char buf[512];
        for (ssize_t n; (n = ::read(err_fd, buf, sizeof buf)) > 0;) {
            text.append(buf, static_cast<std::size_t>(n));
        }
        ::waitpid(pid, nullptr, 0);
        pid = -1;
        std::sscanf(
            text.c_str(),
            "wafer-fake: %lld requests, %lld rate-limited, %lld tokens counted",
            &c.requests,
            &c.rate_limited,
            &c.tokens
        );
        return c;
    }
    ~fake_process() {
        stop();
        if (err_fd >= 0) {
            ::close(err_fd);
        }
    }
    fake_process(const fake_process&) = delete;
    fake_process& operator=(const fake_process&) = delete;
};

struct phase_result {
    double wall_s = 0;
    fake_process::counts server;
    wafer::testing::runs_outcome runs;
    double fraction = 0; // tokens/s of the completed runs over the limit per second
};

phase_result run_phase(
    const std::string& fake, bool admission, std::size_t runs, long long tpm, long long minute_ms
) {
    fake_process server(fake, tpm, minute_ms);
    asio::io_context ioc(1);
    wafer::api::client_config cc;
    cc.base_url = server.url;
    cc.admission.enabled = admission;
    if (admission) {
        // The account's documented limit, known before the first reply (headers confirm it).
        cc.admission.tokens_per_minute = tpm;
        cc.admission.minute = std::chrono::milliseconds(minute_ms);
    }
    auto client = std::make_shared<wafer::api::client>(ioc.get_executor(), cc);
    wafer::agent_config cfg;
    cfg.model = std::make_shared<wafer::cerebras_model>(client, "zai-glm-4.7");
    cfg.request.max_completion_tokens = completion_tokens;
    cfg.limits.max_turns = 1;
    auto a = std::make_shared<const wafer::agent>(cfg);
    auto out = std::make_shared<wafer::testing::runs_outcome>();
    const auto started = std::chrono::steady_clock::now();
    asio::co_spawn(ioc, wafer::testing::run_concurrently(a, out, runs), [](std::exception_ptr e) {
        if (e) {
            std::rethrow_exception(e);
        }
    });
    ioc.run();
    phase_result r;
    r.wall_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
    r.server = server.stop();
    r.runs = *out;
    const double limit_per_s = static_cast<double>(tpm) * 1000.0 / static_cast<double>(minute_ms);
    r.fraction = static_cast<double>(out->tokens) / r.wall_s / limit_per_s;
    return r;
}

void print(const char* name, const phase_result& r, std::size_t runs) {
    std::printf(
        "admission %-3s: wall %.2f s, 429s %lld (of %lld requests), failed runs %zu/%zu, "
        "tokens/s %.0f = %.2f of the limit, max queue wait %.0f ms\n",
        name,
        r.wall_s,
        r.server.rate_limited,
        r.server.requests,
        r.runs.failed,
        runs,
        static_cast<double>(r.runs.tokens) / r.wall_s,
        r.fraction,
        static_cast<double>(r.runs.max_queue_wait.count()) / 1000.0
    );
}

std::string default_fake_path(const char* argv0) {
    const std::string self = argv0;
    const auto slash = self.rfind('/');
    return (slash == std::string::npos ? std::string(".") : self.substr(0, slash)) +
           "/../tests/support/wafer-fake";
}

} // namespace

int main(int argc, char** argv) {
    std::string fake = default_fake_path(argv[0]);
    std::size_t runs = 200;
    long long tpm = 500;
    long long minute_ms = 250;
    for (int i = 1; i + 1 < argc; i += 2) {
        const std::string flag = argv[i];
        const std::string value = argv[i + 1];
        if (flag == "--fake") {
            fake = value;
        } else if (flag == "--runs") {
            runs = std::stoul(value);
        } else if (flag == "--tokens-per-minute") {
            tpm = std::stoll(value);
        } else if (flag == "--minute-ms") {
            minute_ms = std::stoll(value);
        } else {
            std::fprintf(stderr, "wafer_admission_bench: unknown flag %s\n", flag.c_str());
            return 2;
        }
    }
    try {
        std::printf(
            "admission: %zu concurrent runs, %d completion tokens each, against wafer-fake at "
            "%lld tokens per %lld ms\n",
            runs,
            completion_tokens,
            tpm,
            minute_ms
        );
        const phase_result off = run_phase(fake, false, runs, tpm, minute_ms);
        print("off", off, runs);
        const phase_result on = run_phase(fake, true, runs, tpm, minute_ms);
        print("on", on, runs);
        std::printf(
            "admission on/off: tokens/s ratio %.2f, wall time ratio %.2f, 429s %lld vs %lld "
            "(target: on >= 0.90 of the limit)\n",
            off.fraction > 0 ? on.fraction / off.fraction : 0.0,
            off.wall_s > 0 ? on.wall_s / off.wall_s : 0.0,
            on.server.rate_limited,
            off.server.rate_limited
        );
    } catch (const std::exception& e) {
        std::fprintf(stderr, "wafer_admission_bench: %s\n", e.what());
        return 1;
    }
    return 0;
}
