// wafer-mcp-fault-server: an MCP server (2025-11-25, initialize handshake) that misbehaves on
// command, for the tests of wafer's MCP client (tests/integration/test_mcp_faults.cpp).
//
//   wafer-mcp-fault-server [--http] [--sse] [--fault NAME] [--log FILE] [--size BYTES]
//                          [--redirect-to URL] [--redirect-status N] [--name NAME] [--calls N]
//                          [--init-delay MS]
//
// stdio by default: one JSON-RPC message per line on stdin and stdout. --http: Streamable HTTP
// on 127.0.0.1 (a free port, printed as "PORT <n>" on stdout), each POST answered as JSON (or
// with --sse as an event stream) and its connection closed; GET 405. Every server has a healthy
// `echo` tool ({"message": string} -> "Echo: <message>"); the faults:
//
//   garbage        lines that are not JSON-RPC on stdout before and between messages (HTTP
//                  with --sse: such events before each answer; tool `garbage`: a JSON body
//                  that is not JSON)
//   exit-mid-call  tool `crash`: half an answer, a line on stderr, then exit status 3
//   hang           tool `hang`: never answered (the connection goes on)
//   hang-init      initialize never answered
//   hang-list      tools/list never answered (initialize is)
//   exit-after     (stdio) --calls N tools/call answered, then the next one makes it exit with
//                  status 3 before answering
//   exit-on-discover  (stdio) server/discover (the 2026 probe) makes it exit with status 3, as
//                  some legacy servers do on any request before initialize
//   mute-discover  server/discover never answered
//   elicit         (stdio) tool `elicit`: asks the client a form (elicitation/create: a string
//                  with a title holding an escape sequence, an integer with bounds, an enum with a
//                  default, a boolean with a default, an email; name and age required) and
//                  answers "elicited: <the client's result>"; a client that did not declare
//                  elicitation gets an error result saying so
//
// Other methods it does not know (server/discover among them) are answered -32601.
//   huge-result    tool `huge`: an answer of --size bytes (50 MiB by default)
//   huge-list      tools/list: page 1 lists echo, page 2 is --size bytes
//   bad-schema     tools whose inputSchema wafer cannot compile (or that is not an object)
//   collide        tool names that collide once mapped: twice "echo", "a.b" and "a_b",
//                  "other__echo", "read_file", a name of 70 characters
//   bad-version    initialize answers protocol version "2099-01-01"
//   unauthorized   (HTTP) every POST answered 401 without WWW-Authenticate nor a body
//   redirect       (HTTP) every POST answered --redirect-status (307) to --redirect-to
//   unavailable    (HTTP) every POST answered 503 with a text body
//   relist-fails   tools/list answered once; every later one is a -32603 error
//   discover-404   (HTTP) server/discover answered 404 with an HTML body (an endpoint that
//                  routes by method, as some 2025 gateways do)
//
// --stateless: also the 2026-07-28 protocol (a dual-era server): server/discover is answered
// with that version and tools.listChanged, every result carries resultType "complete", and
// subscriptions/listen is acknowledged (toolsListChanged only) and held open: on stdio until
// notifications/cancelled names it, on HTTP as an event stream until the client closes it (the
// log then has "HTTP listen closed <id>"). Tool `change_tools` adds a tool `added` to the list,
// sends notifications/tools/list_changed on every open listen (with its subscriptionId), then
// answers. Tool `drop_listens` (HTTP) breaks every open listen's stream without a result.
//
// --ttl-ms MS (with --stateless): tools/list results carry ttlMs MS and cacheScope "public"
// (without it they carry neither: stale at once). Tool `change_tools` then also serves to
// change the list for a client that does not listen.
// --init-delay MS (stdio): each process waits MS milliseconds before it answers initialize (a
// server slow to start, so that a restart can be interrupted).
// --log FILE appends what the server received: each message on a line (an HTTP request's line
// first, "HTTP <method> <path>"), so tests can see what the client sent.
#include <nlohmann/json.hpp>

