// A local Cerebras-compatible Chat Completions server for tests, benchmarks and the offline
// stand-in model. It binds 127.0.0.1 only and serves scripted replies and faults.
#pragma once

#include <wafer/api/chat_request.hpp>
#include <wafer/api/chat_response.hpp>
#include <wafer/api/usage.hpp>

#include <boost/asio/any_io_executor.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace wafer::testing {

/// A scripted assistant reply. Streamed as Cerebras does: a role chunk, reasoning pieces, content
/// pieces, all tool calls in one chunk, then a final chunk with finish_reason, usage, time_info.
struct scripted_turn {
    std::string reasoning;
    /// Empty content is omitted from the reply when there is reasoning or a tool call.
    std::string content;
    /// Calls with an empty id get a fresh 9-character hex id, as Cerebras sends.
    std::vector<api::tool_call> tool_calls;
    /// Defaults to tool_calls when there are calls, else stop.
    std::optional<api::finish_reason> finish_reason;
    /// Defaults to counts derived from the text: ceil(characters / 4) tokens for the prompt
    /// (all message texts of the request) and for the completion (reasoning, content, call
    /// names and arguments); reasoning_tokens likewise from the reasoning.
    std::optional<api::usage> usage;
    /// Defaults to small plausible timings (1000 tokens/s) with `created` = now.
    std::optional<api::time_info> time_info;
    /// Model named in the reply; empty echoes the request's model.
    std::string model;
};

/// Shape of an error body (reference: cerebras-api.md §6).
enum class error_shape {
    flat,   ///< {"message","type","param","code"}
    nested, ///< {"status_code":N,"error":{"message","type","param","code","id"}}
    detail, ///< {"detail":"…"} (FastAPI)
};

/// An HTTP error reply (or, as delivery::stream_error, a mid-stream error event).
struct scripted_error {
    int status = 500;
    error_shape shape = error_shape::flat;
    std::string message = "Encountered a server error, please try again.";
    std::string type = "server_error";
    std::string code;
    std::string param;
    std::optional<std::string> retry_after;    ///< retry-after header, verbatim
    std::optional<std::string> retry_after_ms; ///< retry-after-ms header, verbatim
    std::optional<std::string> should_retry;   ///< x-should-retry header, verbatim
};

/// How one response is delivered, and which fault to inject into it.
///
/// Streamed events are numbered from 0: the role chunk, reasoning pieces, content pieces, the
/// tool-call chunk (if any), the final chunk. The `*_chunks` / `*_at` positions count events.
/// For non-streaming turns: `malformed_chunk_at` (any value) replaces the body with invalid JSON;
/// `disconnect_after_chunks` = 0 closes without any response, > 0 sends the headers and half of
/// the body, then closes.
struct delivery {
    /// Bytes of content/reasoning per chunk, never splitting a UTF-8 sequence (0: one
    /// whitespace-led word per chunk, e.g. "Hello", " world").
    std::size_t chunk_chars = 0;
    /// Pause between events. When zero, events are coalesced into large writes.
    std::chrono::milliseconds chunk_delay{0};
    /// Pause before the response headers.
    std::chrono::milliseconds header_delay{0};
    /// Send "data: [DONE]" at the end (real Cerebras recordings have none).
    bool done_marker = false;
    /// Send this many events, then close the socket without ending the chunked body.
    std::optional<std::size_t> disconnect_after_chunks;
    /// Replace the event at this position with a data line that is not valid JSON.
    std::optional<std::size_t> malformed_chunk_at;
    /// After this many events, send a mid-stream error event (`stream_error`) and end the
    /// stream cleanly instead of sending the rest.
    std::optional<std::size_t> error_after_chunks;
    /// The mid-stream error: {"error":{"message","type","param","code","id"},"status_code":N}.
    scripted_error stream_error{};
    /// Extra response headers (e.g. x-ratelimit-*), sent verbatim.
    std::vector<std::pair<std::string, std::string>> headers;
};

