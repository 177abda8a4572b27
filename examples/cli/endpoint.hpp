// Where the wafer CLI sends requests: the flags and environment turned into a client_config, or
// the offline stand-in started in-process.
#pragma once

#include <wafer/api/client_config.hpp>
#include <wafer/testing/fake_server.hpp>

#include <boost/asio/any_io_executor.hpp>

#include <memory>
#include <optional>
#include <string>
#include <string_view>

namespace wafer::cli {

/// What the user asked for: --base-url (empty: not given) and the environment.
struct endpoint_request {
    std::string base_url_flag;
    /// CEREBRAS_API_KEY and CEREBRAS_BASE_URL (empty when unset).
    std::string env_api_key;
    std::string env_base_url;
    /// --ca-file (empty: not given): trusted besides the system store and SSL_CERT_FILE.
    std::string ca_file;

    /// Reads the environment. The API keys (CEREBRAS_API_KEY, OPENAI_API_KEY) are taken out of
    /// it (take_secret_env), so the commands wafer runs cannot read them from its environment.
    static endpoint_request from_env(std::string base_url_flag, std::string ca_file = {});
};

/// The endpoint in use.
struct endpoint {
    api::client_config config;
    /// Set when running against the offline stand-in (started on 127.0.0.1).
    std::unique_ptr<testing::fake_server> offline;
    /// The base URL as shown to the user.
    std::string display_url;
};

/// Normalises a user-given base URL: surrounding spaces and trailing slashes are dropped; a bare
/// host ("api.cerebras.ai", "localhost:8080") gets https://, or http:// when it is a loopback
/// host. The path and query stay as given: requests go to <path>/chat/completions, under /v1
/// when there is no path (api::parse_base_url).
std::string normalise_base_url(std::string_view url);

/// Resolves the endpoint.
///
/// - A base URL (flag, else CEREBRAS_BASE_URL) or an API key: the real endpoint (default
///   https://api.cerebras.ai). A base URL whose host is not loopback needs an API key.
/// - Neither: the offline stand-in, a testing::fake_server on 127.0.0.1 with the offline coding
///   session as responder (streamed with small pauses so it reads like a model), announced on
///   standard error.
///
/// Errors: throws cli_error (exit status 2) for a malformed base URL, a missing API key, or an
/// https:// proxy (HTTPS_PROXY) that would carry the requests.
endpoint open_endpoint(boost::asio::any_io_executor ex, const endpoint_request& req);

} // namespace wafer::cli