#include <algorithm>
#include <arpa/inet.h>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iostream>
#include <mutex>
#include <netinet/in.h>
#include <optional>
#include <string>
#include <string_view>
#include <sys/socket.h>
#include <thread>
#include <unistd.h>
#include <vector>

namespace {

using nlohmann::json;

struct options {
    bool http = false;
    bool sse = false;
    bool stateless = false;
    std::string fault = "none";
    std::string log;
    std::size_t size = 50U << 20U;
    std::string redirect_to = "http://127.0.0.1:9/mcp";
    int redirect_status = 307;
    std::string name = "wafer-mcp-fault-server";
    long calls = 1;
    long init_delay_ms = 0;
    long ttl_ms = -1; // none
};

options opts;
bool client_elicits = false; // the client declared elicitation in initialize
std::mutex log_mutex;
std::atomic<long> listings{0};        // tools/list requests answered (relist-fails)
std::string http_port;                // set once listening (--http)
std::atomic<bool> tools_added{false}; // change_tools was called
// The open subscriptions/listen requests: their ids (stdio) or ids and streams (HTTP).
std::mutex listen_mutex;
std::vector<json> stdio_listens;
std::vector<std::pair<json, int>> http_listens;

void log_line(std::string_view line) {
    if (opts.log.empty()) {
        return;
    }
    const std::lock_guard<std::mutex> lock(log_mutex);
    std::ofstream out(opts.log, std::ios::app | std::ios::binary);
    out << line << '\n';
}

json text_result(std::string text, bool is_error = false) {
    json content = json::array();
    content.push_back(json{{"type", "text"}, {"text", std::move(text)}});
    json r = json::object();
    r["content"] = std::move(content);
    if (is_error) {
        r["isError"] = true;
    }
    return r;
}

json tool(std::string name, json schema, std::string description = "A tool") {
    json t = json::object();
    t["name"] = std::move(name);
    t["description"] = std::move(description);
    t["inputSchema"] = std::move(schema);
    return t;
}

json object_schema() {
    return json::parse(R"({"type":"object","properties":{}})");
}

json echo_tool() {
    return tool(
        "echo",
        json::parse(
            R"({"type":"object","properties":{"message":{"type":"string"}},"required":["message"]})"
        ),
        "Echoes its message"
    );
}

json tool_list() {
    json tools = json::array();
    tools.push_back(echo_tool());
    const std::string& f = opts.fault;
    if (f == "exit-mid-call") {
        tools.push_back(tool("crash", object_schema(), "Exits while it runs"));
    } else if (f == "hang") {
        tools.push_back(tool("hang", object_schema(), "Never answers"));
    } else if (f == "huge-result") {
        tools.push_back(tool("huge", object_schema(), "Answers a very long text"));
    } else if (f == "bad-schema") {
        tools.push_back(tool(
            "remote_ref", json::parse(R"({"type":"object","properties":{"x":{"$ref":"REF"}}})")
        ));
        // A $ref to the server itself over HTTP: a fetch would show in its log.
        tools.back()["inputSchema"]["properties"]["x"]["$ref"] =
            "http://127.0.0.1:" + (http_port.empty() ? std::string("9") : http_port) +
            "/schema.json";
        tools.push_back(tool(
            "lookahead",
            json::parse(
                R"J({"type":"object","properties":{"x":{"type":"string","pattern":"^(?=a)"}}})J"
            )
        ));
        tools.push_back(tool("bad_type", json::parse(R"({"type":42})")));
        tools.push_back(tool("not_object", json("a string")));
    } else if (f == "elicit") {
        tools.push_back(tool("elicit", object_schema(), "Asks the user a few questions"));
    } else if (f == "garbage" && opts.http) {
        tools.push_back(tool("garbage", object_schema(), "Answers with a body that is not JSON"));
    }
    if (opts.stateless) {
        tools.push_back(tool("change_tools", object_schema(), "Adds a tool to the list"));
        tools.push_back(tool("drop_listens", object_schema(), "Breaks the listen streams"));
        if (tools_added) {
            tools.push_back(tool("added", object_schema(), "The tool change_tools added"));
        }
    }
    if (f == "collide") {
        tools.push_back(tool("echo", object_schema(), "A second echo"));
        tools.push_back(tool("a.b", object_schema()));
        tools.push_back(tool("a_b", object_schema()));
        tools.push_back(tool("other__echo", object_schema()));
        tools.push_back(tool("read_file", object_schema()));
        tools.push_back(tool(std::string(70, 'n'), object_schema()));
    }
    return tools;
}

std::string response(const json& id, json result) {
    if (opts.stateless && result.is_object()) {
        result["resultType"] = "complete";
    }
    json r = json::object();
    r["jsonrpc"] = "2.0";
    r["id"] = id;
    r["result"] = std::move(result);
    return r.dump();
}

std::string error_response(const json& id, int code, std::string message) {
    json r = json::object();
    r["jsonrpc"] = "2.0";
    r["id"] = id;
    r["error"] = json{{"code", code}, {"message", std::move(message)}};
    return r.dump();
}

// A message of about opts.size bytes answering `id`: `result_start` + "x"... + `result_end`.
std::string huge(const json& id, std::string_view result_start, std::string_view result_end) {
    std::string out = R"({"jsonrpc":"2.0","id":)" + id.dump() + R"(,"result":)";
    out += result_start;
    // The whole message is opts.size bytes: out, the fill, result_end and the closing brace.
    const std::size_t fixed = out.size() + result_end.size() + 1;
    const std::size_t fill = opts.size > fixed ? opts.size - fixed : 0;
    out.append(fill, 'x');
    out += result_end;
    out += "}";
    return out;
}

// What the server does with one message.
struct action {
    enum class kind { none, answer, hang, crash, elicit, listen } type = kind::none;
    std::string body; // the answer, one JSON text
};

// A notification on the listen `id`: list_changed, or (with `granted`) the acknowledgment.
std::string listen_notification(const json& id, std::string_view method, const json* granted) {
    json params = json::object();
    params["_meta"] = json{{"io.modelcontextprotocol/subscriptionId", id}};
    if (granted) {
        params["notifications"] = *granted;
    }
    json m = json::object();
    m["jsonrpc"] = "2.0";
    m["method"] = method;
    m["params"] = std::move(params);
    return m.dump();
}

// What of a listen's request the server honours: toolsListChanged only.
json granted_of(const json& params) {
    json granted = json::object();
    const json n = params.is_object() ? params.value("notifications", json::object()) : json();
    if (n.is_object() && n.value("toolsListChanged", false)) {
        granted["toolsListChanged"] = true;
    }
    return granted;
}

void write_out(std::string_view bytes);
bool send_all(int fd, std::string_view bytes);

// change_tools: the list changes, and every open listen hears of it.
void change_tools() {
    tools_added = true;
    const std::lock_guard<std::mutex> lock(listen_mutex);
    for (const json& id : stdio_listens) {
        write_out(listen_notification(id, "notifications/tools/list_changed", nullptr) + "\n");
    }
    for (const auto& [id, fd] : http_listens) {
        send_all(
            fd,
            "event: message\ndata: " +
                listen_notification(id, "notifications/tools/list_changed", nullptr) + "\n\n"
        );
    }
}

action handle(const json& m) {
    action a;
    if (opts.stateless && m.is_object() && !m.contains("id") &&
        m.value("method", "") == "notifications/cancelled") {
        const json p = m.value("params", json::object());
        const json target = p.is_object() ? p.value("requestId", json()) : json();
        const std::lock_guard<std::mutex> lock(listen_mutex);
        stdio_listens.erase(
            std::remove(stdio_listens.begin(), stdio_listens.end(), target), stdio_listens.end()
        );
        return a;
    }
    if (!m.is_object() || !m.contains("method") || !m.contains("id")) {
        return a; // notifications and responses: nothing to answer
    }
    const json id = m["id"];
    const std::string method = m["method"].is_string() ? m["method"].get<std::string>() : "";
    const json params = m.value("params", json::object());
    a.type = action::kind::answer;
    static long calls_answered = 0;
    if ((method == "initialize" && opts.fault == "hang-init") ||
        (method == "tools/list" && opts.fault == "hang-list") ||
        (method == "server/discover" && opts.fault == "mute-discover")) {
        a.type = action::kind::hang;
    } else if (method == "server/discover" && opts.fault == "exit-on-discover") {
        a.type = action::kind::crash;
    } else if (method == "tools/call" && opts.fault == "exit-after" && calls_answered++ >= opts.calls) {
        a.type = action::kind::crash;
    } else if (opts.stateless && method == "server/discover") {
        json r = json::object();
        r["supportedVersions"] = json::array({"2026-07-28"});
        r["capabilities"] = json{{"tools", json{{"listChanged", true}}}};
        r["_meta"] = json{
            {"io.modelcontextprotocol/serverInfo", json{{"name", opts.name}, {"version", "1"}}}};
        a.body = response(id, std::move(r));
    } else if (opts.stateless && method == "subscriptions/listen") {
        a.type = action::kind::listen;
        const json granted = granted_of(params);
        a.body = listen_notification(id, "notifications/subscriptions/acknowledged", &granted);
    } else if (method == "initialize") {
        const json caps =
            params.is_object() ? params.value("capabilities", json::object()) : json::object();
        client_elicits = caps.is_object() && caps.contains("elicitation");
        json r = json::object();
        r["protocolVersion"] = opts.fault == "bad-version" ? "2099-01-01" : "2025-11-25";
        r["capabilities"] = json{{"tools", json::object()}};
        r["serverInfo"] = json{{"name", opts.name}, {"version", "1"}};
        a.body = response(id, std::move(r));
    } else if (method == "ping") {
        a.body = response(id, json::object());
    } else if (method == "tools/list") {
        const bool second = params.is_object() && params.value("cursor", "") == "2";
        if (opts.fault == "huge-list" && second) {
            a.body = huge(
                id,
                R"({"tools":[{"name":"big","inputSchema":{"type":"object"},"description":")",
                R"("}]})"
            );
        } else {
            json r = json::object();
            r["tools"] = tool_list();
            if (opts.fault == "huge-list") {
                r["nextCursor"] = "2";
            }
            if (opts.stateless && opts.ttl_ms >= 0) {
                r["ttlMs"] = opts.ttl_ms;
                r["cacheScope"] = "public";
            }
            if (opts.fault == "relist-fails" && listings++ > 0) {
                a.body = error_response(id, -32603, "the tool list is unavailable");
            } else {
                a.body = response(id, std::move(r));
            }
        }
    } else if (method == "tools/call") {
        const std::string name = params.value("name", "");
        const json args = params.value("arguments", json::object());
        if (name == "echo") {
            const std::string msg =
                args.is_object() && args.contains("message") && args["message"].is_string()
                    ? args["message"].get<std::string>()
                    : "";
            a.body = response(id, text_result("Echo: " + msg));
        } else if (name == "change_tools" && opts.stateless) {
            change_tools();
            a.body = response(id, text_result("the list changed"));
        } else if (name == "added" && tools_added) {
            a.body = response(id, text_result("added ran"));
        } else if (name == "drop_listens" && opts.stateless) {
            const std::lock_guard<std::mutex> lock(listen_mutex);
            for (const auto& l : http_listens) {
                ::shutdown(l.second, SHUT_RDWR);
            }
            a.body = response(id, text_result("dropped"));
        } else if (name == "elicit" && opts.fault == "elicit") {
            if (client_elicits) {
                a.type = action::kind::elicit;
            } else {
                a.body = response(
                    id, text_result("no elicitation: the client did not declare it", true)
                );
            }
        } else if (name == "crash" && opts.fault == "exit-mid-call") {
            a.type = action::kind::crash;
            a.body = R"({"jsonrpc":"2.0","id":)" + id.dump() + R"(,"result":{"content":[{"ty)";
        } else if (name == "hang" && opts.fault == "hang") {
            a.type = action::kind::hang;
        } else if (name == "garbage" && opts.fault == "garbage") {
            a.body = "this is not JSON at all";
        } else if (name == "huge" && opts.fault == "huge-result") {
            a.body = huge(id, R"({"content":[{"type":"text","text":")", R"("}]})");
        } else {
            a.body = response(id, text_result("no tool named " + name, true));
        }
    } else {
        a.body = error_response(id, -32601, "method not found: " + method);
    }
    return a;
}

