// The agent loop with MCP servers' tools, end to end: the scripted model calls tools of the real
// server-everything and server-filesystem (npm, pinned; WAFER_MCP_SERVERS as in
// test_mcp_stdio.cpp) in one parallel batch, a cancelled run cancels its MCP call on the server,
// and a server's tools/list_changed changes what the next turn offers.
#include <wafer/agent.hpp>
#include <wafer/scripted_model.hpp>
#include <wafer/tools/mcp/client.hpp>
#include <wafer/tools/mcp/server_tool_set.hpp>
#include <wafer/tools/mcp/server_tools.hpp>
#include <wafer/tools/registry.hpp>

#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "mcp_servers.hpp"
#include "run_coro.hpp"
#include "temp_dir.hpp"

namespace asio = boost::asio;
namespace fs = std::filesystem;
namespace mcp = wafer::tools::mcp;
using nlohmann::json;
using wafer::scripted_model;
using wafer::testing::run_coro;
using namespace std::chrono_literals;
using turn = scripted_model::turn;
using wafer::testing::mcp_servers::no_servers;
using wafer::testing::mcp_servers::servers_dir;

namespace {

std::string everything_js() {
    return servers_dir() + "/@modelcontextprotocol/server-everything/dist/index.js";
}

mcp::stdio_server everything() {
    mcp::stdio_server s;
    s.name = "everything";
    s.command = "node";
    s.args = {everything_js(), "stdio"};
    return s;
}

mcp::stdio_server filesystem(const fs::path& root) {
    mcp::stdio_server s;
    s.name = "fs";
    s.command = "node";
    s.args = {
        servers_dir() + "/@modelcontextprotocol/server-filesystem/dist/index.js", root.string()};
    return s;
}

using wafer::testing::temp_dir;

void write_file(const fs::path& p, const std::string& text) {
    std::ofstream out(p, std::ios::binary);
    out << text;
}

// Every line of `p` that is a JSON object.
std::vector<json> json_lines(const fs::path& p) {
    std::ifstream in(p);
    std::vector<json> out;
    std::string line;
    while (std::getline(in, line)) {
        json j = json::parse(line, nullptr, false);
        if (j.is_object()) {
            out.push_back(std::move(j));
        }
    }
    return out;
}

// j[key], or null (j need not be an object).
json member(const json& j, const char* key) {
    if (!j.is_object()) {
        return nullptr;
    }
    const auto it = j.find(key);
    return it == j.end() ? json() : *it;
}

std::vector<std::string> tool_names(const wafer::api::chat_request& req) {
    std::vector<std::string> out;
    for (const auto& t : req.tools) {
        out.push_back(t.name);
    }
    return out;
}

bool has(const std::vector<std::string>& v, const std::string& s) {
    return std::find(v.begin(), v.end(), s) != v.end();
}

// The tool message answering `call_id`, or nullopt.
std::optional<wafer::api::message>
tool_message(const wafer::run_result& r, const std::string& call_id) {
    for (const auto& m : r.conversation.messages()) {
        if (m.role == wafer::api::role::tool && m.tool_call_id == call_id) {
            return m;
        }
    }
    return std::nullopt;
}

wafer::agent make_agent(
    std::shared_ptr<scripted_model> model, std::shared_ptr<const wafer::tools::registry> tools
) {
    wafer::agent_config cfg;
    cfg.name = "mcp-e2e";
    cfg.model = std::move(model);
    cfg.tools = std::move(tools);
    // A call that a broken server never answers fails the test instead of hanging it.
    cfg.limits.tool_call_timeout = 20s;
    return wafer::agent(std::move(cfg));
}

// Connects `server` with its tool set following list_changed, and registers its tools.
asio::awaitable<std::shared_ptr<mcp::client>> connect_into(
    mcp::stdio_server server,
    std::shared_ptr<wafer::tools::registry> reg,
    std::shared_ptr<mcp::server_tool_set> set
) {
    mcp::client_options o;
    o.on_list_changed = set->list_changed_handler();
    auto c = co_await mcp::client::async_connect(server, o);
    static_cast<void>(co_await set->async_start(std::move(reg), c));
    co_return c;
}

} // namespace

