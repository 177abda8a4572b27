// What the wafer CLI says after the fact (issue 14, items 5 and 6): the offline stand-in's words
// follow what really happened (a denied edit is not "applied"; a base URL was given), and `ask`
// given tool calls nobody offered prints the text it got and names what it ignored.
#include "cli_harness.hpp"

#ifdef WAFER_CLI_PATH

#include <wafer/testing/offline_model.hpp>

using namespace wafer::testing::cli;

TEST_SUITE("integration/cli_answers") {

    TEST_CASE("stand-in: after a denied edit it says the edit was not made and runs no tests") {
        offline_run o;
        const std::string before = o.ws.read("stats.sh");
        auto r = o.s.while_serving([&] { return run_wafer(o.args({"--no-store"})); });
        INFO("stdout:\n" << r.out);
        CHECK(r.status == 0);
        CHECK(contains(r.out, "<- edit_file failed"));
        CHECK(contains(r.out, "The edit was not made: it was denied"));
        CHECK(contains(r.out, "approve the edit (or run with --yes)"));
        CHECK_FALSE(contains(r.out, "The edit was applied"));
        CHECK_FALSE(contains(r.out, "went through"));
        CHECK_FALSE(contains(r.out, "-> run_command")); // no test run as if it had worked
        CHECK(o.ws.read("stats.sh") == before);
    }

    TEST_CASE("stand-in: with --yes the edit is applied and said so") {
        offline_run o;
        auto r = o.s.while_serving([&] { return run_wafer(o.args({"--no-store", "--yes"})); });
        CHECK(r.status == 0);
        CHECK(contains(r.out, "The edit was applied"));
        CHECK(contains(r.out, "Fixed."));
    }

    TEST_CASE("stand-in model behind a given base URL does not claim no base URL was given") {
        served s;
        s.server.set_responder([](const wafer::api::chat_request& req) {
            return wafer::testing::offline_reply(req);
        });
        auto r = s.while_serving([&] {
            return run_wafer({"ask", "--base-url", s.server.base_url(), "hello"});
        });
        CHECK(r.status == 0);
        CHECK(contains(r.out, "offline stand-in"));
        CHECK_FALSE(contains(r.out, "no API key or base URL"));
    }

    TEST_CASE("ask: a reply with tool calls nobody offered prints its text, names what it "
              "ignored") {
        served s;
        wafer::testing::scripted_turn t;
        t.content = "Paris is sunny today.";
        t.tool_calls = {
            {.id = {}, .name = "get_weather", .arguments = R"({"city":"Paris"})"},
            {.id = {}, .name = "send\x1b[2Jmail", .arguments = "{}"}};
        s.server.enqueue(reply::of(t));
        wafer::testing::scripted_turn only_calls;
        only_calls.tool_calls = {{.id = {}, .name = "get_weather", .arguments = "{}"}};
        s.server.enqueue(reply::of(only_calls));
        auto r = s.while_serving([&] {
            return run_wafer({"ask", "--base-url", s.server.base_url(), "weather?"});
        });
        INFO("stdout:\n" << r.out << "\nstderr:\n" << r.err);
        CHECK(r.status == 0);
        CHECK(r.out == "Paris is sunny today.\n");
        CHECK(r.err.starts_with("wafer: ")); // one line on stderr
        CHECK(count(r.err, "\n") == 1);
        CHECK(contains(r.err, "2 tool calls"));
        CHECK(contains(r.err, "ignored"));
        CHECK(contains(r.err, R"(get_weather {"city":"Paris"})"));
        CHECK_FALSE(contains(r.err, "\x1b[2J")); // the model's names are shown escaped
        CHECK(s.chat_bodies().size() == 1);      // nothing was run and sent back

        auto none = s.while_serving([&] {
            return run_wafer({"ask", "--base-url", s.server.base_url(), "weather?"});
        });
        CHECK(none.status == 3); // no answer at all
        CHECK(none.out.empty());
        CHECK(contains(none.err, "1 tool call (ask offers no tools; ignored): get_weather"));
    }
}

#endif // WAFER_CLI_PATH