// ---- stdio ----

void write_out(std::string_view bytes) {
    std::fwrite(bytes.data(), 1, bytes.size(), stdout);
    std::fflush(stdout);
}

void garbage() {
    if (opts.fault != "garbage") {
        return;
    }
    write_out("Starting fault server v1 (this is not JSON)\n");
    write_out("\x1b[2J\x1b[H\n");
    write_out("\xff\xfe\xfd invalid UTF-8\n");
    write_out("\n");
    write_out(R"({"not":"jsonrpc"})"
              "\n");
    write_out("[1,2,3]\n");
    write_out(R"({"jsonrpc":"2.0","id":99999,"result":{}})"
              "\n");
    write_out(R"({"jsonrpc":"2.0","id":)"
              "\n");
    write_out("\r\n");
}

// The form the `elicit` tool asks.
std::string elicitation_request() {
    json params = json::object();
    params["message"] = "Who are you? \x1b[31mred\x1b[0m";
    params["requestedSchema"] = json::parse(R"({
        "type": "object",
        "properties": {
            "name": {"type": "string", "title": "Your \u001b[2Jname", "minLength": 1},
            "age": {"type": "integer", "minimum": 0, "maximum": 150},
            "color": {"type": "string", "enum": ["red", "green", "blue"], "default": "green"},
            "subscribe": {"type": "boolean", "default": true},
            "email": {"type": "string", "format": "email"}
        },
        "required": ["name", "age"]
    })");
    json m = json::object();
    m["jsonrpc"] = "2.0";
    m["id"] = "elicit-1";
    m["method"] = "elicitation/create";
    m["params"] = std::move(params);
    return m.dump();
}

