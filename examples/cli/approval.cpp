#include "approval.hpp"

#include <wafer/tools/tool.hpp>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <algorithm>
#include <type_traits>
#include <utility>
#include <variant>

#include "terminal.hpp"
#include "visible.hpp"

namespace asio = boost::asio;

namespace wafer::cli {

namespace {

using nlohmann::json;
using tools::tool_output;

std::string cut(const std::string& s, std::size_t limit) {
    if (s.size() <= limit) {
        return s;
    }
    std::size_t end = limit;
    while (end > 0 && (static_cast<unsigned char>(s[end]) & 0xC0U) == 0x80U) {
        --end;
    }
    return s.substr(0, end) + "...";
}

tool_output denied_no_terminal(const std::string& tool) {
    return {
        "denied: " + tool +
            " changes the workspace and needs the user's approval, but wafer runs without --yes "
            "and its standard input is not a terminal, so nobody can approve it. The call did "
            "not run. Do not retry it; say in your answer what you would have done instead.",
        true};
}

tool_output denied_by_user(const std::string& tool) {
    return {
        "denied: the user declined this " + tool +
            " call; it did not run. Do not retry the same call; explain what you wanted to do "
            "or try a different approach.",
        true};
}

/// Asks on the calling thread; true to run the call.
bool approve_here(const std::string& tool, const json& args) {
    const auto answer = ask_yes_no("wafer: allow " + describe_call(tool, args) + "?");
    return answer.value_or(false);
}

/// Asks on the prompt thread so the io_context keeps running; resumes on the caller's executor.
asio::awaitable<bool> approve_on_prompt_thread(std::string tool, json args) {
    co_return approve_here(tool, args);
}

asio::awaitable<tool_output> ask_then_run_async(
    std::shared_ptr<asio::thread_pool> prompt_thread,
    tools::async_handler_fn fn,
    std::string tool,
    json args,
    tools::call_context ctx
) {
    auto question = approve_on_prompt_thread(tool, args);
    const bool ok = co_await asio::co_spawn(
        prompt_thread->get_executor(), std::move(question), asio::use_awaitable
    );
    if (!ok) {
        co_return denied_by_user(tool);
    }
    co_return co_await fn(std::move(args), std::move(ctx));
}

tools::handler gate(
    tools::handler original,
    const std::string& tool,
    approval_mode mode,
    const std::shared_ptr<asio::thread_pool>& prompt_thread
) {
    if (mode == approval_mode::deny) {
        return tools::inline_handler{[tool](const json&, const tools::call_context&) {
            return denied_no_terminal(tool);
        }};
    }
    return std::visit(
        [&](auto& h) -> tools::handler {
            using H = std::decay_t<decltype(h)>;
            if constexpr (std::is_same_v<H, tools::async_handler>) {
                tools::async_handler_fn fn = [prompt_thread,
                                              inner = std::move(h.fn),
                                              tool](json args, tools::call_context ctx) {
                    return ask_then_run_async(
                        prompt_thread, inner, tool, std::move(args), std::move(ctx)
                    );
                };
                return tools::async_handler{std::move(fn)};
            } else {
                // Inline and blocking handlers ask on the thread they run on (blocking: a pool
                // thread; inline: the io_context thread, which then waits for the answer).
                tools::sync_handler_fn fn = [inner = std::move(h.fn), tool](
                                                const json& args, const tools::call_context& ctx
                                            ) {
                    if (!approve_here(tool, args)) {
                        return denied_by_user(tool);
                    }
                    return inner(args, ctx);
                };
                return H{std::move(fn)};
            }
        },
        original
    );
}

} // namespace

const std::vector<std::string>& gated_tools() {
    static const std::vector<std::string> names{"write_file", "edit_file", "run_command"};
    return names;
}

std::string describe_call(const std::string& tool, const json& args) {
    if (!args.is_object()) {
        return visible(tool);
    }
    const auto str = [&](const char* key) {
        const auto it = args.find(key);
        return it != args.end() && it->is_string() ? it->get<std::string>() : std::string();
    };
    // Everything shown is escaped (visible): a command must not be able to erase or disguise
    // itself on the terminal before the user answers.
    if (tool == "run_command") {
        // The whole command: what is approved is what was shown.
        return "run_command: " + visible(str("command"));
    }
    if (tool == "write_file") {
        return "write_file " + visible(str("path")) + " (" + std::to_string(str("content").size()) +
               " bytes)";
    }
    if (tool == "edit_file") {
        return "edit_file " + visible(str("path")) + ": replace \"" +
               visible(cut(str("old_text"), 80)) + "\" with \"" +
               visible(cut(str("new_text"), 80)) + "\"";
    }
    return visible(tool) + " " +
           visible(cut(args.dump(-1, ' ', false, json::error_handler_t::replace), 200));
}

std::shared_ptr<tools::registry> with_approval(
    const tools::registry& base, const std::vector<std::string>& gated, approval_mode mode
) {
    auto out = std::make_shared<tools::registry>();
    auto prompt_thread = mode == approval_mode::ask ? std::make_shared<asio::thread_pool>(1)
                                                    : std::shared_ptr<asio::thread_pool>();
    for (const auto& name : base.names()) {
        tools::tool t = *base.find(name);
        if (mode != approval_mode::allow &&
            std::find(gated.begin(), gated.end(), name) != gated.end()) {
            t.fn = gate(std::move(t.fn), name, mode, prompt_thread);
        }
        out->add(std::move(t));
    }
    return out;
}

} // namespace wafer::cli
