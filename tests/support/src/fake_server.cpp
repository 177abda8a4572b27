#include <wafer/testing/fake_server.hpp>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include <nlohmann/json.hpp>

#include <array>
#include <cstdio>
#include <deque>
#include <exception>
#include <map>
#include <random>
#include <stdexcept>

#include "detail/rate_window.hpp"
#include "detail/render.hpp"

namespace wafer::testing {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace ssl = asio::ssl;
using tcp = asio::ip::tcp;
using boost::system::error_code;

namespace {

constexpr auto nothrow = asio::as_tuple(asio::use_awaitable);
constexpr std::chrono::seconds write_timeout{30};
constexpr std::chrono::seconds handshake_timeout{10};

using tls_stream = ssl::stream<beast::tcp_stream>;

/// What a connection does after a response.
enum class after { keep, close, abort };

struct session_handle {
    beast::tcp_stream* tcp = nullptr;
    asio::steady_timer* timer = nullptr;
};

/// State shared by the acceptor and every connection (the pimpl derives from it so the free
/// coroutines below can name it).
struct server_state {
    server_state(asio::any_io_executor e, fake_server_config c)
        : ex(std::move(e)), cfg(std::move(c)), acceptor(ex), rng(std::random_device{}()) {}

    asio::any_io_executor ex;
    fake_server_config cfg;
    std::optional<ssl::context> tls;
    tcp::acceptor acceptor;
    unsigned short port = 0;
    std::deque<reply> queue;
    std::function<reply(const api::chat_request&)> responder;
    std::vector<received_request> requests;
    std::mt19937_64 rng;
    std::uint64_t next_id = 0;
    std::map<std::uint64_t, session_handle> sessions;
    bool stopped = false;
    detail::rate_window rate{cfg.limits};

    /// A Cerebras-looking request id for the x-request-id header.
    std::string make_request_id() {
        char buf[40];
        std::snprintf(
            buf,
            sizeof buf,
            "%016llx%016llx",
            static_cast<unsigned long long>(rng()),
            static_cast<unsigned long long>(rng())
        );
        return buf;
    }

    /// Adds the rate-limit headers and a request id, except those the reply scripts itself.
    void decorate(delivery& how) {
        if (!cfg.rate_limit_headers) {
            return;
        }
        bool scripted_limits = false;
        bool scripted_id = false;
        for (const auto& [name, value] : how.headers) {
            const std::string n = lower_name(name);
            scripted_limits = scripted_limits || n.starts_with("x-ratelimit-");
            scripted_id = scripted_id || n == "x-request-id";
        }
        if (!scripted_limits) {
            for (auto& h : rate.headers(std::chrono::steady_clock::now())) {
                how.headers.push_back(std::move(h));
            }
        }
        if (!scripted_id) {
            how.headers.emplace_back("x-request-id", make_request_id());
        }
    }

    static std::string lower_name(std::string_view s) {
        std::string out(s);
        for (auto& ch : out) {
            ch = (ch >= 'A' && ch <= 'Z') ? static_cast<char>(ch - 'A' + 'a') : ch;
        }
        return out;
    }

    /// What a chat request reserves: prompt plus max_completion_tokens (the model's maximum when
    /// unset, as the server reserves up to the sequence length).
    std::int64_t reservation(const api::chat_request& req) const {
        std::int64_t completion = 40000;
        for (const auto& m : cfg.models) {
            if (m.id == req.model) {
                completion = m.max_completion_tokens;
            }
        }
        if (req.max_completion_tokens && *req.max_completion_tokens >= 0) {
            completion = *req.max_completion_tokens;
        }
        return detail::estimate_tokens(detail::prompt_chars(req)) + completion;
    }

