#include "session.hpp"

#include <wafer/model_family.hpp>

#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/co_spawn.hpp>

#include <csignal>
#include <exception>
#include <iostream>

#include "failure.hpp"
#include "stop_signals.hpp"
#include "tracing.hpp"

namespace asio = boost::asio;

namespace wafer::cli {

namespace {

int report_exception(std::exception_ptr e, const std::string& base_url) {
    try {
        std::rethrow_exception(e);
    } catch (const cli_error& x) {
        print_failure(x.what());
        return x.status();
    } catch (const wafer::error& x) {
        print_failure(failure_line(x.code(), x.diag(), base_url));
        return x.code() == make_error_code(errc::cancelled) ? exit_interrupted : exit_failure;
    } catch (const std::exception& x) {
        print_failure(x.what());
        return exit_failure;
    }
}

} // namespace

int run_session(asio::io_context& ioc, endpoint& ep, asio::awaitable<int> task) {
    int status = exit_failure;
    asio::cancellation_signal cancel;
    // The first signal cancels the task (it reports what it has); a second one exits at once,
    // from the signal handler, even if this thread is stuck.
    int stopped_by = 0;
    stop_signals signals(ioc.get_executor(), [&](int sig) {
        stopped_by = sig;
        std::cerr << "\nwafer: interrupted, stopping (Ctrl-C again to quit at once)\n";
        cancel.emit(asio::cancellation_type::terminal);
    });

    const std::string base_url = ep.display_url;
    asio::co_spawn(
        ioc,
        std::move(task),
        asio::bind_cancellation_slot(
            cancel.slot(),
            [&](std::exception_ptr e, int rc) {
                status = e ? report_exception(e, base_url) : rc;
                signals.cancel();
                if (ep.offline) {
                    ep.offline->stop();
                }
            }
        )
    );
    ioc.run();
    finish_tracing();
    // A run SIGTERM stopped ends as one the signal killed would (a journaled one can go on).
    if (stopped_by == SIGTERM && status == exit_interrupted) {
        return exit_terminated;
    }
    return status;
}

int run_status(const run_result& r, const std::string& base_url, std::chrono::seconds timeout) {
    switch (r.stop_reason) {
    case stop_reason::completed:
        return exit_ok;
    case stop_reason::error:
        if (r.error) {
            print_failure(failure_line(r.error->code, r.error->diagnostics, base_url));
        } else {
            print_failure("the run failed");
        }
        return exit_failure;
    case stop_reason::cancelled:
        print_failure("interrupted");
        return exit_interrupted;
    case stop_reason::deadline:
        print_failure(
            "timed out: no final answer within the --timeout of " +
            std::to_string(timeout.count()) + " s"
        );
        return exit_incomplete;
    default:
        print_failure(
            "the run stopped before a final answer (" + std::string(to_string(r.stop_reason)) + ")"
        );
        return exit_incomplete;
    }
}

void apply_sampling_defaults(api::chat_request& req, const std::string& model_id) {
    if (detect_model_family(model_id) == model_family::glm) {
        req.temperature = 1.0;
        req.top_p = 0.95;
    }
}

} // namespace wafer::cli
