// `wafer batch`'s sans-io rules: how a file is cut into lines (and an oversized line dropped
// unbuffered), what a line may say, what an earlier results file lets a rerun skip, the order
// results are written in, a result line, and the progress text.
#include <doctest/doctest.h>

#include <string>
#include <variant>
#include <vector>

#include "../../examples/cli/batch_core.cpp"

using namespace wafer::cli;
using nlohmann::json;

namespace {

std::vector<line_splitter::line> split(std::string_view text, std::size_t limit, std::size_t step) {
    line_splitter s(limit);
    std::vector<line_splitter::line> out;
    for (std::size_t i = 0; i < text.size(); i += step) {
        s.feed(text.substr(i, step), out);
    }
    if (auto last = s.finish()) {
        out.push_back(std::move(*last));
    }
    return out;
}

std::string bad(std::string_view line) {
    auto r = parse_batch_line(line, 7);
    const auto* why = std::get_if<std::string>(&r);
    return why ? *why : std::string();
}

batch_spec good(std::string_view line, std::size_t number = 7) {
    auto r = parse_batch_line(line, number);
    const auto* why = std::get_if<std::string>(&r);
    REQUIRE_MESSAGE(why == nullptr, (why ? *why : ""));
    return std::get<batch_spec>(r);
}

std::string describe(const wafer::run_error&) {
    return "described";
}

} // namespace

