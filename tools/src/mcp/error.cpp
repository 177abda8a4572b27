#include <wafer/tools/mcp/error.hpp>

#include <utility>

namespace wafer::tools::mcp {
namespace {

// boost::system::error_category's destructor is non-virtual by design (categories are static).
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wnon-virtual-dtor"
class category final : public boost::system::error_category {
public:
    const char* name() const noexcept override { return "wafer.mcp"; }
    std::string message(int ev) const override {
        switch (static_cast<errc>(ev)) {
        case errc::rpc_error:
            return "the MCP server answered with an error";
        case errc::timeout:
            return "the MCP server did not answer in time";
        case errc::cancelled:
            return "the MCP request was cancelled";
        case errc::closed:
            return "the MCP server connection closed";
        case errc::protocol:
            return "the MCP server broke the protocol";
        case errc::spawn_failed:
            return "the MCP server could not be started";
        case errc::bad_config:
            return "the MCP server configuration is unusable";
        case errc::transport:
            return "the MCP transport failed";
        case errc::unauthorized:
            return "the MCP server requires authorization";
        }
        return "unknown MCP error";
    }
};
#pragma GCC diagnostic pop

std::string one_line(const std::string& server, const std::string& detail) {
    return "MCP server \"" + server + "\": " + detail;
}

} // namespace

const boost::system::error_category& error_category() noexcept {
    static const category c;
    return c;
}

error::error(errc code, std::string server, std::string detail, std::optional<rpc_error> rpc)
    : boost::system::system_error(make_error_code(code), one_line(server, detail)),
      server_(std::move(server)), detail_(std::move(detail)), rpc_(std::move(rpc)) {}

} // namespace wafer::tools::mcp
