// What comes back over Streamable HTTP: whole bodies, event streams handed to the session
// message by message and resumed with Last-Event-ID, the server's own GET stream, and the
// x-mcp-header arguments tools/list answers carry (see http_state.hpp).
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "mcp/http_state.hpp"

namespace wafer::mcp::detail {

// Reads a whole body, up to `cap` bytes (more: errc::response_too_large).
asio::awaitable<error_code> http_state::read_body(
    http_connection& conn, const response_head& head, std::string& out, std::size_t cap
) {
    http_body_decoder body;
    body.reset(head.framing, head.content_length);
    for (;;) {
        if (conn.size() > 0 && !body.done()) {
            error_code bec;
            const auto n = body.feed(
                conn.data(), conn.size(), [&out](std::string_view d) { out += d; }, bec
            );
            conn.consume(n);
            if (bec) {
                co_return bec;
            }
            if (out.size() > cap) {
                co_return make_error_code(wafer::errc::response_too_large);
            }
        }
        if (body.done()) {
            co_return error_code{};
        }
        const error_code ec = co_await conn.async_fill(answer_timeout);
        if (eof(ec)) {
            co_return body.on_eof() ? error_code{}
                                    : make_error_code(wafer::errc::connection_failed);
        }
        if (ec) {
            co_return ec;
        }
    }
}

// Reads an event stream, handing each message to the session, until the stream ends or
// (for a request) its answer came.
asio::awaitable<http_state::stream_end> http_state::read_events(
    exchange& x,
    const response_head& head,
    api::sse_parser& parser,
    std::optional<std::int64_t> request
) {
    stream_end end;
    http_body_decoder body;
    body.reset(head.framing, head.content_length);
    http_connection& conn = *x.conn;
    for (;;) {
        if (conn.size() > 0 && !body.done()) {
            error_code bec;
            const auto n = body.feed(
                conn.data(), conn.size(), [&parser](std::string_view d) { parser.feed(d); }, bec
            );
            conn.consume(n);
            try {
                while (auto ev = parser.next()) {
                    if (ev->data.empty() || (ev->event != "message" && !ev->event.empty())) {
                        continue; // a priming event, or an event type MCP does not use
                    }
                    end.got_event = true;
                    deliver(ev->data);
                    if (x.cancelled || aborted) {
                        co_return end;
                    }
                    if (request && !awaiting(*request)) {
                        end.answered = true;
                        end.clean = body.done();
                        co_return end;
                    }
                }
            } catch (const std::length_error&) {
                end.oversized = true;
                end.why =
                    "an event over the limit of " + std::to_string(server.max_message) + " bytes";
                co_return end;
            }
            if (bec) {
                end.why = "the event stream's framing broke";
                co_return end;
            }
        }
        if (body.done()) {
            end.clean = true;
            co_return end;
        }
        const error_code ec = co_await conn.async_fill(answer_timeout);
        if (eof(ec)) {
            end.clean = body.on_eof();
            co_return end;
        }
        if (ec) {
            end.why = "reading the event stream failed (" + ec.message() + ")";
            co_return end;
        }
    }
}

// An event stream to its end, resumed with GET and Last-Event-ID while it breaks before
// the answer of `request` (or, for the GET stream, while the transport lives).
asio::awaitable<void> http_state::follow_stream(
    exchange& x, response_head head, std::optional<std::int64_t> request, std::string_view what
) {
    api::sse_parser parser;
    parser.set_max_event_size(server.max_message);
    int quiet_rounds = 0;
    for (;;) {
        const stream_end end = co_await read_events(x, head, parser, request);
        const bool clean = end.clean;
        const std::string& why = end.why;
        if (x.cancelled || aborted) {
            co_return;
        }
        if (end.answered) {
            if (clean && head.keep_alive) {
                park(std::move(x.conn));
            }
            co_return;
        }
        if (clean && head.keep_alive) {
            park(std::move(x.conn));
        } else {
            x.conn.reset();
        }
        if (end.oversized) {
            if (request) {
                lost(*request, tm::errc::transport, lost_detail(what, why));
            } else {
                noise("the server's stream: " + why);
            }
            co_return;
        }
        if (request && !awaiting(*request)) {
            co_return; // answered on another stream
        }
        quiet_rounds = end.got_event ? 0 : quiet_rounds + 1;
        const std::string& last_id = parser.last_event_id();
        if (closing || stateless || quiet_rounds > max_resumes || (request && last_id.empty())) {
            if (request) {
                lost(
                    *request,
                    tm::errc::transport,
                    lost_detail(
                        what,
                        "the server ended the response stream before the answer" +
                            (why.empty() ? std::string() : " (" + why + ")")
                    )
                );
            }
            co_return;
        }
        x.timer.expires_after(detail::resume_delay(parser.reconnection_time(), quiet_rounds));
        error_code wec;
        co_await x.timer.async_wait(asio::redirect_error(asio::use_awaitable, wec));
        if (x.cancelled || aborted || (request && !awaiting(*request))) {
            co_return;
        }
        std::string open_why;
        const std::string resume_from = last_id;
        const auto build = [&](std::string& out) {
            detail::write_get(out, fields(resume_from));
        };
        const error_code ec = co_await open(x, build, head, answer_timeout, open_why);
        if (x.cancelled || aborted) {
            co_return;
        }
        const bool stream = !ec && head.status == 200 &&
                            detail::classify_body(head.status, head.headers, true) ==
                                detail::body_type::event_stream;
        if (!stream) {
            std::string body;
            if (!ec && x.conn) {
                co_await read_body(*x.conn, head, body, max_error_body);
            }
            x.conn.reset();
            if (!request && !ec && head.status == 405) {
                get_stream_refused = true;
                co_return;
            }
            const std::string reason = ec ? open_why : detail::describe_status(head.status, body);
            if (request) {
                lost(*request, tm::errc::transport, lost_detail(what, "resuming: " + reason));
            } else {
                noise("the server's stream ended: " + reason);
            }
            co_return;
        }
    }
}

// The server's own stream (GET): notifications and requests outside any request of ours.
asio::awaitable<void> http_state::get_stream(std::shared_ptr<http_state> self) {
    self->get_stream_running = true;
    exchange x(self->ex, self->live);
    response_head head;
    std::string why;
    const auto build = [&](std::string& out) {
        detail::write_get(out, self->fields());
    };
    const error_code ec = co_await self->open(x, build, head, answer_timeout, why);
    if (!ec && !x.cancelled && !self->aborted) {
        if (head.status == 200 && detail::classify_body(head.status, head.headers, true) ==
                                      detail::body_type::event_stream) {
            co_await self->follow_stream(x, head, std::nullopt, "the server's stream");
        } else {
            std::string body;
            co_await read_body(*x.conn, head, body, max_error_body);
            if (head.status == 405) {
                self->get_stream_refused = true; // the server has no stream of its own
            } else if (!self->closing && !self->aborted) {
                self->noise(
                    "the server's stream (GET): " + detail::describe_status(head.status, body)
                );
            }
        }
    }
    x.conn.reset();
    self->get_stream_running = false;
}

// A tools/list page: the x-mcp-header arguments of its tools, for their calls' headers.
void http_state::learn_headers(std::string_view message) {
    const auto j = wafer::tools::mcp::nesting_within(message, wafer::tools::mcp::max_nesting)
                       ? nlohmann::json::parse(message, nullptr, false)
                       : nlohmann::json(nlohmann::json::value_t::discarded);
    const auto id = j.is_object() ? j.find("id") : j.end();
    if (id == j.end() || !id->is_number_integer() || !listings.contains(id->get<std::int64_t>())) {
        return;
    }
    listings.erase(id->get<std::int64_t>());
    const auto result = j.find("result");
    if (result == j.end() || !result->is_object()) {
        return;
    }
    const auto tools = result->find("tools");
    if (tools == result->end() || !tools->is_array()) {
        return;
    }
    for (const auto& t : *tools) {
        if (auto info = tools::mcp::read_tool_info(t)) {
            tool_headers[info->name] = std::move(info->param_headers);
        }
    }
}

} // namespace wafer::mcp::detail
