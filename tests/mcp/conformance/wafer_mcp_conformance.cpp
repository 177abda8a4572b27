// wafer-mcp-conformance URL: the client the official MCP conformance suite drives
// (`conformance client --command wafer-mcp-conformance --scenario NAME`). It reads the scenario
// from MCP_CONFORMANCE_SCENARIO (and MCP_CONFORMANCE_PROTOCOL_VERSION, MCP_CONFORMANCE_CONTEXT
// from the 0.2 suites), does what the scenario needs of a client with wafer's MCP client over
// Streamable HTTP, and exits 0. Logs go to stderr; stdout stays quiet.
#include <wafer/mcp/http_transport.hpp>
#include <wafer/tools/mcp/client.hpp>
#include <wafer/tools/mcp/elicitation.hpp>
#include <wafer/tools/mcp/server_tools.hpp>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_future.hpp>

#include <nlohmann/json.hpp>

#include <cstdlib>
#include <exception>
#include <iostream>
#include <string>
#include <string_view>

namespace asio = boost::asio;
namespace mcp = wafer::tools::mcp;
using nlohmann::json;

namespace {

std::string env(const char* name) {
    const char* v = std::getenv(name);
    return v ? v : "";
}

void say(std::string_view line) {
    std::cerr << "wafer-mcp-conformance: " << line << '\n';
}

// A protocol version this client speaks with the initialize handshake.
bool dated_handshake(std::string_view version) {
    for (const auto v : mcp::handshake_versions) {
        if (v == version) {
            return true;
        }
    }
    return false;
}

const mcp::tool_info* find_tool(const std::vector<mcp::tool_info>& tools, std::string_view name) {
    for (const auto& t : tools) {
        if (t.name == name) {
            return &t;
        }
    }
    return nullptr;
}

asio::awaitable<void> call(mcp::client& c, std::string name, json args) {
    const auto r = co_await mcp::async_call_tool(c, name, std::move(args));
    say(name + (r.is_error ? " failed: " : ": ") + r.text.substr(0, 200));
}

asio::awaitable<void> run(std::string url, std::string scenario) {
    wafer::mcp::http_server server;
    server.name = "conformance";
    server.url = std::move(url);
    mcp::client_options options;
    options.session.client_name = "wafer-mcp-conformance";
    options.session.client_version = WAFER_VERSION_STRING;
    options.on_noise = [](std::string_view what) {
        say(std::string("noise: ") + std::string(what));
    };
    options.on_log = [](const mcp::log_event& e) {
        say("server log: " + e.data.dump());
    };
    if (scenario.starts_with("elicitation")) {
        options.session.elicitation = true;
        options.on_server_request = [](const mcp::server_request_event& ev
                                    ) -> asio::awaitable<json> {
            const json schema =
                ev.params.is_object() ? ev.params.value("requestedSchema", json::object()) : json{};
            const json content = mcp::elicitation_defaults(schema);
            say("elicitation answered with " + content.dump());
            co_return mcp::elicitation_answer("accept", content);
        };
    }
    auto c = co_await wafer::mcp::async_connect_http(server, options);
    say("connected: " + c->server().name + " " + c->server().protocol_version);
    if (scenario == "initialize") {
        co_await c->async_close();
        co_return;
    }
    const auto tools = co_await mcp::async_list_tools(*c);
    say(std::to_string(tools.size()) + " tools");
    if (scenario == "tools_call") {
        co_await call(*c, "add_numbers", json::parse(R"({"a":5,"b":3})"));
    } else if (scenario == "elicitation-sep1034-client-defaults") {
        co_await call(*c, "test_client_elicitation_defaults", json::object());
    } else if (scenario == "sse-retry") {
        co_await call(*c, "test_reconnection", json::object());
    } else if (scenario == "json-schema-2020-12-preservation") {
        if (const auto* t = find_tool(tools, "json_schema_2020_12_tool")) {
            json args = json::object();
            args["schema"] = t->input_schema;
            co_await call(*c, "json_schema_echo", std::move(args));
        } else {
            say("json_schema_2020_12_tool is not offered");
        }
    }
    co_await c->async_close();
}

} // namespace

int main(int argc, char** argv) {
    if (argc < 2) {
        std::cerr
            << "usage: wafer-mcp-conformance URL (the scenario in MCP_CONFORMANCE_SCENARIO)\n";
        return 2;
    }
    const std::string url = argv[argc - 1];
    const std::string scenario = env("MCP_CONFORMANCE_SCENARIO");
    const std::string version = env("MCP_CONFORMANCE_PROTOCOL_VERSION");
    if (!version.empty() && !dated_handshake(version)) {
        say("protocol version " + version + " is not supported yet (2026-07-28: stateless)");
        return 1;
    }
    say("scenario " + scenario + (version.empty() ? "" : " at " + version) + ", server " + url);
    asio::io_context ioc;
    auto done = asio::co_spawn(ioc, run(url, scenario), asio::use_future);
    ioc.run();
    try {
        done.get();
    } catch (const std::exception& e) {
        say(std::string("failed: ") + e.what());
        return 1;
    }
    return 0;
}
