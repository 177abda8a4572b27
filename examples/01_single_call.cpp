// 01: one chat completion, not streamed.
#include <wafer/api/client.hpp>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>

#include <iostream>

#include "endpoint.hpp"

namespace asio = boost::asio;

asio::awaitable<void> ask(wafer::api::client& client) {
    wafer::api::chat_request req;
    req.model = "zai-glm-4.7";
    req.messages = {wafer::api::message::user("In one sentence: what is a wafer-scale engine?")};
    wafer::api::chat_response res = co_await client.async_create(std::move(req));
    std::cout << res.first_message().text() << "\n";
    if (res.usage) {
        std::cout << "[" << res.usage->prompt_tokens << " prompt + " << res.usage->completion_tokens
                  << " completion tokens]\n";
    }
}

int main() {
    asio::io_context ioc;
    auto ep = examples::choose_endpoint(ioc.get_executor());
    wafer::api::client client(ioc.get_executor(), ep.config);
    return examples::run_example(ioc, ep, ask(client));
}
