// scripted_model: queue, recording, responder, errors, delays, streaming to the observer,
// cancellation; plus a two-turn loop that checks what a GLM model receives.
#include <wafer/conversation.hpp>
#include <wafer/error.hpp>
#include <wafer/scripted_model.hpp>

#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>

#include <doctest/doctest.h>

#include <chrono>
#include <exception>
#include <memory>
#include <optional>
#include <string>
#include <vector>

// GCC 12 false positive on Asio's awaitable frame allocator at -O1 and above.
#if defined(__GNUC__) && !defined(__clang__) && __GNUC__ == 12
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
#endif

using namespace wafer;
using namespace std::chrono_literals;
namespace asio = boost::asio;

namespace {

// The outcome of one spawned model call.
struct call_outcome {
    bool done = false;
    std::optional<model_reply> reply;
    std::exception_ptr error;
};

struct call_handler {
    std::shared_ptr<call_outcome> out;
    void operator()(std::exception_ptr e, model_reply r) const {
        out->done = true;
        if (e) {
            out->error = e;
        } else {
            out->reply = std::move(r);
        }
    }
};

// Spawns model.async_complete(req, obs) on ioc, optionally cancellable through `signal`.
std::shared_ptr<call_outcome> spawn_call(
    asio::io_context& ioc,
    model& m,
    api::chat_request req,
    model_observer* obs = nullptr,
    asio::cancellation_signal* signal = nullptr
) {
    auto out = std::make_shared<call_outcome>();
    if (signal) {
        asio::co_spawn(
            ioc,
            m.async_complete(std::move(req), obs),
            asio::bind_cancellation_slot(signal->slot(), call_handler{out})
        );
    } else {
        asio::co_spawn(ioc, m.async_complete(std::move(req), obs), call_handler{out});
    }
    return out;
}

// Runs ioc until the outcome is in, with a wall deadline so no test can hang.
void run_until_done(
    asio::io_context& ioc, const call_outcome& out, std::chrono::seconds limit = 5s
) {
    const auto deadline = std::chrono::steady_clock::now() + limit;
    ioc.restart();
    while (!out.done && std::chrono::steady_clock::now() < deadline) {
        ioc.run_for(10ms);
        ioc.restart();
    }
    REQUIRE_MESSAGE(out.done, "model call did not finish before the test deadline");
}

// Completes one call and returns its reply; rethrows its error.
model_reply
complete(asio::io_context& ioc, model& m, api::chat_request req, model_observer* obs = nullptr) {
    auto out = spawn_call(ioc, m, std::move(req), obs);
    run_until_done(ioc, *out);
    if (out->error) {
        std::rethrow_exception(out->error);
    }
    return *out->reply;
}

errc error_of(const call_outcome& out) {
    REQUIRE(out.error);
    try {
        std::rethrow_exception(out.error);
    } catch (const wafer::error& e) {
        REQUIRE(e.code().category() == wafer::error_category());
        return static_cast<errc>(e.code().value());
    }
}

api::chat_request user_request(std::string text) {
    api::chat_request req;
    req.messages.push_back(api::message::user(std::move(text)));
    return req;
}

struct recording_observer final : model_observer {
    std::vector<std::string> log;
    asio::awaitable<void> on_reasoning_delta(std::string text) override {
        log.push_back("R:" + text);
        co_return;
    }
    asio::awaitable<void> on_content_delta(std::string text) override {
        log.push_back("C:" + text);
        co_return;
    }
};

} // namespace

