#include <wafer/cerebras_model.hpp>

#include <boost/asio/use_awaitable.hpp>

namespace wafer {

cerebras_model::cerebras_model(std::shared_ptr<api::client> client, model_info info, bool streaming)
    : client_(std::move(client)), info_(std::move(info)), streaming_(streaming) {}

cerebras_model::cerebras_model(std::shared_ptr<api::client> client, std::string id, bool streaming)
    : cerebras_model(std::move(client), model_info::for_id(std::move(id)), streaming) {}

namespace {

model_reply reply_from(const api::chat_response& r) {
    model_reply out;
    if (!r.choices.empty()) {
        out.message = r.choices.front().message;
        out.finish_reason = r.choices.front().finish_reason;
    }
    out.message.role = api::role::assistant;
    out.usage = r.usage;
    out.time_info = r.time_info;
    out.model_id = r.model;
    out.response_id = r.id;
    return out;
}

} // namespace

boost::asio::awaitable<model_reply>
cerebras_model::async_complete(api::chat_request req, model_observer* observer) {
    return async_complete_with_options(std::move(req), observer, api::request_options{});
}

boost::asio::awaitable<model_reply> cerebras_model::async_complete_with_options(
    api::chat_request req, model_observer* observer, api::request_options opts
) {
    if (req.model.empty()) {
        req.model = info_.id;
    }
    // Keep the client alive for the whole call even if the model is released meanwhile.
    std::shared_ptr<api::client> client = client_;
    if (!streaming_) {
        diagnostics diag;
        api::chat_response r;
        auto ec = co_await client->async_create(std::move(req), opts, r, diag);
        throw_on_error(ec, diag);
        model_reply out = reply_from(r);
        out.queue_wait = diag.queue_wait;
        co_return out;
    }
    api::chat_stream stream = co_await client->async_stream(std::move(req), std::move(opts));
    for (;;) {
        // Chunks already buffered are decoded without a coroutine frame; only an empty buffer
        // costs a suspension.
        boost::system::error_code ec;
        const api::chunk_view* chunk = stream.try_next(ec);
        if (!chunk) {
            if (ec) {
                throw wafer::error(ec, stream.diag());
            }
            if (stream.done()) {
                break;
            }
            chunk = co_await stream.next();
            if (!chunk) {
                break;
            }
        }
        if (observer) {
            if (chunk->has_reasoning && !chunk->reasoning.empty()) {
                co_await observer->on_reasoning_delta(std::string(chunk->reasoning));
            }
            if (chunk->has_content && !chunk->content.empty()) {
                co_await observer->on_content_delta(std::string(chunk->content));
            }
        }
    }
    model_reply out = reply_from(stream.response());
    out.queue_wait = stream.diag().queue_wait;
    co_return out;
}

} // namespace wafer
