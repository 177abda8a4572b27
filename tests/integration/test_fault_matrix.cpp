// The fault matrix: api::client (and cerebras_model) against real third-party peers on loopback
// (toxy, nginx TLS, tinyproxy, nghttpd; see ../shared/peers/README.md), with the fake server as
// their upstream so that the requests reaching it can be counted. tests/peers/run-fault-matrix.sh
// starts the peers and runs this suite (`make fault-test`); without WAFER_PEERS_DIR the suite is
// skipped. Retry sleeps are recorded and skipped, so the delays the client chose can be checked.
#include <wafer/api/client.hpp>
#include <wafer/cerebras_model.hpp>
#include <wafer/testing/fake_server.hpp>

#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>

#include <doctest/doctest.h>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "run_coro.hpp"

namespace asio = boost::asio;
using namespace std::chrono_literals;
using wafer::errc;
using wafer::api::client;
using wafer::api::client_config;
using wafer::testing::delivery;
using wafer::testing::fake_server;
using wafer::testing::reply;
using wafer::testing::run_coro;

namespace {

bool peers_absent() {
    const char* dir = std::getenv("WAFER_PEERS_DIR");
    return dir == nullptr || *dir == '\0';
}

std::string peers_dir() {
    return std::getenv("WAFER_PEERS_DIR");
}

// The ports of tests/peers/run-fault-matrix.sh: base + offset.
namespace port_offset {
constexpr int upstream = 0;
constexpr int toxy = 1;
constexpr int nginx = 10;
constexpr int nginx_other_name = 11;
constexpr int nginx_gateway_1s = 12;
constexpr int nginx_tls13 = 13;
constexpr int nginx_tls12 = 14;
constexpr int nghttpd = 20;
constexpr int tinyproxy = 30;
constexpr int tinyproxy_auth = 31;
} // namespace port_offset

unsigned short port(int offset) {
    const char* base = std::getenv("WAFER_PEERS_PORT_BASE");
    return static_cast<unsigned short>(std::atoi(base ? base : "28700") + offset);
}

std::string http_url(int offset) {
    return "http://127.0.0.1:" + std::to_string(port(offset));
}

std::string https_url(int offset) {
    return "https://127.0.0.1:" + std::to_string(port(offset));
}

std::string tls_file(const std::string& name) {
    return peers_dir() + "/tls/" + name;
}

std::string read_file(const std::string& path) {
    std::ifstream in(path);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

// The fake server every peer forwards to, on its fixed port for the whole run (nginx keeps
// upstream connections open). Each case sets how it answers.
struct upstream {
    asio::io_context ioc;
    fake_server server;

    upstream()
        : server(ioc.get_executor(), [] {
              wafer::testing::fake_server_config sc;
              sc.port = port(port_offset::upstream);
              return sc;
          }()) {}

    // Answers every chat request with `r`, and forgets earlier requests.
    void answer_with(reply r) {
        server.set_responder([r](const wafer::api::chat_request&) { return r; });
        server.clear_requests();
    }

    std::size_t chat_requests() const {
        std::size_t n = 0;
        for (const auto& r : server.requests()) {
            if (r.target == "/v1/chat/completions") {
                ++n;
            }
        }
        return n;
    }
};

upstream& the_upstream() {
    static upstream u;
    return u;
}

asio::awaitable<void> no_sleep() {
    co_return;
}

const std::string secret = "sk-FAULT-MATRIX-KEY";

struct recorder {
    std::shared_ptr<std::vector<std::chrono::milliseconds>> sleeps =
        std::make_shared<std::vector<std::chrono::milliseconds>>();
};

// A client config for `base_url` trusting the matrix's CA, with short timeouts, recorded and
// skipped retry sleeps, and a fixed jitter draw of 0.2 (backoff 475 ms, then 950 ms).
client_config config_for(const std::string& base_url, const recorder& rec) {
    client_config cfg;
    cfg.api_key = secret;
    cfg.base_url = base_url;
    cfg.ca_file = tls_file("ca.crt");
    cfg.timeouts.connect = 3s;
    cfg.timeouts.read = 3s;
    cfg.sleep = [s = rec.sleeps](std::chrono::milliseconds d) {
        s->push_back(d);
        return no_sleep();
    };
    cfg.random = [] {
        return 0.2;
    };
    return cfg;
}

client_config with_fault(client_config cfg, const std::string& fault) {
    cfg.headers.emplace_back("X-Fault", fault);
    return cfg;
}

wafer::api::chat_request hello(std::string text = "hi") {
    wafer::api::chat_request req;
    req.model = "zai-glm-4.7";
    req.messages.push_back(wafer::api::message{
        .role = wafer::api::role::user, .content = std::move(text)});
    return req;
}

struct outcome {
    boost::system::error_code ec;
    wafer::diagnostics diag;
    std::string text;
    std::size_t chunks = 0;
    std::chrono::milliseconds elapsed{0};
};

asio::awaitable<outcome> create(client& c, wafer::api::chat_request req) {
    outcome o;
    const auto t0 = std::chrono::steady_clock::now();
    wafer::api::chat_response resp;
    o.ec = co_await c.async_create(std::move(req), resp, o.diag);
    if (!o.ec) {
        o.text = resp.first_message().content.value_or("");
    }
    o.elapsed = std::chrono::duration_cast<std::chrono::milliseconds>(
        std::chrono::steady_clock::now() - t0
    );
    co_return o;
}

asio::awaitable<outcome> stream(client& c, wafer::api::chat_request req) {
    outcome o;
    const auto t0 = std::chrono::steady_clock::now();
    wafer::api::chat_stream s;
    o.ec = co_await c.async_stream(std::move(req), s, o.diag);
    if (!o.ec) {
        for (;;) {
            const auto* ch = co_await s.next(o.ec);
            if (!ch) {
                break;
            }
            ++o.chunks;
            o.text += ch->content;
        }
        if (o.ec) {
            o.diag = s.diag();
        }
    }
    o.elapsed = std::chrono::duration_cast<std::chrono::milliseconds>(
        std::chrono::steady_clock::now() - t0
    );
    co_return o;
}

// Runs one request with a generous bound: a hang fails the case instead of the suite.
outcome run_create(const client_config& cfg, wafer::api::chat_request req = hello()) {
    auto& u = the_upstream();
    client c(u.ioc.get_executor(), cfg);
    return run_coro(u.ioc, create(c, std::move(req)), std::chrono::seconds(20));
}

outcome run_stream(const client_config& cfg, wafer::api::chat_request req = hello()) {
    auto& u = the_upstream();
    client c(u.ioc.get_executor(), cfg);
    return run_coro(u.ioc, stream(c, std::move(req)), std::chrono::seconds(20));
}

// Runs a create and cancels it (terminal cancellation, as a caller's deadline would) after `after`.
outcome run_create_cancelled_after(const client_config& cfg, std::chrono::milliseconds after) {
    auto& u = the_upstream();
    client c(u.ioc.get_executor(), cfg);
    auto result = std::make_shared<std::optional<outcome>>();
    asio::cancellation_signal sig;
    if (u.ioc.stopped()) {
        u.ioc.restart();
    }
    asio::co_spawn(
        u.ioc,
        create(c, hello()),
        asio::bind_cancellation_slot(
            sig.slot(), [result](std::exception_ptr, outcome o) { *result = std::move(o); }
        )
    );
    asio::steady_timer timer(u.ioc, after);
    timer.async_wait([&sig](boost::system::error_code ec) {
        if (!ec) {
            sig.emit(asio::cancellation_type::terminal);
        }
    });
    const auto end = std::chrono::steady_clock::now() + 20s;
    while (!*result && std::chrono::steady_clock::now() < end) {
        u.ioc.run_one_for(10ms);
    }
    timer.cancel();
    REQUIRE_MESSAGE(result->has_value(), "the cancelled request did not finish within 20 s");
    return std::move(**result);
}

std::string everything_said(const outcome& o) {
    return o.diag.to_string() + " " + o.diag.detail + " " + o.diag.message + " " + o.ec.message() +
           " " + wafer::error(o.ec, o.diag).what();
}

void report(const std::string& what, const outcome& o) {
    MESSAGE(
        what << ": ec=" << (o.ec ? o.ec.message() : std::string("ok"))
             << " attempts=" << o.diag.attempts << " http_status=" << o.diag.http_status
             << " elapsed_ms=" << o.elapsed.count() << " detail=\"" << o.diag.detail << "\""
    );
    CHECK(everything_said(o).find(secret) == std::string::npos);
}

// The nginx access log lines (format `matrix`: port "request" status protocol tls) of one port.
std::vector<std::string> nginx_log_lines(int offset) {
    std::vector<std::string> lines;
    std::istringstream in(read_file(peers_dir() + "/run/access.log"));
    const std::string prefix = std::to_string(port(offset)) + " ";
    for (std::string line; std::getline(in, line);) {
        if (line.rfind(prefix, 0) == 0) {
            lines.push_back(line);
        }
    }
    return lines;
}

std::size_t count_of(const std::string& haystack, const std::string& needle) {
    std::size_t n = 0;
    for (auto pos = haystack.find(needle); pos != std::string::npos;
         pos = haystack.find(needle, pos + needle.size())) {
        ++n;
    }
    return n;
}

} // namespace

TEST_SUITE("peers/fault_matrix" * doctest::skip(peers_absent())) {
    TEST_CASE("toxy pass-through: create and stream reach the upstream once") {
        auto& u = the_upstream();
        u.answer_with(reply::text("through toxy"));
        recorder rec;
        const auto cfg = config_for(http_url(port_offset::toxy), rec);
        auto a = run_create(cfg);
        report("toxy create", a);
        CHECK(!a.ec);
        CHECK(a.text == "through toxy");
        auto s = run_stream(cfg);
        report("toxy stream", s);
        CHECK(!s.ec);
        CHECK(s.text == "through toxy");
        CHECK(s.chunks >= 3);
        CHECK(u.chat_requests() == 2);
        CHECK(rec.sleeps->empty());
    }

    TEST_CASE("toxy latency: the reply comes, later") {
        auto& u = the_upstream();
        u.answer_with(reply::text("late"));
        recorder rec;
        auto o = run_create(with_fault(config_for(http_url(port_offset::toxy), rec), "latency"));
        report("toxy latency", o);
        CHECK(!o.ec);
        CHECK(o.text == "late");
        CHECK(o.elapsed >= 900ms); // toxy holds every request 1000 ms
        CHECK(o.diag.attempts == 1);
        CHECK(u.chat_requests() == 1);
    }

    TEST_CASE("toxy abort: closed without a response, retried, then connection_failed") {
        auto& u = the_upstream();
        u.answer_with(reply::text("never"));
        recorder rec;
        auto o = run_create(with_fault(config_for(http_url(port_offset::toxy), rec), "abort"));
        report("toxy abort", o);
        CHECK(o.ec == errc::connection_failed);
        CHECK(o.diag.attempts == 3); // max_retries 2
        CHECK(*rec.sleeps == std::vector<std::chrono::milliseconds>{475ms, 950ms});
        CHECK(u.chat_requests() == 0); // toxy cuts before forwarding
    }

    TEST_CASE("toxy timeout: the proxy gives up on a slow upstream, retried, connection_failed") {
        auto& u = the_upstream();
        delivery slow;
        slow.header_delay = 2s; // toxy's timeout poison gives up after 500 ms
        u.answer_with(reply::text("too slow", slow));
        recorder rec;
        auto o = run_create(with_fault(config_for(http_url(port_offset::toxy), rec), "timeout"));
        report("toxy timeout", o);
        CHECK(o.ec == errc::connection_failed);
        CHECK(o.diag.attempts == 3);
        CHECK(u.chat_requests() == 3); // every attempt reached the upstream
        CHECK(o.elapsed < 10s);
    }

    TEST_CASE("toxy 503 with Retry-After: retried after the advised delay, then server_error") {
        auto& u = the_upstream();
        u.answer_with(reply::text("never"));
        recorder rec;
        auto o = run_create(with_fault(config_for(http_url(port_offset::toxy), rec), "status503"));
        report("toxy 503", o);
        CHECK(o.ec == errc::server_error);
        CHECK(o.diag.http_status == 503);
        CHECK(o.diag.message == "injected 503");
        CHECK(o.diag.attempts == 3);
        // Retry-After: 1 wins over the backoff (475 ms, 950 ms).
        CHECK(*rec.sleeps == std::vector<std::chrono::milliseconds>{1000ms, 1000ms});
        CHECK(u.chat_requests() == 0);
    }

    TEST_CASE("toxy slow read: the request body arrives slowly and intact") {
        auto& u = the_upstream();
        u.answer_with(reply::text("read it all"));
        recorder rec;
        const std::string text(400, 'x'); // 64-byte pieces 200 ms apart: over a second
        auto o = run_create(
            with_fault(config_for(http_url(port_offset::toxy), rec), "slow-read"), hello(text)
        );
        report("toxy slow-read", o);
        CHECK(!o.ec);
        CHECK(o.text == "read it all");
        CHECK(o.elapsed >= 1s);
        const auto reqs = u.server.chat_requests();
        REQUIRE(reqs.size() == 1);
        REQUIRE(reqs[0].messages.size() == 1);
        CHECK(reqs[0].messages[0].content == text);
    }

    TEST_CASE("nginx TLS, trusted CA: works over HTTP/1.1 (wafer offers no ALPN protocol)") {
        auto& u = the_upstream();
        u.answer_with(reply::text("over TLS"));
        recorder rec;
        const auto cfg = config_for(https_url(port_offset::nginx), rec);
        auto a = run_create(cfg);
        report("nginx trusted create", a);
        CHECK(!a.ec);
        CHECK(a.text == "over TLS");
        auto s = run_stream(cfg);
        report("nginx trusted stream", s);
        CHECK(!s.ec);
        CHECK(s.text == "over TLS");
        CHECK(u.chat_requests() == 2);
        const auto lines = nginx_log_lines(port_offset::nginx);
        REQUIRE(lines.size() >= 2);
        // The server offers h2 and http/1.1; with no ALPN from the client it speaks HTTP/1.1.
        CHECK(lines.back().find("HTTP/1.1 TLSv1.3") != std::string::npos);
    }

    TEST_CASE("nginx TLS, unknown CA: tls_failed (certificate verification), not retried") {
        auto& u = the_upstream();
        u.answer_with(reply::text("never"));
        recorder rec;
        auto wrong_ca = config_for(https_url(port_offset::nginx), rec);
        wrong_ca.ca_file = tls_file("wrong-ca.crt");
        auto o = run_create(wrong_ca);
        report("nginx wrong CA", o);
        CHECK(o.ec == errc::tls_failed);
        CHECK(o.diag.detail.find("certificate verify failed") != std::string::npos);
        CHECK(u.chat_requests() == 0);

        auto system_store = config_for(https_url(port_offset::nginx), rec);
        system_store.ca_file.clear();
        auto s = run_create(system_store);
        report("nginx system store", s);
        CHECK(s.ec == errc::tls_failed);
        CHECK(u.chat_requests() == 0);

        CHECK(o.diag.attempts == 1);
        CHECK(s.diag.attempts == 1);
    }

    TEST_CASE("nginx TLS, certificate for another host name: tls_failed naming the mismatch") {
        auto& u = the_upstream();
        u.answer_with(reply::text("never"));
        recorder rec;
        auto o = run_create(config_for(https_url(port_offset::nginx_other_name), rec));
        report("nginx wrong host name", o);
        CHECK(o.ec == errc::tls_failed);
        CHECK(u.chat_requests() == 0);
        CHECK(o.diag.detail.find("127.0.0.1") != std::string::npos);
        CHECK(o.diag.detail.find("match") != std::string::npos); // "mismatch", "does not match"
        CHECK(o.diag.attempts == 1);
    }

    TEST_CASE("nginx TLS 1.3 only and TLS 1.2 only: both work") {
        auto& u = the_upstream();
        u.answer_with(reply::text("any version"));
        recorder rec;
        auto v13 = run_stream(config_for(https_url(port_offset::nginx_tls13), rec));
        report("nginx TLS 1.3 only", v13);
        CHECK(!v13.ec);
        CHECK(v13.text == "any version");
        auto v12 = run_stream(config_for(https_url(port_offset::nginx_tls12), rec));
        report("nginx TLS 1.2 only", v12);
        CHECK(!v12.ec);
        CHECK(v12.text == "any version");
        const auto l13 = nginx_log_lines(port_offset::nginx_tls13);
        const auto l12 = nginx_log_lines(port_offset::nginx_tls12);
        REQUIRE(!l13.empty());
        REQUIRE(!l12.empty());
        CHECK(l13.back().find("TLSv1.3") != std::string::npos);
        CHECK(l12.back().find("TLSv1.2") != std::string::npos);
    }

    TEST_CASE("nghttpd, HTTP/2 only: connection_failed at once, no hang") {
        // nghttpd completes the TLS handshake whatever ALPN offers (curl --http1.1 gets the same),
        // then closes on the HTTP/1.1 request: a connection closed without a response.
        recorder rec;
        auto cfg = config_for(https_url(port_offset::nghttpd), rec);
        auto o = run_create(cfg);
        report("nghttpd h2 only", o);
        CHECK(o.ec == errc::connection_failed);
        CHECK(!o.diag.detail.empty());
        CHECK(o.elapsed < 10s);
    }

    TEST_CASE("nginx /drop (444): closed without a response, retried, then connection_failed") {
        auto& u = the_upstream();
        u.answer_with(reply::text("never"));
        recorder rec;
        auto o = run_create(config_for(https_url(port_offset::nginx) + "/drop", rec));
        report("nginx drop", o);
        CHECK(o.ec == errc::connection_failed);
        CHECK(o.diag.attempts == 3);
        CHECK(*rec.sleeps == std::vector<std::chrono::milliseconds>{475ms, 950ms});
        CHECK(u.chat_requests() == 0);
        CHECK(nginx_log_lines(port_offset::nginx).back().find(" 444 ") != std::string::npos);
    }

    TEST_CASE("nginx stall (limit_rate 1): the idle read timeout fires, retried, timeout") {
        // nginx sends the reply one byte per second; the client allows 400 ms of silence.
        auto& u = the_upstream();
        u.answer_with(reply::text("a reply that trickles out one byte per second"));
        recorder rec;
        auto cfg = config_for(https_url(port_offset::nginx) + "/stall/v1", rec);
        cfg.timeouts.read = 400ms;
        auto c = run_create(cfg);
        report("nginx stall create", c);
        CHECK(c.ec == errc::timeout);
        CHECK(c.diag.attempts == 3); // timeouts are retried
        CHECK(c.elapsed < 10s);
        auto s = run_stream(cfg);
        report("nginx stall stream", s);
        CHECK(s.ec == errc::timeout);
        CHECK(s.diag.attempts == 3);
        CHECK(s.elapsed < 10s);
        CHECK(u.chat_requests() == 6);
    }

    TEST_CASE("nginx trickle (1 byte/s) under a 3 s idle timeout: no timeout; the caller's "
              "cancellation ends it") {
        // The read timeout bounds silence, not the whole response: a server that keeps sending a
        // byte a second is bounded only by the caller (an agent's run deadline, cancellation).
        auto& u = the_upstream();
        u.answer_with(reply::text("a reply that trickles out one byte per second"));
        recorder rec;
        auto cfg = config_for(https_url(port_offset::nginx) + "/stall/v1", rec);
        cfg.timeouts.read = 3s;
        auto o = run_create_cancelled_after(cfg, 3500ms);
        report("nginx trickle, cancelled", o);
        CHECK(o.ec == errc::cancelled);
        CHECK(o.elapsed >= 3s);
        CHECK(o.diag.attempts == 1);
        CHECK(u.chat_requests() == 1);
    }

    TEST_CASE("nginx 504 gateway timeout: retried like any 5xx, then server_error") {
        auto& u = the_upstream();
        delivery slow;
        slow.header_delay = 2s; // nginx's upstream read timeout is 1 s
        u.answer_with(reply::text("too slow", slow));
        recorder rec;
        auto o = run_create(config_for(https_url(port_offset::nginx_gateway_1s), rec));
        report("nginx 504", o);
        CHECK(o.ec == errc::server_error);
        CHECK(o.diag.http_status == 504);
        CHECK(o.diag.attempts == 3);
        CHECK(*rec.sleeps == std::vector<std::chrono::milliseconds>{475ms, 950ms});
        CHECK(u.chat_requests() == 3);
    }

    TEST_CASE("nginx cuts a stream whose upstream went silent: an error, not retried") {
        auto& u = the_upstream();
        delivery gap;
        gap.chunk_delay = 1500ms; // nginx gives up after 1 s of upstream silence
        u.answer_with(reply::text("first second third", gap));
        recorder rec;
        auto o = run_stream(config_for(https_url(port_offset::nginx_gateway_1s), rec));
        report("nginx mid-stream cut", o);
        CHECK(o.ec == errc::stream_truncated);
        CHECK(o.chunks >= 1);        // the role chunk came before the silence
        CHECK(o.diag.attempts == 1); // bytes had reached the caller
        CHECK(u.chat_requests() == 1);
        CHECK(rec.sleeps->empty());
    }

    TEST_CASE("tinyproxy CONNECT tunnel to nginx TLS: works, pooled") {
        auto& u = the_upstream();
        u.answer_with(reply::text("tunnelled"));
        recorder rec;
        auto cfg = config_for(https_url(port_offset::nginx), rec);
        cfg.proxy = wafer::api::proxy_config{http_url(port_offset::tinyproxy)};
        const auto log = peers_dir() + "/logs/tinyproxy.log";
        const auto before = count_of(read_file(log), "Established connection");
        auto& ioc = u.ioc;
        client c(ioc.get_executor(), cfg);
        auto a = run_coro(ioc, create(c, hello()), std::chrono::seconds(20));
        report("tinyproxy create", a);
        auto s = run_coro(ioc, stream(c, hello()), std::chrono::seconds(20));
        report("tinyproxy stream", s);
        CHECK(!a.ec);
        CHECK(a.text == "tunnelled");
        CHECK(!s.ec);
        CHECK(s.text == "tunnelled");
        CHECK(c.connections_opened() == 1); // the tunnel was reused
        CHECK(u.chat_requests() == 2);
        CHECK(count_of(read_file(log), "Established connection") == before + 1);
    }

    TEST_CASE("tinyproxy refuses CONNECT to a port not allowed: proxy_failed naming the 403") {
        auto& u = the_upstream();
        u.answer_with(reply::text("never"));
        recorder rec;
        auto cfg = config_for(https_url(port_offset::nginx_gateway_1s), rec); // not a ConnectPort
        cfg.proxy = wafer::api::proxy_config{http_url(port_offset::tinyproxy)};
        auto o = run_create(cfg);
        report("tinyproxy refused", o);
        CHECK(o.ec == errc::proxy_failed);
        CHECK(o.diag.detail.find("403") != std::string::npos);
        CHECK(o.diag.attempts == 1); // a refusal is not retried
        CHECK(o.diag.refused);
        CHECK(u.chat_requests() == 0);
    }

    TEST_CASE("tinyproxy Basic auth: 407 without credentials, works with them in the URL") {
        auto& u = the_upstream();
        u.answer_with(reply::text("authorised"));
        recorder rec;
        auto cfg = config_for(https_url(port_offset::nginx), rec);
        cfg.proxy = wafer::api::proxy_config{http_url(port_offset::tinyproxy_auth)};
        auto none = run_create(cfg);
        report("tinyproxy auth, none", none);
        CHECK(none.ec == errc::proxy_failed);
        CHECK(none.diag.detail.find("407") != std::string::npos);
        CHECK(none.diag.attempts == 1);

        cfg.proxy = wafer::api::proxy_config{
            "http://user:wrong-pass@127.0.0.1:" +
            std::to_string(port(port_offset::tinyproxy_auth))};
        auto wrong = run_create(cfg);
        report("tinyproxy auth, wrong", wrong);
        CHECK(wrong.ec == errc::proxy_failed);
        CHECK(wrong.diag.detail.find("401") != std::string::npos); // tinyproxy's answer to bad ones
        CHECK(wrong.diag.attempts == 1);
        CHECK(everything_said(wrong).find("wrong-pass") == std::string::npos);
        CHECK(u.chat_requests() == 0);

        cfg.proxy = wafer::api::proxy_config{
            "http://user:secret@127.0.0.1:" + std::to_string(port(port_offset::tinyproxy_auth))};
        auto ok = run_stream(cfg);
        report("tinyproxy auth, right", ok);
        CHECK(!ok.ec);
        CHECK(ok.text == "authorised");
        CHECK(u.chat_requests() == 1);
    }

    TEST_CASE("cerebras_model through tinyproxy and nginx TLS: a streamed reply") {
        auto& u = the_upstream();
        u.answer_with(reply::text("model reply"));
        recorder rec;
        auto cfg = config_for(https_url(port_offset::nginx), rec);
        cfg.proxy = wafer::api::proxy_config{http_url(port_offset::tinyproxy)};
        auto c = std::make_shared<client>(u.ioc.get_executor(), cfg);
        wafer::cerebras_model model(c, "zai-glm-4.7");
        auto r = run_coro(u.ioc, model.async_complete(hello(), nullptr), std::chrono::seconds(20));
        CHECK(r.message.content == "model reply");
        CHECK(r.finish_reason == wafer::api::finish_reason::stop);
        CHECK(u.chat_requests() == 1);
    }
}
