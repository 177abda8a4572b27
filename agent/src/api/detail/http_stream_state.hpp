// The state behind api::chat_stream: the connection, body framing, SSE parser, chunk decoder and
// accumulator. The synchronous part (poll) decodes from buffered bytes; only reads suspend.
#pragma once

#include <wafer/api/accumulator.hpp>
#include <wafer/api/chunk_decoder.hpp>
#include <wafer/api/sse_parser.hpp>
#include <wafer/error.hpp>

#include <memory>
#include <string>

#include "api/detail/admission_gate.hpp"
#include "api/detail/http_body.hpp"
#include "api/detail/http_connection.hpp"
#include "api/detail/http_pool.hpp"

namespace wafer::detail {

struct http_stream_state {
    enum class phase { open, finished, failed };

    std::shared_ptr<http_pool> pool;
    std::unique_ptr<http_connection> conn;
    response_head head;
    http_body_decoder body;
    api::sse_parser sse;
    api::chunk_decoder decoder;
    api::accumulator acc;
    diagnostics diag;
    std::string secret; // only to redact diagnostics
    std::chrono::milliseconds read_timeout{60'000};
    std::size_t max_bytes = 0;
    std::size_t total_bytes = 0;
    phase state = phase::open;
    boost::system::error_code error;
    // The request's admission reservation (empty when admission is off): settled at the end.
    admission_ticket ticket;

    /// Decodes the next chunk from buffered bytes. nullptr with state open and no ec means more
    /// bytes are needed.
    const api::chunk_view* poll(boost::system::error_code& ec);
    /// Reads more bytes (suspends). Sets ec and fails the stream on error.
    boost::asio::awaitable<void> fill(boost::system::error_code& ec);

    void fail(errc e, std::string detail);
    /// An error reported inside the stream (diag has its fields): its own status_code picks the
    /// errc when it is >= 400, else errc::provider_error.
    void fail_in_stream(int status);
    void finish(bool reusable);
    void end_of_body();
};

} // namespace wafer::detail
