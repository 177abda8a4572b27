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

#include <array>
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

// A protocol version this client speaks.
bool spoken(std::string_view version) {
    for (const auto v : mcp::handshake_versions) {
        if (v == version) {
            return true;
        }
    }
    return version == mcp::stateless_version;
}

// Arguments that satisfy a schema's `required` with values of each property's type.
json minimal_arguments(const json& schema) {
    json args = json::object();
    const json props = schema.value("properties", json::object());
    for (const auto& name : schema.value("required", json::array())) {
        if (!name.is_string()) {
            continue;
        }
        const json prop = props.value(name.get<std::string>(), json::object());
        const std::string type = prop.is_object() ? prop.value("type", "string") : "string";
        if (prop.is_object() && prop.contains("default")) {
            args[name.get<std::string>()] = prop["default"];
        } else if (prop.is_object() && prop.contains("enum") && prop["enum"].is_array() &&
                   !prop["enum"].empty()) {
            args[name.get<std::string>()] = prop["enum"][0];
        } else if (type == "integer" || type == "number") {
            args[name.get<std::string>()] = 1;
        } else if (type == "boolean") {
            args[name.get<std::string>()] = true;
        } else if (type == "object") {
            args[name.get<std::string>()] = json::object();
        } else if (type == "array") {
            args[name.get<std::string>()] = json::array();
        } else {
            args[name.get<std::string>()] = name.get<std::string>() == "region" ? "us-west1" : "x";
        }
    }
    return args;
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

asio::awaitable<void> request(mcp::client& c, std::string method, json params) {
    const auto r = co_await c.async_request(method, std::move(params));
    say(method + ": " + r.dump().substr(0, 200));
}

asio::awaitable<void> run(std::string url, std::string scenario, bool stateless) {
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
    if (stateless) {
        options.session.era = mcp::protocol_era::stateless;
    }
    // The MRTR scenario wants an unrelated call while a request waits for input.
    std::weak_ptr<mcp::client> weak;
    bool unrelated_called = false;
    if (scenario.starts_with("elicitation") || scenario == "sep-2322-client-request-state") {
        options.session.elicitation = true;
        options.on_server_request = [&weak, &unrelated_called, scenario](
                                        const mcp::server_request_event& ev
                                    ) -> asio::awaitable<json> {
            const json schema =
                ev.params.is_object() ? ev.params.value("requestedSchema", json::object()) : json{};
            json content = minimal_arguments(schema);
            content.update(mcp::elicitation_defaults(schema));
            say("elicitation answered with " + content.dump());
            if (scenario == "sep-2322-client-request-state" && !unrelated_called) {
                unrelated_called = true;
                if (auto c = weak.lock()) {
                    co_await call(*c, "test_mrtr_unrelated", json::object());
                }
            }
            co_return mcp::elicitation_answer("accept", content);
        };
    }
    auto c = co_await wafer::mcp::async_connect_http(server, options);
    weak = c;
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
    } else if (scenario == "http-standard-headers") {
        for (const auto& t : tools) {
            co_await call(*c, t.name, minimal_arguments(t.input_schema));
        }
        const auto resources = co_await c->async_request("resources/list", json::object());
        for (const auto& r : resources.value("resources", json::array())) {
            if (r.is_object() && r.contains("uri")) {
                json params = json::object();
                params["uri"] = r["uri"];
                co_await request(*c, "resources/read", std::move(params));
                break;
            }
        }
        const auto prompts = co_await c->async_request("prompts/list", json::object());
        for (const auto& p : prompts.value("prompts", json::array())) {
            if (p.is_object() && p.contains("name")) {
                json params = json::object();
                params["name"] = p["name"];
                params["arguments"] = json::object();
                co_await request(*c, "prompts/get", std::move(params));
                break;
            }
        }
    } else if (scenario == "http-custom-headers") {
        const json context = json::parse(env("MCP_CONFORMANCE_CONTEXT"), nullptr, false);
        const json calls = context.is_object() ? context.value("toolCalls", json::array()) : json();
        for (const auto& tc : calls.is_array() ? calls : json::array()) {
            if (tc.is_object() && tc.contains("name") && tc["name"].is_string()) {
                co_await call(
                    *c, tc["name"].get<std::string>(), tc.value("arguments", json::object())
                );
            }
        }
    } else if (scenario == "http-invalid-tool-headers") {
        for (const auto& t : tools) {
            co_await call(*c, t.name, minimal_arguments(t.input_schema));
        }
    } else if (scenario == "sep-2322-client-request-state") {
        const std::array<const char*, 3> names = {
            "test_mrtr_echo_state", "test_mrtr_no_state", "test_mrtr_no_result_type"};
        for (const char* name : names) {
            if (find_tool(tools, name)) {
                co_await call(*c, name, json::object());
            }
        }
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
    if (!version.empty() && !spoken(version)) {
        say("protocol version " + version + " is not spoken by this client");
        return 1;
    }
    const bool stateless = version == mcp::stateless_version;
    say("scenario " + scenario + (version.empty() ? "" : " at " + version) + ", server " + url);
    asio::io_context ioc;
    auto done = asio::co_spawn(ioc, run(url, scenario, stateless), asio::use_future);
    ioc.run();
    try {
        done.get();
    } catch (const std::exception& e) {
        say(std::string("failed: ") + e.what());
        return 1;
    }
    return 0;
}