TEST_SUITE("unit/model/scripted") {

    TEST_CASE("turns are replayed in order and requests are recorded") {
        asio::io_context ioc;
        scripted_model m("zai-glm-4.7");
        CHECK(m.family() == model_family::glm);
        CHECK(m.id() == "zai-glm-4.7");
        m.push(scripted_model::turn::calls({{"c1", "read", R"({"p":1})"}}, "think first"))
            .push(scripted_model::turn::text("the answer", "think again"));
        CHECK(m.remaining() == 2);

        auto r1 = complete(ioc, m, user_request("hello"));
        CHECK(r1.finish_reason == api::finish_reason::tool_calls);
        CHECK(r1.message.role == api::role::assistant);
        CHECK(r1.message.reasoning == "think first");
        CHECK_FALSE(r1.message.content.has_value());
        REQUIRE(r1.message.tool_calls.size() == 1);
        CHECK(r1.message.tool_calls[0].arguments == R"({"p":1})");
        CHECK(r1.model_id == "zai-glm-4.7");
        REQUIRE(r1.usage.has_value());
        CHECK(r1.usage->completion_tokens > 0);
        CHECK(r1.usage->total_tokens == r1.usage->prompt_tokens + r1.usage->completion_tokens);

        auto req2 = user_request("again");
        req2.temperature = 0.5;
        auto r2 = complete(ioc, m, req2);
        CHECK(r2.finish_reason == api::finish_reason::stop);
        CHECK(r2.message.content == "the answer");
        CHECK(m.remaining() == 0);

        REQUIRE(m.request_count() == 2);
        CHECK(m.request(0).model == "zai-glm-4.7"); // filled in
        CHECK(m.request(0).messages.at(0).content == "hello");
        CHECK(m.request(1).temperature == 0.5);
        CHECK(m.requests().size() == 2);
        CHECK_THROWS_AS(m.request(2), std::out_of_range);
        m.clear_requests();
        CHECK(m.request_count() == 0);
    }

    TEST_CASE("explicit usage, time_info, finish reason and model id are returned as scripted") {
        asio::io_context ioc;
        scripted_model m;
        auto t = scripted_model::turn::text("cut");
        t.finish_reason = api::finish_reason::length;
        t.usage = api::usage{.prompt_tokens = 10, .completion_tokens = 5, .total_tokens = 15};
        t.time_info = api::time_info{.total_time = 0.25};
        t.model_id = "served-by-other";
        m.push(t);
        auto r = complete(ioc, m, user_request("x"));
        CHECK(r.finish_reason == api::finish_reason::length);
        CHECK(r.usage == t.usage);
        CHECK(r.time_info == t.time_info);
        CHECK(r.model_id == "served-by-other");
    }

    TEST_CASE("running out of turns is a clear error") {
        asio::io_context ioc;
        scripted_model m("tiny");
        m.push(scripted_model::turn::text("only one"));
        complete(ioc, m, user_request("1"));
        auto out = spawn_call(ioc, m, user_request("2"));
        run_until_done(ioc, *out);
        CHECK(error_of(*out) == errc::invalid_request);
        try {
            std::rethrow_exception(out->error);
        } catch (const wafer::error& e) {
            CHECK(
                e.diag().message.find("no scripted turn left for request #1") != std::string::npos
            );
        }
        CHECK(m.request_count() == 2); // the failed request is still recorded
    }

    TEST_CASE("a responder scripts replies from the request once the queue is empty") {
        asio::io_context ioc;
        scripted_model m;
        m.push(scripted_model::turn::text("queued first"));
        m.set_responder([](const api::chat_request& req, std::size_t index) {
            return scripted_model::turn::text(
                "echo " + req.messages.back().text() + " #" + std::to_string(index)
            );
        });
        CHECK(complete(ioc, m, user_request("a")).message.content == "queued first");
        CHECK(complete(ioc, m, user_request("b")).message.content == "echo b #1");
        CHECK(complete(ioc, m, user_request("c")).message.content == "echo c #2");
    }

    TEST_CASE("a scripted error is thrown with its code and diagnostics") {
        asio::io_context ioc;
        scripted_model m;
        auto t =
            scripted_model::turn::failure(errc::rate_limited, "Requests per minute limit exceeded");
        t.error_diagnostics.http_status = 429;
        t.error_diagnostics.retry_after = 1500ms;
        m.push(t);
        m.push(scripted_model::turn::text("after the error"));
        auto out = spawn_call(ioc, m, user_request("x"));
        run_until_done(ioc, *out);
        CHECK(error_of(*out) == errc::rate_limited);
        try {
            std::rethrow_exception(out->error);
        } catch (const wafer::error& e) {
            CHECK(e.diag().http_status == 429);
            CHECK(e.diag().retry_after == 1500ms);
            CHECK(e.diag().message == "Requests per minute limit exceeded");
        }
        CHECK(complete(ioc, m, user_request("y")).message.content == "after the error");
    }

    TEST_CASE("invalid requests are rejected unless checking is off") {
        asio::io_context ioc;
        scripted_model m;
        m.push(scripted_model::turn::text("never"));
        m.push(scripted_model::turn::text("accepted"));
        api::chat_request bad;
        bad.messages.push_back(api::message::tool_result("", "x"));
        bad.messages.back().tool_call_id.reset(); // a tool message needs tool_call_id
        auto out = spawn_call(ioc, m, bad);
        run_until_done(ioc, *out);
        CHECK(error_of(*out) == errc::invalid_request);
        m.check_requests(false);
        CHECK(complete(ioc, m, bad).message.content == "accepted");
    }

    TEST_CASE("deltas stream to the observer, whole or in pieces") {
        asio::io_context ioc;
        scripted_model m;
        m.push(scripted_model::turn::text("hello world", "abcde"));
        auto split = scripted_model::turn::text("hello world", "abcde");
        split.delta_chars = 4;
        m.push(split);
        m.push(scripted_model::turn::calls({{"k", "f", "{}"}})); // nothing to stream

        recording_observer obs;
        auto r = complete(ioc, m, user_request("x"), &obs);
        CHECK(obs.log == std::vector<std::string>{"R:abcde", "C:hello world"});
        CHECK(r.message.content == "hello world");

        obs.log.clear();
        complete(ioc, m, user_request("x"), &obs);
        CHECK(obs.log == std::vector<std::string>{"R:abcd", "R:e", "C:hell", "C:o wo", "C:rld"});

        obs.log.clear();
        complete(ioc, m, user_request("x"), &obs);
        CHECK(obs.log.empty());
    }

    TEST_CASE("a delay waits on a timer without blocking other runs") {
        asio::io_context ioc;
        scripted_model slow;
        scripted_model fast;
        auto t = scripted_model::turn::text("slow");
        t.delay = 60ms;
        slow.push(t);
        fast.push(scripted_model::turn::text("fast"));

        const auto start = std::chrono::steady_clock::now();
        auto a = spawn_call(ioc, slow, user_request("x"));
        auto b = spawn_call(ioc, fast, user_request("y"));
        // The fast call finishes while the slow one waits (one thread, no blocking).
        while (!b->done) {
            ioc.run_one_for(1s);
        }
        CHECK_FALSE(a->done);
        run_until_done(ioc, *a);
        CHECK(std::chrono::steady_clock::now() - start >= 60ms);
        CHECK(a->reply->message.content == "slow");
    }

    TEST_CASE("terminal cancellation ends a delay at once with errc::cancelled") {
        asio::io_context ioc;
        scripted_model m;
        auto t = scripted_model::turn::text("never");
        t.delay = 10s;
        m.push(t);
        asio::cancellation_signal signal;
        auto out = spawn_call(ioc, m, user_request("x"), nullptr, &signal);
        asio::steady_timer timer(ioc, 20ms);
        timer.async_wait([&](boost::system::error_code) {
            signal.emit(asio::cancellation_type::terminal);
        });
        const auto start = std::chrono::steady_clock::now();
        run_until_done(ioc, *out);
        CHECK(std::chrono::steady_clock::now() - start < 5s);
        CHECK(error_of(*out) == errc::cancelled);
        CHECK(m.remaining() == 0); // consumed
    }

    TEST_CASE("cancellation between streamed pieces stops the stream") {
        asio::io_context ioc;
        scripted_model m;
        auto t = scripted_model::turn::text("0123456789");
        t.delta_chars = 1;
        t.delta_delay = 5ms;
        m.push(t);
        recording_observer obs;
        asio::cancellation_signal signal;
        auto out = spawn_call(ioc, m, user_request("x"), &obs, &signal);
        // Cancel as soon as the third piece arrived.
        while (obs.log.size() < 3 && !out->done) {
            ioc.run_one_for(1s);
        }
        signal.emit(asio::cancellation_type::terminal);
        run_until_done(ioc, *out);
        CHECK(error_of(*out) == errc::cancelled);
        CHECK(obs.log.size() >= 3);
        CHECK(obs.log.size() < 10);
    }

    TEST_CASE("many runs share one model on one io_context") {
        asio::io_context ioc;
        scripted_model m;
        m.set_responder([](const api::chat_request& req, std::size_t) {
            auto t = scripted_model::turn::text("re: " + req.messages.back().text());
            t.delay = 5ms;
            return t;
        });
        std::vector<std::shared_ptr<call_outcome>> outs;
        for (int i = 0; i < 50; ++i) {
            outs.push_back(spawn_call(ioc, m, user_request("n" + std::to_string(i))));
        }
        for (auto& o : outs) {
            run_until_done(ioc, *o);
        }
        for (int i = 0; i < 50; ++i) {
            CHECK(
                outs[static_cast<std::size_t>(i)]->reply->message.content ==
                "re: n" + std::to_string(i)
            );
        }
        CHECK(m.request_count() == 50);
    }

    TEST_CASE("GLM: the second request carries the first turn's reasoning and clear_thinking false"
    ) {
        // A minimal tool loop: conversation -> request -> scripted reply -> conversation.
        asio::io_context ioc;
        scripted_model m("zai-glm-4.7");
        m.push(scripted_model::turn::calls({{"c1", "ls", "{}"}}, "I should list the files."));
        m.push(scripted_model::turn::text("There are 2 files.", "The tool said 2."));

        conversation conv;
        conv.add_user("How many files?");
        const auto opts = replay_options::for_model(m.id());
        for (int step = 0; step < 2; ++step) {
            api::chat_request req;
            req.messages = build_request_messages(conv, opts);
            apply_replay_params(req, opts);
            model_reply r = complete(ioc, m, req);
            conv.append(r.message);
            for (const auto& call : r.message.tool_calls) {
                conv.add_tool_result(call.id, "a.txt\nb.txt");
            }
        }

        const api::chat_request second = m.request(1);
        CHECK(second.clear_thinking == false);
        REQUIRE(second.messages.size() == 3);
        CHECK(second.messages[1].role == api::role::assistant);
        CHECK(second.messages[1].reasoning == "I should list the files.");
        CHECK_FALSE(second.messages[1].content.has_value());
        CHECK(second.messages[2].tool_call_id == "c1");
        // The stored conversation keeps both reasonings verbatim.
        CHECK(conv.messages().back().reasoning == "The tool said 2.");
    }

} // TEST_SUITE
