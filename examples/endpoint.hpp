// Shared by the examples: use the real endpoint when CEREBRAS_API_KEY (or CEREBRAS_BASE_URL) is
// set, else start the offline stand-in (wafer's fake server with a built-in scripted session) on
// 127.0.0.1 in the same io_context, and say so on stderr.
#pragma once

#include <wafer/api/client_config.hpp>
#include <wafer/testing/fake_server.hpp>
#include <wafer/testing/offline_model.hpp>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>

#include <cstdlib>
#include <exception>
#include <iostream>
#include <memory>

namespace examples {

struct endpoint {
    wafer::api::client_config config;
    std::unique_ptr<wafer::testing::fake_server> offline; // set when running offline
};

/// Whether CEREBRAS_API_KEY or CEREBRAS_BASE_URL names a real endpoint.
inline bool real_endpoint_configured() {
    const char* key = std::getenv("CEREBRAS_API_KEY");
    const char* base = std::getenv("CEREBRAS_BASE_URL");
    return (key && *key) || (base && *base);
}

inline endpoint choose_endpoint(boost::asio::any_io_executor ex) {
    endpoint e;
    e.config = wafer::api::client_config::from_env();
    if (real_endpoint_configured()) {
        return e;
    }
    e.offline = std::make_unique<wafer::testing::fake_server>(ex);
    e.offline->set_responder(&wafer::testing::offline_reply);
    e.config.base_url = e.offline->base_url();
    e.config.api_key = "offline";
    std::cerr << "wafer: no CEREBRAS_API_KEY set; using the offline stand-in model at "
              << e.config.base_url << "\n";
    return e;
}

namespace detail {
inline boost::asio::awaitable<int> as_status(boost::asio::awaitable<void> task) {
    co_await std::move(task);
    co_return 0;
}
} // namespace detail

/// Runs `main_task` to completion, prints what it throws, stops the offline server; returns the
/// exit status the task returned (1 if it threw).
inline int
run_example(boost::asio::io_context& ioc, endpoint& ep, boost::asio::awaitable<int> main_task) {
    int status = 1;
    boost::asio::co_spawn(ioc, std::move(main_task), [&](std::exception_ptr e, int rc) {
        status = rc;
        if (e) {
            try {
                std::rethrow_exception(e);
            } catch (const std::exception& ex) {
                std::cerr << "error: " << ex.what() << "\n";
                status = 1;
            }
        }
        if (ep.offline) {
            ep.offline->stop();
        }
    });
    ioc.run();
    return status;
}

/// As above, for a task that returns nothing (exit status 0 unless it throws).
inline int
run_example(boost::asio::io_context& ioc, endpoint& ep, boost::asio::awaitable<void> main_task) {
    return run_example(ioc, ep, detail::as_status(std::move(main_task)));
}

} // namespace examples
