// How fast `wafer ask` writes a stream (issue 14, item 3): the streamed text goes out in
// coalesced writes (a few per stream, counted by the kernel in /proc/PID/io), never one write()
// per chunk, and still promptly when the stream pauses.
#include "cli_harness.hpp"

#ifdef WAFER_CLI_PATH

using namespace wafer::testing::cli;

namespace {

/// Reads the child's stdout and stderr until both close, then its write(2) count as the kernel
/// kept it (syscw in /proc/PID/io, readable while the exited child is not yet reaped), then
/// reaps it. -1 when it cannot be read.
long drain_and_count_writes(spawned_wafer& w, process_result& r) {
    pollfd fds[2] = {{w.out_fd, POLLIN, 0}, {w.err_fd, POLLIN, 0}};
    std::string* sinks[2] = {&r.out, &r.err};
    int open_fds = 2;
    const auto end = std::chrono::steady_clock::now() + 60s;
    while (open_fds > 0 && std::chrono::steady_clock::now() < end) {
        if (::poll(fds, 2, 1000) <= 0) {
            continue;
        }
        for (int i = 0; i < 2; ++i) {
            if (fds[i].fd < 0 || fds[i].revents == 0) {
                continue;
            }
            char buf[65536];
            const ssize_t n = ::read(fds[i].fd, buf, sizeof buf);
            if (n > 0) {
                sinks[i]->append(buf, static_cast<std::size_t>(n));
            } else {
                fds[i].fd = -1;
                --open_fds;
            }
        }
    }
    long writes = -1;
    siginfo_t info{};
    if (::waitid(P_PID, static_cast<id_t>(w.pid), &info, WEXITED | WNOWAIT) == 0) {
        std::ifstream io("/proc/" + std::to_string(w.pid) + "/io");
        for (std::string key; io >> key;) {
            if (key == "syscw:") {
                io >> writes;
            }
        }
    }
    r.status = w.reap(std::chrono::steady_clock::now() + 10s, r);
    return writes;
}

} // namespace

TEST_SUITE("integration/cli_output") {

    TEST_CASE("ask: 20,000 streamed chunks go out in a few dozen writes, not one per chunk") {
        served s;
        std::string text;
        for (int i = 0; i < 20000; ++i) {
            text += " tok";
        }
        delivery how;
        how.chunk_chars = 4; // one " tok" per chunk
        s.server.enqueue(reply::of({.content = text}, how));
        long writes = -1;
        auto r = s.while_serving([&] {
            spawned_wafer w({"ask", "--base-url", s.server.base_url(), "q"}, {});
            process_result res;
            writes = drain_and_count_writes(w, res);
            return res;
        });
        CHECK(r.status == 0);
        CHECK(r.out == text + "\n");
        if (writes < 0) {
            MESSAGE("/proc/PID/io is not readable here: the write count is not checked");
        } else {
            INFO("write(2) calls: " << writes);
            CHECK(writes < 500); // one per chunk would be 20,000
        }
    }

    TEST_CASE("ask: text is written while the stream pauses, not held until it ends") {
        served s;
        delivery how;
        how.chunk_chars = 6;
        how.chunk_delay = 700ms;
        s.server.enqueue(reply::of({.content = "first second third"}, how));
        auto r = s.while_serving([&] {
            spawned_wafer w({"ask", "--base-url", s.server.base_url(), "q"}, {});
            std::string out;
            const bool early = w.read_stdout_until(out, "first", 20s);
            CHECK(early);
            CHECK_FALSE(contains(out, "third")); // the rest is still on its way
            process_result res = w.collect(20s);
            res.out = out + res.out;
            return res;
        });
        CHECK(r.status == 0);
        CHECK(r.out == "first second third\n");
    }
}

#endif // WAFER_CLI_PATH
