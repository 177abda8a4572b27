// The README's short tour is examples/00_tour.cpp, verbatim: the README shows the file whole, and
// the built program runs against the fake server (two parallel weather calls, then the answer)
// and, against an endpoint that is down, prints the run's error.
#include <wafer/testing/fake_server.hpp>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>

#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

#include <array>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>
#include <sys/wait.h>
#include <thread>

namespace {

std::string slurp(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    REQUIRE_MESSAGE(in.good(), "cannot read " << path);
    std::ostringstream s;
    s << in.rdbuf();
    return s.str();
}

#ifdef WAFER_TOUR_PATH
struct exit_and_output {
    int status = -1;
    std::string output; // stdout and stderr, interleaved
};

// Runs the tour with `env` ("NAME=value ..."), its output captured.
exit_and_output run_tour(const std::string& env) {
    const std::string cmd =
        "env -u CEREBRAS_API_KEY -u CEREBRAS_BASE_URL -u HTTPS_PROXY -u https_proxy " + env + " " +
        WAFER_TOUR_PATH + " 2>&1";
    FILE* p = ::popen(cmd.c_str(), "r");
    REQUIRE(p != nullptr);
    exit_and_output r;
    std::array<char, 4096> buf{};
    std::size_t n = 0;
    while ((n = std::fread(buf.data(), 1, buf.size(), p)) > 0) {
        r.output.append(buf.data(), n);
    }
    const int w = ::pclose(p);
    r.status = WIFEXITED(w) ? WEXITSTATUS(w) : -1;
    return r;
}
#endif

} // namespace

TEST_SUITE("integration/examples/tour") {
    TEST_CASE("the README shows examples/00_tour.cpp whole, as a cpp block") {
        const std::string readme = slurp(std::string(WAFER_SOURCE_DIR) + "/README.md");
        const std::string tour = slurp(std::string(WAFER_SOURCE_DIR) + "/examples/00_tour.cpp");
        CHECK_MESSAGE(
            readme.find("```cpp\n" + tour + "```\n") != std::string::npos,
            "README.md must show examples/00_tour.cpp verbatim in a ```cpp block"
        );
    }

#ifdef WAFER_TOUR_PATH
    TEST_CASE("the tour calls the weather tool for both cities and prints the answer") {
        namespace asio = boost::asio;
        using wafer::testing::reply;
        using wafer::testing::scripted_turn;
        asio::io_context ioc;
        wafer::testing::fake_server_config cfg;
        cfg.api_key = "sk-tour";
        wafer::testing::fake_server server(ioc.get_executor(), cfg);
        scripted_turn calls;
        calls.tool_calls = {
            {"", "weather", R"({"city":"Florence"})"}, {"", "weather", R"({"city":"Rome"})"}};
        server.enqueue(reply::of(calls));
        scripted_turn answer;
        answer.content = "Florence and Rome: 22 C and sunny.";
        server.enqueue(reply::of(answer));

        auto guard = asio::make_work_guard(ioc);
        std::thread t([&ioc] { ioc.run(); });
        const auto r = run_tour("CEREBRAS_API_KEY=sk-tour CEREBRAS_BASE_URL=" + server.base_url());
        ioc.stop();
        t.join();

        INFO(r.output);
        CHECK(r.status == 0);
        CHECK(
            r.output.find("Florence and Rome: 22 C and sunny.\n(completed, 2 turns") !=
            std::string::npos
        );
        // The events went out as JSON lines, and both tool results reached the model.
        CHECK(r.output.find(R"("type":"tool_call_finished")") != std::string::npos);
        const auto& reqs = server.requests();
        REQUIRE(reqs.size() >= 2);
        const std::string second = reqs.back().body;
        CHECK(second.find("22 C and sunny in Florence") != std::string::npos);
        CHECK(second.find("22 C and sunny in Rome") != std::string::npos);
    }

    TEST_CASE("the tour prints the run's error when the endpoint is down") {
        // A port nothing listens on: bind one, then close it.
        std::string url;
        {
            boost::asio::io_context ioc;
            wafer::testing::fake_server gone(ioc.get_executor());
            url = gone.base_url();
        }
        const auto r = run_tour("CEREBRAS_API_KEY=sk-tour CEREBRAS_BASE_URL=" + url);
        INFO(r.output);
        CHECK(r.status == 1);
        CHECK(r.output.find("error: ") != std::string::npos);
        CHECK(r.output.find("sk-tour") == std::string::npos);
    }

    TEST_CASE("a malformed base URL is one line, not a crash") {
        const auto r = run_tour("CEREBRAS_API_KEY=sk-tour CEREBRAS_BASE_URL=ftp://nowhere");
        INFO(r.output);
        CHECK(r.status == 1);
        CHECK(r.output.find("exception: ") == 0);
    }
#endif
}
