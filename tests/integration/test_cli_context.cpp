// Context management end to end: `wafer run` over the fake server, which enforces a small
// window and answers Cerebras's context_length_exceeded body beyond it. A session that reads
// more than the window holds completes, keeps AGENTS.md in every request, and says what it
// compacted.
#include "cli_harness.hpp"

#ifdef WAFER_CLI_PATH

using namespace wafer::testing::cli;

namespace {

constexpr std::size_t files = 60;
constexpr std::int64_t window = 8'192;

// A workspace of `files` files of about 2,500 tokens each, and an AGENTS.md.
struct big_workspace {
    fs::path dir;
    big_workspace() {
        std::random_device rd;
        dir = fs::temp_directory_path() / ("wafer-cli-context-" + std::to_string(rd()));
        fs::create_directories(dir);
        for (std::size_t i = 0; i < files; ++i) {
            std::ofstream out(dir / ("f" + std::to_string(i) + ".txt"));
            for (int line = 1; line <= 200; ++line) {
                out << "f" << i << " line " << line << ": some text of the file here\n";
            }
        }
        std::ofstream(dir / "AGENTS.md") << "Always say PINEAPPLE-RULE before answering.\n";
    }
    ~big_workspace() {
        std::error_code ec;
        fs::remove_all(dir, ec);
    }
};

bool is_summary(const wafer::api::chat_request& req) {
    return req.tools.empty() && !req.messages.empty() &&
           contains(req.messages[0].text(), "You MUST write a summary only");
}

// Reads every file, one per turn, then answers; summaries get a short text.
struct reader {
    std::size_t next = 0;
    std::size_t summaries = 0;
    std::size_t calls = 0;
    wafer::testing::reply operator()(const wafer::api::chat_request& req) {
        ++calls;
        if (is_summary(req)) {
            ++summaries;
            return wafer::testing::reply::text("## Task\nRead every file.\n## Open work\nThe rest."
            );
        }
        if (next < files) {
            wafer::testing::scripted_turn t;
            const std::string path = "f" + std::to_string(next++) + ".txt";
            t.tool_calls.push_back({"", "read_file", R"({"path":")" + path + R"("})"});
            return wafer::testing::reply::of(std::move(t));
        }
        return wafer::testing::reply::text("PINEAPPLE-RULE: read all " + std::to_string(next));
    }
};

served make_server(std::string model = "zai-glm-4.7", bool list_windows = false) {
    wafer::testing::fake_server_config cfg;
    cfg.enforce_context = true;
    cfg.list_windows = list_windows;
    cfg.models = {wafer::testing::model_info(std::move(model), window, 4'000)};
    return served(std::move(cfg));
}

// `wafer run --yes --max-turns 80 [flags...] "Read every file"` on `ws`, against `s`.
process_result read_all(served& s, const big_workspace& ws, const std::vector<std::string>& flags) {
    std::vector<std::string> args{
        "run",
        "--base-url",
        s.server.base_url(),
        "--workspace",
        ws.dir.string(),
        "--yes",
        "--max-turns",
        "80"};
    args.insert(args.end(), flags.begin(), flags.end());
    args.emplace_back("Read every file");
    return s.while_serving([&] { return run_wafer(args, {}, std::chrono::seconds(120)); });
}

// The chat requests the server refused: those that never reached the responder.
std::size_t refusals(const served& s, const reader& r) {
    return s.chat_bodies().size() - r.calls;
}

} // namespace

TEST_SUITE("integration/cli/context") {
    TEST_CASE("a run that reads more than the window holds completes, compacting as it goes") {
        big_workspace ws;
        served s = make_server();
        reader r;
        s.server.set_responder(std::ref(r));
        auto out = read_all(s, ws, {"--no-store", "--context-window", std::to_string(window)});
        INFO("stdout:\n" << out.out << "\nstderr:\n" << out.err);
        CHECK(out.status == 0);
        CHECK(contains(out.out, "PINEAPPLE-RULE: read all 60"));
        CHECK(contains(out.out, "instructions: AGENTS.md ("));
        CHECK(contains(out.out, "ctx "));
        CHECK(contains(out.out, "% of 8.2k"));
        CHECK(contains(out.out, "(context compacted: clear_tool_results"));
        CHECK(r.summaries > 0);
        CHECK(contains(out.out, "(context compacted: summarise"));
        CHECK(refusals(s, r) == 0); // compaction came before the server had to refuse
        // Every agent request kept the project's instructions in its system message.
        std::size_t agent_requests = 0;
        for (const auto& b : s.chat_bodies()) {
            if (!b.contains("tools")) {
                continue; // a summary request
            }
            ++agent_requests;
            CHECK(contains(b["messages"][0]["content"].get<std::string>(), "PINEAPPLE-RULE"));
            CHECK(b["messages"][1]["content"] == "Read every file");
        }
        CHECK(agent_requests == files + 1);
    }

    TEST_CASE("without the window known, the server's refusal compacts and the turn is sent again"
    ) {
        big_workspace ws;
        served s = make_server();
        reader r;
        s.server.set_responder(std::ref(r));
        // zai-glm-4.7 is 131k to wafer: only the 16k server's 400s tell it otherwise.
        auto out = read_all(s, ws, {"--no-store"});
        INFO("stdout:\n" << out.out << "\nstderr:\n" << out.err);
        CHECK(out.status == 0);
        CHECK(contains(out.out, "PINEAPPLE-RULE: read all 60"));
        CHECK(contains(out.out, ", overflow)"));
        CHECK(refusals(s, r) > 0);
    }

    TEST_CASE("a model wafer does not know: the window comes from the server's model list") {
        big_workspace ws;
        served s = make_server("local-model", true);
        reader r;
        s.server.set_responder(std::ref(r));
        auto out = read_all(s, ws, {"--model", "local-model", "--no-store"});
        INFO("stdout:\n" << out.out << "\nstderr:\n" << out.err);
        CHECK(out.status == 0);
        CHECK(contains(out.out, "% of 8.2k"));
        CHECK(refusals(s, r) == 0);
    }

    TEST_CASE("runs show --full: every original result, and the summaries, after compaction") {
        big_workspace ws;
        served s = make_server();
        reader r;
        s.server.set_responder(std::ref(r));
        auto out = read_all(s, ws, {"--context-window", std::to_string(window)});
        INFO("stderr:\n" << out.err);
        REQUIRE(out.status == 0);
        REQUIRE(out.err.starts_with("run "));
        const std::string id = out.err.substr(4, out.err.find('\n') - 4);
        auto shown = run_wafer({"runs", "show", "--full", id});
        CHECK(shown.status == 0);
        CHECK(contains(shown.out, "(context compacted: the model summarised earlier messages:"));
        CHECK(contains(shown.out, "## Open work"));
        // The first file's middle line, long since cleared from the context, is all there.
        CHECK(contains(shown.out, "f0 line 100: some text of the file here"));
        auto brief = run_wafer({"runs", "show", id});
        CHECK(contains(brief.out, "(context compacted: the model summarised earlier messages)"));
        CHECK_FALSE(contains(brief.out, "f0 line 100: some text"));
    }
}

#endif
