#include <wafer/agent.hpp>
#include <wafer/event_emitter.hpp>

#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <stdexcept>

#include "detail/deadline.hpp"

namespace wafer {

namespace asio = boost::asio;
using clock_type = std::chrono::steady_clock;

std::string_view to_string(stop_reason r) noexcept {
    switch (r) {
    case stop_reason::completed:
        return "completed";
    case stop_reason::max_turns:
        return "max_turns";
    case stop_reason::deadline:
        return "deadline";
    case stop_reason::token_budget:
        return "token_budget";
    case stop_reason::cancelled:
        return "cancelled";
    case stop_reason::error:
        return "error";
    }
    return "error";
}

namespace {

// Sent (not stored) with the extra request that max_turns_policy::final_answer makes.
constexpr std::string_view final_turn_note =
    "You have used every tool turn available for this task. You MUST now give your final answer "
    "to the user, using what you already know. Do NOT call any tool.";

std::chrono::microseconds since(clock_type::time_point t) {
    return std::chrono::duration_cast<std::chrono::microseconds>(clock_type::now() - t);
}

bool wants_json(const api::chat_request& req) {
    return req.response_format && req.response_format->type != api::response_format::kind::text;
}

std::optional<nlohmann::json> parse_json(const std::string& text) {
    auto j = nlohmann::json::parse(text, nullptr, false);
    if (j.is_discarded()) {
        return std::nullopt;
    }
    return j;
}

bool is_cancelled(const asio::cancellation_state& st) {
    return st.cancelled() != asio::cancellation_type::none;
}

// Per-run state shared by the steps of async_run.
struct run_state {
    const agent_config& cfg;
    run_options& options;
    event_emitter emitter;
    run_result result;
    clock_type::time_point started = clock_type::now();
    std::optional<clock_type::time_point> deadline;

    run_state(const agent_config& c, run_options& o, std::string run_id)
        : cfg(c), options(o), emitter(std::move(run_id), c.name, o.on_event, o.events) {}

