// The journal's entries of every turn (model replies, tool results, dispatches and their ends,
// stops) are written without a JSON tree. What they write must be the codec's body byte for
// byte, so that every journal reads back the same; anything the direct writer does not take
// (content parts, invalid UTF-8) goes through the tree as before.
#include <wafer/store/codec.hpp>

#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

#include <string>
#include <vector>

#include "loop/journal.hpp"

namespace {

using nlohmann::json;
using namespace wafer;
using wafer::detail::dispatch_done;
using wafer::detail::model_done;
using wafer::detail::tool_finished;

// What the tree writes for a reply entry (journal.cpp's fallback, spelt out).
std::string tree_reply(const model_done& m) {
    json body = {{"op", m.op}, {"reply", *m.reply}, {"took_us", m.took.count()}};
    if (m.summary) {
        body["purpose"] = "summary";
    }
    return body.dump();
}

std::string tree_result(const tool_finished& t) {
    return json{{"op", t.op}, {"k", t.k}, {"result", t.result}, {"took_us", t.took.count()}}.dump();
}

std::vector<model_reply> replies() {
    std::vector<model_reply> out;
    model_reply plain;
    plain.message = api::message::assistant("5");
    plain.finish_reason = api::finish_reason::stop;
    plain.model_id = "zai-glm-4.7";
    plain.response_id = "chatcmpl-1";
    out.push_back(plain);

    model_reply full = plain;
    full.message.content.reset(); // a reply with only tool calls
    full.message.reasoning = "Tabs\tquotes \" backslash \\ newline\n bell \x07 del \x7f "
                             "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80 U+2028 \xe2\x80\xa8";
    full.message.name = "coder";
    full.message.tool_calls = {
        {"call_0", "add", R"({"a":2,"b":3})"},
        {"call_1", "search", "{\"q\":\"\\u00e9 \xc3\xa9\"}"},
        {"", "", ""},
    };
    full.finish_reason = api::finish_reason::tool_calls;
    full.usage = api::usage{};
    full.usage->prompt_tokens = 5120;
    full.usage->completion_tokens = 180;
    full.usage->total_tokens = 5300;
    full.usage->cached_tokens = 4096;
    full.usage->reasoning_tokens = 77;
    full.usage->accepted_prediction_tokens = 1;
    full.usage->rejected_prediction_tokens = 1'000'000'007;
    full.time_info = api::time_info{0.1, 1e-7, 12345.678, 0.0, 1764633600.5};
    out.push_back(full);

    model_reply odd = plain;
    odd.message.content = "";
    odd.message.tool_call_id = "call_9";
    odd.message.role = api::role::tool;
    odd.finish_reason = api::finish_reason::none;
    odd.time_info = api::time_info{-0.0, 3.0, 2.5e300, 1.0 / 3.0, 0};
    odd.model_id.clear();
    out.push_back(odd);
    return out;
}

} // namespace

TEST_SUITE("unit/journal") {
    TEST_CASE("journal text: reply entries are the codec's bodies byte for byte") {
        std::uint32_t op = 1;
        for (const auto& reply : replies()) {
            for (const bool summary : {false, true}) {
                model_done m;
                m.op = op++;
                m.reply = reply;
                m.took = std::chrono::microseconds(123'456);
                m.summary = summary;
                const auto e = detail::journal_entry_of(m);
                CHECK(e.kind == detail::journal_kind::model_reply);
                CHECK(e.body == tree_reply(m));
                // And it reads back as the same reply.
                const auto back = detail::report_of(e);
                REQUIRE(std::holds_alternative<model_done>(back));
                CHECK(*std::get<model_done>(back).reply == reply);
            }
        }
    }

    TEST_CASE("journal text: tool results, dispatches, their ends and stops") {
        for (const bool is_error : {false, true}) {
            tool_finished t;
            t.op = 7;
            t.k = 2;
            t.took = std::chrono::microseconds(-1);
            t.result.tool_call_id = "call_\"x\"";
            t.result.name = "read_file";
            t.result.content = std::string("line 1\nline 2\t\x01\x1f end \xc3\xa9", 24);
            t.result.is_error = is_error;
            t.result.truncated = !is_error;
            t.result.status = is_error ? tools::result_status::timeout : tools::result_status::ok;
            const auto e = detail::journal_entry_of(t);
            CHECK(e.kind == detail::journal_kind::tool_result);
            CHECK(e.body == tree_result(t));
            const auto back = detail::report_of(e);
            REQUIRE(std::holds_alternative<tool_finished>(back));
            CHECK(std::get<tool_finished>(back).result.content == t.result.content);
        }

        const auto done = detail::journal_entry_of(dispatch_done{4'294'967'295u, false, {}});
        CHECK(done.body == json{{"op", 4'294'967'295u}}.dump());

        detail::dispatch_job job;
        job.turn = 3;
        job.requests = {{"call_0", "add", "{}"}, {"call_\xc3\xa9", "x", ""}};
        const auto d = detail::dispatch_entry(9, job, {});
        CHECK(
            d.body == json{{"op", 9}, {"turn", 3}, {"calls", {"call_0", "call_\xc3\xa9"}}}.dump()
        );
        job.requests.clear();
        CHECK(
            detail::dispatch_entry(9, job, {}).body ==
            json{{"op", 9}, {"turn", 3}, {"calls", json::array()}}.dump()
        );

        for (const auto why : {stop_reason::completed, stop_reason::max_turns}) {
            CHECK(
                detail::stopped_entry(why, {}).body == json{{"stop_reason", to_string(why)}}.dump()
            );
        }
    }

    TEST_CASE("journal text: what the direct writer does not take goes through the tree") {
        // Content parts.
        model_done m;
        m.op = 1;
        m.reply = model_reply{};
        m.reply->message.parts = {api::content_part{}};
        m.reply->message.parts[0].text = "a part";
        CHECK(detail::journal_entry_of(m).body == tree_reply(m));

        // Invalid UTF-8: the tree's own error, as before the direct writer.
        tool_finished t;
        t.result.content = "bad \xff byte";
        CHECK_THROWS_AS(detail::journal_entry_of(t), json::type_error);
        CHECK_THROWS_AS(tree_result(t), json::type_error);
    }
}
