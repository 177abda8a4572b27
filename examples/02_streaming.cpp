// 02: a streamed completion. GLM 4.7 reasons before it answers and streams the reasoning in its
// own field (`delta.reasoning`); this shows it (dimmed on a terminal) as it arrives, then the
// answer, then how many of the completion tokens were reasoning.
#include <wafer/api/client.hpp>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>

#include <iostream>
#include <unistd.h>

#include "endpoint.hpp"

namespace asio = boost::asio;

asio::awaitable<void> stream(wafer::api::client& client) {
    const bool tty = ::isatty(STDOUT_FILENO) != 0;
    const char* dim = tty ? "\x1b[2m" : "";
    const char* reset = tty ? "\x1b[0m" : "";

    wafer::api::chat_request req;
    req.model = "zai-glm-4.7";
    req.messages = {wafer::api::message::user("Why does token throughput matter for agents?")};
    wafer::api::chat_stream s = co_await client.async_stream(std::move(req));
    bool in_reasoning = false;
    // Each chunk is a view into the stream's buffer, valid until the next call to next().
    while (const wafer::api::chunk_view* chunk = co_await s.next()) {
        if (!chunk->reasoning.empty()) {
            if (!in_reasoning) {
                std::cout << dim << "[reasoning] ";
                in_reasoning = true;
            }
            std::cout << chunk->reasoning << std::flush;
        }
        if (!chunk->content.empty()) {
            if (in_reasoning) {
                std::cout << reset << "\n\n";
                in_reasoning = false;
            }
            std::cout << chunk->content << std::flush;
        }
    }
    if (in_reasoning) {
        std::cout << reset;
    }
    // The stream also accumulated the whole reply: finish reason and usage come with the end.
    std::cout << "\n[finish: " << to_string(s.accumulated().finish_reason());
    if (const auto& u = s.accumulated().usage()) {
        std::cout << "; " << u->completion_tokens << " completion tokens, of which "
                  << u->reasoning_tokens << " reasoning";
    }
    std::cout << "]\n";
}

int main() {
    asio::io_context ioc;
    auto ep = examples::choose_endpoint(ioc.get_executor());
    wafer::api::client client(ioc.get_executor(), ep.config);
    return examples::run_example(ioc, ep, stream(client));
}