// Sends the form, waits for its answer (logging what comes meanwhile) and answers call `id`.
void elicit(const json& id) {
    write_out(elicitation_request());
    write_out("\n");
    std::string line;
    while (std::getline(std::cin, line)) {
        log_line(line);
        const json m = json::parse(line, nullptr, false);
        if (!m.is_object() || m.value("id", json()) != json("elicit-1") || m.contains("method")) {
            continue;
        }
        const std::string text = m.contains("result") ? "elicited: " + m["result"].dump()
                                                      : "elicitation failed: " + m.dump();
        write_out(response(id, text_result(text, !m.contains("result"))));
        write_out("\n");
        return;
    }
}

int serve_stdio() {
    std::string line;
    garbage();
    while (std::getline(std::cin, line)) {
        log_line(line);
        const json m = json::parse(line, nullptr, false);
        if (opts.init_delay_ms > 0 && m.is_object() && m.value("method", "") == "initialize") {
            std::this_thread::sleep_for(std::chrono::milliseconds(opts.init_delay_ms));
        }
        action a = handle(m);
        switch (a.type) {
        case action::kind::none:
        case action::kind::hang:
            break;
        case action::kind::crash:
            write_out(a.body); // half a line (exit-mid-call), no newline
            std::fputs("fault: crashing in the middle of tools/call\n", stderr);
            std::fflush(stderr);
            std::_Exit(3);
        case action::kind::elicit:
            elicit(m["id"]);
            break;
        case action::kind::listen: {
            const std::lock_guard<std::mutex> lock(listen_mutex);
            stdio_listens.push_back(m["id"]);
            write_out(a.body + "\n");
            break;
        }
        case action::kind::answer:
            garbage();
            write_out(a.body);
            write_out("\n");
            garbage();
            break;
        }
    }
    return 0;
}