    reply next_reply(const api::chat_request& req) {
        if (!queue.empty()) {
            reply r = std::move(queue.front());
            queue.pop_front();
            return r;
        }
        if (responder) {
            try {
                return responder(req);
            } catch (const std::exception& e) {
                return reply::failure(
                    {.status = 500,
                     .message = std::string("wafer fake server: responder failed: ") + e.what()}
                );
            }
        }
        if (cfg.fallback) {
            return *cfg.fallback;
        }
        return reply::failure(
            {.status = 500,
             .message = "wafer fake server: no scripted reply left for this request",
             .type = "server_error",
             .code = "no_scripted_reply"}
        );
    }

    void stop() {
        if (stopped) {
            return;
        }
        stopped = true;
        error_code ec;
        acceptor.close(ec);
        for (auto& entry : sessions) {
            entry.second.timer->cancel();
            entry.second.tcp->close();
        }
    }
};

/// One accepted connection. Heap-allocated and shared by the coroutines serving it, so the
/// stream's address is stable for server_state::sessions.
template <class Stream>
struct connection {
    connection(std::shared_ptr<server_state> s, Stream st)
        : server(std::move(s)), stream(std::move(st)), timer(server->ex), id(server->next_id++) {
        server->sessions[id] = session_handle{&tcp(), &timer};
    }
    ~connection() { server->sessions.erase(id); }
    connection(const connection&) = delete;
    connection& operator=(const connection&) = delete;

    beast::tcp_stream& tcp() { return beast::get_lowest_layer(stream); }

