// Context management in the loop, with the scripted model standing in for a server that enforces
// its window: a long session stays under it, the overflow error retries once, a failing
// summariser falls back to the cheap tiers, and the request prefix stays byte-identical between
// compactions.
#include <wafer/agent.hpp>
#include <wafer/scripted_model.hpp>
#include <wafer/store/memory_store.hpp>
#include <wafer/tools/registry.hpp>
#include <wafer/tools/tool.hpp>

#include <boost/asio/io_context.hpp>

#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

#include <memory>
#include <set>
#include <string>
#include <vector>

#include "run_coro.hpp"

namespace asio = boost::asio;
using namespace wafer;
using namespace std::chrono_literals;
using nlohmann::json;
using turn = scripted_model::turn;
using wafer::testing::run_coro;

namespace {

constexpr std::string_view system_prompt = "You are a coding agent. AGENTS.md: run `make test`.";
constexpr std::string_view task = "Read every file and report.";

// Tokens as the scripted model reports them (4 characters per token).
std::int64_t prompt_tokens_of(const api::chat_request& req) {
    std::size_t chars = 0;
    for (const auto& m : req.messages) {
        chars += m.text().size() + m.reasoning.value_or(std::string{}).size();
        for (const auto& c : m.tool_calls) {
            chars += c.name.size() + c.arguments.size();
        }
    }
    return static_cast<std::int64_t>((chars + 3) / 4);
}

bool is_summary_request(const api::chat_request& req) {
    return req.tools.empty() && !req.messages.empty() &&
           req.messages[0].text().find("You MUST write a summary only") != std::string::npos;
}

turn overflow(std::int64_t tokens, std::int64_t limit) {
    turn t;
    t.error = make_error_code(errc::bad_request);
    t.error_diagnostics.http_status = 400;
    t.error_diagnostics.type = "invalid_request_error";
    t.error_diagnostics.code = "context_length_exceeded";
    t.error_diagnostics.message =
        "Please reduce the length of the messages or completion. Current length is " +
        std::to_string(tokens) + " while limit is " + std::to_string(limit);
    return t;
}

// A file of `tokens` tokens whose text is unique to `name`.
std::string file_text(const std::string& name, std::size_t tokens) {
    std::string out;
    std::size_t line = 0;
    while (out.size() < tokens * 4) {
        out += name + ": line " + std::to_string(++line) + " of the file, some code here\n";
    }
    return out;
}

std::shared_ptr<tools::registry> file_tools(std::size_t tokens) {
    auto reg = std::make_shared<tools::registry>();
    tools::tool_options ro;
    ro.read_only = true;
    reg->add(tools::make_tool<json>(
        "read_file",
        "reads a file",
        json{{"type", "object"}, {"properties", {{"path", {{"type", "string"}}}}}},
        [tokens](json args) { return file_text(args.value("path", "?"), tokens); },
        ro
    ));
    return reg;
}

// A model with a window: requests over it fail as Cerebras answers; `steps` reads, then the
// answer. Summary requests get `summary` (or a failure).
struct windowed_session {
    std::int64_t window = 32'768;
    std::int64_t max_completion = 2'000;
    std::size_t steps = 300;
    std::string summary = "## Task\nRead every file.\n## Open work\nRead the rest.";
    bool summary_fails = false;
    std::optional<std::vector<compaction_strategy>> tiers;

    std::shared_ptr<scripted_model> model = std::make_shared<scripted_model>("zai-glm-4.7");
    std::size_t done = 0;
    std::size_t overflows = 0;
    std::size_t summaries = 0;
    std::int64_t peak = 0;
    std::size_t instructions_missing = 0;
    std::size_t summary_with_tools = 0;

    void start() {
        model->set_responder([this](const api::chat_request& req, std::size_t) {
            const std::int64_t tokens = prompt_tokens_of(req);
            if (tokens + max_completion > window) {
                ++overflows;
                return overflow(tokens + max_completion, window);
            }
            peak = std::max(peak, tokens);
            if (is_summary_request(req)) {
                ++summaries;
                summary_with_tools += req.tools.empty() ? 0U : 1U;
                if (summary_fails) {
                    return turn::failure(make_error_code(errc::server_error), "summariser down");
                }
                return turn::text(summary);
            }
            if (req.messages.size() < 2 || req.messages[0].text() != system_prompt ||
                req.messages[1].text() != task) {
                ++instructions_missing;
            }
            if (done < steps) {
                const std::string n = std::to_string(done++);
                return turn::calls(
                    {{"c" + n, "read_file", R"({"path":"f)" + n + R"(.txt"})"}}, "reading f" + n
                );
            }
            return turn::text("all " + std::to_string(done) + " files read");
        });
    }

