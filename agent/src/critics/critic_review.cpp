#include "critics/critic_review.hpp"

#include <boost/asio/this_coro.hpp>

#include <chrono>

namespace wafer::detail {

namespace asio = boost::asio;

namespace {

// Bounds what a critic reads of one tool result or argument list; critics need the gist, and
// their prompt must stay far below the context window.
constexpr std::size_t excerpt_cap = 4000;

void append_excerpt(std::string& out, std::string_view text) {
    if (text.size() <= excerpt_cap) {
        out.append(text);
        return;
    }
    std::size_t cut = excerpt_cap;
    // Do not split a UTF-8 sequence.
    while (cut > 0 && (static_cast<unsigned char>(text[cut]) & 0xC0) == 0x80) {
        --cut;
    }
    out.append(text.substr(0, cut));
    out.append("\n[... ");
    out.append(std::to_string(text.size() - cut));
    out.append(" more bytes not shown]");
}

void append_task(std::string& out, std::string_view task) {
    out.append("## Task (the user's request)\n");
    append_excerpt(out, task);
    out.append("\n\n");
}

void append_call(std::string& out, const api::tool_call& c) {
    out.append("tool: ");
    out.append(c.name);
    out.append("\narguments: ");
    append_excerpt(out, c.arguments);
    out.push_back('\n');
}

constexpr std::string_view reply_instruction =
    "Reply with your verdict as the JSON object described in your instructions.\n";

} // namespace

agent_config critic_agent_config(const critic& c) {
    agent_config cfg;
    cfg.name = c.name;
    cfg.model = c.model;
    cfg.system_prompt = c.instructions;
    cfg.tools = c.tools;
    cfg.limits.max_turns = c.max_turns;
    cfg.limits.run_timeout = c.timeout;
    cfg.request = c.request;
    cfg.request.response_format =
        api::response_format::json_schema_of("critic_verdict", verdict_schema(), true);
    return cfg;
}

std::string
before_tools_input(std::string_view task, const api::message& assistant, std::size_t index) {
    std::string out;
    out.append("Gate: before_tools. Review this proposed tool call BEFORE it runs. Nothing has run "
               "yet.\n\n");
    append_task(out, task);
    if (std::string text = assistant.text(); !text.empty()) {
        out.append("## What the assistant said\n");
        append_excerpt(out, text);
        out.append("\n\n");
    }
    const auto& calls = assistant.tool_calls;
    out.append("## The call to review (");
    out.append(std::to_string(index + 1));
    out.append(" of ");
    out.append(std::to_string(calls.size()));
    out.append(" in this step)\n");
    append_call(out, calls[index]);
    if (calls.size() > 1) {
        out.append("\n## Other calls in the same step (not yours to review)\n");
        for (std::size_t i = 0; i < calls.size(); ++i) {
            if (i != index) {
                out.append("- ");
                out.append(calls[i].name);
                out.push_back('\n');
            }
        }
    }
    out.push_back('\n');
    out.append(reply_instruction);
    return out;
}

std::string after_step_input(
    std::string_view task, const api::message& assistant, std::span<const api::message> results
) {
    std::string out;
    out.append("Gate: after_step. Review the step that has just run: the tool calls and their "
               "results.\n\n");
    append_task(out, task);
    out.append("## Calls and results\n");
    std::size_t n = 0;
    for (const auto& c : assistant.tool_calls) {
        out.append("### ");
        out.append(std::to_string(++n));
        out.push_back('\n');
        append_call(out, c);
        for (const auto& r : results) {
            if (r.tool_call_id == c.id) {
                out.append("result:\n");
                append_excerpt(out, r.text());
                out.push_back('\n');
                break;
            }
        }
    }
    out.push_back('\n');
    out.append(reply_instruction);
    return out;
}

std::string final_answer_input(
    std::string_view task, std::span<const api::message> steps, std::string_view answer
) {
    std::string out;
    out.append("Gate: final_answer. Review the assistant's final answer before it goes to the "
               "user.\n\n");
    append_task(out, task);
    std::string calls;
    for (const auto& m : steps) {
        for (const auto& c : m.tool_calls) {
            calls.append("- ");
            calls.append(c.name);
            calls.push_back(' ');
            // Appended piecewise: string + literal trips GCC 12's -Warray-bounds.
            const std::string_view args(c.arguments);
            calls.append(args.substr(0, 200));
            if (args.size() > 200) {
                calls.append("...");
            }
            calls.push_back('\n');
        }
    }
    if (!calls.empty()) {
        out.append("## Tool calls made\n");
        append_excerpt(out, calls);
        out.append("\n");
    }
    out.append("## Final answer\n");
    append_excerpt(out, answer);
    out.append("\n\n");
    out.append(reply_instruction);
    return out;
}

namespace {

void append_review_details(std::string& out, const critic_review& r) {
    for (const auto& reason : r.verdict.reasons) {
        out.append("\n- ");
        out.append(reason);
    }
    if (r.error) {
        out.append("\n- (the review failed: ");
        out.append(*r.error);
        out.append(")");
    }
    if (r.verdict.suggested_fix) {
        out.append("\nSuggested fix: ");
        out.append(*r.verdict.suggested_fix);
    }
    if (r.verdict.corrected_arguments) {
        out.append("\nCorrected arguments: ");
        out.append(*r.verdict.corrected_arguments);
    }
}

} // namespace

std::string refusal_text(critic_decision decision, std::span<const critic_review* const> reviews) {
    std::string out = decision == critic_decision::deny
                          ? "Not run: denied by review."
                          : "Not run: the reviewers asked you to revise this call.";
    for (const critic_review* r : reviews) {
        if (r->verdict.decision == critic_decision::approve) {
            continue;
        }
        out.append("\nCritic '");
        out.append(r->critic);
        out.append("' (");
        out.append(events::to_string(r->verdict.decision));
        out.append("):");
        append_review_details(out, *r);
    }
    out.append(
        decision == critic_decision::deny
            ? "\nDo NOT retry this call as it is. Find another way or explain why it cannot be "
              "done."
            : "\nPropose the call again with these changes, or do without it."
    );
    return out;
}

std::string revision_feedback(gate g, std::span<const critic_review* const> reviews) {
    std::string out = g == gate::final_answer
                          ? "Reviewers asked for a revision of your final answer."
                          : "Reviewers asked for changes after your last step.";
    for (const critic_review* r : reviews) {
        if (r->verdict.decision == critic_decision::approve) {
            continue;
        }
        out.append("\nCritic '");
        out.append(r->critic);
        out.append("':");
        append_review_details(out, *r);
    }
    out.append(
        g == gate::final_answer
            ? "\nYou MUST address this feedback, then give your revised final answer."
            : "\nYou MUST address this feedback before you go on."
    );
    return out;
}

boost::asio::awaitable<critic_review> run_review(
    const agent& critic_agent,
    const critic& c,
    gate g,
    std::size_t turn,
    std::string input,
    std::optional<std::string> call_id,
    std::optional<telemetry::span_context> trace_parent
) {
    const auto started = std::chrono::steady_clock::now();
    critic_review review;
    review.critic = c.name;
    review.gate = g;
    review.turn = turn;
    review.call_id = std::move(call_id);
    try {
        run_options options;
        options.trace_parent = trace_parent;
        asio::awaitable<run_result> run =
            critic_agent.async_run(std::move(input), std::move(options));
        run_result r = co_await std::move(run);
        review.usage = r.usage;
        std::string why;
        std::optional<verdict> v;
        switch (r.stop_reason) {
        case stop_reason::completed:
        case stop_reason::max_turns:
            if (r.final_json) {
                v = parse_verdict(*r.final_json, &why);
            } else if (!r.final_text.empty()) {
                v = parse_verdict_text(r.final_text, &why);
            } else {
                why = "the critic gave no verdict";
            }
            break;
        case stop_reason::deadline:
            why = "no verdict within " + std::to_string(c.timeout.count()) + " ms";
            break;
        case stop_reason::cancelled:
            why = "the review was cancelled";
            break;
        default:
            why = "the critic's run ended with " + std::string(to_string(r.stop_reason));
            if (r.error) {
                why += ": " + r.error->code.message();
            }
            break;
        }
        if (v) {
            review.verdict = std::move(*v);
        } else {
            review.error = std::move(why);
        }
    } catch (const std::exception& e) {
        review.error = std::string("the critic failed: ") + e.what();
    }
    const auto latency = std::chrono::duration_cast<std::chrono::microseconds>(
        std::chrono::steady_clock::now() - started
    );
    if (review.error) {
        critic_review failed =
            failed_review(c, g, turn, std::move(review.call_id), std::move(*review.error), latency);
        failed.usage = review.usage;
        co_return failed;
    }
    review.latency = latency;
    co_return review;
}

critic_review failed_review(
    const critic& c,
    gate g,
    std::size_t turn,
    std::optional<std::string> call_id,
    std::string why,
    std::chrono::microseconds latency
) {
    critic_review r;
    r.critic = c.name;
    r.gate = g;
    r.turn = turn;
    r.call_id = std::move(call_id);
    r.error = std::move(why);
    r.verdict.decision = c.fail_closed ? critic_decision::deny : critic_decision::approve;
    r.latency = latency;
    return r;
}

} // namespace wafer::detail
