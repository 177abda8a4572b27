// `wafer approve` and `wafer deny`: a decision on a call that a stopped run waits for, written
// to its journal; the next `wafer resume` acts on it.
#include <wafer/approval.hpp>

#include <iostream>

#include "commands.hpp"
#include "failure.hpp"
#include "store.hpp"
#include "visible.hpp"

namespace asio = boost::asio;

namespace wafer::cli {

int decide(const decide_flags& flags) {
    asio::io_context ioc(1); // outlives the store: its last completions go here
    std::shared_ptr<store::run_store> st = store_of_run(ioc, flags, flags.id);
    const approval_decision decision = flags.approve ? approval_decision::approve(flags.arguments)
                                                     : approval_decision::deny(flags.message);
    auto record = [&]() -> asio::awaitable<std::vector<pending_approval>> {
        co_await async_decide(*st, flags.id, flags.call, decision);
        co_return co_await async_pending_approvals(*st, flags.id);
    };
    std::vector<pending_approval> left;
    try {
        left = wait_for(ioc, record());
    } catch (const wafer::error& e) {
        // Unknown run or call, a decided call, not waiting, busy, bad --args: one line.
        throw cli_error(store_failure_line(e), exit_failure);
    }
    const std::string hint = store_flag_hint(flags);
    std::cout << (flags.approve ? "approved " : "denied ") << visible(flags.call) << " of run "
              << visible(flags.id) << "\n";
    if (left.empty()) {
        std::cout << "nothing else waits; continue the run: wafer resume " << visible(flags.id)
                  << hint << "\n";
    } else {
        std::cout << "still waiting:";
        for (std::size_t i = 0; i < left.size(); ++i) {
            std::cout << (i ? ", " : " ") << visible(left[i].call_id) << " ("
                      << visible(left[i].tool) << ")";
        }
        std::cout << "\n(wafer resume " << visible(flags.id) << hint
                  << " continues with what is decided and stops again at the rest)\n";
    }
    std::cout << std::flush;
    return exit_ok;
}

} // namespace wafer::cli