/// A verbatim reply, e.g. a recorded response: status, content type and body sent as-is.
/// Bodies whose content type is text/event-stream are sent with chunked transfer encoding, one
/// HTTP chunk per SSE event (split after each blank line), so a recording is replayed byte for
/// byte; delivery's chunk_delay, header_delay, headers and disconnect_after_chunks apply.
struct raw_reply {
    int status = 200;
    std::string content_type = "application/json";
    std::string body;
};

/// One planned reply to one POST /v1/chat/completions (non-streaming requests get the turn as a
/// chat.completion object; streaming ones get SSE).
struct reply {
    enum class kind { turn, error, raw };
    kind type = kind::turn;
    scripted_turn turn;
    scripted_error error;
    raw_reply raw;
    delivery how;

    static reply of(scripted_turn t, delivery d = {});
    static reply failure(scripted_error e, delivery d = {});
    static reply verbatim(raw_reply r, delivery d = {});
    /// Shorthand for of(scripted_turn{.content = text}).
    static reply text(std::string content, delivery d = {});
};

/// A request the server received.
struct received_request {
    std::string method;
    std::string target;
    /// Names lower-cased, values verbatim (including Authorization: keep this in memory only).
    std::vector<std::pair<std::string, std::string>> headers;
    std::string body;
    /// The value of header `name` (lower-case), empty if absent.
    std::string header(std::string_view name) const;
};

/// A model listed by GET /v1/models and GET /public/v1/models.
struct model_info {
    model_info(
        std::string model_id, std::int64_t context = 131072, std::int64_t max_completion = 40000
    )
        : id(std::move(model_id)), max_context_length(context),
          max_completion_tokens(max_completion) {}
    model_info(const char* model_id) : model_info(std::string(model_id)) {}

    std::string id;
    std::int64_t max_context_length;
    std::int64_t max_completion_tokens;
};

