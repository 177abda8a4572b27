// A consumer of the installed package: builds a request and decodes a streamed chunk.
#include <wafer/api/accumulator.hpp>
#include <wafer/api/chat_request.hpp>
#include <wafer/api/chunk_decoder.hpp>
#include <wafer/api/sse_parser.hpp>

#include <iostream>

int main() {
    wafer::api::chat_request req;
    req.model = "zai-glm-4.7";
    req.messages.push_back(wafer::api::message::user("hi"));
    std::string body = wafer::api::serialize(req);

    wafer::api::sse_parser sse;
    sse.feed("data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"hello\"},"
             "\"finish_reason\":\"stop\"}]}\n\n");
    wafer::api::chunk_decoder decoder;
    wafer::api::accumulator acc;
    while (auto ev = sse.next()) {
        boost::system::error_code ec;
        acc.add(decoder.decode(ev->data, ec));
        if (ec) {
            std::cerr << "decode failed: " << ec.message() << "\n";
            return 1;
        }
    }
    if (acc.message().text() != "hello" ||
        body.find("\"model\":\"zai-glm-4.7\"") == std::string::npos) {
        std::cerr << "unexpected result\n";
        return 1;
    }
    std::cout << "wafer consumer OK\n";
    return 0;
}
