// The OAuth client of one HTTP MCP server: on a 401 or a 403 insufficient_scope it refreshes
// or authorizes (discovery, registration, PKCE, the embedder's browser step, the token
// request) and hands the transport the access token to send. One authorization at a time:
// requests refused meanwhile wait for it and reuse its token.
#pragma once

#include <wafer/mcp/oauth.hpp>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/steady_timer.hpp>

#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>

#include "mcp/oauth/challenge.hpp"
#include "mcp/oauth/fetch.hpp"
#include "mcp/oauth/metadata.hpp"
#include "mcp/oauth/registration.hpp"
#include "mcp/oauth/token_store.hpp"

namespace wafer::mcp::oauth {

class authorizer {
public:
    authorizer(
        const boost::asio::any_io_executor& ex,
        oauth_config config,
        std::string server_url,
        fetch_settings net
    );

    /// The token every request carries (empty until the first authorization, unless the token
    /// store had one).
    const std::string& access_token() const noexcept { return access_token_; }

    /// The server refused a request sent with `sent_token` (HTTP `status`, its WWW-Authenticate
    /// value if any). True: send it again with access_token(). False: give up, `why` says why
    /// (never with a token or secret in it). `attempts` counts this request's authorizations
    /// (at most max_authorizations). `strict` applies the 2026 rules (metadata issuer check).
    boost::asio::awaitable<bool> async_on_refusal(
        int status,
        std::optional<std::string> www_authenticate,
        std::string sent_token,
        int& attempts,
        bool strict,
        std::string& why
    );

    /// Log lines (noise events): what is being done, never a value.
    std::function<void(std::string)> on_noise;

private:
    boost::asio::awaitable<bool> refresh(std::string& why);
    boost::asio::awaitable<bool> authorize(
        const std::optional<bearer_challenge>& c, bool step_up, bool strict, std::string& why
    );
    boost::asio::awaitable<bool> discover(
        const std::optional<bearer_challenge>& c, bool strict, server_metadata& m, std::string& why
    );
    boost::asio::awaitable<bool>
    register_client(const server_metadata& m, client_credentials& out, std::string& why);
    boost::asio::awaitable<bool>
    fetch(const fetch_request& r, fetch_response& out, std::string& why);
    void keep_tokens();
    void noise(std::string what) const {
        if (on_noise) {
            on_noise(std::move(what));
        }
    }

    boost::asio::any_io_executor ex_;
    oauth_config config_;
    std::string server_url_;
    std::string resource_key_; // the canonical server URL: the token store's key
    fetch_settings net_;
    std::shared_ptr<boost::asio::ssl::context> tls_;
    token_store store_;

    bool busy_ = false;
    boost::asio::steady_timer done_;

    // What the last discovery found.
    std::optional<resource_metadata> prm_;
    std::string issuer_; // as the metadata names itself: checked against `iss`
    std::map<std::string, client_credentials> clients_; // by issuer
    client_credentials client_;                         // of the current tokens
    std::string resource_;                              // RFC 8707 value of the current tokens
    std::string token_endpoint_;

    std::string access_token_;
    std::string refresh_token_;
    std::string requested_scope_;
};

} // namespace wafer::mcp::oauth
