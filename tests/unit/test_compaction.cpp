// The compaction strategies and tiers in isolation (wafer/compaction.hpp): pairs never split,
// instructions kept, reasoning rules, records that undo every step, and the overflow classifier.
#include <wafer/compaction.hpp>

#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

#include <set>
#include <string>

using namespace wafer;

namespace {

api::message calls(std::vector<api::tool_call> cs, std::string reasoning = {}) {
    api::message m = api::empty_message(api::role::assistant);
    m.tool_calls = std::move(cs);
    if (!reasoning.empty()) {
        m.reasoning = std::move(reasoning);
    }
    return m;
}

std::string lines(std::size_t n, std::string_view tag) {
    std::string out;
    for (std::size_t i = 1; i <= n; ++i) {
        out += std::string(tag) + " line " + std::to_string(i) + "\n";
    }
    return out;
}

// system, task, then `steps` steps of one read each (results `size` characters), then a
// follow-up question and one more step.
conversation session(std::size_t steps, std::size_t size) {
    conversation c;
    c.add_system("You are a coding agent. Project instructions: always run the tests.");
    c.add_user("Fix the failing test.");
    for (std::size_t i = 0; i < steps; ++i) {
        const std::string id = "c" + std::to_string(i);
        c.append(calls(
            {{id, "read_file", R"({"path":"f)" + std::to_string(i) + R"(.txt"})"}},
            "thinking " + std::to_string(i)
        ));
        c.add_tool_result(id, lines(size / 16, "f" + std::to_string(i)));
    }
    return c;
}

// Every call answered right after it, every result answers a call before it.
bool pairs_whole(const conversation& c) {
    const auto& ms = c.messages();
    for (std::size_t i = 0; i < ms.size(); ++i) {
        if (ms[i].role == api::role::assistant) {
            for (std::size_t k = 0; k < ms[i].tool_calls.size(); ++k) {
                if (i + 1 + k >= ms.size() || ms[i + 1 + k].role != api::role::tool ||
                    ms[i + 1 + k].tool_call_id != ms[i].tool_calls[k].id) {
                    return false;
                }
            }
        }
        if (ms[i].role == api::role::tool &&
            (i == 0 || (ms[i - 1].role != api::role::tool && ms[i - 1].tool_calls.empty()))) {
            return false;
        }
    }
    return true;
}

bool is_read_only(std::string_view name) {
    return name == "read_file";
}

} // namespace