// ---- HTTP ----

bool send_all(int fd, std::string_view bytes) {
    while (!bytes.empty()) {
        const ssize_t n = ::send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            return false;
        }
        bytes.remove_prefix(static_cast<std::size_t>(n));
    }
    return true;
}

std::string lower(std::string s) {
    for (char& c : s) {
        if (c >= 'A' && c <= 'Z') {
            c = static_cast<char>(c - 'A' + 'a');
        }
    }
    return s;
}

void reply(
    int fd, int status, std::string_view reason, std::string_view headers, std::string_view body
) {
    std::string head = "HTTP/1.1 " + std::to_string(status) + " " + std::string(reason) + "\r\n";
    head += headers;
    head += "Content-Length: " + std::to_string(body.size()) + "\r\nConnection: close\r\n\r\n";
    if (send_all(fd, head)) {
        send_all(fd, body);
    }
}

// One connection: one request, then closed.
void serve_connection(int fd) {
    std::string buf;
    std::size_t head_end = std::string::npos;
    char chunk[65536];
    while ((head_end = buf.find("\r\n\r\n")) == std::string::npos) {
        const ssize_t n = ::recv(fd, chunk, sizeof chunk, 0);
        if (n <= 0) {
            ::close(fd);
            return;
        }
        buf.append(chunk, static_cast<std::size_t>(n));
    }
    const std::string head = buf.substr(0, head_end);
    std::string body = buf.substr(head_end + 4);
    const std::string request_line = head.substr(0, head.find("\r\n"));
    const std::string method = request_line.substr(0, request_line.find(' '));
    const std::size_t p0 = request_line.find(' ') + 1;
    const std::string path = request_line.substr(p0, request_line.find(' ', p0) - p0);
    std::size_t length = 0;
    const std::string lhead = lower(head);
    if (const auto cl = lhead.find("\r\ncontent-length:"); cl != std::string::npos) {
        length = std::strtoul(lhead.c_str() + cl + 17, nullptr, 10);
    }
    while (body.size() < length) {
        const ssize_t n = ::recv(fd, chunk, sizeof chunk, 0);
        if (n <= 0) {
            ::close(fd);
            return;
        }
        body.append(chunk, static_cast<std::size_t>(n));
    }
    log_line("HTTP " + method + " " + path);
    if (method != "POST" || path != "/mcp") {
        reply(fd, method == "GET" && path == "/mcp" ? 405 : 404, "No", "", "");
        ::close(fd);
        return;
    }
    log_line(body);
    if (opts.fault == "unauthorized") {
        reply(fd, 401, "Unauthorized", "", "");
        ::close(fd);
        return;
    }
    if (opts.fault == "redirect") {
        reply(fd, opts.redirect_status, "Redirect", "Location: " + opts.redirect_to + "\r\n", "");
        ::close(fd);
        return;
    }
    if (opts.fault == "unavailable") {
        reply(fd, 503, "Service Unavailable", "Content-Type: text/plain\r\n", "down for now");
        ::close(fd);
        return;
    }
    const json m = json::parse(body, nullptr, false);
    if (opts.fault == "discover-404" && m.is_object() &&
        m.value("method", "") == "server/discover") {
        reply(fd, 404, "Not Found", "Content-Type: text/html\r\n", "<h1>Not Found</h1>");
        ::close(fd);
        return;
    }
    action a = handle(m);
    switch (a.type) {
    case action::kind::none:
        reply(fd, 202, "Accepted", "", "");
        break;
    case action::kind::elicit: // stdio only
        reply(
            fd,
            200,
            "OK",
            "Content-Type: application/json\r\n",
            response(m["id"], text_result("elicit: stdio only", true))
        );
        break;
    case action::kind::listen: {
        // An event stream that stays open: the acknowledgment now, list changes later.
        {
            const std::lock_guard<std::mutex> lock(listen_mutex);
            send_all(
                fd,
                "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: "
                "no-cache\r\nConnection: close\r\n\r\nevent: message\ndata: " +
                    a.body + "\n\n"
            );
            http_listens.emplace_back(m["id"], fd);
        }
        while (::recv(fd, chunk, sizeof chunk, 0) > 0) {
        }
        {
            const std::lock_guard<std::mutex> lock(listen_mutex);
            http_listens.erase(
                std::remove_if(
                    http_listens.begin(),
                    http_listens.end(),
                    [fd](const auto& l) { return l.second == fd; }
                ),
                http_listens.end()
            );
        }
        log_line("HTTP listen closed " + m["id"].dump());
        break;
    }
    case action::kind::hang:
        // Held open until the client gives up and closes it.
        while (::recv(fd, chunk, sizeof chunk, 0) > 0) {
        }
        break;
    case action::kind::crash:
        std::fputs("fault: crashing in the middle of tools/call\n", stderr);
        std::fflush(stderr);
        std::_Exit(3);
    case action::kind::answer:
        if (opts.sse) {
            std::string event;
            if (opts.fault == "garbage") {
                // Events before the answer that carry no message of the client's.
                event += ": a comment\n\nevent: other\ndata: {}\n\n";
                event += "data: not JSON\n\ndata: {\"jsonrpc\":\"2.0\",\"id\":99999,"
                         "\"result\":{}}\n\n";
            }
            event += "event: message\ndata: " + a.body + "\n\n";
            reply(fd, 200, "OK", "Content-Type: text/event-stream\r\n", event);
        } else {
            reply(fd, 200, "OK", "Content-Type: application/json\r\n", a.body);
        }
        break;
    }
    ::close(fd);
}