    agent make_agent(std::size_t file_tokens) {
        start();
        agent_config cfg;
        cfg.model = model;
        cfg.system_prompt = std::string(system_prompt);
        cfg.tools = file_tools(file_tokens);
        cfg.limits.max_turns = steps + 10;
        cfg.request.max_completion_tokens = max_completion;
        cfg.context.window = window;
        if (tiers) {
            cfg.context.tiers = *tiers;
        }
        return agent(std::move(cfg));
    }
};

std::size_t tool_results(const std::vector<api::message>& ms) {
    std::size_t n = 0;
    for (const auto& m : ms) {
        n += m.role == api::role::tool ? 1U : 0U;
    }
    return n;
}

} // namespace

TEST_SUITE("unit/compaction_loop") {
    TEST_CASE("300 turns of 8k-token tool outputs complete under a 32k window, nothing lost") {
        asio::io_context ioc;
        windowed_session s;
        agent a = s.make_agent(8'000);
        std::vector<events::context_compacted> compacted;
        std::size_t requests_with_context = 0;
        run_options opts;
        opts.run_id = "long";
        opts.on_event = [&](const event& e) {
            if (const auto* c = e.get_if<events::context_compacted>()) {
                compacted.push_back(*c);
            }
            if (const auto* r = e.get_if<events::model_request>()) {
                requests_with_context +=
                    r->context_tokens > 0 && r->context_window == 32'768 ? 1U : 0U;
            }
        };
        run_result r = run_coro(ioc, a.async_run(std::string(task), std::move(opts)), 120s);
        CHECK(r.stop_reason == stop_reason::completed);
        CHECK(r.final_text == "all 300 files read");
        CHECK(s.overflows == 0); // compaction always came first
        CHECK(s.peak + s.max_completion <= s.window);
        CHECK(s.instructions_missing == 0);
        CHECK(s.summaries > 0);
        CHECK(s.summary_with_tools == 0);
        CHECK(requests_with_context == 301);
        // Every step's result is still there, in the records.
        const auto full = r.conversation.full_messages();
        CHECK(tool_results(full) == 300);
        CHECK(full.size() > r.conversation.size());
        CHECK(r.context.compactions == r.conversation.compactions().size());
        CHECK(compacted.size() == r.conversation.compactions().size());
        std::set<std::string> strategies;
        for (const auto& c : compacted) {
            strategies.insert(c.strategy);
            CHECK(c.tokens_after < c.tokens_before);
            CHECK(c.trigger == "threshold");
        }
        CHECK(strategies.contains("clamp_tool_results"));
        CHECK(strategies.contains("clear_tool_results"));
        CHECK(strategies.contains("summarise"));
        CHECK(r.context.peak_tokens <= 32'768);
        CHECK(r.context.summary_usage.completion_tokens > 0);
        CHECK(r.context.last.window == 32'768);
    }

    TEST_CASE("a context-length error compacts and retries the turn once") {
        asio::io_context ioc;
        auto model = std::make_shared<scripted_model>("local-model"); // no known window
        int n = 0;
        model->set_responder([&](const api::chat_request& req, std::size_t) {
            ++n;
            if (n == 1) {
                return turn::calls({{"a", "read_file", R"({"path":"big"})"}});
            }
            if (n == 2) {
                return overflow(prompt_tokens_of(req), prompt_tokens_of(req) / 2);
            }
            return turn::text("answered with " + std::to_string(prompt_tokens_of(req)) + " tokens");
        });
        agent_config cfg;
        cfg.model = model;
        cfg.tools = file_tools(20'000);
        agent a(std::move(cfg));
        std::vector<std::string> triggers;
        run_options opts;
        opts.on_event = [&](const event& e) {
            if (const auto* c = e.get_if<events::context_compacted>()) {
                triggers.push_back(c->trigger);
            }
        };
        run_result r = run_coro(ioc, a.async_run("read big", std::move(opts)));
        CHECK(r.stop_reason == stop_reason::completed);
        CHECK(model->request_count() == 3);
        CHECK(r.context.overflow_retries == 1);
        REQUIRE_FALSE(triggers.empty());
        CHECK(triggers.front() == "overflow");
        CHECK(prompt_tokens_of(model->request(2)) < prompt_tokens_of(model->request(1)) / 2);
        CHECK(r.turns.size() == 2); // the refused request is no turn
    }

    TEST_CASE("a second context-length error ends the run: one retry, not a loop") {
        asio::io_context ioc;
        auto model = std::make_shared<scripted_model>("local-model");
        model->set_responder([&](const api::chat_request& req, std::size_t i) {
            if (i == 0) {
                return turn::calls({{"a", "read_file", R"({"path":"big"})"}});
            }
            return overflow(prompt_tokens_of(req) * 10, 10);
        });
        agent_config cfg;
        cfg.model = model;
        cfg.tools = file_tools(20'000);
        agent a(std::move(cfg));
        run_result r = run_coro(ioc, a.async_run("read big"));
        CHECK(r.stop_reason == stop_reason::error);
        REQUIRE(r.error);
        CHECK(r.error->code == make_error_code(errc::bad_request));
        CHECK(r.error->diagnostics.code == "context_length_exceeded");
        CHECK(model->request_count() == 3);
        CHECK(r.context.overflow_retries == 1);
    }

    TEST_CASE("compaction off: the overflow error ends the run at once") {
        asio::io_context ioc;
        auto model = std::make_shared<scripted_model>("local-model");
        model->push(turn::calls({{"a", "read_file", R"({"path":"big"})"}}));
        model->push(overflow(50'000, 10'000));
        agent_config cfg;
        cfg.model = model;
        cfg.tools = file_tools(100);
        cfg.context.enabled = false;
        agent a(std::move(cfg));
        run_result r = run_coro(ioc, a.async_run("read big"));
        CHECK(r.stop_reason == stop_reason::error);
        CHECK(model->request_count() == 2);
        CHECK(r.context.overflow_retries == 0);
    }

    TEST_CASE("a summariser that fails, returns nothing or too much falls back to the cheap tiers"
    ) {
        for (int mode = 0; mode < 3; ++mode) {
            CAPTURE(mode);
            asio::io_context ioc;
            windowed_session s;
            s.steps = 60;
            s.window = 8'192; // the markers of 60 cleared results alone pass the target
            s.summary_fails = mode == 0;
            s.summary = mode == 1 ? std::string() : std::string(400'000, 'z');
            agent a = s.make_agent(2'000);
            run_result r = run_coro(ioc, a.async_run(std::string(task)), 60s);
            CHECK(r.stop_reason == stop_reason::completed);
            CHECK(s.summaries > 0);
            CHECK(s.overflows == 0);
            bool summarised = false;
            for (const auto& rec : r.conversation.compactions()) {
                summarised = summarised || rec.strategy == compaction_strategy::summarise;
            }
            CHECK_FALSE(summarised);
            CHECK(tool_results(r.conversation.full_messages()) == 60);
        }
    }

    TEST_CASE("async_compact: on demand, with a summary, then the run goes on from the result") {
        asio::io_context ioc;
        windowed_session s;
        s.steps = 12;
        s.window = 131'072;
        s.tiers = std::vector{compaction_strategy::summarise}; // nothing cheaper would do
        agent a = s.make_agent(3'000);
        run_result first = run_coro(ioc, a.async_run(std::string(task)));
        REQUIRE(first.stop_reason == stop_reason::completed);
        const auto original = first.conversation.messages();
        compaction_result c = run_coro(ioc, a.async_compact(first.conversation));
        CHECK_FALSE(c.summary_error);
        CHECK(c.tokens_after <= c.tokens_before / 2);
        REQUIRE_FALSE(c.records.empty());
        CHECK(c.records.back().strategy == compaction_strategy::summarise);
        for (const auto& r : c.records) {
            CHECK(r.trigger == compaction_trigger::on_demand);
        }
        CHECK(s.summaries == 1);
        CHECK(c.conversation.full_messages() == original);
        CHECK(c.conversation.messages()[0].text() == system_prompt);
        CHECK(c.conversation.messages()[1].text() == task);
        // A follow-up continues from the compacted history.
        run_options opts;
        opts.history = c.conversation;
        run_result next = run_coro(ioc, a.async_run("and now?", std::move(opts)));
        CHECK(next.stop_reason == stop_reason::completed);
        CHECK(next.conversation.compactions().size() == c.conversation.compactions().size());

        // A summariser that fails: the cheap tiers still shrink it, and the error is told.
        s.summary_fails = true;
        s.tiers = std::vector{
            compaction_strategy::dedupe_reads,
            compaction_strategy::summarise,
            compaction_strategy::clear_tool_results};
        agent b = s.make_agent(3'000);
        compaction_result f = run_coro(ioc, b.async_compact(first.conversation));
        REQUIRE(f.summary_error);
        CHECK(f.tokens_after < f.tokens_before);
        CHECK(f.conversation.full_messages() == original);
    }

    TEST_CASE("a journaled run that compacts resumes from any cut to the same conversation") {
        // Stateless replies (the next file after the last one the request asked for), so that a
        // resumed run's model answers as the first one did.
        auto make = [](std::shared_ptr<scripted_model> model) {
            model->set_responder([](const api::chat_request& req, std::size_t) {
                if (is_summary_request(req)) {
                    return turn::text("## Task\nRead every file.\n## Open work\nThe rest.");
                }
                int last = -1;
                for (const auto& m : req.messages) {
                    for (const auto& c : m.tool_calls) {
                        last = std::max(last, std::stoi(c.id.substr(1)));
                    }
                }
                if (last + 1 < 100) {
                    const std::string n = std::to_string(last + 1);
                    return turn::calls({{"c" + n, "read_file", R"({"path":"f)" + n + R"(.txt"})"}});
                }
                return turn::text("read 100");
            });
            agent_config cfg;
            cfg.model = model;
            cfg.system_prompt = std::string(system_prompt);
            cfg.tools = file_tools(800);
            cfg.limits.max_turns = 110;
            cfg.context.window = 8'192;
            return agent(std::move(cfg));
        };
        asio::io_context ioc;
        auto full = std::make_shared<store::memory_store>();
        run_options opts;
        opts.store = full;
        opts.run_id = "cr";
        run_result whole = run_coro(
            ioc,
            make(std::make_shared<scripted_model>("zai-glm-4.7"))
                .async_run(std::string(task), std::move(opts)),
            60s
        );
        REQUIRE(whole.stop_reason == stop_reason::completed);
        bool summarised = false;
        for (const auto& rec : whole.conversation.compactions()) {
            summarised = summarised || rec.strategy == compaction_strategy::summarise;
        }
        REQUIRE(summarised);
        const auto journal = run_coro(ioc, full->async_read_journal("cr"));
        const auto info = *run_coro(ioc, full->async_find_run("cr"));
        // Cuts through the run, and right before and after the first summary's reply.
        std::set<std::size_t> cuts;
        for (std::size_t k = 1; k <= 6; ++k) {
            cuts.insert(journal.size() * k / 7);
        }
        for (std::size_t i = 0; i < journal.size(); ++i) {
            if (journal[i].kind == "model_reply" &&
                journal[i].body.find("Read every file.") != std::string::npos) {
                cuts.insert(i);
                cuts.insert(i + 1);
                break;
            }
        }
        REQUIRE(cuts.size() >= 8);
        for (const std::size_t cut : cuts) {
            CAPTURE(cut);
            auto st = std::make_shared<store::memory_store>();
            store::run_info row = info;
            row.status = store::run_status::running;
            row.stop_reason.clear();
            row.lease_owner = "dead-process";
            row.lease_expires_ms = 1;
            run_coro(ioc, st->async_create_run(row));
            std::vector<store::journal_entry> prefix(
                journal.begin(), journal.begin() + static_cast<std::ptrdiff_t>(cut)
            );
            run_coro(ioc, st->async_append("cr", "", prefix, {}));
            auto model = std::make_shared<scripted_model>("zai-glm-4.7");
            run_result r = run_coro(ioc, make(model).async_resume("cr", {st}), 60s);
            CHECK(r.stop_reason == stop_reason::completed);
            CHECK(r.final_text == "read 100");
            CHECK(r.conversation == whole.conversation); // records included
        }
    }

    TEST_CASE("between compactions the request prefix is byte-identical, with a cache key per run"
    ) {
        asio::io_context ioc;
        windowed_session s;
        s.window = 131'072;
        s.steps = 49;
        agent a = s.make_agent(200);
        run_options opts;
        opts.run_id = "cache-run";
        run_result r = run_coro(ioc, a.async_run(std::string(task), std::move(opts)));
        CHECK(r.stop_reason == stop_reason::completed);
        CHECK(r.conversation.compactions().empty());
        const auto reqs = s.model->requests();
        REQUIRE(reqs.size() == 50);
        std::size_t identical = 0;
        for (std::size_t i = 0; i + 1 < reqs.size(); ++i) {
            api::chat_request next = reqs[i + 1];
            next.messages.resize(reqs[i].messages.size());
            identical += api::serialize(next) == api::serialize(reqs[i]) ? 1U : 0U;
            CHECK(reqs[i].prompt_cache_key == std::optional<std::string>("cache-run"));
        }
        CHECK(identical == 49);
    }
}
