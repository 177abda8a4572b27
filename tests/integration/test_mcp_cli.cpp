// `wafer run --mcp-config` end to end (the built binary, a fake model endpoint, an MCP server in
// sh): the server's progress is printed, its text escaped, and its tools/list_changed changes the
// tools the next request offers.
#include <map>

#include "cli_harness.hpp"
#include "mcp_fault_server.hpp"
#include "mcp_servers.hpp"

#ifdef WAFER_CLI_PATH

using namespace wafer::testing::cli;
namespace mcp_servers = wafer::testing::mcp_servers;

namespace {

// `wafer run --yes --no-store --mcp-config CONFIG [extra...] go` on `ws`, against `s`.
process_result run_with_mcp(
    served& s,
    const sample_workspace& ws,
    const fs::path& config,
    const std::vector<std::string>& extra = {}
) {
    std::vector<std::string> args{"run", "--yes", "--no-store", "--mcp-config", config.string()};
    args.insert(args.end(), extra.begin(), extra.end());
    for (const std::string& a :
         {std::string("--base-url"),
          s.server.base_url(),
          std::string("--workspace"),
          ws.dir.string(),
          std::string("go")}) {
        args.push_back(a);
    }
    return s.while_serving([&] { return run_wafer(args); });
}

// "slow" reports progress (with an escape sequence in its message), then says its tools changed
// and answers the listing that follows with "added" alone before its own result.
std::string dyn_server_script() {
    const std::string init =
        R"({"jsonrpc":"2.0","id":ID,"result":{"protocolVersion":"2025-11-25","capabilities":{"tools":{"listChanged":true}},"serverInfo":{"name":"sh","version":"1"}}})";
    // A 2025 server: the CLI's era probe is an unknown method.
    const std::string unknown =
        R"({"jsonrpc":"2.0","id":ID,"error":{"code":-32601,"message":"Method not found"}})";
    const std::string schema = R"("inputSchema":{"type":"object","properties":{}})";
    const std::string list1 =
        R"({"jsonrpc":"2.0","id":ID,"result":{"tools":[{"name":"slow","description":"Takes a while",)" +
        schema + "}]}}";
    const std::string list2 =
        R"({"jsonrpc":"2.0","id":ID,"result":{"tools":[{"name":"added","description":"New",)" +
        schema + "}]}}";
    const std::string result =
        R"({"jsonrpc":"2.0","id":ID,"result":{"content":[{"type":"text","text":"TEXT"}]}})";
    const std::string progress =
        R"({"jsonrpc":"2.0","method":"notifications/progress","params":{"progressToken":TOKEN,"progress":1,"total":2,"message":"half \u001b[2J way"}})";
    return "reply() { printf '%s\\n' \"$1\" | sed \"s/\\\"id\\\":ID/\\\"id\\\":$2/; "
           "s/TEXT/$3/\"; }\n"
           "idof() { printf '%s\\n' \"$1\" | sed -n 's/^{\"id\":\\([0-9]*\\),.*/\\1/p'; }\n"
           "tokof() { printf '%s\\n' \"$1\" | sed -n "
           "'s/.*\"progressToken\":\\([0-9]*\\).*/\\1/p'; }\n"
           "grown=0\n"
           "while IFS= read -r l; do\n"
           "  id=$(idof \"$l\")\n"
           "  case \"$l\" in\n"
           "  *'\"method\":\"server/discover\"'*) reply '" +
           unknown +
           "' $id ;;\n"
           "  *'\"method\":\"initialize\"'*) reply '" +
           init +
           "' $id ;;\n"
           "  *'\"method\":\"tools/list\"'*)\n"
           "    if [ $grown = 0 ]; then reply '" +
           list1 + "' $id; else reply '" + list2 +
           "' $id; fi ;;\n"
           "  *'\"method\":\"tools/call\"'*'\"name\":\"slow\"'*)\n"
           "    printf '%s\\n' '" +
           progress +
           "' | sed \"s/TOKEN/$(tokof \"$l\")/\"\n"
           "    grown=1\n"
           "    printf '%s\\n' "
           "'{\"jsonrpc\":\"2.0\",\"method\":\"notifications/tools/list_changed\"}'\n"
           "    IFS= read -r l2; reply '" +
           list2 +
           "' $(idof \"$l2\")\n"
           "    reply '" +
           result +
           "' $id 'slow done' ;;\n"
           "  *'\"method\":\"tools/call\"'*'\"name\":\"added\"'*) reply '" +
           result +
           "' $id 'added ran' ;;\n"
           "  esac\n"
           "done\n";
}

// An mcpServers entry running wafer's fault server with `fault`.
json fault_entry(const std::string& fault) {
    return {{"command", WAFER_MCP_FAULT_SERVER}, {"args", {"--fault", fault}}};
}

std::vector<std::string> offered(const json& body) {
    std::vector<std::string> out;
    for (const auto& t : body.value("tools", json::array())) {
        out.push_back(t["function"]["name"].get<std::string>());
    }
    return out;
}

} // namespace

TEST_SUITE("mcp/cli") {
    TEST_CASE("run: MCP progress is printed escaped; list_changed changes the next request's tools"
    ) {
        served s;
        s.server.enqueue(reply::of({.tool_calls = {{"", "dyn__slow", "{}"}}}));
        s.server.enqueue(reply::of({.tool_calls = {{"", "dyn__added", "{}"}}}));
        s.server.enqueue(reply::text("done"));
        sample_workspace ws;
        const fs::path config = ws.dir / "servers.json";
        {
            std::ofstream out(config);
            out << json{{"mcpServers",
                         {{"dyn",
                           {{"command", "/bin/sh"}, {"args", {"-c", dyn_server_script()}}}}}}}
                       .dump();
        }
        auto r = run_with_mcp(s, ws, config);
        INFO("stdout:\n" << r.out << "\nstderr:\n" << r.err);
        CHECK(r.status == 0);
        CHECK(contains(r.out, "mcp: dyn (1 tools)"));
        // The progress line, the server's escape sequence shown escaped.
        CHECK(contains(r.out, ".. dyn__slow 1/2: half \\x1b[2J way"));
        CHECK_FALSE(contains(r.out, "\x1b"));
        CHECK(contains(r.out, "added ran"));
        CHECK(contains(
            r.err, "mcp dyn: the tools changed, 1 now; added dyn__added; removed dyn__slow"
        ));
        const auto bodies = s.chat_bodies();
        REQUIRE(bodies.size() == 3);
        const auto first = offered(bodies[0]);
        const auto second = offered(bodies[1]);
        CHECK(std::find(first.begin(), first.end(), "dyn__slow") != first.end());
        CHECK(std::find(first.begin(), first.end(), "dyn__added") == first.end());
        CHECK(std::find(second.begin(), second.end(), "dyn__added") != second.end());
        CHECK(std::find(second.begin(), second.end(), "dyn__slow") == second.end());
        CHECK(std::find(second.begin(), second.end(), "read_file") != second.end());
    }
    TEST_CASE("run: a server that never answers initialize or tools/list is left out after the "
              "startup timeout; the run goes on with the other tools") {
        served s;
        s.server.enqueue(reply::of({.tool_calls = {{"", "ok__echo", R"({"message":"hi"})"}}}));
        s.server.enqueue(reply::text("done"));
        sample_workspace ws;
        const fs::path config = ws.dir / "servers.json";
        {
            std::ofstream out(config);
            out << json{{"mcpServers",
                         {{"mute", fault_entry("hang-init")},
                          {"slow", fault_entry("hang-list")},
                          {"ok", fault_entry("none")}}}}
                       .dump();
        }
        const auto start = std::chrono::steady_clock::now();
        auto r = run_with_mcp(s, ws, config, {"--mcp-startup-timeout", "2"});
        const auto took = std::chrono::steady_clock::now() - start;
        INFO("stdout:\n" << r.out << "\nstderr:\n" << r.err);
        CHECK(r.status == 0);
        CHECK(contains(
            r.err,
            "mcp: MCP server \"mute\" did not start within 2 s (no answer to initialize; "
            "--mcp-startup-timeout sets the limit) (its tools are not offered)"
        ));
        CHECK(contains(
            r.err, "mcp: MCP server \"slow\" did not start within 2 s (no answer to tools/list"
        ));
        CHECK(contains(r.out, "mcp: ok (1 tools)"));
        CHECK(contains(r.out, "Echo: hi"));
        CHECK(took >= 2s);
        CHECK(took < 8s); // the default would be 10 s, and a stuck close more
        const auto bodies = s.chat_bodies();
        REQUIRE(bodies.size() == 2);
        const auto tools = offered(bodies[0]);
        CHECK(std::find(tools.begin(), tools.end(), "ok__echo") != tools.end());
        CHECK(std::find(tools.begin(), tools.end(), "slow__echo") == tools.end());
    }

    TEST_CASE("run: a server's own startup_timeout overrides --mcp-startup-timeout; a bad one is "
              "a clear configuration error") {
        served s;
        s.server.enqueue(reply::of({.tool_calls = {{"", "ok__echo", R"({"message":"hi"})"}}}));
        s.server.enqueue(reply::text("done"));
        sample_workspace ws;
        const fs::path config = ws.dir / "servers.json";
        {
            json mute = fault_entry("hang-init");
            mute["startup_timeout"] = 1;
            json ok = fault_entry("none");
            ok["startup_timeout"] = 30; // longer than the flag: not a limit it needs
            std::ofstream out(config);
            out << json{{"mcpServers", {{"mute", mute}, {"ok", ok}}}}.dump();
        }
        const auto start = std::chrono::steady_clock::now();
        // The flag alone would wait 20 s for "mute".
        auto r = run_with_mcp(s, ws, config, {"--mcp-startup-timeout", "20"});
        const auto took = std::chrono::steady_clock::now() - start;
        INFO("stdout:\n" << r.out << "\nstderr:\n" << r.err);
        CHECK(r.status == 0);
        CHECK(contains(
            r.err,
            "mcp: MCP server \"mute\" did not start within 1 s (no answer to initialize; its "
            "\"startup_timeout\" sets the limit) (its tools are not offered)"
        ));
        CHECK(contains(r.out, "mcp: ok (1 tools)"));
        CHECK(contains(r.out, "Echo: hi"));
        CHECK(took < 10s);

        {
            json bad = fault_entry("none");
            bad["startup_timeout"] = "soon";
            std::ofstream out(config);
            out << json{{"mcpServers", {{"bad", bad}}}}.dump();
        }
        const auto list = run_wafer({"mcp", "list", "--mcp-config", config.string()});
        INFO("list:\n" << list.out << list.err);
        CHECK(list.status == 2);
        CHECK(contains(
            list.err,
            config.string() +
                ": server \"bad\": \"startup_timeout\" is not a number of seconds (got \"soon\")"
        ));
        CHECK(count(list.err, "\n") == 1);
    }

    TEST_CASE("run: a stdio server that exits is started again by the next call of its tools; "
              "the call it died in fails and is not sent again") {
        served s;
        for (const char* m : {"one", "two", "three"}) {
            s.server.enqueue(reply::of(
                {.tool_calls = {{"", "flaky__echo", std::string(R"({"message":")") + m + "\"}"}}}
            ));
        }
        s.server.enqueue(reply::text("done"));
        sample_workspace ws;
        const fs::path config = ws.dir / "servers.json";
        const fs::path log = ws.dir / "flaky.log";
        {
            std::ofstream out(config);
            json entry = fault_entry("exit-after");
            const std::vector<std::string> more{"--calls", "1", "--log", log.string()};
            for (const auto& a : more) {
                entry["args"].push_back(a);
            }
            out << json{{"mcpServers", {{"flaky", entry}}}}.dump();
        }
        auto r = run_with_mcp(s, ws, config);
        INFO("stdout:\n" << r.out << "\nstderr:\n" << r.err);
        CHECK(r.status == 0);
        CHECK(contains(r.err, "mcp flaky: the server was started again (restart 1 of at most 3)"));
        const auto bodies = s.chat_bodies();
        REQUIRE(bodies.size() == 4);
        // What the model read of each call: the last message of the next request.
        auto tool_text = [&](std::size_t i) {
            return bodies[i]["messages"].back().value("content", "");
        };
        CHECK(contains(tool_text(1), "Echo: one"));
        CHECK(contains(tool_text(2), "exited with status 3"));
        CHECK(contains(tool_text(2), "not sent again"));
        CHECK(contains(tool_text(3), "Echo: three"));
        std::size_t initializes = 0;
        std::size_t twos = 0;
        std::ifstream in(log);
        for (std::string line; std::getline(in, line);) {
            initializes += contains(line, R"("method":"initialize")") ? 1U : 0U;
            twos += contains(line, R"("message":"two")") ? 1U : 0U;
        }
        CHECK(initializes == 2);
        CHECK(twos == 1);
    }

    TEST_CASE(
        "mcp list and mcp call reach a Streamable HTTP server from its url entry" *
        doctest::skip(mcp_servers::no_servers())
    ) {
        // server-everything over HTTP on a free port of 127.0.0.1.
        mcp_servers::http_everything srv;
        const std::string port = std::to_string(srv.port());
        sample_workspace ws;
        const fs::path config = ws.dir / "servers.json";
        {
            std::ofstream out(config);
            out << R"({"mcpServers":{"web":{"url":"http://127.0.0.1:)" << port
                << R"(/mcp","headers":{"X-Test":"${WAFER_TEST_HEADER:-set}"}}}})";
        }
        auto list = run_wafer(
            {"mcp", "list", "--mcp-config", config.string(), "--workspace", ws.dir.string()}
        );
        auto call = run_wafer(
            {"mcp",
             "call",
             "web",
             "echo",
             R"({"message":"over http"})",
             "--mcp-config",
             config.string(),
             "--workspace",
             ws.dir.string()}
        );
        srv.stop();
        INFO("list:\n" << list.out << list.err << "\ncall:\n" << call.out << call.err);
        CHECK(list.status == 0);
        CHECK(contains(list.out, "web  http  http://127.0.0.1:" + port + "/mcp"));
        CHECK(contains(list.out, "protocol 2025-11-25"));
        CHECK(contains(list.out, "  echo"));
        CHECK(call.status == 0);
        CHECK(contains(call.out, "over http"));
    }

    TEST_CASE("mcp list finds each server's era: 2026 over stdio and HTTP with the listing's "
              "TTL, 2025 without one") {
        wafer::testing::mcp_faults::http_fault web({"--stateless", "--ttl-ms", "2500"});
        sample_workspace ws;
        const fs::path config = ws.dir / "servers.json";
        {
            json modern = fault_entry("none");
            for (const char* a : {"--stateless", "--ttl-ms", "5000"}) {
                modern["args"].push_back(a);
            }
            std::ofstream out(config);
            out << json{{"mcpServers",
                         {{"modern", modern},
                          {"legacy", fault_entry("none")},
                          {"web", {{"url", web.url()}}}}}}
                       .dump();
        }
        const auto text = run_wafer({"mcp", "list", "--mcp-config", config.string()});
        const auto js = run_wafer({"mcp", "list", "--json", "--mcp-config", config.string()});
        INFO("text:\n" << text.out << text.err << "\njson:\n" << js.out << js.err);
        CHECK(text.status == 0);
        CHECK(contains(text.out, "protocol 2026-07-28, 3 tools (fresh for 5000 ms, public)"));
        CHECK(contains(text.out, "protocol 2026-07-28, 3 tools (fresh for 2500 ms, public)"));
        CHECK(contains(text.out, "protocol 2025-11-25, 1 tools\n"));
        REQUIRE(js.status == 0);
        std::map<std::string, json> by_name;
        std::istringstream lines(js.out);
        for (std::string l; std::getline(lines, l);) {
            const json j = json::parse(l);
            by_name[j["name"].get<std::string>()] = j;
        }
        REQUIRE(by_name.size() == 3);
        CHECK(by_name["modern"]["protocol_version"] == "2026-07-28");
        CHECK(by_name["modern"]["tools_ttl_ms"] == 5000);
        CHECK(by_name["modern"]["tools_cache_scope"] == "public");
        CHECK(by_name["web"]["tools_ttl_ms"] == 2500);
        CHECK(by_name["legacy"]["protocol_version"] == "2025-11-25");
        CHECK_FALSE(by_name["legacy"].contains("tools_ttl_ms"));
    }
}

#endif