    bool budget_exhausted() const {
        return cfg.limits.token_budget &&
               result.usage.prompt_tokens + result.usage.completion_tokens >=
                   *cfg.limits.token_budget;
    }
};

std::vector<api::function_tool> tool_definitions(const tools::registry* registry) {
    std::vector<api::function_tool> out;
    if (!registry) {
        return out;
    }
    for (auto& d : registry->definitions()) {
        api::function_tool t;
        t.name = std::move(d.name);
        if (!d.description.empty()) {
            t.description = std::move(d.description);
        }
        t.parameters = std::move(d.parameters);
        t.strict = d.strict;
        out.push_back(std::move(t));
    }
    return out;
}

// Runs one batch of tool calls and appends the results in the model's order. Tool events go to
// the callback as they happen and to the channel once the batch is done (dispatch observers
// cannot wait).
asio::awaitable<bool> run_tools(
    run_state& st, const api::message& reply, std::size_t turn, tools::dispatch_options opts
) {
    // `calls` moves into the dispatch; the observers read the names from `reply`.
    std::vector<tools::tool_call_request> calls;
    calls.reserve(reply.tool_calls.size());
    for (const auto& c : reply.tool_calls) {
        calls.push_back({c.id, c.name, c.arguments});
    }
    std::vector<event> pending;
    auto deliver = [&st, &pending](event_data data) {
        event e = st.emitter.stamp(std::move(data));
        if (st.options.on_event) {
            st.options.on_event(e);
        }
        if (st.options.events) {
            pending.push_back(std::move(e));
        }
    };
    std::vector<clock_type::time_point> starts(reply.tool_calls.size());
    opts.observer.on_start = [&](std::size_t i) {
        starts[i] = clock_type::now();
        const api::tool_call& c = reply.tool_calls[i];
        deliver(events::tool_call_started{turn, c.id, c.name, c.arguments});
    };
    opts.observer.on_finish = [&](std::size_t i, const tools::tool_result& r) {
        auto begun = starts[i] == clock_type::time_point{} ? clock_type::now() : starts[i];
        const api::tool_call& c = reply.tool_calls[i];
        deliver(events::tool_call_finished{turn, c.id, c.name, since(begun), r.is_error, r.content}
        );
    };
    tools::dispatch_result done =
        co_await st.cfg.tools->async_dispatch(std::move(calls), std::move(opts));
    for (auto& e : pending) {
        event queued = std::move(e);
        co_await st.options.events->async_send(std::move(queued));
    }
    for (auto& r : done.results) {
        st.result.conversation.add_tool_result(
            std::move(r.tool_call_id), std::move(r.content), r.is_error
        );
    }
    co_return done.cancelled;
}

} // namespace

agent::agent(agent_config cfg) : cfg_(std::move(cfg)) {
    if (!cfg_.model) {
        throw std::invalid_argument("wafer::agent: agent_config::model is required");
    }
}

asio::awaitable<run_result> agent::async_run(std::string input, run_options options) const {
    // Cancellation is checked between steps, so that the run can always finish its bookkeeping
    // (a valid history, usage, the run_finished event) after the caller cancelled.
    co_await asio::this_coro::throw_if_cancelled(false);
    asio::cancellation_state cancel_state = co_await asio::this_coro::cancellation_state;

    run_state st(cfg_, options, options.run_id.empty() ? make_run_id() : options.run_id);
    st.result.run_id = st.emitter.run_id();
    if (cfg_.limits.run_timeout) {
        st.deadline = st.started + *cfg_.limits.run_timeout;
    }
    conversation& conv = st.result.conversation;
    if (options.history) {
        conv = std::move(*options.history);
    } else if (!cfg_.system_prompt.empty()) {
        conv.add_system(cfg_.system_prompt);
    }
    conv.add_user(input);

    model& llm = *cfg_.model;
    replay_options replay = replay_options::for_model(llm.id(), cfg_.reasoning.mode);
    replay.family = llm.family();
    replay.carrier = cfg_.reasoning.carrier;
    const std::vector<api::function_tool> tool_defs = tool_definitions(cfg_.tools.get());

    // Events are bound to names before co_await: GCC 12 may destroy a temporary in a co_await
    // expression twice.
    event_data started_ev = events::run_started{llm.id(), std::move(input)};
    co_await st.emitter.async_emit(std::move(started_ev));

    bool stop = false;
    for (std::size_t turn = 1; !stop; ++turn) {
        if (is_cancelled(cancel_state)) {
            st.result.stop_reason = stop_reason::cancelled;
            break;
        }
        if (st.deadline && clock_type::now() >= *st.deadline) {
            st.result.stop_reason = stop_reason::deadline;
            break;
        }
        if (st.budget_exhausted()) {
            st.result.stop_reason = stop_reason::token_budget;
            break;
        }
        const bool final_turn = turn > cfg_.limits.max_turns;
        if (final_turn && cfg_.limits.on_max_turns == max_turns_policy::stop) {
            st.result.stop_reason = stop_reason::max_turns;
            break;
        }

        // Build the request: repaired history, reasoning replayed for the model's family.
        if (auto repairs = conv.repair(); !repairs.empty()) {
            events::history_repaired ev{turn, {}};
            for (const auto& r : repairs) {
                ev.repairs.push_back(r.to_string());
            }
            event_data repaired_ev = std::move(ev);
            co_await st.emitter.async_emit(std::move(repaired_ev));
        }
        api::chat_request req = cfg_.request;
        req.model = llm.id();
        req.messages = build_request_messages(conv, replay);
        if (!cfg_.request.clear_thinking) {
            apply_replay_params(req, replay);
        }
        if (final_turn) {
            req.tools.clear();
            req.tool_choice.reset();
            req.parallel_tool_calls.reset();
            req.messages.push_back(api::message::user(std::string(final_turn_note)));
        } else if (!tool_defs.empty() && req.tools.empty()) {
            req.tools = tool_defs;
        }
        event_data request_ev =
            events::model_request{turn, req.model, req.messages.size(), req.tools.size()};
        co_await st.emitter.async_emit(std::move(request_ev));

        // One model call, bounded by the turn and run deadlines.
        std::optional<clock_type::time_point> call_deadline = st.deadline;
        if (cfg_.limits.turn_timeout) {
            auto t = clock_type::now() + *cfg_.limits.turn_timeout;
            call_deadline = call_deadline ? std::min(*call_deadline, t) : t;
        }
        const auto call_started = clock_type::now();
        delta_forwarder forwarder(st.emitter, turn);
        std::optional<model_reply> reply;
        std::exception_ptr failure;
        try {
            asio::awaitable<model_reply> call = llm.async_complete(std::move(req), &forwarder);
            if (call_deadline) {
                reply = co_await detail::async_with_deadline(std::move(call), *call_deadline);
            } else {
                reply = co_await std::move(call);
            }
        } catch (...) {
            failure = std::current_exception();
        }
        if (is_cancelled(cancel_state)) {
            st.result.stop_reason = stop_reason::cancelled;
            break;
        }
        if (failure) {
            run_error err;
            try {
                std::rethrow_exception(failure);
            } catch (const wafer::error& e) {
                err = {e.code(), e.diag()};
            } catch (const boost::system::system_error& e) {
                err.code = e.code();
                err.diagnostics.detail = e.what();
            } catch (const std::exception& e) {
                err.code = errc::invalid_response;
                err.diagnostics.detail = e.what();
            }
            st.result.stop_reason = stop_reason::error;
            st.result.error = std::move(err);
            break;
        }
        if (!reply) {
            if (st.deadline && clock_type::now() >= *st.deadline) {
                st.result.stop_reason = stop_reason::deadline;
            } else {
                st.result.stop_reason = stop_reason::error;
                st.result.error = run_error{errc::timeout, {}};
                st.result.error->diagnostics.detail = "model call exceeded the turn timeout";
            }
            break;
        }

        // Account for the turn.
        turn_usage tu{
            turn, reply->usage.value_or(api::usage{}), reply->time_info, since(call_started)};
        st.result.usage += tu.usage;
        if (tu.time_info) {
            st.result.time_info += *tu.time_info;
        }
        st.result.turns.push_back(tu);
        api::message& msg = reply->message;
        msg.role = api::role::assistant;
        // GLM with a JSON response_format may repeat a tool call next to a valid JSON answer;
        // the JSON is the answer (cerebras-api.md §9, quirk 2). A final turn never runs tools.
        if (!msg.tool_calls.empty() &&
            (final_turn || (wants_json(cfg_.request) && parse_json(msg.text())))) {
            msg.tool_calls.clear();
        }
        event_data finished_ev = events::turn_finished{
            turn,
            reply->finish_reason,
            reply->usage,
            reply->time_info,
            msg.tool_calls.size(),
            tu.duration};
        co_await st.emitter.async_emit(std::move(finished_ev));
        const bool has_calls = !msg.tool_calls.empty();
        if (!has_calls) {
            st.result.final_text = msg.text();
        }
        conv.append(std::move(msg));
        if (!has_calls) {
            st.result.stop_reason = final_turn ? stop_reason::max_turns : stop_reason::completed;
            break;
        }
        if (st.budget_exhausted()) {
            st.result.stop_reason = stop_reason::token_budget;
            break;
        }
        if (!cfg_.tools) {
            // Calls to tools that were never offered: answer each so the history stays valid.
            for (const auto& c : conv.messages().back().tool_calls) {
                conv.add_tool_result(
                    c.id, "error: no tools are available; answer without tools", true
                );
            }
            continue;
        }

        tools::dispatch_options opts;
        opts.max_concurrency = cfg_.limits.max_tool_concurrency;
        opts.call_timeout = cfg_.limits.tool_call_timeout;
        opts.batch_timeout = cfg_.limits.tool_batch_timeout;
        opts.output_cap = cfg_.limits.tool_output_cap;
        if (st.deadline) {
            auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                *st.deadline - clock_type::now()
            );
            left = std::max(left, std::chrono::milliseconds(0));
            opts.batch_timeout = opts.batch_timeout ? std::min(*opts.batch_timeout, left) : left;
        }
        // Copy: the stored message must not move while the dispatch reads it.
        api::message calls_msg = conv.messages().back();
        if (co_await run_tools(st, calls_msg, turn, std::move(opts)) ||
            is_cancelled(cancel_state)) {
            st.result.stop_reason = stop_reason::cancelled;
            break;
        }
    }

    // Whatever stopped the run, leave a history that can be sent again as it is.
    conv.repair();
    if (wants_json(cfg_.request) && !st.result.final_text.empty()) {
        st.result.final_json = parse_json(st.result.final_text);
    }
    st.result.duration = since(st.started);
    events::run_finished fin{
        std::string(to_string(st.result.stop_reason)),
        st.result.final_text,
        std::nullopt,
        st.result.usage,
        st.result.turns.size(),
        st.result.duration};
    if (st.result.error) {
        fin.error = st.result.error->code.message();
        if (auto d = st.result.error->diagnostics.to_string(); !d.empty()) {
            *fin.error += ": " + d;
        }
    }
    event_data fin_ev = std::move(fin);
    co_await st.emitter.async_emit(std::move(fin_ev));
    if (options.events) {
        co_await options.events->async_finish();
    }
    co_return std::move(st.result);
}

} // namespace wafer
