// Errors of the MCP client: a code per failure a caller may branch on, and the exception that
// carries it with the server's own error when there is one.
#pragma once

#include <wafer/tools/mcp/jsonrpc.hpp>

#include <boost/system/error_code.hpp>
#include <boost/system/system_error.hpp>

#include <optional>
#include <string>
#include <type_traits>

namespace wafer::tools::mcp {

/// What went wrong talking to an MCP server.
enum class errc {
    /// The server answered the request with a JSON-RPC error (error::rpc() has it).
    rpc_error = 1,
    /// No answer within the request's timeout (or its hard maximum); the request was cancelled
    /// on the server (notifications/cancelled).
    timeout,
    /// The caller cancelled the request; the server was told (notifications/cancelled).
    cancelled,
    /// The connection ended (the server exited or closed its stdout) before the answer came, or
    /// the client was closed.
    closed,
    /// The server broke the protocol: an initialize reply without a usable protocol version,
    /// a version this client does not speak, a result of the wrong shape.
    protocol,
    /// The server could not be started (no such program, not executable, bad working directory).
    spawn_failed,
    /// The server configuration is unusable (no command, a bad name, a bad URL).
    bad_config,
    /// The transport failed: the HTTP server could not be reached, answered a status the
    /// request cannot go on with, or broke the stream before the answer.
    transport,
    /// The HTTP server requires authorization (401 or 403) that this client could not give.
    unauthorized,
};

/// The error category of mcp::errc ("wafer.mcp").
const boost::system::error_category& error_category() noexcept;

inline boost::system::error_code make_error_code(errc e) noexcept {
    return {static_cast<int>(e), error_category()};
}

/// The exception the client's operations throw. what() is one line for humans, naming the
/// server; it never holds the environment passed to the server.
class error : public boost::system::system_error {
public:
    error(errc code, std::string server, std::string detail, std::optional<rpc_error> rpc = {});

    /// The server's name in the configuration.
    const std::string& server() const noexcept { return server_; }
    /// What happened, without the server's name.
    const std::string& detail() const noexcept { return detail_; }
    /// Set for errc::rpc_error: the server's code, message and data.
    const std::optional<rpc_error>& rpc() const noexcept { return rpc_; }

private:
    std::string server_;
    std::string detail_;
    std::optional<rpc_error> rpc_;
};

} // namespace wafer::tools::mcp

namespace boost::system {
template <>
struct is_error_code_enum<wafer::tools::mcp::errc> : std::true_type {};
} // namespace boost::system
