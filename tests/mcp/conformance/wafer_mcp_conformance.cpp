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
#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/use_future.hpp>
#include <boost/asio/write.hpp>
#include <boost/url/parse.hpp>

#include <nlohmann/json.hpp>

#include <array>
#include <cctype>
#include <cstdlib>
#include <exception>
#include <iostream>
#include <stdexcept>
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

// The mock authorization server approves at once: GET the authorization URL (plain http on
// localhost), do not follow its redirect, return the Location it names.
asio::awaitable<std::string> approve(std::string url) {
    const auto u = boost::urls::parse_absolute_uri(url);
    if (!u || u->scheme() != "http") {
        throw std::runtime_error("the authorization URL is not plain http");
    }
    const std::string host = u->host_address();
    const std::string port = u->has_port() ? std::string(u->port()) : "80";
    std::string target(u->encoded_path());
    if (u->has_query()) {
        target += "?" + std::string(u->encoded_query());
    }
    auto ex = co_await asio::this_coro::executor;
    asio::ip::tcp::resolver resolver(ex);
    const auto endpoints = co_await resolver.async_resolve(host, port, asio::use_awaitable);
    asio::ip::tcp::socket socket(ex);
    co_await asio::async_connect(socket, endpoints, asio::use_awaitable);
    const std::string request = "GET " + target + " HTTP/1.1\r\nHost: " + host + ":" + port +
                                "\r\nConnection: close\r\n\r\n";
    co_await asio::async_write(socket, asio::buffer(request), asio::use_awaitable);
    std::string answer;
    boost::system::error_code ec;
    co_await asio::async_read(
        socket, asio::dynamic_buffer(answer), asio::redirect_error(asio::use_awaitable, ec)
    );
    const auto head_end = answer.find("\r\n\r\n");
    std::string head = answer.substr(0, head_end);
    std::string lowered = head;
    for (char& c : lowered) {
        c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    }
    const auto at = lowered.find("\r\nlocation:");
    if (at == std::string::npos) {
        throw std::runtime_error("the authorization server did not redirect");
    }
    const auto begin = head.find_first_not_of(' ', at + 11);
    const auto end = head.find("\r\n", begin);
    co_return head.substr(begin, end == std::string::npos ? std::string::npos : end - begin);
}

// What an auth/* scenario needs: a redirect URI nothing listens on, the client metadata
// document the suite expects, pre-registered credentials from the context.
wafer::mcp::oauth_config oauth_for(const json& context) {
    wafer::mcp::oauth_config o;
    o.client_name = "wafer-mcp-conformance";
    o.redirect_uri = "http://localhost:3000/callback";
    o.client_metadata_url = "https://conformance-test.local/client-metadata.json";
    if (context.is_object()) {
        o.client_id = context.value("client_id", std::string());
        o.client_secret = context.value("client_secret", std::string());
    }
    o.authorize = approve;
    return o;
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
    if (scenario.starts_with("auth/")) {
        server.oauth = oauth_for(json::parse(env("MCP_CONFORMANCE_CONTEXT"), nullptr, false));
    }
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
    } else if (scenario.starts_with("auth/")) {
        if (find_tool(tools, "test-tool") != nullptr) {
            co_await call(*c, "test-tool", json::object());
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
