// 02: a streamed completion, showing the reasoning (dimmed) and then the answer as they arrive.
#include <wafer/api/client.hpp>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>

#include <iostream>

#include "endpoint.hpp"

namespace asio = boost::asio;

asio::awaitable<void> stream(wafer::api::client& client) {
    wafer::api::chat_request req;
    req.model = "zai-glm-4.7";
    req.messages = {wafer::api::message::user("Why does token throughput matter for agents?")};
    wafer::api::chat_stream s = co_await client.async_stream(std::move(req));
    while (const wafer::api::chunk_view* chunk = co_await s.next()) {
        if (!chunk->reasoning.empty()) {
            std::cout << "\x1b[2m" << chunk->reasoning << "\x1b[0m" << std::flush;
        }
        if (!chunk->content.empty()) {
            std::cout << chunk->content << std::flush;
        }
    }
    std::cout << "\n[finish: " << to_string(s.accumulated().finish_reason()) << "]\n";
}

int main() {
    asio::io_context ioc;
    auto ep = examples::choose_endpoint(ioc.get_executor());
    wafer::api::client client(ioc.get_executor(), ep.config);
    return examples::run_example(ioc, ep, stream(client));
}
