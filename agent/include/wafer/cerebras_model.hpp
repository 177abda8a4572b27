// The model the loop uses in production: Chat Completions over api::client, streamed.
#pragma once

#include <wafer/api/client.hpp>
#include <wafer/model.hpp>

#include <memory>

namespace wafer {

/// A `model` backed by an api::client (Cerebras or any OpenAI-compatible endpoint).
///
/// Replies are streamed (deltas reach the observer as they arrive) unless `streaming` is false.
/// Many runs may share one cerebras_model, and so one client and one connection pool.
///
/// Errors: wafer::error from the client (after its retries), errc::cancelled on cancellation.
/// Thread safety: as api::client: use it from the client's executor.
class cerebras_model final : public model {
public:
    /// `client` must outlive every async_complete in flight (share it with a shared_ptr).
    cerebras_model(std::shared_ptr<api::client> client, model_info info, bool streaming = true);
    cerebras_model(std::shared_ptr<api::client> client, std::string id, bool streaming = true);

    const model_info& info() const noexcept override { return info_; }
    const std::shared_ptr<api::client>& client() const noexcept { return client_; }

    boost::asio::awaitable<model_reply>
    async_complete(api::chat_request req, model_observer* observer) override;
    /// `opts` go to the client (admission control); reply.queue_wait says how long it queued.
    boost::asio::awaitable<model_reply> async_complete_with_options(
        api::chat_request req, model_observer* observer, api::request_options opts
    ) override;
    using model::async_complete; // the non-throwing form

private:
    std::shared_ptr<api::client> client_;
    model_info info_;
    bool streaming_;
};

} // namespace wafer
