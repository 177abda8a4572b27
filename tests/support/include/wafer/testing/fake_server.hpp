// A local Cerebras-compatible Chat Completions server for tests, benchmarks and the offline
// stand-in model. It binds 127.0.0.1 only and serves scripted replies and faults.
#pragma once

#include <wafer/api/chat_request.hpp>
#include <wafer/api/chat_response.hpp>
#include <wafer/api/usage.hpp>

#include <boost/asio/any_io_executor.hpp>

#include <chrono>
#include <cstddef>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace wafer::testing {

/// A scripted assistant reply. Streamed as Cerebras does: a role chunk, reasoning pieces, content
/// pieces, all tool calls in one chunk, then a final chunk with finish_reason, usage, time_info.
struct scripted_turn {
    std::string reasoning;
    std::string content;
    std::vector<api::tool_call> tool_calls;
    /// Defaults to tool_calls when there are calls, else stop.
    std::optional<api::finish_reason> finish_reason;
    /// Defaults to counts derived from the text (about 4 characters per token).
    std::optional<api::usage> usage;
    std::optional<api::time_info> time_info;
    std::string model = "zai-glm-4.7";
};

/// Shape of an error body (reference: cerebras-api.md §6).
enum class error_shape {
    flat,   ///< {"message","type","param","code"}
    nested, ///< {"status_code":N,"error":{"message","type","param","code","id"}}
    detail, ///< {"detail":"…"} (FastAPI)
};

/// An HTTP error reply.
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
struct delivery {
    /// Characters of content/reasoning per chunk (0: one whitespace-delimited word per chunk).
    std::size_t chunk_chars = 0;
    /// Pause between chunks.
    std::chrono::milliseconds chunk_delay{0};
    /// Pause before the response headers.
    std::chrono::milliseconds header_delay{0};
    /// Send "data: [DONE]" at the end (real Cerebras recordings have none).
    bool done_marker = false;
    /// Close the connection after this many chunks (truncation).
    std::optional<std::size_t> disconnect_after_chunks;
    /// Replace the chunk at this position with invalid JSON.
    std::optional<std::size_t> malformed_chunk_at;
    /// After this many chunks, send a mid-stream error event instead of the rest.
    std::optional<std::size_t> error_after_chunks;
    /// The mid-stream error to send (status_code and body).
    scripted_error stream_error{};
    /// Extra response headers (e.g. x-ratelimit-*).
    std::vector<std::pair<std::string, std::string>> headers;
};

/// A verbatim reply, e.g. a recorded response: status, content type and body sent as-is
/// (streaming bodies are sent with chunked transfer encoding).
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
};

/// A request the server received.
struct received_request {
    std::string method;
    std::string target;
    std::vector<std::pair<std::string, std::string>> headers; ///< names lower-cased
    std::string body;
    /// The value of header `name` (lower-case), empty if absent.
    std::string header(std::string_view name) const;
};

struct fake_server_config {
    /// 0 picks a free port.
    unsigned short port = 0;
    /// PEM files for TLS; both empty means plain HTTP.
    std::string tls_cert_file;
    std::string tls_key_file;
    /// When set, requests must carry "Authorization: Bearer <api_key>" or get 401 wrong_api_key.
    std::optional<std::string> api_key;
    /// Reply used when the queue is empty; when unset an empty queue answers 500.
    std::optional<reply> fallback;
    /// Models listed by GET /v1/models.
    std::vector<std::string> models{"zai-glm-4.7", "gpt-oss-120b"};
};

/// The server. Runs on the given executor (single-threaded use: call its members from that
/// executor's thread, or before run()).
///
/// Endpoints: POST /v1/chat/completions (scripted replies, FIFO), GET /v1/models,
/// GET /v1/tcp_warming (200 {}), GET /public/v1/models. Unknown paths: 404 with an empty body.
/// Keep-alive is supported; HTTP/1.1 only.
class fake_server {
public:
    fake_server(boost::asio::any_io_executor ex, fake_server_config cfg = {});
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
    /// Only the chat requests' parsed bodies.
    std::vector<api::chat_request> chat_requests() const;

    /// Stops accepting and closes open connections.
    void stop();

private:
    struct impl;
    std::shared_ptr<impl> impl_;
};

} // namespace wafer::testing
