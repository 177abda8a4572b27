// wafer-mcp-fault-server (tests/mcp/fault_server) from the tests: started over stdio or
// Streamable HTTP, with a --log of what it received, and waiting for what another process
// writes.
#pragma once

#include <wafer/mcp/http_transport.hpp>
#include <wafer/tools/mcp/client.hpp>

#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <optional>
#include <poll.h>
#include <string>
#include <sys/wait.h>
#include <unistd.h>
#include <vector>

#include "temp_dir.hpp"

namespace wafer::testing::mcp_faults {

namespace fs = std::filesystem;
namespace mcp = wafer::tools::mcp;
using nlohmann::json;
using namespace std::chrono_literals;
using clock_type = std::chrono::steady_clock;

// A stdio fault server named `name` (errors and tool names show it).
inline mcp::stdio_server
faulty(std::string name, std::string fault, std::vector<std::string> extra = {}) {
    mcp::stdio_server s;
    s.name = std::move(name);
    s.command = WAFER_MCP_FAULT_SERVER;
    s.args = {"--fault", std::move(fault)};
    s.args.insert(s.args.end(), extra.begin(), extra.end());
    return s;
}

using wafer::testing::temp_dir;

// The lines of a fault server's --log.
inline std::vector<std::string> log_lines(const fs::path& p) {
    std::ifstream in(p);
    std::vector<std::string> out;
    std::string line;
    while (std::getline(in, line)) {
        out.push_back(line);
    }
    return out;
}

// The JSON-RPC messages of a log (HTTP request lines left out).
inline std::vector<json> log_messages(const fs::path& p) {
    std::vector<json> out;
    for (const auto& l : log_lines(p)) {
        json j = json::parse(l, nullptr, false);
        if (j.is_object()) {
            out.push_back(std::move(j));
        }
    }
    return out;
}

// The id of the tools/call of `tool` in a log, or null.
inline json call_id(const fs::path& p, const std::string& tool) {
    for (const auto& m : log_messages(p)) {
        if (m.value("method", "") == "tools/call" && m["params"].value("name", "") == tool) {
            return m["id"];
        }
    }
    return nullptr;
}

// Whether the log has notifications/cancelled for request `id`.
inline bool cancel_logged(const fs::path& p, const json& id) {
    for (const auto& m : log_messages(p)) {
        if (m.value("method", "") == "notifications/cancelled" && m.contains("params") &&
            m["params"].value("requestId", json()) == id) {
            return true;
        }
    }
    return false;
}

// Waits up to `limit` for `pred` (what another process writes may lag a little).
template <class P>
bool eventually(P pred, std::chrono::milliseconds bound = 5000ms) {
    const auto end = clock_type::now() + bound;
    while (!pred()) {
        if (clock_type::now() >= end) {
            return false;
        }
        ::usleep(20'000);
    }
    return true;
}

// eventually() on the client's executor: waits until `pred` holds or `bound` passed; whether
// it held.
inline boost::asio::awaitable<bool>
async_until(std::function<bool()> pred, std::chrono::milliseconds bound = 5000ms) {
    boost::asio::steady_timer t(co_await boost::asio::this_coro::executor);
    const auto end = clock_type::now() + bound;
    while (!pred()) {
        if (clock_type::now() >= end) {
            co_return false;
        }
        t.expires_after(10ms);
        boost::system::error_code ec;
        co_await t.async_wait(boost::asio::redirect_error(boost::asio::use_awaitable, ec));
    }
    co_return true;
}

inline bool has(const std::vector<std::string>& v, const std::string& s) {
    return std::find(v.begin(), v.end(), s) != v.end();
}

// A fault server over HTTP as a child process; its port comes from its first line of stdout.
class http_fault {
public:
    explicit http_fault(std::vector<std::string> args) {
        std::vector<std::string> argv_s{WAFER_MCP_FAULT_SERVER, "--http"};
        argv_s.insert(argv_s.end(), args.begin(), args.end());
        std::vector<char*> argv;
        for (auto& a : argv_s) {
            argv.push_back(a.data());
        }
        argv.push_back(nullptr);
        int p[2];
        REQUIRE(::pipe(p) == 0);
        pid_ = ::fork();
        if (pid_ == 0) {
            ::dup2(p[1], 1);
            ::close(p[0]);
            ::close(p[1]);
            ::execv(argv[0], argv.data());
            ::_exit(127);
        }
        ::close(p[1]);
        out_ = p[0];
        std::string line;
        const auto end = clock_type::now() + 10s;
        while (line.find('\n') == std::string::npos && clock_type::now() < end) {
            pollfd pfd{out_, POLLIN, 0};
            if (::poll(&pfd, 1, 100) <= 0) {
                continue;
            }
            char buf[64];
            const ssize_t n = ::read(out_, buf, sizeof buf);
            if (n <= 0) {
                break;
            }
            line.append(buf, static_cast<std::size_t>(n));
        }
        REQUIRE_MESSAGE(line.starts_with("PORT "), "the fault server did not start: " << line);
        port_ = std::stoi(line.substr(5));
    }
    ~http_fault() {
        if (!reaped_) {
            ::kill(pid_, SIGKILL);
            ::waitpid(pid_, nullptr, 0);
        }
        ::close(out_);
    }
    http_fault(const http_fault&) = delete;
    http_fault& operator=(const http_fault&) = delete;

    std::string url() const { return "http://127.0.0.1:" + std::to_string(port_) + "/mcp"; }
    /// The server exited (exit-mid-call): its wait status.
    std::optional<int> exit_status() {
        int status = 0;
        if (!reaped_ && ::waitpid(pid_, &status, WNOHANG) == pid_) {
            reaped_ = status;
        }
        return reaped_;
    }

private:
    pid_t pid_ = -1;
    int out_ = -1;
    int port_ = 0;
    std::optional<int> reaped_;
};

inline wafer::mcp::http_server http_at(std::string name, const http_fault& server) {
    wafer::mcp::http_server s;
    s.name = std::move(name);
    s.url = server.url();
    return s;
}

} // namespace wafer::testing::mcp_faults
