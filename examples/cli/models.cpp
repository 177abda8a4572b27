// `wafer models`: GET /v1/models, one id per line (or the list as JSON).
#include <wafer/api/client.hpp>

#include <boost/asio/io_context.hpp>

#include <nlohmann/json.hpp>

#include <iostream>
#include <memory>

#include "commands.hpp"
#include "session.hpp"
#include "visible.hpp"

namespace asio = boost::asio;

namespace wafer::cli {

namespace {

asio::awaitable<int> models_task(bool json, std::shared_ptr<api::client> client) {
    const std::vector<api::model_info> list = co_await client->async_models();
    if (json) {
        nlohmann::json out = nlohmann::json::array();
        for (const auto& m : list) {
            out.push_back({{"id", m.id}, {"owned_by", m.owned_by}, {"created", m.created}});
        }
        // Invalid UTF-8 in a server's ids becomes U+FFFD rather than an exception.
        std::cout << out.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) << "\n";
    } else {
        for (const auto& m : list) {
            std::cout << visible(m.id) << "\n"; // the server's text, escaped
        }
    }
    std::cout.flush();
    co_return 0;
}

} // namespace

int models(const models_flags& flags) {
    asio::io_context ioc(1);
    endpoint ep = open_endpoint(
        ioc.get_executor(), endpoint_request::from_env(flags.base_url, flags.ca_file)
    );
    auto client = std::make_shared<api::client>(ioc.get_executor(), ep.config);
    return run_session(ioc, ep, models_task(flags.json, client));
}

} // namespace wafer::cli
