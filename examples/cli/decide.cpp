// `wafer approve` and `wafer deny`: a decision on a call that a stopped run waits for, written
// to its journal; the next `wafer resume` acts on it.
#include <wafer/approval.hpp>

#include <filesystem>
#include <iostream>

#include "commands.hpp"
#include "failure.hpp"
#include "store.hpp"
#include "visible.hpp"

namespace asio = boost::asio;
namespace fs = std::filesystem;

namespace wafer::cli {

int decide(const decide_flags& flags) {
    const fs::path file = store_path(flags.store);
    std::error_code ec;
    if (!fs::exists(file, ec)) {
        // Not created by a lookup: a mistyped --store must not leave an empty store behind.
        throw cli_error(
            "run " + flags.id + " does not exist (there is no run store at " + file.string() + ")"
        );
    }
    asio::io_context ioc(1);
    std::shared_ptr<store::run_store> st = open_store(file);
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
    const std::string hint = store_flag_hint(flags.store);
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