TEST_SUITE("unit/cli_batch") {
    TEST_CASE("lines are cut at newlines whatever the chunking; a last line needs none") {
        const std::string text = "\"a\"\n{\"input\":\"b\"}\n\n\"c\"";
        for (std::size_t step : {1U, 2U, 5U, 100U}) {
            const auto lines = split(text, 100, step);
            REQUIRE(lines.size() == 4);
            CHECK(lines[0].text == "\"a\"");
            CHECK(lines[0].number == 1);
            CHECK(lines[0].terminated);
            CHECK(lines[1].text == "{\"input\":\"b\"}");
            CHECK(lines[2].text.empty());
            CHECK(lines[3].text == "\"c\"");
            CHECK(lines[3].number == 4);
            CHECK_FALSE(lines[3].terminated);
        }
        CHECK(split("\"a\"\n", 100, 3).size() == 1);
        CHECK(split("", 100, 3).empty());
    }

    TEST_CASE("a line over the limit is reported with its length and never buffered") {
        const std::string text = "\"ok\"\n" + std::string(50, 'x') + "\n\"after\"\n";
        line_splitter s(10);
        std::vector<line_splitter::line> out;
        s.feed(std::string_view(text).substr(0, 20), out);
        CHECK(s.skipping()); // in the long line: the reader may skip holes
        s.skipped(0);
        s.feed(std::string_view(text).substr(20), out);
        REQUIRE(out.size() == 3);
        CHECK(out[1].oversized);
        CHECK(out[1].text.empty());
        CHECK(out[1].bytes == 50);
        CHECK(out[1].number == 2);
        CHECK(out[2].text == "\"after\"");
        // Exactly at the limit is fine.
        const auto at = split(std::string(10, 'y') + "\n", 10, 4);
        REQUIRE(at.size() == 1);
        CHECK_FALSE(at[0].oversized);
        // Bytes skipped unread (a sparse file's hole) count towards the reported length.
        line_splitter hole(4);
        std::vector<line_splitter::line> h;
        hole.feed("abcdef", h);
        REQUIRE(hole.skipping());
        hole.skipped(1'000'000);
        hole.feed("g\n", h);
        REQUIRE(h.size() == 1);
        CHECK(h[0].bytes == 1'000'007);
    }

    TEST_CASE("a JSON string is a prompt with an id from its line number") {
        const batch_spec s = good(R"("Summarise: the cat sat")", 12);
        CHECK(s.id == "line-12");
        CHECK(s.input == "Summarise: the cat sat");
        CHECK_FALSE(s.model);
        CHECK_FALSE(s.builtin_tools);
    }

    TEST_CASE("a run spec object sets id, model, system, tokens, response_format and tools") {
        const batch_spec s =
            good(R"({"id":"q1","input":"hi","model":"llama3.1-8b","system":"be brief",)"
                 R"("max_completion_tokens":64,"response_format":{"type":"json_schema",)"
                 R"("json_schema":{"name":"a","schema":{"type":"object"}}},"tools":"builtin"})");
        CHECK(s.id == "q1");
        CHECK(s.input == "hi");
        CHECK(s.model == "llama3.1-8b");
        CHECK(s.system == "be brief");
        CHECK(s.max_completion_tokens == 64);
        REQUIRE(s.response_format);
        CHECK(s.response_format->type == wafer::api::response_format::kind::json_schema);
        CHECK(s.response_format->name == "a");
        CHECK(s.builtin_tools);
        CHECK(good(R"({"input":"x"})", 3).id == "line-3");
        CHECK_FALSE(good(R"({"input":"x","tools":"none"})").builtin_tools);
    }

    TEST_CASE("bad lines say what is wrong") {
        CHECK(bad("{nope") == "not valid JSON");
        CHECK(bad("   ") == "empty line");
        CHECK(bad("42").find("not number") != std::string::npos);
        CHECK(bad("[\"a\"]").find("not array") != std::string::npos);
        CHECK(bad(R"("  ")") == "the prompt is empty");
        CHECK(bad(R"({"id":"a"})") == "no \"input\"");
        CHECK(bad(R"({"input":""})") == "\"input\" is empty");
        CHECK(bad(R"({"input":5})") == "\"input\" must be a string, not number");
        CHECK(bad(R"({"input":"x","id":7})") == "\"id\" must be a string, not number");
        CHECK(bad(R"({"input":"x","id":""})") == "\"id\" is empty");
        CHECK(
            bad(R"({"input":"x","id":")" + std::string(300, 'i') + "\"}").find("longer") !=
            std::string::npos
        );
        CHECK(bad(R"({"input":"x","promt":"y"})").starts_with("unknown key \"promt\""));
        CHECK(
            bad(R"({"input":"x","max_completion_tokens":0})").find("integer") != std::string::npos
        );
        CHECK(
            bad(R"({"input":"x","max_completion_tokens":"9"})").find("integer") != std::string::npos
        );
        CHECK(
            bad(R"({"input":"x","response_format":"json"})").find("response_format") !=
            std::string::npos
        );
        CHECK(
            bad(R"({"input":"x","response_format":{"type":"json_schema"}})").find("json_schema") !=
            std::string::npos
        );
        CHECK(bad(R"({"input":"x","tools":"all"})") == "\"tools\" must be \"builtin\" or \"none\"");
        CHECK(bad(R"({"input":"x","model":""})") == "\"model\" is empty");
    }

    TEST_CASE("resume: finished ids are skipped, failed ones and junk are dropped to run again") {
        resume_index idx;
        CHECK(idx.add_line(R"({"id":"a","text":"ok"})"));
        CHECK_FALSE(idx.add_line(R"({"id":"b","error":{"code":"x","message":"y"}})"));
        CHECK_FALSE(idx.add_line("{\"id\":\"c\",\"tex")); // a write cut short
        CHECK_FALSE(idx.add_line(R"({"text":"no id"})"));
        CHECK_FALSE(idx.add_line(R"("a string")"));
        CHECK_FALSE(idx.add_line(R"({"id":"a","text":"again"})")); // one line per id is kept
        CHECK(idx.finished("a"));
        CHECK_FALSE(idx.finished("b"));
        CHECK_FALSE(idx.finished("c"));
        CHECK(idx.size() == 1);
    }

    TEST_CASE("input order holds a result until its predecessors are written") {
        output_order o(true, 3);
        CHECK(o.may_start(0));
        CHECK(o.may_start(2));
        CHECK_FALSE(o.may_start(3)); // the window: at most 3 ahead of the oldest unfinished
        CHECK(o.finished(1, "r1").empty());
        CHECK(o.finished(2, "r2").empty());
        CHECK(o.buffered() == 2);
        CHECK_FALSE(o.may_start(3));
        CHECK(o.finished(0, "r0") == std::vector<std::string>{"r0", "r1", "r2"});
        CHECK(o.may_start(5));
        CHECK_FALSE(o.may_start(6));
        // A run with nothing to write (cancelled) no longer holds the others.
        CHECK(o.finished(4, "r4").empty());
        CHECK(o.finished(3, "") == std::vector<std::string>{"r4"});
        // At a stop everything left is written, in order.
        CHECK(o.finished(6, "r6").empty());
        CHECK(o.finished(8, "r8").empty());
        CHECK(o.drain() == std::vector<std::string>{"r6", "r8"});
    }

    TEST_CASE("finish order writes at once and never holds a run back") {
        output_order o(false, 1);
        CHECK(o.may_start(100));
        CHECK(o.finished(5, "r5") == std::vector<std::string>{"r5"});
        CHECK(o.finished(2, "").empty());
        CHECK(o.buffered() == 0);
    }

    TEST_CASE("a result line: text or parsed JSON, usage, reasons, queue wait, error") {
        batch_outcome o;
        o.id = "q";
        o.result.final_text = "hello";
        o.result.usage.prompt_tokens = 3;
        o.result.usage.completion_tokens = 4;
        o.result.usage.total_tokens = 7;
        o.result.queue_wait = std::chrono::microseconds(2500);
        o.finish = wafer::api::finish_reason::stop;
        json j = result_json(o, describe);
        CHECK(j["id"] == "q");
        CHECK(j["text"] == "hello");
        CHECK(j["usage"]["total_tokens"] == 7);
        CHECK(j["stop_reason"] == "completed");
        CHECK(j["finish_reason"] == "stop");
        CHECK(j["queue_wait_ms"] == 2.5);
        CHECK_FALSE(j.contains("error"));
        CHECK_FALSE(is_failure(j));

        o.wants_json = true;
        o.result.final_text = R"({"a":1})";
        o.result.final_json = json{{"a", 1}};
        j = result_json(o, describe);
        CHECK(j["json"]["a"] == 1);
        CHECK_FALSE(j.contains("text"));

        o.result.final_json.reset();
        j = result_json(o, describe);
        CHECK(j["error"]["code"] == "invalid_json");
        CHECK(is_failure(j));

        o.wants_json = false;
        o.result.stop_reason = wafer::stop_reason::error;
        o.result.error =
            wafer::run_error{make_error_code(wafer::errc::rate_limited), wafer::diagnostics{}};
        o.result.error->diagnostics.http_status = 429;
        o.result.error->diagnostics.code = "token_quota_exceeded";
        j = result_json(o, describe);
        CHECK(j["error"]["code"] == "token_quota_exceeded");
        CHECK(j["error"]["http_status"] == 429);
        CHECK(j["error"]["message"] == "described");
        CHECK(j["stop_reason"] == "error");

        o.result.error->diagnostics.code.clear();
        CHECK(
            result_json(o, describe)["error"]["code"].get<std::string>().find(' ') ==
            std::string::npos
        );

        o.result.stop_reason = wafer::stop_reason::max_turns;
        o.result.error.reset();
        j = result_json(o, describe);
        CHECK(j["error"]["code"] == "max_turns");
    }

    TEST_CASE("the progress text: counts, tokens per second, and an ETA once runs finished") {
        batch_progress p;
        p.queued = 10;
        CHECK(progress_text(p) == "0 done, 0 failed, 0 running, 10 queued");
        p.done = 9;
        p.failed = 1;
        p.running = 5;
        p.queued = 85;
        p.tokens = 2000;
        p.elapsed = std::chrono::milliseconds(10'000);
        // 10 finished in 10 s, 90 left: 90 s.
        CHECK(progress_text(p) == "9 done, 1 failed, 5 running, 85 queued | 200 tok/s | ETA 1m30s");
        p.running = 0;
        p.queued = 5;
        CHECK(progress_text(p).ends_with("ETA 5s"));
        p.queued = 0;
        CHECK(progress_text(p).find("ETA") == std::string::npos);
    }
}