int serve_http() {
    const int ls = ::socket(AF_INET, SOCK_STREAM, 0);
    const int one = 1;
    ::setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::bind(ls, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || ::listen(ls, 64) != 0) {
        std::perror("fault server: bind");
        return 1;
    }
    socklen_t len = sizeof a;
    ::getsockname(ls, reinterpret_cast<sockaddr*>(&a), &len);
    const std::string port = std::to_string(ntohs(a.sin_port));
    http_port = port;
    write_out("PORT " + port + "\n");
    for (;;) {
        const int fd = ::accept(ls, nullptr, nullptr);
        if (fd < 0) {
            if (errno == EINTR) {
                continue;
            }
            return 1;
        }
        std::thread(serve_connection, fd).detach();
    }
}

} // namespace

int main(int argc, char** argv) {
    for (int i = 1; i < argc; ++i) {
        const std::string_view a = argv[i];
        auto value = [&]() -> std::string {
            if (i + 1 >= argc) {
                std::cerr << "fault server: " << a << " needs a value\n";
                std::exit(2);
            }
            return argv[++i];
        };
        if (a == "--http") {
            opts.http = true;
        } else if (a == "--sse") {
            opts.sse = true;
        } else if (a == "--stateless") {
            opts.stateless = true;
        } else if (a == "--fault") {
            opts.fault = value();
        } else if (a == "--log") {
            opts.log = value();
        } else if (a == "--size") {
            opts.size = std::strtoull(value().c_str(), nullptr, 10);
        } else if (a == "--redirect-to") {
            opts.redirect_to = value();
        } else if (a == "--redirect-status") {
            opts.redirect_status = std::atoi(value().c_str());
        } else if (a == "--name") {
            opts.name = value();
        } else if (a == "--calls") {
            opts.calls = std::atol(value().c_str());
        } else if (a == "--ttl-ms") {
            opts.ttl_ms = std::atol(value().c_str());
        } else if (a == "--init-delay") {
            opts.init_delay_ms = std::atol(value().c_str());
        } else {
            std::cerr << "fault server: unknown argument " << a << "\n";
            return 2;
        }
    }
    std::signal(SIGPIPE, SIG_IGN);
    return opts.http ? serve_http() : serve_stdio();
}