TEST_SUITE("mcp/agent") {
    TEST_CASE(
        "one parallel batch runs a server-everything tool and a server-filesystem tool" *
        doctest::skip(no_servers())
    ) {
        temp_dir dir;
        write_file(dir.path / "note.txt", "hello from the filesystem\n");
        asio::io_context ioc;
        auto reg = std::make_shared<wafer::tools::registry>();
        auto model = std::make_shared<scripted_model>("zai-glm-4.7");
        const std::string note = (dir.path / "note.txt").string();
        model->push(turn::calls(
            {{"call_echo", "everything__echo", R"({"message":"ping through the agent"})"},
             {"call_read", "fs__read_text_file", json{{"path", note}}.dump()}}
        ));
        model->push(turn::text("Both tools answered."));
        struct seen {
            wafer::run_result result;
            std::vector<std::string> order; // "start:<id>" / "finish:<id>"
        };
        const seen s = run_coro(
            ioc,
            [&]() -> asio::awaitable<seen> {
                seen out;
                auto ex = co_await asio::this_coro::executor;
                const mcp::tool_set_options options;
                auto ev_set = mcp::server_tool_set::create(ex, options);
                auto fs_set = mcp::server_tool_set::create(ex, options);
                // Named first: GCC 12 miscompiles an aggregate built in a co_await expression.
                const mcp::stdio_server ev_server = everything();
                const mcp::stdio_server fs_server = filesystem(dir.path);
                auto ev = co_await connect_into(ev_server, reg, ev_set);
                auto fsc = co_await connect_into(fs_server, reg, fs_set);
                const wafer::agent a = make_agent(model, reg);
                wafer::run_options ro;
                ro.on_event = [&out](const wafer::event& e) {
                    if (const auto* st = e.get_if<wafer::events::tool_call_started>()) {
                        out.order.push_back("start:" + st->call_id);
                    } else if (const auto* f = e.get_if<wafer::events::tool_call_finished>()) {
                        out.order.push_back("finish:" + f->call_id);
                    }
                };
                std::string input = "Echo something and read the note.";
                // The operation named first: no options object inside the co_await (GCC 12).
                asio::awaitable<wafer::run_result> op =
                    a.async_run(std::move(input), std::move(ro));
                out.result = co_await std::move(op);
                co_await ev->async_close();
                co_await fsc->async_close();
                co_return out;
            }(),
            60s
        );
        CHECK(s.result.stop_reason == wafer::stop_reason::completed);
        CHECK(s.result.final_text == "Both tools answered.");
        // Both calls started before either finished: one batch, run at once.
        REQUIRE(s.order.size() == 4);
        CHECK(s.order[0].starts_with("start:"));
        CHECK(s.order[1].starts_with("start:"));
        // Both results reached the conversation, in the model's order, for the next request.
        const auto echo = tool_message(s.result, "call_echo");
        const auto read = tool_message(s.result, "call_read");
        REQUIRE(echo);
        REQUIRE(read);
        CHECK(echo->text() == "Echo: ping through the agent");
        CHECK(read->text().find("hello from the filesystem") != std::string::npos);
        REQUIRE(model->request_count() == 2);
        const auto tools = tool_names(model->request(0));
        CHECK(has(tools, "everything__echo"));
        CHECK(has(tools, "fs__read_text_file"));
        const auto& last = model->request(1).messages;
        REQUIRE(last.size() >= 2);
        CHECK(last[last.size() - 2].tool_call_id == std::optional<std::string>("call_echo"));
        CHECK(last.back().tool_call_id == std::optional<std::string>("call_read"));
    }

    TEST_CASE(
        "a cancelled run cancels its MCP call on the server; progress reaches the run's events" *
        doctest::skip(no_servers())
    ) {
        // The server's stdin and stdout are copied to files: what it was told, and what it
        // answered. The TypeScript SDK sends no response for a request it saw cancelled.
        temp_dir dir;
        const fs::path in_log = dir.path / "to-server.jsonl";
        const fs::path out_log = dir.path / "from-server.jsonl";
        mcp::stdio_server server;
        server.name = "everything";
        server.command = "/bin/sh";
        server.args = {
            "-c",
            "tee \"$0\" | node \"$1\" stdio | tee \"$2\"",
            in_log.string(),
            everything_js(),
            out_log.string()};

        asio::io_context ioc;
        auto reg = std::make_shared<wafer::tools::registry>();
        auto model = std::make_shared<scripted_model>("zai-glm-4.7");
        // 10 steps of 100 ms: the first progress comes long before the end.
        model->push(turn::calls(
            {{"call_long",
              "everything__trigger-long-running-operation",
              R"({"duration":1,"steps":10})"}}
        ));
        model->push(turn::text("not reached"));
        struct seen {
            wafer::run_result result;
            std::vector<wafer::events::tool_call_progress> progress;
            std::string after;
        };
        const seen s = run_coro(
            ioc,
            [&]() -> asio::awaitable<seen> {
                seen out;
                auto ex = co_await asio::this_coro::executor;
                const mcp::tool_set_options options;
                auto set = mcp::server_tool_set::create(ex, options);
                auto c = co_await connect_into(server, reg, set);
                const wafer::agent a = make_agent(model, reg);
                auto sig = std::make_shared<asio::cancellation_signal>();
                wafer::run_options ro;
                // The user gives up once the server is at work (its first progress).
                ro.on_event = [&out, sig, ex](const wafer::event& e) {
                    if (const auto* p = e.get_if<wafer::events::tool_call_progress>()) {
                        out.progress.push_back(*p);
                        if (out.progress.size() == 1) {
                            asio::post(ex, [sig] { sig->emit(asio::cancellation_type::terminal); });
                        }
                    }
                };
                std::string input = "Run the long operation.";
                asio::awaitable<wafer::run_result> op =
                    a.async_run(std::move(input), std::move(ro));
                auto token = asio::bind_cancellation_slot(sig->slot(), asio::use_awaitable);
                out.result = co_await asio::co_spawn(ex, std::move(op), token);
                // A longer call on the same server, started after the cancel: it ends after the
                // cancelled one would have, so a response to that one would be in the log
                // before this one's.
                json args = json::parse(R"({"duration":2,"steps":2})");
                std::string tool = "trigger-long-running-operation";
                const mcp::call_result r =
                    co_await mcp::async_call_tool(*c, std::move(tool), std::move(args));
                out.after = r.text;
                co_await c->async_close();
                co_return out;
            }(),
            60s
        );
        CHECK(s.result.stop_reason == wafer::stop_reason::cancelled);
        const auto cancelled = tool_message(s.result, "call_long");
        REQUIRE(cancelled);
        CHECK(cancelled->text().find("cancelled") != std::string::npos);
        REQUIRE_FALSE(s.progress.empty());
        CHECK(s.progress[0].call_id == "call_long");
        CHECK(s.progress[0].name == "everything__trigger-long-running-operation");
        CHECK(s.progress[0].progress == 1);
        CHECK(s.progress[0].total == std::optional<double>(10));
        CHECK(s.after.find("Duration: 2 seconds") != std::string::npos);
        CHECK(model->request_count() == 1);

        // What the server was told: the call, then notifications/cancelled for its id.
        std::optional<json> call_id;
        std::optional<json> second_id;
        bool cancel_sent = false;
        for (const auto& m : json_lines(in_log)) {
            const json p = member(m, "params");
            if (m.value("method", "") == "tools/call" &&
                p.value("name", "") == "trigger-long-running-operation") {
                const bool first = member(p, "arguments").value("duration", 0.0) == 1;
                (first ? call_id : second_id) = member(m, "id");
            }
            if (m.value("method", "") == "notifications/cancelled" && call_id) {
                cancel_sent = cancel_sent || member(p, "requestId") == *call_id;
            }
        }
        REQUIRE(call_id);
        REQUIRE(second_id);
        CHECK(cancel_sent);
        // What it answered: the later call, never the cancelled one (it saw the cancel).
        bool answered_cancelled = false;
        bool answered_second = false;
        bool progress_of_cancelled = false;
        for (const auto& m : json_lines(out_log)) {
            if (m.contains("result") || m.contains("error")) {
                answered_cancelled = answered_cancelled || member(m, "id") == *call_id;
                answered_second = answered_second || member(m, "id") == *second_id;
            }
            progress_of_cancelled =
                progress_of_cancelled || (m.value("method", "") == "notifications/progress" &&
                                          member(member(m, "params"), "progressToken") == *call_id);
        }
        CHECK(progress_of_cancelled); // the log is the server's real output
        CHECK(answered_second);
        CHECK_FALSE(answered_cancelled);
    }

    TEST_CASE("a tools/list_changed during a run changes the tools of the next turn") {
        // A server in sh: tools/list offers "grow" until grow is called; the call sends
        // notifications/tools/list_changed, answers the listing that follows with "added"
        // (and no "grow"), then returns its own result.
        const std::string init =
            R"({"jsonrpc":"2.0","id":1,"result":{"protocolVersion":"2025-11-25","capabilities":{"tools":{"listChanged":true}},"serverInfo":{"name":"sh","version":"1"}}})";
        const std::string schema = R"("inputSchema":{"type":"object","properties":{}})";
        const std::string list1 =
            R"({"jsonrpc":"2.0","id":ID,"result":{"tools":[{"name":"grow","description":"Adds a tool",)" +
            schema + "}]}}";
        const std::string list2 =
            R"({"jsonrpc":"2.0","id":ID,"result":{"tools":[{"name":"added","description":"The new tool",)" +
            schema + "}]}}";
        const std::string result =
            R"({"jsonrpc":"2.0","id":ID,"result":{"content":[{"type":"text","text":"TEXT"}]}})";
        const std::string script =
            "reply() { printf '%s\\n' \"$1\" | sed \"s/\\\"id\\\":ID/\\\"id\\\":$2/; s/TEXT/$3/\"; "
            "}\n"
            "idof() { printf '%s\\n' \"$1\" | sed -n 's/^{\"id\":\\([0-9]*\\),.*/\\1/p'; }\n"
            "grown=0\n"
            "while IFS= read -r l; do\n"
            "  id=$(idof \"$l\")\n"
            "  case \"$l\" in\n"
            "  *'\"method\":\"initialize\"'*) printf '%s\\n' '" +
            init +
            "' ;;\n"
            "  *'\"method\":\"tools/list\"'*)\n"
            "    if [ $grown = 0 ]; then reply '" +
            list1 + "' $id; else reply '" + list2 +
            "' $id; fi ;;\n"
            "  *'\"method\":\"tools/call\"'*'\"name\":\"grow\"'*)\n"
            "    grown=1\n"
            "    printf '%s\\n' "
            "'{\"jsonrpc\":\"2.0\",\"method\":\"notifications/tools/list_changed\"}'\n"
            "    IFS= read -r l2; reply '" +
            list2 +
            "' $(idof \"$l2\")\n"
            "    reply '" +
            result +
            "' $id 'grown' ;;\n"
            "  *'\"method\":\"tools/call\"'*'\"name\":\"added\"'*) reply '" +
            result +
            "' $id 'added ran' ;;\n"
            "  esac\n"
            "done\n";
        mcp::stdio_server server;
        server.name = "dyn";
        server.command = "/bin/sh";
        server.args = {"-c", script};

        asio::io_context ioc;
        auto reg = std::make_shared<wafer::tools::registry>();
        // A built-in tool beside the server's: it stays through the change.
        reg->add(wafer::tools::make_tool<json>(
            "local", "A local tool", json{{"type", "object"}}, [](const json&) { return "ok"; }
        ));
        auto model = std::make_shared<scripted_model>("zai-glm-4.7");
        model->push(turn::calls({{"call_grow", "dyn__grow", "{}"}}));
        model->push(turn::calls({{"call_added", "dyn__added", "{}"}}));
        model->push(turn::text("The new tool ran."));
        struct seen {
            wafer::run_result result;
            std::vector<mcp::tool_set_update> updates;
            std::vector<std::string> names;
        };
        const seen s = run_coro(
            ioc,
            [&]() -> asio::awaitable<seen> {
                seen out;
                auto ex = co_await asio::this_coro::executor;
                mcp::tool_set_options options;
                options.on_update = [&out](const mcp::tool_set_update& u) {
                    out.updates.push_back(u);
                };
                auto set = mcp::server_tool_set::create(ex, options);
                auto c = co_await connect_into(server, reg, set);
                const wafer::agent a = make_agent(model, reg);
                std::string input = "Grow, then use the new tool.";
                asio::awaitable<wafer::run_result> op = a.async_run(std::move(input));
                out.result = co_await std::move(op);
                out.names = set->names();
                co_await c->async_close();
                co_return out;
            }(),
            30s
        );
        CHECK(s.result.stop_reason == wafer::stop_reason::completed);
        REQUIRE(model->request_count() == 3);
        const auto first = tool_names(model->request(0));
        const auto second = tool_names(model->request(1));
        CHECK(first == std::vector<std::string>{"local", "dyn__grow"});
        CHECK(second == std::vector<std::string>{"local", "dyn__added"});
        const auto grown = tool_message(s.result, "call_grow");
        const auto added = tool_message(s.result, "call_added");
        REQUIRE(grown);
        REQUIRE(added);
        CHECK(grown->text() == "grown");
        CHECK(added->text() == "added ran");
        CHECK(s.names == std::vector<std::string>{"dyn__added"});
        REQUIRE(s.updates.size() == 2);
        CHECK_FALSE(s.updates[0].refresh);
        CHECK(s.updates[0].added == std::vector<std::string>{"dyn__grow"});
        CHECK(s.updates[1].refresh);
        CHECK(s.updates[1].failure.empty());
        CHECK(s.updates[1].added == std::vector<std::string>{"dyn__added"});
        CHECK(s.updates[1].removed == std::vector<std::string>{"dyn__grow"});
    }

    TEST_CASE("a tool whose name is taken is left out with why; a failed refresh keeps the tools") {
        // tools/list answers "a" and "clash" once, then fails.
        const std::string init =
            R"({"jsonrpc":"2.0","id":1,"result":{"protocolVersion":"2025-11-25","capabilities":{"tools":{"listChanged":true}},"serverInfo":{"name":"sh","version":"1"}}})";
        const std::string list =
            R"({"jsonrpc":"2.0","id":ID,"result":{"tools":[{"name":"a","inputSchema":{"type":"object"}},{"name":"clash","inputSchema":{"type":"object"}}]}})";
        const std::string failed =
            R"({"jsonrpc":"2.0","id":ID,"error":{"code":-32603,"message":"listing broke"}})";
        const std::string script =
            "n=0\n"
            "while IFS= read -r l; do\n"
            "  id=$(printf '%s\\n' \"$l\" | sed -n 's/^{\"id\":\\([0-9]*\\),.*/\\1/p')\n"
            "  case \"$l\" in\n"
            "  *'\"method\":\"initialize\"'*) printf '%s\\n' '" +
            init +
            "' ;;\n"
            "  *'\"method\":\"tools/list\"'*) n=$((n+1))\n"
            "    if [ $n = 1 ]; then r='" +
            list + "'; else r='" + failed +
            "'; fi\n"
            "    printf '%s\\n' \"$r\" | sed \"s/\\\"id\\\":ID/\\\"id\\\":$id/\" ;;\n"
            "  esac\n"
            "done\n";
        mcp::stdio_server server;
        server.name = "dyn";
        server.command = "/bin/sh";
        server.args = {"-c", script};
        asio::io_context ioc;
        auto reg = std::make_shared<wafer::tools::registry>();
        reg->add(wafer::tools::make_tool<json>(
            "dyn__clash",
            "Not the server's",
            json{{"type", "object"}},
            [](const json&) { return "mine"; }
        ));
        struct seen {
            mcp::tool_set_update first;
            mcp::tool_set_update refresh;
            std::vector<std::string> names;
        };
        const seen s = run_coro(ioc, [&]() -> asio::awaitable<seen> {
            seen out;
            auto ex = co_await asio::this_coro::executor;
            const mcp::tool_set_options options;
            auto set = mcp::server_tool_set::create(ex, options);
            mcp::client_options o;
            o.on_list_changed = set->list_changed_handler();
            auto c = co_await mcp::client::async_connect(server, o);
            out.first = co_await set->async_start(reg, c);
            out.refresh = co_await set->async_refresh();
            out.names = set->names();
            co_await c->async_close();
            co_return out;
        }());
        CHECK(s.first.failure.empty());
        CHECK(s.first.added == std::vector<std::string>{"dyn__a"});
        REQUIRE(s.first.skipped.size() == 1);
        CHECK(s.first.skipped[0].starts_with("dyn__clash: another tool of the registry"));
        CHECK(s.refresh.refresh);
        CHECK(s.refresh.failure.find("listing broke") != std::string::npos);
        CHECK(s.names == std::vector<std::string>{"dyn__a"});
        CHECK(reg->names() == std::vector<std::string>{"dyn__clash", "dyn__a"});
        REQUIRE(reg->find("dyn__clash") != nullptr);
        CHECK(reg->find("dyn__clash")->description == "Not the server's");
    }
}
