// OAuth in the CLI end to end: the built `wafer` against an MCP server that wants a token and
// its authorization server (oauth_mock.hpp, on a thread of the test). `wafer mcp list` without
// a token fails at once naming `wafer mcp login`; `wafer mcp login` prints the authorization
// URL, the test plays the browser (it comes back to the CLI's loopback listener with a code),
// and the tokens it keeps let `wafer mcp list` in without a browser.
#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/write.hpp>
#include <boost/url/parse.hpp>

#include <sys/stat.h>
#include <thread>

#include "cli_harness.hpp"
#include "oauth_mock.hpp"

#ifdef WAFER_CLI_PATH

using namespace wafer::testing::cli;

namespace {

namespace asio = boost::asio;
using asio::ip::tcp;

// The authorization server and the MCP server, served on a thread while the test runs.
struct mock_on_a_thread {
    asio::io_context ioc;
    wafer::testing::oauth_mock::mock m{ioc};
    std::thread thread;

    mock_on_a_thread() {
        asio::co_spawn(ioc, wafer::testing::oauth_mock::mock::accept_loop(&m), asio::detached);
        thread = std::thread([this] { ioc.run(); });
    }
    ~mock_on_a_thread() {
        ioc.stop();
        thread.join();
    }
    mock_on_a_thread(const mock_on_a_thread&) = delete;
    mock_on_a_thread& operator=(const mock_on_a_thread&) = delete;
};

std::map<std::string, std::string> query_of(const std::string& url) {
    std::map<std::string, std::string> out;
    const auto u = boost::urls::parse_uri_reference(url);
    REQUIRE(u.has_value());
    for (const auto& p : u->params()) {
        out[p.key] = p.value;
    }
    return out;
}

// What a browser does after the user approves: a GET of the redirect URI with the code.
std::string browse_back(const std::string& redirect_uri, const std::string& query) {
    const auto u = boost::urls::parse_uri_reference(redirect_uri);
    REQUIRE(u.has_value());
    asio::io_context ioc;
    tcp::socket s(ioc);
    s.connect(tcp::endpoint(
        asio::ip::make_address("127.0.0.1"), static_cast<unsigned short>(u->port_number())
    ));
    const std::string request = "GET " + std::string(u->path()) + "?" + query +
                                " HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
    asio::write(s, asio::buffer(request));
    std::string answer;
    boost::system::error_code ec;
    asio::read(s, asio::dynamic_buffer(answer), ec);
    return answer;
}

} // namespace

TEST_SUITE("mcp/cli/oauth") {
    TEST_CASE("mcp login authorizes with the browser step and keeps the tokens; other commands "
              "use them and never wait for a browser") {
        mock_on_a_thread mock;
        sample_workspace ws;
        const fs::path state = ws.dir / "state";
        fs::create_directories(state);
        const fs::path config = ws.dir / "servers.json";
        {
            std::ofstream out(config);
            out << json{{"mcpServers", {{"guarded", {{"url", mock.m.base() + "/mcp"}}}}}}.dump();
        }
        const std::vector<std::string> env{"XDG_STATE_HOME=" + state.string()};
        const std::vector<std::string> list_args{"mcp", "list", "--mcp-config", config.string()};

        // No token yet: a clear failure, at once.
        const auto start = std::chrono::steady_clock::now();
        const auto before = run_wafer(list_args, env);
        INFO("before:\n" << before.out << before.err);
        CHECK(before.status != 0);
        CHECK(contains(before.out + before.err, "run `wafer mcp login guarded`"));
        CHECK(std::chrono::steady_clock::now() - start < 10s);

        // The login: the URL on stderr, the browser's return on the loopback port.
        spawned_wafer login({"mcp", "login", "guarded", "--mcp-config", config.string()}, env);
        std::string err;
        REQUIRE_MESSAGE(login.read_stderr_until(err, "/callback)", 20s), err);
        const std::string marker = "open this address in a browser:\n  ";
        const auto at = err.find(marker);
        REQUIRE(at != std::string::npos);
        const std::string url =
            err.substr(at + marker.size(), err.find('\n', at + marker.size()) - at - marker.size());
        const auto q = query_of(url);
        CHECK(url.starts_with(mock.m.base() + "/authorize?"));
        CHECK(q.at("response_type") == "code");
        CHECK(q.at("code_challenge_method") == "S256");
        REQUIRE(q.count("state") == 1);
        REQUIRE(q.count("redirect_uri") == 1);
        CHECK(q.at("redirect_uri").starts_with("http://127.0.0.1:"));
        // A stray request first (a browser's favicon): not the callback, the wait goes on.
        const std::string stray = browse_back(
            q.at("redirect_uri").substr(0, q.at("redirect_uri").rfind('/')) + "/favicon.ico", ""
        );
        CHECK(stray.starts_with("HTTP/1.1 404"));
        const std::string page =
            browse_back(q.at("redirect_uri"), "code=the-code&state=" + q.at("state"));
        CHECK(page.starts_with("HTTP/1.1 200"));
        CHECK(contains(page, "You can close this window"));
        process_result done = login.collect(30s);
        done.err = err + done.err;
        INFO("login:\n" << done.out << done.err);
        CHECK(done.status == 0);
        const fs::path store = state / "wafer" / "mcp-oauth.json";
        CHECK(contains(
            done.out,
            "mcp guarded: authorized; the tokens are kept in " + store.string() + " (1 tools)"
        ));
        struct stat st {};
        REQUIRE(::stat(store.c_str(), &st) == 0);
        CHECK((st.st_mode & 0777) == 0600);

        // Now the kept token: no browser.
        const auto after = run_wafer(list_args, env);
        INFO("after:\n" << after.out << after.err);
        CHECK(after.status == 0);
        CHECK(contains(after.out, "guarded  http  " + mock.m.base() + "/mcp"));
        CHECK(contains(after.out, "  echo"));
        CHECK_FALSE(contains(after.err, "open this address"));
        // Tokens and secrets never reach the output.
        for (const std::string& text :
             {before.out, before.err, done.out, done.err, after.out, after.err}) {
            CHECK_FALSE(contains(text, "at-1"));
            CHECK_FALSE(contains(text, "rt-1"));
            CHECK_FALSE(contains(text, "very-secret-value"));
        }
    }

    TEST_CASE("mcp login refuses a stdio server, an unknown one, and one with its own token") {
        sample_workspace ws;
        const fs::path config = ws.dir / "servers.json";
        {
            std::ofstream out(config);
            out << json{{"mcpServers",
                         {{"local", {{"command", "/bin/true"}}},
                          {"tokened",
                           {{"url", "http://127.0.0.1:9/mcp"},
                            {"headers", {{"Authorization", "Bearer x"}}}}}}}}
                       .dump();
        }
        for (const auto& [name, says] : std::vector<std::pair<std::string, std::string>>{
                 {"local", "is a stdio server"},
                 {"tokened", "sends its own Authorization header"},
                 {"nowhere", "no MCP server \"nowhere\""}}) {
            CAPTURE(name);
            const auto r = run_wafer({"mcp", "login", name, "--mcp-config", config.string()});
            CHECK(r.status == 2);
            CHECK(contains(r.err, says));
        }
    }
}

#endif
