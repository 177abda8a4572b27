// What the MCP tests share: where the npm-installed servers are (WAFER_MCP_SERVERS, set by
// ctest's mcp entry), JSON from text, free ports of 127.0.0.1, and server-everything over
// Streamable HTTP as a child process.
#pragma once

#include <wafer/tools/mcp/error.hpp>

#include <boost/asio/awaitable.hpp>

#include <nlohmann/json.hpp>

#include <arpa/inet.h>
#include <chrono>
#include <csignal>
#include <cstdlib>
#include <fcntl.h>
#include <filesystem>
#include <fstream>
#include <netinet/in.h>
#include <sstream>
#include <string>
#include <string_view>
#include <sys/socket.h>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>

namespace wafer::testing::mcp_servers {

/// The node_modules directory of the pinned servers; empty when the tests run without them.
inline std::string servers_dir() {
    const char* d = std::getenv("WAFER_MCP_SERVERS");
    return d ? d : "";
}

inline bool no_servers() {
    return servers_dir().empty();
}

/// JSON from text (in coroutines, instead of braced initializers: see README's GCC 12 note).
inline nlohmann::json obj(std::string_view text) {
    return nlohmann::json::parse(text);
}

/// A port of 127.0.0.1 that was free a moment ago.
inline unsigned short free_port() {
    const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
    socklen_t len = sizeof a;
    ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
    ::close(fd);
    return ntohs(a.sin_port);
}

/// Whether something accepts connections on 127.0.0.1:port.
inline bool accepts(unsigned short port) {
    const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons(port);
    const bool ok = ::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
    ::close(fd);
    return ok;
}

/// server-everything's streamableHttp transport on a port of 127.0.0.1, its output in a log file.
class http_everything {
public:
    explicit http_everything(unsigned short port = free_port()) : port_(port) {
        log_ =
            std::filesystem::temp_directory_path() /
            ("wafer-mcp-http-" + std::to_string(::getpid()) + "-" + std::to_string(port_) + ".log");
        start();
    }
    ~http_everything() {
        stop();
        std::error_code ec;
        std::filesystem::remove(log_, ec);
    }
    http_everything(const http_everything&) = delete;
    http_everything& operator=(const http_everything&) = delete;

    /// Starts the server and waits (up to 15 s) until it accepts connections.
    void start() {
        const std::string script =
            servers_dir() + "/@modelcontextprotocol/server-everything/dist/index.js";
        pid_ = ::fork();
        if (pid_ == 0) {
            const int fd = ::open(log_.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0600);
            ::dup2(fd, 1);
            ::dup2(fd, 2);
            ::setenv("PORT", std::to_string(port_).c_str(), 1);
            ::execlp("node", "node", script.c_str(), "streamableHttp", static_cast<char*>(nullptr));
            ::_exit(127);
        }
        for (int i = 0; i < 300 && !accepts(port_); ++i) {
            std::this_thread::sleep_for(std::chrono::milliseconds(50));
        }
    }
    void stop() {
        if (pid_ > 0) {
            ::kill(pid_, SIGKILL);
            ::waitpid(pid_, nullptr, 0);
            pid_ = -1;
        }
    }
    std::string url() const { return "http://127.0.0.1:" + std::to_string(port_) + "/mcp"; }
    unsigned short port() const { return port_; }
    /// What the server printed so far.
    std::string log() const {
        std::ifstream in(log_);
        std::stringstream ss;
        ss << in.rdbuf();
        return ss.str();
    }

private:
    unsigned short port_;
    std::filesystem::path log_;
    pid_t pid_ = -1;
};

/// What an operation that should fail threw: its code and text ("(no error)" when it did not
/// throw), and how long it took.
struct failure {
    tools::mcp::errc code{};
    std::string what;
    std::chrono::milliseconds took{};
};

/// Runs `f` (returning an awaitable), expecting a tools::mcp::error.
template <class F>
boost::asio::awaitable<failure> expect_error(F f) {
    const auto t0 = std::chrono::steady_clock::now();
    failure out;
    try {
        co_await f();
        out.what = "(no error)";
    } catch (const tools::mcp::error& e) {
        out.code = static_cast<tools::mcp::errc>(e.code().value());
        out.what = e.what();
    }
    out.took = std::chrono::duration_cast<std::chrono::milliseconds>(
        std::chrono::steady_clock::now() - t0
    );
    co_return out;
}

} // namespace wafer::testing::mcp_servers
