// The configuration file ($XDG_CONFIG_HOME/wafer/config.toml) end to end: its defaults reach
// the requests and the run, the environment and the flags come before it, and a broken file is
// one line naming the place, before any request.
#include "cli_harness.hpp"

#ifdef WAFER_CLI_PATH

using namespace wafer::testing::cli;

namespace {

// A private XDG_CONFIG_HOME holding wafer/config.toml with `text`.
struct config_home {
    fs::path dir;
    explicit config_home(const std::string& text) {
        std::random_device rd;
        dir = fs::temp_directory_path() / ("wafer-cli-config-" + std::to_string(rd()));
        fs::create_directories(dir / "wafer");
        std::ofstream(dir / "wafer" / "config.toml") << text;
    }
    ~config_home() {
        std::error_code ec;
        fs::remove_all(dir, ec);
    }
    std::string env() const { return "XDG_CONFIG_HOME=" + dir.string(); }
    std::string file() const { return (dir / "wafer" / "config.toml").string(); }
};

// A base URL nothing listens on.
std::string dead_url() {
    asio::io_context ioc;
    const fake_server gone(ioc.get_executor());
    return gone.base_url();
}

std::string model_of(const json& body) {
    return body.value("model", std::string());
}

} // namespace

TEST_SUITE("integration/cli/config") {
    TEST_CASE("the file's model and base URL are used when neither flag nor environment gives one"
    ) {
        served s;
        s.server.enqueue(reply::text("from the file's endpoint"));
        s.server.enqueue(reply::text("flag model"));
        const config_home home(
            "# wafer's defaults\nmodel = \"gpt-oss-120b\"\nbase_url = \"" + s.server.base_url() +
            "\"\n"
        );
        auto r = s.while_serving([&] { return run_wafer({"ask", "hi"}, {home.env()}); });
        INFO("stdout:\n" << r.out << "\nstderr:\n" << r.err);
        CHECK(r.status == 0);
        CHECK(contains(r.out, "from the file's endpoint"));
        CHECK_FALSE(contains(r.err, "offline"));
        r = s.while_serving([&] {
            return run_wafer({"ask", "--model", "zai-glm-4.7", "hi"}, {home.env()});
        });
        CHECK(r.status == 0);
        const auto bodies = s.chat_bodies();
        REQUIRE(bodies.size() == 2);
        CHECK(model_of(bodies[0]) == "gpt-oss-120b");
        CHECK(model_of(bodies[1]) == "zai-glm-4.7"); // the flag before the file
    }

    TEST_CASE("CEREBRAS_BASE_URL comes before the file, --base-url before both") {
        served s;
        s.server.enqueue(reply::text("env won"));
        s.server.enqueue(reply::text("flag won"));
        const config_home home("base_url = \"" + dead_url() + "\"\n");
        auto r = s.while_serving([&] {
            return run_wafer(
                {"ask", "hi"}, {home.env(), "CEREBRAS_BASE_URL=" + s.server.base_url()}
            );
        });
        INFO("stdout:\n" << r.out << "\nstderr:\n" << r.err);
        CHECK(r.status == 0);
        CHECK(contains(r.out, "env won"));
        r = s.while_serving([&] {
            return run_wafer(
                {"ask", "--base-url", s.server.base_url(), "hi"},
                {home.env(), "CEREBRAS_BASE_URL=" + dead_url()}
            );
        });
        CHECK(r.status == 0);
        CHECK(contains(r.out, "flag won"));
    }

    TEST_CASE("critics and the sandbox policy come from the file unless flags give them") {
        offline_run o;
        const config_home home(
            "critics = [\"security\"]\n[sandbox]\nmode = \"off\"\nallow_network = true\n"
        );
        auto r = o.s.while_serving([&] {
            return run_wafer(o.args({"--yes", "--no-store"}), {home.env()});
        });
        INFO("stdout:\n" << r.out << "\nstderr:\n" << r.err);
        CHECK(r.status == 0);
        CHECK(contains(r.out, "critics: security\n"));
        CHECK(contains(r.out, "sandbox: off (commands run with your rights)"));

        offline_run again;
        r = again.s.while_serving([&] {
            return run_wafer(
                again.args({"--yes", "--no-store", "--critic", "qa", "--sandbox", "auto"}),
                {home.env()}
            );
        });
        CHECK(r.status == 0);
        CHECK(contains(r.out, "critics: qa\n"));
        CHECK_FALSE(contains(r.out, "sandbox: off"));
    }

    TEST_CASE("the file's MCP servers are started beside --mcp-config's") {
        const config_home home(
            std::string("[mcp_servers.fromfile]\ncommand = \"") + WAFER_MCP_FAULT_SERVER +
            "\"\nargs = []\n"
        );
        const auto r = run_wafer({"mcp", "list", "--json"}, {home.env()});
        INFO("stdout:\n" << r.out << "\nstderr:\n" << r.err);
        CHECK(r.status == 0);
        CHECK(contains(r.out, "fromfile"));
    }

    TEST_CASE("a broken file is one line naming the file, line and key; no request is made") {
        struct bad {
            std::string text;
            std::string says;
        };
        const bad cases[] = {
            {"model = \"a\"\nmodel = \"b\"\n", "config.toml:2:"},
            {"model = \"unterminated\n", "config.toml:1:"},
            {"modle = \"gpt-oss-120b\"\n", "unknown key modle"},
            {"model = 5\n", "model must be a string"},
            {"model = \"\"\n", "model must not be empty"},
            {"critics = [\"nope\"]\n", "critic \"nope\" is not one of security, code-review"},
            {"[sandbox]\nmode = \"maybe\"\n", "config.toml:2:8: sandbox.mode \"maybe\""},
            {"[sandbox]\nnetwork = true\n", "unknown key sandbox.network"},
            {"sandbox = \"off\"\n", "sandbox must be a table"},
            {"\"\\u001b[2Jkey\" = 1\n", "unknown key \\x1b[2Jkey"},
            {"model = \"a\x1b[2J\"\n", "config.toml:1:"},
        };
        for (const bad& b : cases) {
            served s;
            const config_home home(b.text);
            const auto r = s.while_serving([&] {
                return run_wafer({"ask", "--base-url", s.server.base_url(), "hi"}, {home.env()});
            });
            INFO("file:\n" << b.text << "\nstderr:\n" << r.err);
            CHECK(r.status == 2);
            CHECK(contains(r.err, home.file()));
            CHECK(contains(r.err, b.says));
            CHECK(count(r.err, "\n") == 1);
            CHECK_FALSE(contains(r.err, "\x1b"));
            CHECK(s.server.requests().empty());
        }
        // Commands the file gives nothing to do not read it.
        const config_home broken("modle = 1\n");
        const auto r = run_wafer({"runs", "--all"}, {broken.env()});
        CHECK(r.status == 0);
    }
}

#endif