TEST_SUITE("unit/compaction") {
    TEST_CASE("clamp keeps head and tail with a marker that says what is missing and how to read it"
    ) {
        conversation c = session(2, 40'000);
        const std::string before = c.messages()[3].text();
        history_edit e = clamp_tool_results(c, 4'000);
        REQUIRE(e.rewrites.size() == 2);
        CHECK(e.rewrites[0].first == 3);
        const std::string after = e.rewrites[0].second.text();
        CHECK(after.size() < 4'400);
        CHECK(before.starts_with(after.substr(0, 2'000)));
        CHECK(before.ends_with(after.substr(after.size() - 1'000)));
        CHECK(after.find("characters of this result were left out") != std::string::npos);
        CHECK(after.find("(lines ") != std::string::npos);
        CHECK(after.find("call the tool again for just that part") != std::string::npos);
        CHECK(e.rewrites[0].second.tool_call_id == std::optional<std::string>("c0"));
        // Small results are left alone.
        CHECK(clamp_tool_results(session(3, 1'000), 4'000).empty());
    }

    TEST_CASE("clamp never splits a UTF-8 sequence") {
        conversation c;
        c.add_user("t");
        c.append(calls({{"a", "read_file", "{}"}}));
        std::string text;
        for (int i = 0; i < 5'000; ++i) {
            text += "\xc3\xa9\xe2\x82\xac"; // é€ without line ends
        }
        c.add_tool_result("a", text);
        history_edit e = clamp_tool_results(c, 3'001);
        REQUIRE(e.rewrites.size() == 1);
        const std::string out = e.rewrites[0].second.text();
        // Every byte sequence is whole: count lead bytes against continuation bytes.
        std::size_t cont = 0;
        std::size_t need = 0;
        for (char c8 : out) {
            const auto ch = static_cast<unsigned char>(c8);
            if ((ch & 0xC0) == 0x80) {
                ++cont;
            } else if (ch >= 0xE0) {
                need += 2;
            } else if (ch >= 0xC0) {
                need += 1;
            }
        }
        CHECK(cont == need);
    }

    TEST_CASE("dedupe replaces earlier identical read-only calls only") {
        conversation c;
        c.add_user("t");
        c.append(calls(
            {{"a", "read_file", R"({"path":"x"})"}, {"b", "run_command", R"({"cmd":"make"})"}}
        ));
        c.add_tool_result("a", std::string(600, 'x'));
        c.add_tool_result("b", std::string(600, 'm'));
        c.append(calls(
            {{"c", "read_file", R"({"path":"x"})"}, {"d", "run_command", R"({"cmd":"make"})"}}
        ));
        c.add_tool_result("c", std::string(600, 'y'));
        c.add_tool_result("d", std::string(600, 'n'));
        c.append(calls({{"e", "read_file", R"({"path":"other"})"}}));
        c.add_tool_result("e", std::string(600, 'o'));
        history_edit e = dedupe_reads(c, is_read_only);
        REQUIRE(e.rewrites.size() == 1);
        CHECK(e.rewrites[0].first == 2);
        CHECK(e.rewrites[0].second.text().find("superseded") != std::string::npos);
        CHECK(dedupe_reads(c, nullptr).empty());
    }

    TEST_CASE("drop_reasoning keeps the reasoning of the kept tail") {
        conversation c = session(6, 100);
        history_edit e = drop_reasoning(c, kept_tail_start(c, 2));
        // Steps 0-3 lose theirs; 4 and 5 (the last two pairs) keep theirs.
        REQUIRE(e.rewrites.size() == 4);
        for (const auto& [i, m] : e.rewrites) {
            CHECK(i < kept_tail_start(c, 2));
            CHECK_FALSE(m.reasoning);
            CHECK(m.tool_calls == c.messages()[i].tool_calls);
        }
        CHECK(kept_tail_start(c, 2) == 10);
        // A tail over its size keeps fewer steps, but always the last one.
        CHECK(kept_tail_start(c, 2, 100) == 12);
        CHECK(kept_tail_start(c, 2, 0) == 12);
        CHECK(kept_tail_start(c, 0) == c.size());
        CHECK(kept_tail_start(c, 100) == 0);
    }

    TEST_CASE("clear keeps the last N pairs whole, small results and the call structure") {
        conversation c = session(6, 2'000);
        c.append(calls({{"tiny", "read_file", "{}"}}));
        c.add_tool_result("tiny", "ok");
        history_edit e = clear_tool_results(c, kept_tail_start(c, 3), 256);
        // 7 results: the last 3 ("tiny", f5, f4) kept; f0..f3 cleared.
        REQUIRE(e.rewrites.size() == 4);
        for (const auto& [i, m] : e.rewrites) {
            CHECK(m.role == api::role::tool);
            CHECK(m.tool_call_id == c.messages()[i].tool_call_id);
            CHECK(
                m.text().find("was cleared to fit the context window; call read_file") !=
                std::string::npos
            );
        }
        conversation applied = c;
        applied.apply_compaction(e, {});
        CHECK(pairs_whole(applied));
        CHECK(applied.size() == c.size());
        // Cleared results are not cleared again.
        CHECK(clear_tool_results(applied, kept_tail_start(applied, 3), 10).empty());
    }

    TEST_CASE("summary_range: never the system prompt, the task or a follow-up; never a half step"
    ) {
        conversation c = session(6, 100);
        c.add_user("And also update the docs."); // a follow-up: protected
        c.append(calls({{"z1", "read_file", "{}"}, {"z2", "read_file", "{}"}}));
        c.add_tool_result("z1", "a");
        c.add_tool_result("z2", "b");
        auto r = summary_range(c, kept_tail_start(c, 2));
        REQUIRE(r);
        CHECK(r->first == 2); // after the system prompt and the task
        CHECK(r->last == 14); // up to the follow-up
        for (std::size_t i = r->first; i < r->last; ++i) {
            CHECK_FALSE(is_protected(c, i));
        }
        CHECK(c.messages()[r->first].role != api::role::tool);
        CHECK(c.messages()[r->last].role != api::role::tool);
        // A transcript budget shortens it, still on a step boundary.
        auto small = summary_range(c, kept_tail_start(c, 2), 300);
        REQUIRE(small);
        CHECK(small->last < r->last);
        CHECK(c.messages()[small->last].role != api::role::tool);
        // Nothing to summarise when every message is protected or kept.
        conversation tiny;
        tiny.add_system("s");
        tiny.add_user("t");
        CHECK_FALSE(summary_range(tiny, kept_tail_start(tiny, 2)));
    }

    TEST_CASE("summary_request offers no tools and carries the task; summary_edit checks the text"
    ) {
        conversation c = session(6, 5'000);
        auto r = summary_range(c, kept_tail_start(c, 2));
        REQUIRE(r);
        api::chat_request req = summary_request(c, *r, "PROMPT", 1'000);
        CHECK(req.tools.empty());
        CHECK_FALSE(req.tool_choice);
        REQUIRE(req.messages.size() == 2);
        CHECK(req.messages[0].text() == "PROMPT");
        CHECK(req.messages[1].text().find("Fix the failing test.") != std::string::npos);
        CHECK(req.messages[1].text().find("call read_file") != std::string::npos);
        CHECK(req.max_completion_tokens == 1'000);

        CHECK(summary_edit(c, *r, "").empty());
        CHECK(summary_edit(c, *r, "  \n\t ").empty());
        CHECK(summary_edit(c, *r, std::string(100'000, 's')).empty()); // not shorter
        history_edit e = summary_edit(c, *r, "## Task\nfix it");
        REQUIRE_FALSE(e.empty());
        CHECK(e.first == r->first);
        CHECK(e.count == r->size());
        REQUIRE(e.replacement.size() == 1);
        CHECK(e.replacement[0].role == api::role::user);
        CHECK(e.replacement[0].text().ends_with("## Task\nfix it"));
        conversation applied = c;
        applied.apply_compaction(std::move(e), {});
        CHECK(applied.meta()[r->first].synthetic);
        CHECK_FALSE(is_protected(applied, r->first)); // a later summary may take it in
        CHECK(applied.turn() == c.turn());
        CHECK(pairs_whole(applied));
    }

    TEST_CASE("records undo every step: full_messages, digests and the JSON state") {
        conversation c = session(8, 8'000);
        const std::vector<api::message> original = c.messages();
        compaction_plan plan;
        context_config cfg;
        cfg.keep_pairs = 2;
        plan.config = &cfg;
        plan.is_read_only = is_read_only;
        plan.target_tokens = 1;      // everything cheap runs
        plan.budget_tokens = 10'000; // results over about 3,300 characters are clamped
        compaction_pass pass = compact(c, plan);
        std::set<compaction_strategy> used;
        for (const auto& r : pass.records) {
            used.insert(r.strategy);
        }
        CHECK(used.contains(compaction_strategy::clamp_tool_results));
        CHECK(used.contains(compaction_strategy::drop_reasoning));
        CHECK(used.contains(compaction_strategy::clear_tool_results));
        CHECK_FALSE(pass.fits);
        REQUIRE(pass.summary_due);
        c.apply_compaction(summary_edit(c, *pass.summary_due, "short summary"), {});
        CHECK(c.size() < original.size());
        CHECK(c.full_messages() == original);
        for (const auto& r : c.compactions()) {
            CHECK(r.digest == compaction_digest(r.originals));
            CHECK(r.digest.starts_with("sha256:"));
        }
        CHECK(c.compactions().back().seq == c.compactions().size());
        nlohmann::json j = c;
        conversation back = j.get<conversation>();
        CHECK(back == c);
        CHECK(back.full_messages() == original);
        // The system prompt and the task are where they were.
        CHECK(c.messages()[0] == original[0]);
        CHECK(c.messages()[1] == original[1]);
    }

    TEST_CASE("tiers run cheapest first, stop as soon as the request fits, and are deterministic") {
        conversation a = session(6, 40'000);
        conversation b = a;
        context_config cfg;
        compaction_plan plan;
        plan.config = &cfg;
        plan.budget_tokens = 32'000;
        const std::int64_t before = estimate_tokens(a, plan);
        plan.target_tokens = before / 2; // clamping alone gets there
        compaction_pass pa = compact(a, plan);
        compaction_pass pb = compact(b, plan);
        CHECK(pa.fits);
        REQUIRE(pa.records.size() == 1);
        CHECK(pa.records[0].strategy == compaction_strategy::clamp_tool_results);
        CHECK(pa.records[0].tokens_before == before);
        CHECK(pa.records[0].tokens_after == estimate_tokens(a, plan));
        CHECK(pa.records == pb.records);
        CHECK(a == b);
        // Already small enough: nothing happens.
        compaction_pass again = compact(a, plan);
        CHECK(again.records.empty());
        CHECK(again.fits);
    }

    TEST_CASE("the estimator: exact for what was reported, calibrated for what was added") {
        token_estimator e;
        CHECK(e.estimate(1'000) == 300);
        e.on_reported(250, 1'000);
        CHECK(e.anchored());
        CHECK(e.estimate(1'000) == 250);
        CHECK(e.estimate(2'000) == 500);
        CHECK(e.estimate(600) == 150);
        e.on_overflow(900, 2'000); // the server counted more than that
        CHECK_FALSE(e.anchored());
        CHECK(e.estimate(2'000) == 900);
        e.on_reported(0, 5'000); // not reported: no change
        CHECK(e.estimate(2'000) == 900);
        CHECK(known_context_window("zai-glm-4.7") == 131'072);
        CHECK(known_context_window("gpt-oss-120b") == 131'072);
        CHECK_FALSE(known_context_window("my-local-model"));
        context_usage u{41'000, 131'072, 31'072};
        CHECK(u.budget() == 100'000);
        CHECK(u.fraction() == doctest::Approx(0.41));
    }

    TEST_CASE("is_context_overflow reads the shapes servers send, and nothing else") {
        std::int64_t n = 0;
        CHECK(is_context_overflow(
            400,
            "context_length_exceeded",
            "Please reduce the length of the messages or completion. Current length is 140000 "
            "while limit is 131072",
            &n
        ));
        CHECK(n == 140'000);
        CHECK(is_context_overflow(
            400,
            "",
            "This model's maximum context length is 131,072 tokens. However, your messages "
            "resulted in 150,001 tokens.",
            &n
        ));
        CHECK(n == 150'001);
        CHECK(is_context_overflow(0, "context_length_exceeded", "", &n)); // mid-stream error
        CHECK(n == 0);
        CHECK(is_context_overflow(413, "", "prompt is too long"));
        CHECK(is_context_overflow(422, "", "Input is too long for requested model."));
        CHECK_FALSE(is_context_overflow(
            429,
            "token_quota_exceeded",
            "Tokens per minute limit exceeded - too many tokens processed."
        ));
        CHECK_FALSE(is_context_overflow(400, "wrong_api_key", "Wrong API Key"));
        CHECK_FALSE(is_context_overflow(500, "context_length_exceeded", "context length"));
    }
}
