// How fast `wafer ask` writes a stream (issue 14, item 3): the streamed text goes out in
// coalesced writes (a few per stream, counted by the kernel in /proc/PID/io), never one write()
// per chunk, and still promptly when the stream pauses.
#include "cli_harness.hpp"

#ifdef WAFER_CLI_PATH

using namespace wafer::testing::cli;

namespace {

/// The process's write(2) count as the kernel keeps it (syscw in /proc/PID/io, readable while
/// the exited child is not yet reaped); -1 when it cannot be read.
long write_count(pid_t pid) {
    long writes = -1;
    std::ifstream io("/proc/" + std::to_string(pid) + "/io");
    for (std::string key; io >> key;) {
        if (key == "syscw:") {
            io >> writes;
        }
    }
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
            return w.collect(60s, [&](pid_t pid) { writes = write_count(pid); });
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
