// MCP elicitation in the CLI: with a terminal, a server's elicitation/create (form mode) is asked
// there, field by field (elicit_form.hpp), one question on the terminal at a time with the
// approvals; without one the CLI does not declare elicitation, so no server waits for it.
#pragma once

#include <wafer/tools/mcp/client.hpp>

#include <nlohmann/json.hpp>

#include <memory>
#include <string>

namespace boost::asio {
class thread_pool;
}

namespace wafer::cli {

/// Asks the servers' forms on the terminal, on a thread of its own (the client's io thread goes
/// on meanwhile).
///
/// Thread safety: handler() and cancel_questions() from any thread.
class terminal_elicitor : public std::enable_shared_from_this<terminal_elicitor> {
public:
    terminal_elicitor();
    ~terminal_elicitor();
    terminal_elicitor(const terminal_elicitor&) = delete;
    terminal_elicitor& operator=(const terminal_elicitor&) = delete;

    /// For client_options::on_server_request of the server configured as `server` (the name
    /// shown). Keeps this object alive.
    tools::mcp::server_request_handler handler(std::string server);

    /// Gives up the form being asked and any later one: they end as "cancel".
    void cancel_questions();

private:
    std::unique_ptr<boost::asio::thread_pool> thread_;
    int cancel_fd_ = -1;
};

/// Asks the form of one elicitation/create (`params`) of `server` on the terminal and returns the
/// result to send (accept with content, decline, cancel). Errors: throws std::runtime_error for a
/// request that cannot be asked (not form mode, a schema elicit_form cannot show), after one
/// line on standard error. Blocking.
nlohmann::json
ask_elicitation(const std::string& server, const nlohmann::json& params, int cancel_fd);

} // namespace wafer::cli
