#include "mcp/oauth/fetch.hpp"

#include <boost/asio/ssl/error.hpp>

#include "api/detail/http_body.hpp"
#include "api/detail/http_connection.hpp"
#include "api/detail/tls_context.hpp"
#include "mcp/streamable_http.hpp"

namespace wafer::mcp::oauth {

namespace asio = boost::asio;
using boost::system::error_code;

namespace {

constexpr std::size_t max_answer = 1U << 20U;
constexpr std::chrono::seconds write_timeout{30};

bool eof(const error_code& ec) {
    return ec == asio::error::eof || ec == asio::ssl::error::stream_truncated;
}

} // namespace

asio::awaitable<error_code> async_fetch(
    asio::any_io_executor ex,
    const fetch_settings& settings,
    std::shared_ptr<asio::ssl::context>& tls,
    const fetch_request& request,
    fetch_response& response,
    std::string& why
) {
    const auto url = detail::parse_endpoint(request.url, why);
    if (!url) {
        why = "an unusable URL (" + why + ")";
        co_return make_error_code(wafer::errc::invalid_response);
    }
    if (url->tls && !tls) {
        error_code ec;
        tls = wafer::detail::make_tls_context(settings.verify_tls, settings.ca_file, ec);
        if (ec) {
            why = "TLS setup: " + ec.message();
            co_return ec;
        }
    }
    wafer::detail::http_connection conn(ex, tls, url->tls, 64U << 10U);
    wafer::detail::connect_params p;
    p.tls = url->tls;
    p.host = url->host;
    p.port = url->port;
    p.verify = settings.verify_tls;
    p.proxy = settings.proxy;
    p.timeout = settings.connect_timeout;
    std::string reason;
    error_code ec = co_await conn.async_connect(std::move(p), reason);
    if (ec) {
        why = "cannot connect to " + url->origin + " (" + (reason.empty() ? ec.message() : reason) +
              ")";
        co_return ec;
    }
    std::string& out = conn.request_buffer();
    out.clear();
    out += request.method + " " + url->target + " HTTP/1.1\r\nHost: " + url->host_header +
           "\r\nUser-Agent: wafer-mcp\r\nAccept: application/json\r\nConnection: close\r\n";
    for (const auto& [name, value] : request.headers) {
        out += name + ": " + value + "\r\n";
    }
    if (!request.content_type.empty()) {
        out += "Content-Type: " + request.content_type + "\r\n";
    }
    if (request.method != "GET") {
        out += "Content-Length: " + std::to_string(request.body.size()) + "\r\n";
    }
    out += "\r\n";
    out += request.body;
    ec = co_await conn.async_write(write_timeout);
    wafer::detail::response_head head;
    bool got_bytes = false;
    if (!ec) {
        ec = co_await conn.async_read_head(head, settings.answer_timeout, got_bytes);
    }
    if (ec) {
        why = "the request to " + url->origin + " failed (" + ec.message() + ")";
        co_return ec;
    }
    response.status = head.status;
    response.headers = head.headers;
    wafer::detail::http_body_decoder body;
    body.reset(head.framing, head.content_length);
    for (;;) {
        if (conn.size() > 0 && !body.done()) {
            error_code bec;
            const auto n = body.feed(
                conn.data(), conn.size(), [&](std::string_view d) { response.body += d; }, bec
            );
            conn.consume(n);
            if (bec || response.body.size() > max_answer) {
                why = "an unreadable or oversized answer from " + url->origin;
                co_return bec ? bec : make_error_code(wafer::errc::response_too_large);
            }
        }
        if (body.done()) {
            co_return error_code{};
        }
        ec = co_await conn.async_fill(settings.answer_timeout);
        if (eof(ec) && body.on_eof()) {
            co_return error_code{};
        }
        if (ec) {
            why = "reading the answer from " + url->origin + " failed (" + ec.message() + ")";
            co_return ec;
        }
    }
}

} // namespace wafer::mcp::oauth
