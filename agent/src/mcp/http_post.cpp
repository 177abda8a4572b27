// The session's messages over Streamable HTTP, a POST each: the handshake's order, a session
// the server forgot initialized again, authorization on 401/403, and what each answer means
// for its request (see http_state.hpp).
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <array>

#include "mcp/http_state.hpp"

namespace wafer::mcp::detail {

asio::awaitable<void> http_state::wait_initialized(exchange& x) {
    while (!initialized_done && !aborted && !x.cancelled) {
        error_code ec;
        co_await initialized_signal.async_wait(asio::redirect_error(asio::use_awaitable, ec));
    }
}

// The server forgot the session: initialize again (once for all the requests that saw it),
// without the old session id.
asio::awaitable<void>
http_state::reinitialize(std::shared_ptr<http_state> self, int seen_generation) {
    if (session_generation != seen_generation) {
        co_return;
    }
    if (reinitializing) {
        while (reinitializing && !aborted) {
            error_code ec;
            co_await reinit_signal.async_wait(asio::redirect_error(asio::use_awaitable, ec));
        }
        co_return;
    }
    reinitializing = true;
    session_id.clear();
    exchange x(ex, live);
    const std::array<std::string_view, 2> handshake = {
        initialize_body, R"({"jsonrpc":"2.0","method":"notifications/initialized"})"};
    for (const std::string_view body : handshake) {
        response_head head;
        std::string why;
        const auto build = [&](std::string& out) {
            detail::write_post(out, fields(), body);
        };
        const error_code ec = co_await open(x, build, head, notification_timeout, why);
        if (ec || aborted) {
            break;
        }
        if (const auto id = api::find_header(head.headers, "mcp-session-id");
            id && detail::valid_session_id(*id) && session_id.empty()) {
            session_id = std::string(*id);
        }
        // The first event of an initialize stream is its answer: no need to read further.
        std::string answer;
        if (detail::classify_body(head.status, head.headers, true) ==
            detail::body_type::event_stream) {
            x.conn.reset();
        } else {
            const error_code bec = co_await read_body(*x.conn, head, answer, server.max_message);
            if (!bec && head.keep_alive) {
                park(std::move(x.conn));
            }
            x.conn.reset();
        }
        if (head.status >= 300) {
            noise(
                "initializing the session again: " + detail::describe_status(head.status, answer)
            );
            break;
        }
    }
    ++session_generation;
    reinitializing = false;
    reinit_signal.cancel();
    if (!get_stream_running && !get_stream_refused && !closing && !aborted) {
        asio::co_spawn(ex, get_stream(self), asio::detached);
    }
}

// One message the session sent.
asio::awaitable<void>
http_state::post(std::shared_ptr<http_state> self, std::string body, detail::outgoing out) {
    exchange x(self->ex, self->live);
    if (out.type == detail::outgoing::kind::request) {
        x.carry(self->by_request, out.id);
    }
    try {
        co_await self->post_exchange(self, x, body, out);
    } catch (const std::exception& e) {
        // A fault here must end the request, never leave it to its timeout.
        if (!self->aborted) {
            self->failed(out, tm::errc::transport, std::string("the exchange failed: ") + e.what());
        }
    }
    self->listings.erase(out.id);
    if (out.method == "notifications/initialized") {
        self->on_initialized_posted(self); // whatever its answer: requests must not wait forever
    }
}

asio::awaitable<void> http_state::post_exchange(
    std::shared_ptr<http_state> self,
    exchange& x,
    const std::string& body,
    const detail::outgoing& out
) {
    const bool is_request = out.type == detail::outgoing::kind::request;
    const bool is_initialize = is_request && out.method == "initialize";
    const bool is_discover = is_request && out.method == "server/discover";
    if (is_request && !is_initialize && !is_discover) {
        co_await wait_initialized(x);
    }
    int authorizations = 0;
    for (int attempt = 0;; ++attempt) {
        if (x.cancelled || aborted) {
            co_return;
        }
        const int generation = session_generation;
        const bool sent_session = !session_id.empty();
        response_head head;
        std::string why;
        std::vector<std::pair<std::string, std::string>> extra;
        std::string sent_token;
        const auto build = [&](std::string& o) {
            const auto f = fields_for(out, extra);
            sent_token = std::string(f.bearer);
            detail::write_post(o, f, body);
        };
        const auto head_timeout = is_request ? std::chrono::milliseconds(answer_timeout)
                                             : std::chrono::milliseconds(notification_timeout);
        const error_code ec = co_await open(x, build, head, head_timeout, why);
        if (x.cancelled || aborted) {
            co_return;
        }
        if (ec) {
            failed(out, tm::errc::transport, why);
            co_return;
        }
        const int status = head.status;
        if (is_initialize && status >= 200 && status < 300) {
            if (const auto id = api::find_header(head.headers, "mcp-session-id")) {
                if (detail::valid_session_id(*id)) {
                    session_id = std::string(*id);
                } else {
                    noise("the server's Mcp-Session-Id is not visible ASCII: ignored");
                }
            }
        }
        if (status >= 200 && status < 300) {
            const auto type = detail::classify_body(
                status,
                head.headers,
                head.framing != http_body_decoder::framing::length || head.content_length > 0
            );
            if (type == detail::body_type::event_stream) {
                const std::optional<std::int64_t> request =
                    is_request ? std::optional<std::int64_t>(out.id) : std::nullopt;
                co_await follow_stream(x, head, request, out.method);
            } else {
                std::string answer;
                const error_code bec = co_await read_body(
                    *x.conn,
                    head,
                    answer,
                    type == detail::body_type::json ? server.max_message : max_error_body
                );
                if (x.cancelled || aborted) {
                    co_return;
                }
                if (bec) {
                    failed(
                        out,
                        tm::errc::transport,
                        bec == wafer::errc::response_too_large
                            ? "an answer over the limit of " + std::to_string(server.max_message) +
                                  " bytes"
                            : "reading the answer failed (" + bec.message() + ")"
                    );
                    co_return;
                }
                if (head.keep_alive) {
                    park(std::move(x.conn));
                }
                x.conn.reset();
                if (type == detail::body_type::json && !answer.empty()) {
                    deliver(answer);
                    if (is_request && awaiting(out.id)) {
                        lost(
                            out.id,
                            tm::errc::protocol,
                            lost_detail(
                                out.method,
                                "the server's JSON answer does not answer the request: " +
                                    api::escaped_excerpt(answer, 120)
                            )
                        );
                    }
                } else if (is_request) {
                    lost(
                        out.id,
                        tm::errc::protocol,
                        lost_detail(
                            out.method,
                            "the server answered HTTP " + std::to_string(status) +
                                (type == detail::body_type::none
                                     ? " without a body"
                                     : " with neither JSON nor an event stream")
                        )
                    );
                }
            }
            co_return;
        }
        std::string answer;
        co_await read_body(*x.conn, head, answer, max_error_body);
        x.conn.reset();
        if (x.cancelled || aborted) {
            co_return;
        }
        if (!is_initialize && attempt == 0 && detail::session_gone(status, answer, sent_session)) {
            co_await reinitialize(self, generation);
            continue;
        }
        if ((status == 401 || status == 403) && auth) {
            std::optional<std::string> challenge;
            if (const auto c = api::find_header(head.headers, "www-authenticate")) {
                challenge = std::string(*c);
            }
            const bool strict = stateless || !out.protocol_version.empty();
            std::string auth_why;
            const bool again = co_await auth->async_on_refusal(
                status, std::move(challenge), sent_token, authorizations, strict, auth_why
            );
            if (x.cancelled || aborted) {
                co_return;
            }
            if (again) {
                continue;
            }
            failed(out, tm::errc::unauthorized, auth_why);
            co_return;
        }
        if (status == 401 || status == 403) {
            failed(
                out,
                tm::errc::unauthorized,
                "the server answered HTTP " + std::to_string(status) +
                    " (it requires authorization: configure OAuth, or give the server's "
                    "token in its headers)"
            );
            co_return;
        }
        if (is_request && is_error_for(answer, out.id)) {
            deliver(answer);
            co_return;
        }
        if (status >= 300 && status < 400) {
            // Only the origin: a Location's path and query may carry tokens.
            std::string to = "elsewhere";
            if (const auto loc = api::find_header(head.headers, "location")) {
                std::string ignored;
                if (const auto where = detail::parse_endpoint(*loc, ignored)) {
                    to = where->origin;
                } else if (loc->starts_with("/")) {
                    to = url.origin;
                }
            }
            failed(
                out,
                tm::errc::transport,
                "the server redirected (HTTP " + std::to_string(status) + ") to " +
                    api::escaped_excerpt(to, 200) + "; redirects are not followed"
            );
            co_return;
        }
        if (is_request && (status == 400 || status == 404 || status == 405)) {
            // A 2025 server's answer to a 2026 request (server-everything: 400 with an
            // error for id null), or a wrong endpoint: the session tells which.
            refused(out.id, lost_detail(out.method, detail::describe_status(status, answer)));
            co_return;
        }
        failed(out, tm::errc::transport, detail::describe_status(status, answer));
        co_return;
    }
}

void http_state::on_initialized_posted(const std::shared_ptr<http_state>& self) {
    if (initialized_done) {
        return;
    }
    initialized_done = true;
    initialized_signal.cancel();
    if (!get_stream_running && !closing && !aborted) {
        asio::co_spawn(ex, get_stream(self), asio::detached);
    }
}

asio::awaitable<void> http_state::close(std::chrono::milliseconds grace) {
    closing = true;
    // Requests are over (the session ended them); streams stop now.
    for (exchange* x : live) {
        x->stop();
    }
    if (!session_id.empty() && !aborted) {
        // Ends the session on the server; bounded by the connect timeout and `grace`.
        exchange x(ex, live);
        response_head head;
        std::string why;
        const auto build = [&](std::string& out) {
            detail::write_delete(out, fields());
        };
        const error_code ec = co_await open(x, build, head, grace, why);
        if (!ec && x.conn) {
            std::string body;
            co_await read_body(*x.conn, head, body, max_error_body);
        }
        x.conn.reset();
    }
    abort();
}

} // namespace wafer::mcp::detail
