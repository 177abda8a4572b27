// The model interface the agent loop talks to: one awaitable completion per request.
#pragma once

#include <wafer/api/admission.hpp>
#include <wafer/api/chat_request.hpp>
#include <wafer/api/chat_response.hpp>
#include <wafer/api/message.hpp>
#include <wafer/api/usage.hpp>
#include <wafer/error.hpp>
#include <wafer/model_family.hpp>

#include <boost/asio/awaitable.hpp>

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>

namespace wafer {

namespace detail {
// Not a designated initializer: consumers may build with -Wmissing-field-initializers.
inline api::message empty_assistant_message() {
    api::message m;
    m.role = api::role::assistant;
    return m;
}
} // namespace detail

/// One completed model reply: the assistant message (reasoning verbatim, content, tool calls)
/// and what the server reported about it.
struct model_reply {
    api::message message = detail::empty_assistant_message();
    api::finish_reason finish_reason = api::finish_reason::none;
    std::optional<api::usage> usage;
    std::optional<api::time_info> time_info;
    /// The model that answered, as the server named it (may differ from the requested id).
    std::string model_id;
    /// The server's completion id (chatcmpl-…), if any.
    std::string response_id;
    /// Time the request waited in the client's admission queue (0 without admission control).
    std::chrono::microseconds queue_wait{0};

    friend bool operator==(const model_reply&, const model_reply&) = default;
};

/// Static facts about a model.
struct model_info {
    /// The id sent in requests (e.g. "zai-glm-4.7").
    std::string id;
    /// How it reasons; detect_model_family(id) unless overridden.
    model_family family = model_family::unknown;
    /// Context window in tokens, when known.
    std::optional<std::int64_t> context_window;

    /// Info for an id, with its family detected.
    static model_info for_id(std::string id) {
        model_info i;
        i.family = detect_model_family(id);
        i.id = std::move(id);
        return i;
    }
};

/// Receives a reply's pieces while it streams, so the loop can forward them as events.
///
/// The model awaits each call before reading on, so a slow observer slows the stream
/// (backpressure). Calls happen on the model's executor, in stream order; the default
/// implementations do nothing.
class model_observer {
public:
    virtual ~model_observer() = default;
    /// A piece of reasoning text.
    virtual boost::asio::awaitable<void> on_reasoning_delta(std::string text);
    /// A piece of answer text.
    virtual boost::asio::awaitable<void> on_content_delta(std::string text);

protected:
    model_observer() = default;
    model_observer(const model_observer&) = default;
    model_observer& operator=(const model_observer&) = default;
};

/// What the agent loop talks to. Implementations: `scripted_model` (canned turns, for tests) and
/// the Cerebras model over `api::client`.
///
/// An implementation over `api::client` (one client, hence one connection pool, shared by every
/// run) takes the request by value, fills `model` and sets `stream = true` with
/// `stream_options.include_usage`, calls `client.async_stream(req)`, and for every chunk from
/// `co_await stream.next()` forwards `reasoning` then `content` pieces to the observer (copied
/// into std::string: the views die at the next chunk). At the end, the stream's accumulator
/// gives the reply: message, finish_reason, usage, time_info, model and id. Errors from the
/// client are already wafer::error; it maps Asio's operation_aborted to errc::cancelled as
/// scripted_model does.
///
/// One model object serves many concurrent runs on one io_context: async_complete may be called
/// again before an earlier call finished. Implementations hold no per-run state.
///
/// Thread safety: as documented by each implementation.
class model {
public:
    virtual ~model() = default;

    /// The model's id and family.
    virtual const model_info& info() const noexcept = 0;
    model_family family() const noexcept { return info().family; }
    const std::string& id() const noexcept { return info().id; }

    /// Completes one chat request.
    ///
    /// `req.model`, when empty, is filled with `info().id`. Streaming implementations call
    /// `observer` (may be null) for every reasoning and content piece as it arrives; the returned
    /// reply holds the whole message either way.
    ///
    /// Errors: throws wafer::error (code wafer::errc, with diagnostics) for transport and
    /// protocol failures after the implementation's retries; errc::cancelled on cancellation.
    ///
    /// Cancellation: honours terminal cancellation from the caller's cancellation slot (e.g. the
    /// `co_spawn` token's); the in-flight request is abandoned and its connection not reused.
    ///
    /// Object lifetimes: `observer` must outlive the returned awaitable.
    virtual boost::asio::awaitable<model_reply>
    async_complete(api::chat_request req, model_observer* observer) = 0;

    /// The same with the request's client-side options (admission control: run key, priority,
    /// deadline; api::request_options). The agent loop calls this form. The default ignores
    /// `opts` and calls async_complete. Its own name, so that a model overriding only
    /// async_complete hides nothing.
    virtual boost::asio::awaitable<model_reply> async_complete_with_options(
        api::chat_request req, model_observer* observer, api::request_options opts
    );

    /// The same, reporting a failure instead of throwing it: returns the error code (empty on
    /// success) with `diag` filled, and the reply in `out`. Exceptions that are not
    /// wafer::error become errc::invalid_response (operation_aborted: errc::cancelled), with
    /// their text in diagnostics::detail.
    ///
    /// Object lifetimes: `out`, `diag` and `observer` must outlive the returned awaitable.
    boost::asio::awaitable<boost::system::error_code> async_complete(
        api::chat_request req, model_observer* observer, model_reply& out, diagnostics& diag
    );
    boost::asio::awaitable<boost::system::error_code> async_complete(
        api::chat_request req,
        model_observer* observer,
        api::request_options opts,
        model_reply& out,
        diagnostics& diag
    );

protected:
    model() = default;
    model(const model&) = default;
    model& operator=(const model&) = default;
};

} // namespace wafer
