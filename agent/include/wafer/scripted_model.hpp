// A model that answers from a script: canned turns or a responder function. For wafer's tests
// and for users' tests of their own agents; no network, deterministic.
#pragma once

#include <wafer/error.hpp>
#include <wafer/model.hpp>

#include <chrono>
#include <cstddef>
#include <deque>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

namespace wafer {

/// A model that replies with scripted turns and records every request it receives.
///
/// Typical use in a test:
/// @code
/// wafer::scripted_model m("zai-glm-4.7");
/// m.push(wafer::scripted_model::turn::calls({{"call_1", "read_file", R"({"path":"a.txt"})"}}));
/// m.push(wafer::scripted_model::turn::text("done", "the file says hi"));
/// // ... run the agent with `m` ...
/// CHECK(m.request_count() == 2);
/// CHECK(m.request(1).messages.back().role == wafer::api::role::tool);
/// @endcode
///
/// Each call to async_complete:
/// 1. records the request (with `model` filled in when empty);
/// 2. takes the next queued turn, or asks the responder when the queue is empty; with neither,
///    throws wafer::error(errc::invalid_request) whose diagnostics say the script ran out;
/// 3. if `check_requests` is on, throws errc::invalid_request when api::validate rejects the
///    request (catches malformed histories in tests);
/// 4. waits the turn's `delay` on a timer;
/// 5. if an observer was given, streams reasoning then content to it (whole, or in
///    `delta_chars` pieces with `delta_delay` between them; without an observer there are no
///    pieces and no pauses);
/// 6. throws the turn's `error` if it has one, else returns the reply.
///
/// Errors: as above; a scripted error is thrown as wafer::error with its code and diagnostics.
///
/// Cancellation: terminal cancellation from the caller's slot ends a delay or a delta pause
/// at once with wafer::error(errc::cancelled); so does a call made after cancellation was
/// requested. The turn is consumed either way.
///
/// Thread safety: the queue and the request log are guarded by a mutex, so calls from several
/// threads are safe; the observer is called from the calling coroutine.
class scripted_model final : public model {
public:
    /// One canned reply.
    struct turn {
        std::string content;
        /// Reasoning, returned verbatim in `message.reasoning` (unset when empty).
        std::string reasoning;
        std::vector<api::tool_call> tool_calls;
        /// Defaults to tool_calls when there are calls, else stop.
        std::optional<api::finish_reason> finish_reason;
        /// Defaults to counts derived from the text (about 4 characters per token).
        std::optional<api::usage> usage;
        std::optional<api::time_info> time_info;
        /// Reply's model id; defaults to the scripted model's id.
        std::optional<std::string> model_id;
        /// Waited before anything is streamed (honours cancellation).
        std::chrono::milliseconds delay{0};
        /// Size of each observer piece; 0 delivers reasoning and content in one piece each.
        /// Pieces split bytes, not characters.
        std::size_t delta_chars = 0;
        /// Pause between pieces (honours cancellation).
        std::chrono::milliseconds delta_delay{0};
        /// Thrown after the pieces were streamed (e.g. errc::rate_limited with a diagnostics
        /// message, or errc::stream_truncated to model a broken stream).
        std::optional<boost::system::error_code> error;
        wafer::diagnostics error_diagnostics;

        /// A plain answer, optionally with reasoning.
        static turn text(std::string content, std::string reasoning = {});
        /// Tool calls, optionally with reasoning (content empty).
        static turn calls(std::vector<api::tool_call> calls, std::string reasoning = {});
        /// A failure: `code` (an errc) thrown with diagnostics whose message is `message`.
        static turn failure(boost::system::error_code code, std::string message = {});
    };

    /// Builds a turn from the request for dynamic scripts. `index` counts requests from 0.
    /// Called when the queue is empty; may throw (the exception reaches the caller).
    using responder = std::function<turn(const api::chat_request& req, std::size_t index)>;

    /// A model named `id` whose family is detected from the id.
    explicit scripted_model(std::string id = "scripted-model");
    /// A model with explicit info (e.g. to force a family).
    explicit scripted_model(model_info info);

    /// Queues a turn; returns *this for chaining.
    scripted_model& push(turn t);
    /// Sets (or clears, with nullptr) the responder used once the queue is empty.
    void set_responder(responder r);
    /// Validate every request with api::validate (default on).
    void check_requests(bool on) noexcept;

    /// Turns still queued.
    std::size_t remaining() const;
    /// Requests received so far.
    std::size_t request_count() const;
    /// A copy of request `i` (0-based). Throws std::out_of_range.
    api::chat_request request(std::size_t i) const;
    /// A copy of all requests received, in arrival order.
    std::vector<api::chat_request> requests() const;
    /// Forgets recorded requests (queued turns stay).
    void clear_requests();

    const model_info& info() const noexcept override { return info_; }

    boost::asio::awaitable<model_reply>
    async_complete(api::chat_request req, model_observer* observer) override;
    using model::async_complete; // the non-throwing form

private:
    boost::asio::awaitable<model_reply> complete(api::chat_request req, model_observer* observer);
    turn next_turn(const api::chat_request& req, std::size_t index);

    model_info info_;
    mutable std::mutex mutex_;
    std::deque<turn> queue_;
    responder responder_;
    std::vector<api::chat_request> requests_;
    bool check_requests_ = true;
};

} // namespace wafer