/// Rate limits as Cerebras enforces them (reference: cerebras-api.md §6). A chat request reserves
/// its prompt (ceil(characters / 4) tokens) plus max_completion_tokens (the model's
/// max_completion_tokens when unset) against the tokens of the current minute; one that does
/// not fit, or that passes a request budget, gets 429 with Cerebras's flat body ("Tokens per
/// minute limit exceeded - too many tokens processed.", code `token_quota_exceeded`; "Requests
/// per minute limit exceeded - too many requests sent.", code `request_quota_exceeded`; param
/// `quota`, type `too_many_requests_error`). An admitted request then counts the prompt plus
/// the completion it really got. Windows are fixed: they start at the first request and turn
/// over every `minute` (or `day`).
struct rate_limits {
    /// Enforced when set.
    std::optional<std::int64_t> tokens_per_minute;
    std::optional<std::int64_t> requests_per_minute;
    std::optional<std::int64_t> requests_per_day;
    /// Length of a "minute" and a "day" (tests shorten them).
    std::chrono::milliseconds minute{60'000};
    std::chrono::milliseconds day{86'400'000};
};

struct fake_server_config {
    /// 0 picks a free port. The server always binds 127.0.0.1.
    unsigned short port = 0;
    /// PEM files for TLS (certificate chain and private key); both empty means plain HTTP.
    std::string tls_cert_file;
    std::string tls_key_file;
    /// When set, chat and model-list requests must carry "Authorization: Bearer <api_key>":
    /// a wrong value gets 401 wrong_api_key, no header at all 403 {"detail":"Not authenticated"}.
    std::optional<std::string> api_key;
    /// Reply used when the queue is empty and there is no responder; when unset an empty queue
    /// answers 500.
    std::optional<reply> fallback;
    /// Models listed by GET /v1/models and GET /public/v1/models.
    std::vector<model_info> models{"zai-glm-4.7", "gpt-oss-120b"};
    /// Streaming writes are coalesced up to about this many bytes when chunk_delay is zero.
    std::size_t write_coalesce_bytes = 64 * 1024;
    /// Keep-alive connections idle this long are closed.
    std::chrono::milliseconds idle_timeout{std::chrono::minutes(5)};
    /// Largest accepted request body.
    std::size_t max_request_body = 64 * 1024 * 1024;
    /// Enforce the context windows of `models`: a chat request for a listed model whose prompt
    /// (ceil(characters / 4) tokens, the count usage reports) plus its max_completion_tokens
    /// passes the model's max_context_length gets 400 with Cerebras's flat body, code
    /// `context_length_exceeded` ("... Current length is N while limit is M"); the queue is not
    /// consumed.
    bool enforce_context = false;
    /// GET /v1/models entries also carry `max_model_len` (the window, as vLLM reports it).
    bool list_windows = false;
    /// Rate limits. Every chat reply carries Cerebras's six headers whether or not a limit is
    /// enforced (`x-ratelimit-{limit,remaining,reset}-requests-day` and `-tokens-minute`; unset
    /// limits are advertised as 14400 requests a day and 1,000,000 tokens a minute), plus
    /// `-requests-minute` when that limit is set; a reply whose delivery sets any x-ratelimit-*
    /// header sends its own instead. Every reply carries an `x-request-id` unless scripted.
    rate_limits limits{};
    /// Off: no x-ratelimit-* headers and no x-request-id unless a reply scripts them (replies as
    /// before these headers existed; the agent benchmark compares both).
    bool rate_limit_headers = true;
};

/// The server. It starts listening in the constructor and serves while its executor runs.
///
/// Endpoints: POST /v1/chat/completions (scripted replies: the queue in FIFO order, then the
/// responder, then config.fallback, else 500), GET /v1/models and GET /v1/models/{id} (an unknown
/// id: 404 with Cerebras's `model_not_found` body), GET /v1/tcp_warming (200 {}),
/// GET /public/v1/models[/{id}] (with limits). Unknown paths: 404 with an empty text/plain body; a
/// known path with the wrong method: 405. A chat body that is not JSON, or lacks model/messages:
/// 400 with a flat error body (the queue is not consumed). Keep-alive and `Expect: 100-continue`
/// are supported; HTTP/1.1 only; any number of concurrent connections.
///
/// Errors: the constructor throws boost::system::system_error if the port cannot be bound or the
/// TLS files cannot be loaded, std::invalid_argument if only one TLS file is given.
///
/// Thread safety: none. Run the executor on one thread and call members from that thread (or
/// before the executor runs). Distinct objects: safe.
///
/// Object lifetimes: the server may be destroyed while connections are open; it stops first and
/// the connections end when the executor next runs (or is destroyed).
class fake_server {
public:
    explicit fake_server(boost::asio::any_io_executor ex, fake_server_config cfg = {});
    ~fake_server();
    fake_server(const fake_server&) = delete;
    fake_server& operator=(const fake_server&) = delete;

    /// The bound port and "http://127.0.0.1:<port>" (or https://).
    unsigned short port() const noexcept;
    std::string base_url() const;

    /// Appends replies for the next chat requests, in order.
    void enqueue(reply r);
    void enqueue(std::vector<reply> rs);
    /// Replies not yet used.
    std::size_t pending() const noexcept;

    /// Optional hook: compute the reply from the parsed request (used by the offline stand-in).
    /// When set it is used whenever the queue is empty.
    void set_responder(std::function<reply(const api::chat_request&)> f);

    /// Every request received so far (all endpoints), in arrival order.
    const std::vector<received_request>& requests() const noexcept;
    /// Only the chat requests' parsed bodies (requests whose body did not parse are skipped).
    std::vector<api::chat_request> chat_requests() const;
    /// Forgets the recorded requests.
    void clear_requests();

    /// Connections currently open.
    std::size_t open_connections() const noexcept;

    /// Chat requests refused with 429 by `limits` so far.
    std::size_t rate_limited_count() const noexcept;
    /// Tokens counted against the limits so far (prompt + completion of admitted requests).
    std::int64_t tokens_counted() const noexcept;

    /// Stops accepting and closes open connections (idempotent; the destructor calls it).
    void stop();

private:
    struct impl;
    std::shared_ptr<impl> impl_;
};

} // namespace wafer::testing