    std::shared_ptr<server_state> server;
    Stream stream;
    beast::flat_buffer buffer;
    asio::steady_timer timer;
    std::uint64_t id;
    std::string out; ///< pending SSE bytes of the current chunk
};

template <class Stream>
using conn_ptr = std::shared_ptr<connection<Stream>>;

struct report_exception {
    void operator()(const std::exception_ptr& e) const {
        if (!e) {
            return;
        }
        try {
            std::rethrow_exception(e);
        } catch (const std::exception& x) {
            std::fprintf(stderr, "wafer fake server: %s\n", x.what());
        } catch (...) {
            std::fprintf(stderr, "wafer fake server: unknown exception\n");
        }
    }
};

std::string lower(std::string_view s) {
    std::string out(s);
    for (auto& ch : out) {
        if (ch >= 'A' && ch <= 'Z') {
            ch = static_cast<char>(ch - 'A' + 'a');
        }
    }
    return out;
}

http::response<http::string_body>
make_response(unsigned status, std::string_view content_type, std::string body, bool keep) {
    http::response<http::string_body> res{static_cast<http::status>(status), 11};
    res.set(http::field::content_type, content_type);
    res.body() = std::move(body);
    res.keep_alive(keep);
    res.prepare_payload();
    return res;
}

http::response<http::string_body> json_response(unsigned status, std::string body, bool keep) {
    return make_response(status, "application/json", std::move(body), keep);
}

std::string flat_error(std::string message, std::string type, std::string param, std::string code) {
    return detail::render_error_body(
        {.message = std::move(message),
         .type = std::move(type),
         .code = std::move(code),
         .param = std::move(param)}
    );
}

template <class Fields>
void add_headers(Fields& res, const delivery& how) {
    for (const auto& [name, value] : how.headers) {
        res.insert(name, value);
    }
}

void add_retry_headers(http::fields& res, const scripted_error& e) {
    if (e.retry_after) {
        res.set("retry-after", *e.retry_after);
    }
    if (e.retry_after_ms) {
        res.set("retry-after-ms", *e.retry_after_ms);
    }
    if (e.should_retry) {
        res.set("x-should-retry", *e.should_retry);
    }
}

template <class Stream>
asio::awaitable<bool> write_response(conn_ptr<Stream> c, http::response<http::string_body> res) {
    c->tcp().expires_after(write_timeout);
    auto [ec, n] = co_await http::async_write(c->stream, res, nothrow);
    co_return !ec;
}

template <class Stream>
asio::awaitable<after>
send_simple(conn_ptr<Stream> c, http::response<http::string_body> res, bool keep) {
    const bool ok = co_await write_response(c, std::move(res));
    co_return !ok ? after::abort : keep ? after::keep : after::close;
}

/// Waits `d`; false when the server stopped meanwhile.
template <class Stream>
asio::awaitable<bool> pause(conn_ptr<Stream> c, std::chrono::milliseconds d) {
    c->timer.expires_after(d);
    auto [ec] = co_await c->timer.async_wait(nothrow);
    co_return !ec && !c->server->stopped;
}

/// Writes c->out as one HTTP chunk (if not empty), optionally followed by the last chunk, in a
/// single write; clears c->out.
template <class Stream>
asio::awaitable<bool> flush_chunk(conn_ptr<Stream> c, bool last) {
    static constexpr std::string_view crlf = "\r\n";
    static constexpr std::string_view last_chunk = "0\r\n\r\n";
    std::array<char, 24> head{};
    std::array<asio::const_buffer, 4> bufs{};
    if (!c->out.empty()) {
        const int n = std::snprintf(head.data(), head.size(), "%zx\r\n", c->out.size());
        bufs[0] = asio::buffer(head.data(), static_cast<std::size_t>(n));
        bufs[1] = asio::buffer(c->out);
        bufs[2] = asio::buffer(crlf.data(), crlf.size());
    }
    if (last) {
        bufs[3] = asio::buffer(last_chunk.data(), last_chunk.size());
    }
    c->tcp().expires_after(write_timeout);
    auto [ec, n] = co_await asio::async_write(c->stream, bufs, nothrow);
    c->out.clear();
    co_return !ec;
}

/// Writes the header of a chunked response.
template <class Stream>
asio::awaitable<bool>
write_chunked_header(conn_ptr<Stream> c, std::string content_type, delivery how, bool keep) {
    http::response<http::empty_body> res{http::status::ok, 11};
    res.set(http::field::content_type, content_type);
    add_headers(res, how);
    res.keep_alive(keep);
    res.chunked(true);
    http::response_serializer<http::empty_body> sr{res};
    c->tcp().expires_after(write_timeout);
    auto [ec, n] = co_await http::async_write_header(c->stream, sr, nothrow);
    co_return !ec;
}

template <class Stream>
asio::awaitable<after> send_error(conn_ptr<Stream> c, scripted_error e, delivery how, bool keep) {
    auto res = json_response(static_cast<unsigned>(e.status), detail::render_error_body(e), keep);
    add_headers(res, how);
    add_retry_headers(res, e);
    co_return co_await send_simple(c, std::move(res), keep);
}

template <class Stream>
asio::awaitable<after> send_raw(conn_ptr<Stream> c, raw_reply raw, delivery how, bool keep) {
    if (!raw.content_type.starts_with("text/event-stream")) {
        auto res =
            make_response(static_cast<unsigned>(raw.status), raw.content_type, raw.body, keep);
        add_headers(res, how);
        co_return co_await send_simple(c, std::move(res), keep);
    }
    if (!co_await write_chunked_header(c, raw.content_type, how, keep)) {
        co_return after::abort;
    }
    // One HTTP chunk per event, split right after each blank line, so the bytes are the
    // recording's bytes exactly.
    std::string_view body = raw.body;
    std::size_t sent = 0;
    while (!body.empty()) {
        if (how.disconnect_after_chunks && sent == *how.disconnect_after_chunks) {
            co_return after::abort;
        }
        if (sent > 0 && how.chunk_delay.count() > 0 && !co_await pause(c, how.chunk_delay)) {
            co_return after::abort;
        }
        const auto end = body.find("\n\n");
        const auto len = end == std::string_view::npos ? body.size() : end + 2;
        c->out.assign(body.substr(0, len));
        body.remove_prefix(len);
        ++sent;
        if (!co_await flush_chunk(c, false)) {
            co_return after::abort;
        }
    }
    if (how.disconnect_after_chunks && sent == *how.disconnect_after_chunks) {
        co_return after::abort;
    }
    co_return co_await flush_chunk(c, true) ? (keep ? after::keep : after::close) : after::abort;
}

template <class Stream>
asio::awaitable<after>
send_completion(conn_ptr<Stream> c, detail::resolved_turn rt, delivery how, bool keep) {
    std::string body =
        how.malformed_chunk_at
            ? std::string(R"({"id":"chatcmpl-malformed","choices":[{"message":{"content":"oops)")
            : detail::render_completion(rt);
    if (!how.disconnect_after_chunks) {
        auto res = json_response(200, std::move(body), keep);
        add_headers(res, how);
        co_return co_await send_simple(c, std::move(res), keep);
    }
    if (*how.disconnect_after_chunks == 0) {
        co_return after::abort;
    }
    // Promise the whole body, send half of it, then drop the connection.
    http::response<http::empty_body> res{http::status::ok, 11};
    res.set(http::field::content_type, "application/json");
    add_headers(res, how);
    res.keep_alive(keep);
    res.content_length(body.size());
    http::response_serializer<http::empty_body> sr{res};
    c->tcp().expires_after(write_timeout);
    auto [ec, n] = co_await http::async_write_header(c->stream, sr, nothrow);
    if (!ec) {
        co_await asio::async_write(c->stream, asio::buffer(body.data(), body.size() / 2), nothrow);
    }
    co_return after::abort;
}

template <class Stream>
asio::awaitable<after>
send_stream(conn_ptr<Stream> c, detail::resolved_turn rt, delivery how, bool keep) {
    const detail::sse_plan plan(rt, how.chunk_chars);
    if (!co_await write_chunked_header(c, "text/event-stream; charset=utf-8", how, keep)) {
        co_return after::abort;
    }
    enum class ending { normal, error_event, disconnect };
    ending end = ending::normal;
    std::size_t limit = plan.size();
    if (how.error_after_chunks && *how.error_after_chunks <= limit) {
        limit = *how.error_after_chunks;
        end = ending::error_event;
    }
    if (how.disconnect_after_chunks && *how.disconnect_after_chunks <= limit) {
        limit = *how.disconnect_after_chunks;
        end = ending::disconnect;
    }
    const bool paced = how.chunk_delay.count() > 0;
    const std::size_t coalesce = std::max<std::size_t>(c->server->cfg.write_coalesce_bytes, 1);
    c->out.reserve(paced ? 1024 : coalesce + 1024);

    for (std::size_t i = 0; i < limit; ++i) {
        if (paced && i > 0 && !co_await pause(c, how.chunk_delay)) {
            co_return after::abort;
        }
        if (how.malformed_chunk_at && *how.malformed_chunk_at == i) {
            c->out += detail::malformed_event;
        } else {
            plan.append_event(i, c->out);
        }
        if ((paced || c->out.size() >= coalesce) && !co_await flush_chunk(c, false)) {
            co_return after::abort;
        }
    }
    if (end == ending::disconnect) {
        if (!c->out.empty()) {
            co_await flush_chunk(c, false);
        }
        co_return after::abort;
    }
    if (end == ending::error_event || how.done_marker) {
        if (paced && limit > 0 && !co_await pause(c, how.chunk_delay)) {
            co_return after::abort;
        }
        c->out += end == ending::error_event ? detail::render_stream_error(how.stream_error)
                                             : std::string(detail::done_event);
    }
    const bool ok = co_await flush_chunk(c, true);
    std::string().swap(c->out); // idle keep-alive connections should not hold 64 KiB each
    co_return ok ? (keep ? after::keep : after::close) : after::abort;
}

std::optional<http::response<http::string_body>>
check_auth(const server_state& st, const http::request<http::string_body>& req, bool keep) {
    if (!st.cfg.api_key) {
        return std::nullopt;
    }
    const auto it = req.find(http::field::authorization);
    if (it == req.end()) {
        return json_response(403, R"({"detail":"Not authenticated"})", keep);
    }
    if (it->value() != "Bearer " + *st.cfg.api_key) {
        return json_response(
            401,
            flat_error("Wrong API Key", "invalid_request_error", "api_key", "wrong_api_key"),
            keep
        );
    }
    return std::nullopt;
}

http::response<http::string_body> method_not_allowed(bool keep) {
    return json_response(405, R"({"detail":"Method Not Allowed"})", keep);
}

// A models request that is not a GET, or that lacks the key where the route needs one.
std::optional<http::response<http::string_body>> refuse_models_request(
    const server_state& st,
    const http::request<http::string_body>& req,
    bool is_get,
    bool is_public,
    bool keep
) {
    if (!is_get) {
        return method_not_allowed(keep);
    }
    return is_public ? std::nullopt : check_auth(st, req, keep);
}

nlohmann::ordered_json model_entry(const server_state& st, const model_info& m, bool with_limits) {
    nlohmann::ordered_json entry;
    entry["id"] = m.id;
    entry["object"] = "model";
    entry["created"] = 0;
    entry["owned_by"] = "Cerebras";
    if (!with_limits && st.cfg.list_windows) {
        entry["max_model_len"] = m.max_context_length;
    }
    if (with_limits) {
        entry["name"] = m.id;
        entry["limits"] = {
            {"max_context_length", m.max_context_length},
            {"max_completion_tokens", m.max_completion_tokens}};
    }
    return entry;
}

std::string models_body(const server_state& st, bool with_limits) {
    auto data = nlohmann::ordered_json::array();
    for (const auto& m : st.cfg.models) {
        data.push_back(model_entry(st, m, with_limits));
    }
    nlohmann::ordered_json j;
    j["object"] = "list";
    j["data"] = std::move(data);
    return j.dump();
}

template <class Stream>
asio::awaitable<after> handle_chat(conn_ptr<Stream> c, http::request<http::string_body> req) {
    auto& st = *c->server;
    const bool keep = req.keep_alive();
    auto bad_request = [&](std::string message, std::string param) {
        return json_response(
            400,
            flat_error(
                std::move(message), "invalid_request_error", std::move(param), "bad_request"
            ),
            keep
        );
    };
    const auto j = nlohmann::json::parse(req.body(), nullptr, false);
    if (j.is_discarded() || !j.is_object()) {
        co_return co_await send_simple(
            c, bad_request("Request body is not valid JSON.", "body"), keep
        );
    }
    for (const char* required : {"model", "messages"}) {
        if (!j.contains(required)) {
            co_return co_await send_simple(
                c,
                bad_request(std::string("Missing required parameter: ") + required, required),
                keep
            );
        }
    }
    api::chat_request request;
    std::string parse_error; // no co_await inside a handler
    try {
        request = j.get<api::chat_request>();
    } catch (const std::exception& e) {
        parse_error = std::string("Request body does not parse: ") + e.what();
    }
    if (!parse_error.empty()) {
        co_return co_await send_simple(c, bad_request(std::move(parse_error), "body"), keep);
    }

    if (st.cfg.enforce_context) {
        for (const auto& m : st.cfg.models) {
            if (m.id != request.model) {
                continue;
            }
            const std::int64_t length = detail::estimate_tokens(detail::prompt_chars(request)) +
                                        request.max_completion_tokens.value_or(0);
            if (length > m.max_context_length) {
                std::string message = "Please reduce the length of the messages or completion. "
                                      "Current length is ";
                message += std::to_string(length);
                message += " while limit is ";
                message += std::to_string(m.max_context_length);
                auto refused = json_response(
                    400,
                    flat_error(
                        std::move(message),
                        "invalid_request_error",
                        "messages",
                        "context_length_exceeded"
                    ),
                    keep
                );
                co_return co_await send_simple(c, std::move(refused), keep);
            }
        }
    }
    if (auto refusal = st.rate.admit(st.reservation(request), std::chrono::steady_clock::now())) {
        delivery how;
        st.decorate(how);
        co_return co_await send_error(c, std::move(*refusal), std::move(how), keep);
    }
    reply r = st.next_reply(request);
    if (r.how.header_delay.count() > 0 && !co_await pause(c, r.how.header_delay)) {
        co_return after::abort;
    }
    switch (r.type) {
    case reply::kind::error:
        st.decorate(r.how);
        co_return co_await send_error(c, std::move(r.error), std::move(r.how), keep);
    case reply::kind::raw:
        st.decorate(r.how);
        co_return co_await send_raw(c, std::move(r.raw), std::move(r.how), keep);
    case reply::kind::turn:
        break;
    }
    auto rt = detail::resolve(std::move(r.turn), request, st.rng);
    st.rate.charge(rt.usage.prompt_tokens + rt.usage.completion_tokens);
    st.decorate(r.how);
    if (request.stream.value_or(false)) {
        co_return co_await send_stream(c, std::move(rt), std::move(r.how), keep);
    }
    co_return co_await send_completion(c, std::move(rt), std::move(r.how), keep);
}

template <class Stream>
asio::awaitable<after> handle(conn_ptr<Stream> c, http::request<http::string_body> req) {
    auto& st = *c->server;
    const bool keep = req.keep_alive();

    received_request rec;
    rec.method = std::string(req.method_string());
    rec.target = std::string(req.target());
    for (const auto& field : req) {
        rec.headers.emplace_back(lower(field.name_string()), std::string(field.value()));
    }
    rec.body = req.body();
    st.requests.push_back(std::move(rec));

    std::string_view path = req.target();
    path = path.substr(0, path.find('?'));
    const bool is_get = req.method() == http::verb::get;
    const bool is_post = req.method() == http::verb::post;

    if (path == "/v1/chat/completions") {
        if (!is_post) {
            co_return co_await send_simple(c, method_not_allowed(keep), keep);
        }
        if (auto denied = check_auth(st, req, keep)) {
            co_return co_await send_simple(c, std::move(*denied), keep);
        }
        co_return co_await handle_chat(c, std::move(req));
    }
    if (path.starts_with("/v1/models/") || path.starts_with("/public/v1/models/")) {
        const bool is_public = path.starts_with("/public/");
        if (auto refused = refuse_models_request(st, req, is_get, is_public, keep)) {
            co_return co_await send_simple(c, std::move(*refused), keep);
        }
        const std::string id(path.substr(path.find("/models/") + 8));
        std::optional<http::response<http::string_body>> res;
        for (const auto& m : st.cfg.models) {
            if (m.id == id) {
                res = json_response(200, model_entry(st, m, is_public).dump(), keep);
            }
        }
        if (!res) {
            res = json_response(
                404,
                flat_error(
                    "Model " + id + " does not exist or you do not have access to it.",
                    "not_found_error",
                    "model",
                    "model_not_found"
                ),
                keep
            );
        }
        res->set("x-request-id", st.make_request_id());
        co_return co_await send_simple(c, std::move(*res), keep);
    }
    if (path == "/v1/models" || path == "/public/v1/models") {
        const bool is_public = path.starts_with("/public/");
        if (auto refused = refuse_models_request(st, req, is_get, is_public, keep)) {
            co_return co_await send_simple(c, std::move(*refused), keep);
        }
        auto res = json_response(200, models_body(st, is_public), keep);
        res.set("x-request-id", st.make_request_id());
        co_return co_await send_simple(c, std::move(res), keep);
    }
    if (path == "/v1/tcp_warming") {
        if (!is_get) {
            co_return co_await send_simple(c, method_not_allowed(keep), keep);
        }
        co_return co_await send_simple(c, json_response(200, "{}", keep), keep);
    }
    co_return co_await send_simple(
        c, make_response(404, "text/plain; charset=utf-8", {}, keep), keep
    );
}

template <class Stream>
asio::awaitable<void> serve(conn_ptr<Stream> c) {
    auto& st = *c->server;
    after next = after::keep;
    while (next == after::keep && !st.stopped) {
        http::request_parser<http::string_body> parser;
        parser.header_limit(64 * 1024);
        parser.body_limit(st.cfg.max_request_body);
        c->tcp().expires_after(st.cfg.idle_timeout);
        auto [ec, n] = co_await http::async_read_header(c->stream, c->buffer, parser, nothrow);
        if (ec) {
            co_return; // peer closed, idle timeout, garbage or stop(): nothing to answer
        }
        const auto expect = parser.get()[http::field::expect];
        if (beast::iequals(expect, "100-continue")) {
            static constexpr std::string_view cont = "HTTP/1.1 100 Continue\r\n\r\n";
            auto [wec, wn] = co_await asio::async_write(
                c->stream, asio::buffer(cont.data(), cont.size()), nothrow
            );
            if (wec) {
                co_return;
            }
        }
        auto [rec, rn] = co_await http::async_read(c->stream, c->buffer, parser, nothrow);
        if (rec) {
            if (rec == http::error::body_limit) {
                co_await write_response(
                    c, make_response(413, "text/plain; charset=utf-8", {}, false)
                );
            }
            co_return;
        }
        next = co_await handle(c, parser.release());
    }
    if (next == after::abort || st.stopped) {
        c->tcp().close(); // abrupt: no close_notify, no end of the chunked body
        co_return;
    }
    if constexpr (std::is_same_v<Stream, tls_stream>) {
        c->tcp().expires_after(std::chrono::seconds(1));
        co_await c->stream.async_shutdown(nothrow);
    } else {
        error_code ignored;
        c->tcp().socket().shutdown(tcp::socket::shutdown_send, ignored);
    }
}

asio::awaitable<void> run_session(std::shared_ptr<server_state> st, tcp::socket sock) {
    error_code ignored;
    sock.set_option(tcp::no_delay(true), ignored);
    if (!st->tls) {
        co_await serve(
            std::make_shared<connection<beast::tcp_stream>>(st, beast::tcp_stream(std::move(sock)))
        );
        co_return;
    }
    auto c = std::make_shared<connection<tls_stream>>(
        st, tls_stream(beast::tcp_stream(std::move(sock)), *st->tls)
    );
    c->tcp().expires_after(handshake_timeout);
    auto [ec] = co_await c->stream.async_handshake(ssl::stream_base::server, nothrow);
    if (ec) {
        co_return;
    }
    co_await serve(c);
}

asio::awaitable<void> accept_loop(std::shared_ptr<server_state> st) {
    asio::steady_timer backoff(st->ex);
    while (!st->stopped) {
        auto [ec, sock] = co_await st->acceptor.async_accept(nothrow);
        if (st->stopped || !st->acceptor.is_open()) {
            co_return;
        }
        if (ec) {
            // e.g. out of file descriptors: do not spin
            backoff.expires_after(std::chrono::milliseconds(10));
            co_await backoff.async_wait(nothrow);
            continue;
        }
        asio::co_spawn(st->ex, run_session(st, std::move(sock)), report_exception{});
    }
}

} // namespace

reply reply::of(scripted_turn t, delivery d) {
    reply r;
    r.type = kind::turn;
    r.turn = std::move(t);
    r.how = std::move(d);
    return r;
}

reply reply::failure(scripted_error e, delivery d) {
    reply r;
    r.type = kind::error;
    r.error = std::move(e);
    r.how = std::move(d);
    return r;
}

reply reply::verbatim(raw_reply raw, delivery d) {
    reply r;
    r.type = kind::raw;
    r.raw = std::move(raw);
    r.how = std::move(d);
    return r;
}

reply reply::text(std::string content, delivery d) {
    return of(scripted_turn{.content = std::move(content)}, std::move(d));
}

std::string received_request::header(std::string_view name) const {
    for (const auto& [key, value] : headers) {
        if (key == name) {
            return value;
        }
    }
    return {};
}

struct fake_server::impl : server_state {
    using server_state::server_state;
};

fake_server::fake_server(asio::any_io_executor ex, fake_server_config cfg)
    : impl_(std::make_shared<impl>(std::move(ex), std::move(cfg))) {
    auto& st = *impl_;
    if (st.cfg.tls_cert_file.empty() != st.cfg.tls_key_file.empty()) {
        throw std::invalid_argument(
            "fake_server: give both tls_cert_file and tls_key_file, or neither"
        );
    }
    if (!st.cfg.tls_cert_file.empty()) {
        st.tls.emplace(ssl::context::tls_server);
        st.tls->set_options(
            ssl::context::default_workarounds | ssl::context::no_sslv2 | ssl::context::no_sslv3 |
            ssl::context::no_tlsv1 | ssl::context::no_tlsv1_1
        );
        st.tls->use_certificate_chain_file(st.cfg.tls_cert_file);
        st.tls->use_private_key_file(st.cfg.tls_key_file, ssl::context::pem);
    }
    // Loopback only: this server must never be reachable from another machine.
    const tcp::endpoint ep(asio::ip::make_address_v4("127.0.0.1"), st.cfg.port);
    st.acceptor.open(ep.protocol());
    st.acceptor.set_option(tcp::acceptor::reuse_address(true));
    st.acceptor.bind(ep);
    st.acceptor.listen(asio::socket_base::max_listen_connections);
    st.port = st.acceptor.local_endpoint().port();
    asio::co_spawn(st.ex, accept_loop(impl_), report_exception{});
}

fake_server::~fake_server() {
    impl_->stop();
}

unsigned short fake_server::port() const noexcept {
    return impl_->port;
}

std::string fake_server::base_url() const {
    return (impl_->tls ? "https://127.0.0.1:" : "http://127.0.0.1:") + std::to_string(impl_->port);
}

void fake_server::enqueue(reply r) {
    impl_->queue.push_back(std::move(r));
}

void fake_server::enqueue(std::vector<reply> rs) {
    for (auto& r : rs) {
        impl_->queue.push_back(std::move(r));
    }
}

std::size_t fake_server::pending() const noexcept {
    return impl_->queue.size();
}

void fake_server::set_responder(std::function<reply(const api::chat_request&)> f) {
    impl_->responder = std::move(f);
}

const std::vector<received_request>& fake_server::requests() const noexcept {
    return impl_->requests;
}

std::vector<api::chat_request> fake_server::chat_requests() const {
    std::vector<api::chat_request> out;
    for (const auto& r : impl_->requests) {
        if (r.method != "POST" || !r.target.starts_with("/v1/chat/completions")) {
            continue;
        }
        const auto j = nlohmann::json::parse(r.body, nullptr, false);
        if (j.is_discarded() || !j.is_object()) {
            continue;
        }
        try {
            out.push_back(j.get<api::chat_request>());
        } catch (const std::exception&) {
            // not a chat request the server could have answered; skip it
        }
    }
    return out;
}

void fake_server::clear_requests() {
    impl_->requests.clear();
}

std::size_t fake_server::open_connections() const noexcept {
    return impl_->sessions.size();
}

std::size_t fake_server::rate_limited_count() const noexcept {
    return impl_->rate.refused();
}

std::int64_t fake_server::tokens_counted() const noexcept {
    return impl_->rate.counted();
}

void fake_server::stop() {
    impl_->stop();
}

} // namespace wafer::testing
