// The Cerebras / OpenAI-compatible Chat Completions client: keep-alive HTTP/1.1 (+TLS) pool,
// the official SDKs' retry policy, typed errors with diagnostics.
#pragma once

#include <wafer/api/admission.hpp>
#include <wafer/api/chat_request.hpp>
#include <wafer/api/chat_response.hpp>
#include <wafer/api/chat_stream.hpp>
#include <wafer/api/client_config.hpp>
#include <wafer/error.hpp>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/system/error_code.hpp>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace wafer::api {

/// One entry of GET /v1/models.
struct model_info {
    std::string id;
    std::string object;
    std::int64_t created = 0;
    std::string owned_by;
    /// The context window, where the server reports one: `limits.max_context_length`
    /// (Cerebras's catalog shape), `max_model_len` (vLLM), `context_length` or
    /// `context_window`.
    std::optional<std::int64_t> context_window;
};

/// Talks to one endpoint (client_config::base_url).
///
/// Every operation comes in two forms: a throwing one returning the value (throws wafer::error,
/// which carries wafer::diagnostics), and a non-throwing one that returns the error_code and fills
/// output references (Boost.MySQL's shape). Both retry as the official SDKs do (see
/// retry_policy.hpp): connection errors, timeouts, 408, 409, 429 and >= 500, honouring
/// x-should-retry and retry-after(-ms); diag.attempts counts the HTTP attempts.
///
/// Errors: the errc of the last attempt: an HTTP error maps through errc_from_http_status (a
/// status_code inside the body wins), transport failures to resolve_failed, connection_failed,
/// tls_failed, proxy_failed or timeout; a 2xx body that does not parse is invalid_response.
/// The API key never appears in diagnostics or exception text.
///
/// Cancellation: terminal cancellation through the awaiting coroutine's cancellation slot (e.g.
/// co_spawn with bind_cancellation_slot) aborts the current I/O or retry sleep, closes the
/// connection (never pooled) and completes with errc::cancelled.
///
/// Object lifetimes: the output references of the non-throwing forms must stay valid until the
/// returned awaitable completes. The client may be destroyed while operations or streams are in
/// flight (they share its state).
///
/// Admission control (client_config::admission; on for Cerebras hosts): chat requests of every
/// run sharing the client wait in one queue until the rate-limit budget the server reports admits
/// them (see admission.hpp).
///
/// Thread safety: distinct objects safe, shared objects unsafe: use one client from one thread
/// or strand (its executor).
class client {
public:
    /// Throws wafer::error(errc::invalid_request) on a malformed base_url or proxy, or
    /// errc::tls_failed when the TLS context of an https endpoint cannot be set up (e.g.
    /// unreadable ca_file; http endpoints load no CA store and ignore ca_file).
    client(boost::asio::any_io_executor ex, client_config cfg);
    ~client();
    client(client&&) noexcept;
    client& operator=(client&&) noexcept;

    boost::asio::any_io_executor get_executor() const noexcept;
    const client_config& config() const noexcept;

    /// POST /v1/chat/completions without streaming (`stream` is forced off).
    ///
    /// `opts` (run key, priority, deadline, prompt estimate) matter only under admission control
    /// (client_config::admission): then every attempt first waits for the limiter, which may fail
    /// it with errc::admission_timeout; diag.queue_wait says how long it waited.
    boost::asio::awaitable<chat_response> async_create(chat_request req);
    boost::asio::awaitable<chat_response> async_create(chat_request req, request_options opts);
    boost::asio::awaitable<boost::system::error_code>
    async_create(chat_request req, chat_response& out, diagnostics& diag);
    boost::asio::awaitable<boost::system::error_code> async_create(
        chat_request req, const request_options& opts, chat_response& out, diagnostics& diag
    );

    /// POST /v1/chat/completions with stream=true and stream_options.include_usage=true. Completes
    /// once a 2xx response head arrived (retries happen before that); then pull the chunks. Under
    /// admission control the stream's reservation is settled with its usage when it ends
    /// (`opts` as for async_create; chat_stream::diag().queue_wait).
    boost::asio::awaitable<chat_stream> async_stream(chat_request req);
    boost::asio::awaitable<chat_stream> async_stream(chat_request req, request_options opts);
    boost::asio::awaitable<boost::system::error_code>
    async_stream(chat_request req, chat_stream& out, diagnostics& diag);
    boost::asio::awaitable<boost::system::error_code> async_stream(
        chat_request req, const request_options& opts, chat_stream& out, diagnostics& diag
    );

    /// GET /v1/models.
    boost::asio::awaitable<std::vector<model_info>> async_models();
    boost::asio::awaitable<boost::system::error_code>
    async_models(std::vector<model_info>& out, diagnostics& diag);

    /// Fire-and-forget GET /v1/tcp_warming (1 s timeouts, no retries, errors swallowed) so the
    /// first real request finds an open connection in the pool.
    void warm_up();

    /// True when admission control applies to this client (see admission_config::enabled).
    bool admission_enabled() const noexcept;

    /// Pool statistics: idle connections now, and connections opened so far.
    std::size_t idle_connections() const noexcept;
    std::size_t connections_opened() const noexcept;

private:
    struct impl;
    std::shared_ptr<impl> impl_;
};

} // namespace wafer::api
