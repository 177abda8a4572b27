// 07: agents inside an existing Asio/Beast HTTP service. POST /ask with a question in the body;
// the answer comes back as text/plain. Each request is one agent run, all on the service's one
// io_context thread (no thread per run); one shared wafer::agent serves them all.
//   - Deadline: agent_limits::run_timeout bounds every run; past it the service answers 504.
//   - Disconnect: while the agent works, a read on the socket watches the client. If it hangs up,
//     the read completes and a cancellation_signal, bound to the run's cancellation slot, stops
//     the run (its model call is abandoned and its connection closed).
//
// Offline, the example starts the service on 127.0.0.1:<any port>, fires five requests at it
// concurrently (two plain questions, one slow one that hits the deadline, one whose client hangs
// up early, one with a body over the limit), prints what happened and exits. The offline stand-in
// is slowed down so the deadline and the disconnect have something to cut short.
#include <wafer/agent.hpp>
#include <wafer/cerebras_model.hpp>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/deferred.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/experimental/parallel_group.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http.hpp>

#include <chrono>
#include <iostream>
#include <memory>
#include <optional>
#include <string>

#include "endpoint.hpp"

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using asio::ip::tcp;
using namespace std::chrono_literals;

namespace {

constexpr auto use_nothrow = asio::as_tuple(asio::use_awaitable);
constexpr std::size_t max_question_bytes = 16 * 1024;

// Exceptions from detached coroutines are logged, not lost.
void log_failure(std::exception_ptr e) {
    if (e) {
        try {
            std::rethrow_exception(e);
        } catch (const std::exception& ex) {
            std::cerr << "[server] connection failed: " << ex.what() << "\n";
        }
    }
}

// ======================= The service (what you would add to your server) =======================

// What the request coroutine and the disconnect watcher share.
struct connection {
    explicit connection(tcp::socket s) : stream(std::move(s)) {}
    beast::tcp_stream stream;
    asio::cancellation_signal client_gone;
    bool run_done = false;
    bool disconnected = false;
};

// Reads from the client while the agent works. An HTTP/1.1 client sends nothing more while it
// waits for the response, so a completed read means EOF or reset: the client is gone.
asio::awaitable<void> watch_client(std::shared_ptr<connection> c) {
    char byte = 0;
    auto [ec, n] = co_await c->stream.socket().async_read_some(asio::buffer(&byte, 1), use_nothrow);
    (void)n;
    if (ec == asio::error::operation_aborted || c->run_done) {
        co_return; // the run finished first and cancelled this read
    }
    c->disconnected = true;
    c->client_gone.emit(asio::cancellation_type::terminal);
}

http::status status_for(wafer::stop_reason r) {
    switch (r) {
    case wafer::stop_reason::completed:
        return http::status::ok;
    case wafer::stop_reason::deadline:
        return http::status::gateway_timeout;
    case wafer::stop_reason::error:
        return http::status::bad_gateway;
    default:
        return http::status::service_unavailable;
    }
}

asio::awaitable<void>
write_response(std::shared_ptr<connection> c, http::status status, std::string body) {
    http::response<http::string_body> res{status, 11};
    res.set(http::field::content_type, "text/plain; charset=utf-8");
    res.keep_alive(false); // one request per connection keeps the disconnect check simple
    res.body() = std::move(body);
    res.prepare_payload();
    c->stream.expires_after(10s);
    // A client that has gone meanwhile simply misses the answer.
    auto [ec, n] = co_await http::async_write(c->stream, res, use_nothrow);
    (void)ec;
    (void)n;
    beast::error_code ignored;
    c->stream.socket().shutdown(tcp::socket::shutdown_send, ignored);
}

asio::awaitable<void>
handle_request(tcp::socket socket, std::shared_ptr<const wafer::agent> agent, int id) {
    auto c = std::make_shared<connection>(std::move(socket));
    const std::string tag = "[server #" + std::to_string(id) + "] ";

    // Read the request with limits: a slow or oversized client cannot hold memory or the task.
    beast::flat_buffer buffer;
    http::request_parser<http::string_body> parser;
    parser.header_limit(8 * 1024);
    parser.body_limit(max_question_bytes);
    c->stream.expires_after(10s);
    auto [ec, n] = co_await http::async_read(c->stream, buffer, parser, use_nothrow);
    (void)n;
    if (ec == http::error::body_limit) {
        std::cout << tag << "body over " << max_question_bytes << " bytes -> 413\n";
        co_await write_response(c, http::status::payload_too_large, "question too long\n");
        co_return;
    }
    if (ec) {
        co_return;
    }
    c->stream.expires_never(); // from here the agent's own deadline applies
    const auto& req = parser.get();
    if (req.method() != http::verb::post || req.target() != "/ask") {
        co_await write_response(c, http::status::not_found, "POST /ask\n");
        co_return;
    }

    // Run the agent, cancellable by the watcher. The run's cancellation slot is the signal's.
    asio::co_spawn(c->stream.get_executor(), watch_client(c), asio::detached);
    wafer::run_options opts;
    opts.run_id = "req-" + std::to_string(id);
    auto cancellable = asio::bind_cancellation_slot(c->client_gone.slot(), asio::use_awaitable);
    asio::awaitable<wafer::run_result> run = agent->async_run(req.body(), std::move(opts));
    wafer::run_result r =
        co_await asio::co_spawn(c->stream.get_executor(), std::move(run), cancellable);
    c->run_done = true;
    beast::error_code ignored;
    c->stream.socket().cancel(ignored); // stop the watcher

    const auto ms = std::to_string(r.duration.count() / 1000) + " ms";
    if (c->disconnected) {
        std::cout << tag << "client hung up: run " << to_string(r.stop_reason) << " after " << ms
                  << ", nothing to answer\n";
        co_return;
    }
    const http::status status = status_for(r.stop_reason);
    std::cout << tag << to_string(r.stop_reason) << " after " << ms << " -> "
              << static_cast<unsigned>(status) << "\n";
    std::string body = status == http::status::ok ? r.final_text + "\n"
                                                  : std::string(to_string(r.stop_reason)) + "\n";
    co_await write_response(c, status, std::move(body));
}

asio::awaitable<void>
accept_loop(std::shared_ptr<tcp::acceptor> acceptor, std::shared_ptr<const wafer::agent> agent) {
    for (int id = 1;; ++id) {
        auto [ec, socket] = co_await acceptor->async_accept(use_nothrow);
        if (ec == asio::error::operation_aborted || !acceptor->is_open()) {
            co_return;
        }
        if (ec) {
            continue; // e.g. too many open files: keep serving the others
        }
        asio::co_spawn(
            acceptor->get_executor(), handle_request(std::move(socket), agent, id), &log_failure
        );
    }
}

// ======================= A client, to try the service offline ==================================

asio::awaitable<std::string>
ask(unsigned short port, std::string question, std::optional<std::chrono::milliseconds> hang_up) {
    beast::tcp_stream s(co_await asio::this_coro::executor);
    s.expires_after(30s);
    co_await s.async_connect(
        tcp::endpoint(asio::ip::address_v4::loopback(), port), asio::use_awaitable
    );
    http::request<http::string_body> req{http::verb::post, "/ask", 11};
    req.set(http::field::host, "127.0.0.1");
    req.set(http::field::content_type, "text/plain");
    req.body() = std::move(question);
    req.prepare_payload();
    co_await http::async_write(s, req, asio::use_awaitable);
    if (hang_up) {
        asio::steady_timer wait(s.get_executor(), *hang_up);
        co_await wait.async_wait(asio::use_awaitable);
        s.close();
        co_return "(hung up after " + std::to_string(hang_up->count()) + " ms)";
    }
    beast::flat_buffer buffer;
    http::response<http::string_body> res;
    co_await http::async_read(s, buffer, res, asio::use_awaitable);
    std::string body = res.body().substr(0, 90);
    while (!body.empty() && body.back() == '\n') {
        body.pop_back();
    }
    co_return std::to_string(res.result_int()) + " " + body;
}

asio::awaitable<void> try_it(std::shared_ptr<tcp::acceptor> acceptor) {
    const unsigned short port = acceptor->local_endpoint().port();
    std::cout << "service listening on 127.0.0.1:" << port << "\n";
    struct request {
        std::string question;
        std::optional<std::chrono::milliseconds> hang_up;
    };
    const std::vector<request> requests{
        {"What is wafer?", {}},
        {"What is preserved thinking?", {}},
        {"Write an essay on agent loops.", {}},         // slow: hits the deadline
        {"Write an essay on coroutines.", 300ms},       // the client hangs up first
        {std::string(max_question_bytes + 1, 'x'), {}}, // over the body limit
    };
    auto ex = co_await asio::this_coro::executor;
    using op_type =
        decltype(asio::co_spawn(ex, std::declval<asio::awaitable<std::string>>(), asio::deferred));
    std::vector<op_type> ops;
    for (const auto& r : requests) {
        ops.push_back(asio::co_spawn(ex, ask(port, r.question, r.hang_up), asio::deferred));
    }
    auto group = asio::experimental::make_parallel_group(std::move(ops));
    auto [order, errors, answers] =
        co_await group.async_wait(asio::experimental::wait_for_all(), asio::use_awaitable);
    (void)order;
    std::cout << "\n";
    for (std::size_t i = 0; i < requests.size(); ++i) {
        const std::string& q = requests[i].question;
        std::cout << "client " << i + 1 << ": "
                  << (q.size() > 40 ? std::to_string(q.size()) + " bytes of 'x'" : q) << " => ";
        if (errors[i]) {
            log_failure(errors[i]);
        } else {
            std::cout << answers[i] << "\n";
        }
    }
    acceptor->close(); // the service stops accepting; the io_context then runs out of work
}

// The stand-in, slowed down: essays take 5 s before the first byte, everything else streams at
// one word per 5 ms.
wafer::testing::reply slow_offline_reply(const wafer::api::chat_request& req) {
    wafer::testing::reply r = wafer::testing::offline_reply(req);
    const bool essay =
        !req.messages.empty() && req.messages.back().text().find("essay") != std::string::npos;
    r.how.header_delay = essay ? 5s : 0ms;
    r.how.chunk_delay = 5ms;
    return r;
}

} // namespace

int main() {
    asio::io_context ioc; // the service's own io_context, one thread
    auto ep = examples::choose_endpoint(ioc.get_executor());
    if (ep.offline) {
        ep.offline->set_responder(&slow_offline_reply);
    }
    auto client = std::make_shared<wafer::api::client>(ioc.get_executor(), ep.config);

    wafer::agent_config cfg;
    cfg.name = "service";
    cfg.model = std::make_shared<wafer::cerebras_model>(client, "zai-glm-4.7");
    cfg.system_prompt = "You answer questions about software in two sentences. Always respond in "
                        "English.";
    cfg.limits.max_turns = 4;
    cfg.limits.run_timeout = 1500ms; // per request: every run gets its own deadline
    auto agent = std::make_shared<const wafer::agent>(std::move(cfg));

    auto acceptor =
        std::make_shared<tcp::acceptor>(ioc, tcp::endpoint(asio::ip::address_v4::loopback(), 0));
    asio::co_spawn(ioc, accept_loop(acceptor, agent), &log_failure);
    return examples::run_example(ioc, ep, try_it(acceptor));
}
