// One HTTP exchange with a metadata, registration or token endpoint, over wafer's HTTP stack
// (TLS, CONNECT proxy). Redirects are not followed: a 3xx is an answer like any other.
#pragma once

#include <wafer/api/error_body.hpp>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/system/error_code.hpp>

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "api/detail/proxy.hpp"

namespace wafer::mcp::oauth {

struct fetch_settings {
    std::optional<wafer::detail::proxy_target> proxy;
    std::string ca_file;
    bool verify_tls = true;
    std::chrono::milliseconds connect_timeout{10'000};
    std::chrono::milliseconds answer_timeout{30'000};
};

struct fetch_request {
    std::string method = "GET";
    std::string url;
    api::header_list headers; ///< besides Host, User-Agent, Accept, Content-Length
    std::string content_type; ///< with a body
    std::string body;
};

struct fetch_response {
    int status = 0;
    api::header_list headers;
    std::string body;
};

/// Connects, sends, reads the whole answer (up to 1 MiB). `tls` is made on the first https
/// fetch and reused. On failure `why` says what failed, with the URL's origin only.
boost::asio::awaitable<boost::system::error_code> async_fetch(
    boost::asio::any_io_executor ex,
    const fetch_settings& settings,
    std::shared_ptr<boost::asio::ssl::context>& tls,
    const fetch_request& request,
    fetch_response& response,
    std::string& why
);

} // namespace wafer::mcp::oauth
