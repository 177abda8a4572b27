// The stdio transport: a server started as a child process, messages on its stdin and stdout,
// its stderr drained (and its tail kept for errors), its exit ending the connection.
#pragma once

#include <wafer/tools/mcp/transport.hpp>

#include <boost/asio/any_io_executor.hpp>

#include <functional>
#include <memory>
#include <string_view>

#include "mcp/stdio_process.hpp"

namespace wafer::tools::mcp::detail {

class stdio_transport final : public transport {
public:
    /// Starts the program. Throws std::system_error when it cannot.
    stdio_transport(
        const boost::asio::any_io_executor& ex,
        const spawn_request& request,
        std::function<void(std::string_view)> on_stderr
    );
    ~stdio_transport() override;
    stdio_transport(const stdio_transport&) = delete;
    stdio_transport& operator=(const stdio_transport&) = delete;

    void start(std::weak_ptr<transport_events> events) override;
    void send(std::string messages) override;
    boost::asio::awaitable<void> async_close(std::chrono::milliseconds grace) override;
    void abort() noexcept override;

    struct state;

private:
    std::shared_ptr<state> st_;
};

} // namespace wafer::tools::mcp::detail
