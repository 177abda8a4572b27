// MCP over stdio, sans-io: the line framer (split reads, CRLF, oversized lines, the last line)
// and the JSON-RPC reader and writers (every shape, every malformed one).
#include <wafer/tools/mcp/jsonrpc.hpp>
#include <wafer/tools/mcp/line_framer.hpp>

#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

#include <functional>
#include <string>
#include <vector>

using namespace wafer::tools::mcp;
using nlohmann::json;

namespace {

std::vector<frame> drain(line_framer& f) {
    std::vector<frame> out;
    while (auto fr = f.next()) {
        out.push_back(std::move(*fr));
    }
    return out;
}

frame line(std::string text) {
    const std::size_t n = text.size();
    return {frame::kind::line, std::move(text), {}, n};
}

// An oversized frame of `n` bytes whose line started with `head` and ended with `tail`.
frame oversized(std::size_t n, std::string head, std::string tail) {
    return {frame::kind::oversized, std::move(head), std::move(tail), n};
}

// What member_scanner finds in `text` fed whole, and checks that every split into two pieces and
// feeding byte by byte find the same.
line_members scanned(std::string_view text) {
    member_scanner whole;
    whole.feed(text);
    const line_members want = whole.finish();
    for (std::size_t cut = 0; cut <= text.size(); ++cut) {
        member_scanner two;
        two.feed(text.substr(0, cut));
        two.feed(text.substr(cut));
        CHECK_MESSAGE(two.finish() == want, "split at ", cut, " of ", std::string(text));
    }
    member_scanner bytes;
    for (const char c : text) {
        bytes.feed(std::string_view(&c, 1));
    }
    CHECK(bytes.finish() == want);
    return want;
}

line_members members(std::string id, bool result, bool method = false) {
    return {std::move(id), method, result};
}

} // namespace

TEST_SUITE("unit/mcp_framing") {
    TEST_CASE("member_scanner finds the top-level id, method and result, however the text is "
              "split") {
        CHECK(scanned(R"({"jsonrpc":"2.0","id":42,"result":{}})") == members("42", true));
        CHECK(scanned(R"({"result":{"a":"x"},"id":-7})") == members("-7", true));
        CHECK(
            scanned(R"( { "result" : [1,{"id":3}] , "id" : 8 , "x":"y" } )") == members("8", true)
        );
        CHECK(scanned(R"({"error":{"code":1},"id":"abc"})") == members("\"abc\"", true));
        CHECK(scanned(R"({"id":5,"method":"m","params":{}})") == members("5", false, true));
        // Nested ids, ids in strings, escaped quotes and keys do not count.
        CHECK(scanned(R"({"result":{"id":3}})") == members("", true));
        CHECK(scanned(R"({"result":"\"id\":4","x":"a\\"})") == members("", true));
        CHECK(scanned(R"({"result":1,"\u0069d":4})") == members("", true));
        CHECK(scanned(R"({"result":1,"i\"d":4})") == members("", true));
        CHECK(scanned(R"([{"id":1,"result":2}])") == members("", false));
        // Values that are no id.
        CHECK(scanned(R"({"result":1,"id":1.5})") == members("", true));
        CHECK(scanned(R"({"result":1,"id":1e3})") == members("", true));
        CHECK(scanned(R"({"result":1,"id":null})") == members("", true));
        CHECK(scanned(R"({"result":1,"id":{"a":1}})") == members("", true));
        CHECK(scanned(R"({"result":1,"id":"a\"b"})") == members("", true));
        CHECK(scanned(R"({"result":1,"id":123456789012345678901234})") == members("", true));
        CHECK(scanned(R"({"result":1,"id":-})") == members("", true));
        // Keys longer than any looked for, and the end of the text inside a number.
        CHECK(scanned(R"({"resultset":1,"identity":2,"id":3)") == members("3", false));
        CHECK(scanned("") == members("", false));
        CHECK(scanned("not json at all \" { [ ] }") == members("", false));
        // A string id of 256 bytes is kept, a longer one is not.
        const std::string long_id(256, 'q');
        CHECK(
            scanned(R"({"result":1,"id":")" + long_id + "\"}") ==
            members("\"" + long_id + "\"", true)
        );
        CHECK(scanned(R"({"result":1,"id":")" + long_id + "q\"}") == members("", true));
        // Deep nesting costs a counter, not memory.
        const std::string deep =
            R"({"result":)" + std::string(100000, '[') + std::string(100000, ']') + R"(,"id":9})";
        member_scanner sc;
        sc.feed(deep);
        CHECK(sc.finish() == members("9", true));
    }

    TEST_CASE("an oversized line reports its top-level id wherever it is, for every split of "
              "the stream") {
        const std::string fill(40, 'x');
        const std::string big =
            R"({"jsonrpc":"2.0","result":{"t":")" + fill + R"("},"id":42,"m":")" + fill + "\"}";
        const std::string stream = big + "\r\n" + R"({"id":1})" + "\n";
        const auto check = [&](const std::vector<frame>& got) {
            REQUIRE(got.size() == 2);
            CHECK(got[0].type == frame::kind::oversized);
            CHECK(got[0].size == big.size());
            CHECK(got[0].members == members("42", true));
            CHECK(got[1] == line(R"({"id":1})"));
        };
        for (std::size_t cut = 0; cut <= stream.size(); ++cut) {
            CAPTURE(cut);
            line_framer f(16);
            f.feed(std::string_view(stream).substr(0, cut));
            std::vector<frame> got = drain(f);
            f.feed(std::string_view(stream).substr(cut));
            for (auto& fr : drain(f)) {
                got.push_back(std::move(fr));
            }
            check(got);
        }
        for (std::size_t piece : {1U, 2U, 3U, 7U, 16U, 17U}) {
            CAPTURE(piece);
            line_framer f(16);
            std::vector<frame> got;
            for (std::size_t i = 0; i < stream.size(); i += piece) {
                f.feed(std::string_view(stream).substr(i, piece));
                for (auto& fr : drain(f)) {
                    got.push_back(std::move(fr));
                }
            }
            check(got);
        }
        // The last line of the stream, without its newline.
        line_framer f(16);
        f.feed(big);
        CHECK(drain(f).empty());
        const auto last = f.finish();
        REQUIRE(last);
        CHECK(last->members == members("42", true));
        // A line within the limit is not scanned.
        line_framer g(1024);
        g.feed(big + "\n");
        const auto plain = drain(g);
        REQUIRE(plain.size() == 1);
        CHECK(plain[0].members == line_members{});
    }

    TEST_CASE("lines come out whole however the stream is split; CRLF is accepted") {
        const std::string stream = "{\"a\":1}\r\n{\"b\":2}\n\n{\"c\":\"x\\ny\"}\n";
        const std::vector<frame> want{
            line(R"({"a":1})"), line(R"({"b":2})"), line(""), line(R"({"c":"x\ny"})")};
        for (std::size_t piece = 1; piece <= stream.size(); ++piece) {
            CAPTURE(piece);
            line_framer f;
            std::vector<frame> got;
            for (std::size_t i = 0; i < stream.size(); i += piece) {
                f.feed(std::string_view(stream).substr(i, piece));
                for (auto& fr : drain(f)) {
                    got.push_back(std::move(fr));
                }
            }
            CHECK(got == want);
            CHECK_FALSE(f.finish());
            CHECK(f.buffered() == 0);
        }
    }

    TEST_CASE("a line over the limit is dropped and reported, and the next one is read") {
        line_framer f(8);
        SUBCASE("in one read") {
            f.feed("0123456789\nok\n");
            CHECK(
                drain(f) == std::vector<frame>{oversized(10, "01234567", "23456789"), line("ok")}
            );
        }
        SUBCASE("across many reads, never buffering more than the limit") {
            for (int i = 0; i < 1000; ++i) {
                f.feed("0123456789");
                CHECK(drain(f).empty());
                CHECK(f.buffered() <= 18);
            }
            f.feed("\nok\n");
            CHECK(
                drain(f) == std::vector<frame>{oversized(10000, "01234567", "23456789"), line("ok")}
            );
        }
        SUBCASE("exactly the limit is fine") {
            f.feed("01234567\n");
            CHECK(drain(f) == std::vector<frame>{line("01234567")});
        }
    }

    TEST_CASE("at end of stream the last line without a newline is returned") {
        line_framer f;
        f.feed("{\"a\":1}\n{\"partial\":");
        CHECK(drain(f) == std::vector<frame>{line(R"({"a":1})")});
        CHECK(f.finish() == line(R"({"partial":)"));
        CHECK_FALSE(f.finish());
        line_framer small(4);
        small.feed("0123456");
        CHECK(drain(small).empty());
        CHECK(small.finish() == oversized(7, "0123", "3456"));
    }

    TEST_CASE("an oversized line keeps its first and last bytes, the same however it is read") {
        // 1 MiB + a bit, with a CRLF end; head and tail are bounded whatever the limit.
        const std::string start = R"({"jsonrpc":"2.0","id":7,"result":{"text":")";
        const std::string end = R"("},"id_after":"x"})";
        const std::string body = start + std::string((1U << 20U) + 3, 'y') + end;
        const std::string stream = body + "\r\n{\"ok\":1}\n";
        frame want = oversized(
            body.size(),
            body.substr(0, line_framer::head_bytes),
            body.substr(body.size() - line_framer::tail_bytes)
        );
        want.members = members("7", true); // seen as the line streamed past
        for (const std::size_t piece :
             {std::size_t{1} << 20U, std::size_t{65536}, std::size_t{4093}}) {
            CAPTURE(piece);
            line_framer f(4096);
            std::vector<frame> got;
            for (std::size_t i = 0; i < stream.size(); i += piece) {
                f.feed(std::string_view(stream).substr(i, piece));
                CHECK(f.buffered() <= 4096 + piece);
                for (auto& fr : drain(f)) {
                    got.push_back(std::move(fr));
                }
            }
            REQUIRE(got.size() == 2);
            CHECK(got[0] == want);
            CHECK(got[1] == line(R"({"ok":1})"));
        }
        // A "\r" that ends one read and a "\n" that starts the next are one line end.
        line_framer f(8);
        f.feed("0123456789\r");
        CHECK(drain(f).empty());
        f.feed("\nok\n");
        CHECK(drain(f) == std::vector<frame>{oversized(10, "01234567", "23456789"), line("ok")});
    }

    TEST_CASE("oversized_response_id reads whose answer a truncated line was") {
        // The id before the result (wafer's fault server, the Python SDK) or after it, last
        // (the TypeScript SDK).
        CHECK(
            oversized_response_id(R"({"jsonrpc":"2.0","id":42,"result":{"content":[{"te)", "") == 42
        );
        CHECK(
            oversized_response_id(R"( { "jsonrpc" : "2.0" , "id" : 42 , "error":{"mes)", "") == 42
        );
        CHECK(
            oversized_response_id(
                R"({"result":{"content":[{"text":"xxx)", R"(xxxx"}]},"jsonrpc":"2.0","id":9})"
            ) == 9
        );
        CHECK(oversized_response_id(R"({"result":{"a":"xxx)", "xxx\"}, \"id\" : 9 }\r") == 9);
        CHECK(oversized_response_id(R"({"jsonrpc":"2.0","id":-3,"result":{)", "") == -3);
        // Not shown, or not a response of this client's.
        CHECK_FALSE(oversized_response_id(R"({"jsonrpc":"2.0","id":12)", "")); // maybe 123
        CHECK_FALSE(oversized_response_id(R"({"jsonrpc":"2.0","id":"a","result":{)", R"(,"id":4})")
        );
        CHECK_FALSE(
            oversized_response_id(R"({"jsonrpc":"2.0","id":5,"method":"sampling/x","params":{)", "")
        );
        CHECK_FALSE(oversized_response_id(R"({"method":"x","params":{"a":"xx)", R"(,"id":5})"));
        CHECK_FALSE(oversized_response_id(R"({"jsonrpc":"2.0","params":{"a":"xx)", R"(,"id":5})"));
        CHECK_FALSE(oversized_response_id(R"({"result":{"a":"xx)", R"(x"},"b":{"id":5}})"));
        CHECK_FALSE(oversized_response_id(R"({"result":{"a":"xx)", R"(x","x\"id":5})"));
        CHECK_FALSE(oversized_response_id(R"({"result":{"a":"xx)", R"(\"id":5})"));
        CHECK_FALSE(
            oversized_response_id(R"({"result":{"a":"xx)", R"(x"},"id":99999999999999999999})")
        );
        CHECK_FALSE(oversized_response_id(R"({"result":{"a":"xx)", R"(x"},"id":1e3})"));
        CHECK_FALSE(oversized_response_id("xxxxxxxxxxxx", "yyyyyy"));
        CHECK_FALSE(oversized_response_id("", ""));
        // Nested members named id are not the answer's.
        CHECK(oversized_response_id(R"({"jsonrpc":"2.0","result":{"id":3},"id":8,"x":")", "") == 8);
        CHECK_FALSE(oversized_response_id(R"({"jsonrpc":"2.0","result":{"id":3,"t":"xxx)", ""));
    }

    TEST_CASE("read_message classifies requests, notifications, results and errors") {
        auto req = read_message(R"({"jsonrpc":"2.0","id":7,"method":"ping"})");
        REQUIRE(req);
        CHECK(req->type == rpc_message::kind::request);
        CHECK(req->id == rpc_id(std::int64_t{7}));
        CHECK(req->method == "ping");
        CHECK(req->params.is_null());

        auto note = read_message(
            R"({"jsonrpc":"2.0","method":"notifications/progress","params":{"progressToken":"p","progress":1}})"
        );
        REQUIRE(note);
        CHECK(note->type == rpc_message::kind::notification);
        CHECK_FALSE(note->id);
        CHECK(note->params.at("progress") == 1);

        auto res = read_message(R"({"jsonrpc":"2.0","id":"a-1","result":{"tools":[]}})");
        REQUIRE(res);
        CHECK(res->type == rpc_message::kind::result);
        CHECK(res->id == rpc_id(std::string("a-1")));
        CHECK(res->result.at("tools").empty());

        auto err = read_message(
            R"({"jsonrpc":"2.0","id":5,"error":{"code":-32601,"message":"Method not found","data":{"m":"x"}}})"
        );
        REQUIRE(err);
        CHECK(err->type == rpc_message::kind::error);
        CHECK(err->error.code == rpc_code::method_not_found);
        CHECK(err->error.message == "Method not found");
        CHECK(err->error.data == json{{"m", "x"}});

        // The peer could not read the request: an error with a null id.
        auto unread = read_message(
            R"({"jsonrpc":"2.0","id":null,"error":{"code":-32700,"message":"Parse error"}})"
        );
        REQUIRE(unread);
        CHECK_FALSE(unread->id);
        CHECK(unread->error.code == rpc_code::parse_error);
    }

    TEST_CASE("read_message refuses what is not one JSON-RPC 2.0 message, saying why") {
        const std::vector<std::pair<std::string, std::string>> bad{
            {"hello from a server that logs to stdout", "not JSON"},
            {"\"\xff\"", "not JSON"},
            {"[{\"jsonrpc\":\"2.0\",\"method\":\"a\"}]", "batch"},
            {"42", "not a JSON object"},
            {R"({"method":"a"})", "jsonrpc"},
            {R"({"jsonrpc":"1.0","method":"a"})", "jsonrpc"},
            {R"({"jsonrpc":"2.0","method":5})", "method"},
            {R"({"jsonrpc":"2.0","method":"a","params":3})", "params"},
            {R"({"jsonrpc":"2.0","id":null,"method":"a"})", "request id"},
            {R"({"jsonrpc":"2.0","id":1.5,"method":"a"})", "request id"},
            {R"({"jsonrpc":"2.0","id":18446744073709551615,"method":"a"})", "request id"},
            {R"({"jsonrpc":"2.0","id":1})", "exactly one"},
            {R"({"jsonrpc":"2.0","id":1,"result":1,"error":{}})", "exactly one"},
            {R"({"jsonrpc":"2.0","result":1})", "without an id"},
            {R"({"jsonrpc":"2.0","id":{},"result":1})", "response id"},
            {R"({"jsonrpc":"2.0","id":1,"error":"bad"})", "error without"},
            {R"({"jsonrpc":"2.0","id":1,"error":{"code":"x","message":"m"}})", "error without"},
            {R"({"jsonrpc":"2.0","id":1,"error":{"code":1.5,"message":"m"}})", "error without"},
            {R"({"jsonrpc":"2.0","id":1,"error":{"code":1}})", "error without"},
            {R"({"jsonrpc":"2.0","id":1,"error":{"code":18446744073709551615,"message":"m"}})",
             "out of range"},
        };
        for (const auto& [text, reason] : bad) {
            CAPTURE(text);
            std::string why;
            CHECK_FALSE(read_message(text, &why));
            CHECK(why.find(reason) != std::string::npos);
        }
    }

    TEST_CASE("the writers make one line that reads back as the same message") {
        const std::string r = write_request(std::int64_t{3}, "tools/call", {{"name", "echo"}});
        CHECK(r == R"({"id":3,"jsonrpc":"2.0","method":"tools/call","params":{"name":"echo"}})");
        const std::string n = write_notification(
            "notifications/cancelled", {{"requestId", 3}, {"reason", "line1\nline2"}}
        );
        CHECK(n.find('\n') == std::string::npos); // escaped: stdio framing stays intact
        const std::string ok = write_result(std::string("s-1"), json::object());
        const std::string no =
            write_error(std::int64_t{9}, {rpc_code::invalid_params, "bad", json(1)});
        for (const std::string& text : {r, n, ok, no}) {
            CAPTURE(text);
            auto m = read_message(text);
            REQUIRE(m);
            CHECK(write_message(*m) == text);
        }
        // Invalid UTF-8 from a caller is replaced, never sent.
        const std::string bad = write_notification("x", {{"s", std::string("a\xff")}});
        CHECK(read_message(bad));
    }
    TEST_CASE("read_message builds what nlohmann's parser builds: value types, duplicate keys, "
              "nesting at the limit, numbers and strings simdjson leaves to it") {
        // Each a result whose value must come out as json::parse makes it, types included.
        const std::vector<std::string> values{
            R"({"content":[{"type":"text","text":"Echo: hi"}],"isError":false})",
            R"([0,1,-1,9223372036854775807,9223372036854775808,18446744073709551615,-9223372036854775808])",
            R"([1.5,-0.0,1e300,2.5e-308,0.1,1E2])",
            R"(18446744073709551616)",                      // beyond 64 bits: a float
            R"({"a":1,"a":2,"b":{"a":[true,false,null]}})", // the last duplicate wins
            R"("tab\t nul\u0000 é \ud83d\ude00 \"q\" \\")",
            R"({"":"","k\u0000":"v"})",
            std::string(512 - 1, '[') + std::string(512 - 1, ']'), // with the envelope: 512 deep
        };
        for (const std::string& v : values) {
            const std::string text = R"({"jsonrpc":"2.0","id":1,"result":)" + v + "}";
            CAPTURE(text);
            std::string why;
            auto m = read_message(text, &why);
            REQUIRE_MESSAGE(m, why);
            const json expected = json::parse(v);
            CHECK(m->result == expected);
            CHECK(m->result.dump() == expected.dump());
            // Same types all the way down (unsigned stays unsigned, float stays float).
            std::function<void(const json&, const json&)> same = [&](const json& a, const json& b) {
                REQUIRE(a.type() == b.type());
                if (a.is_structured()) {
                    REQUIRE(a.size() == b.size());
                    auto ib = b.begin();
                    for (auto ia = a.begin(); ia != a.end(); ++ia, ++ib) {
                        same(*ia, *ib);
                    }
                }
            };
            same(m->result, expected);
        }
        // The one difference: "-0" is an unsigned 0 here and a signed one from nlohmann (the
        // same value, the same dump).
        auto minus_zero = read_message(R"({"jsonrpc":"2.0","id":1,"result":-0})");
        REQUIRE(minus_zero);
        CHECK(minus_zero->result == json::parse("-0"));
        CHECK(minus_zero->result.dump() == "0");
        // One level more is refused, as nlohmann's path refuses it; so is a number out of
        // double's range and bad UTF-8 inside a string.
        const std::string deep = R"({"jsonrpc":"2.0","id":1,"result":)" + std::string(512, '[') +
                                 std::string(512, ']') + "}";
        std::string why;
        CHECK_FALSE(read_message(deep, &why));
        CHECK(why.find("512") != std::string::npos);
        CHECK_FALSE(read_message(R"({"jsonrpc":"2.0","id":1,"result":1e400})", &why));
        CHECK(why.find("not JSON") != std::string::npos);
        CHECK_FALSE(read_message("{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":\"a\xc3\"}", &why));
        CHECK(why.find("not JSON") != std::string::npos);
        // Over the fast path's size: nlohmann's parser, the same message.
        const std::string big_text(std::size_t{2} << 20, 'x');
        auto big =
            read_message(R"({"jsonrpc":"2.0","id":7,"result":{"text":")" + big_text + "\"}}");
        REQUIRE(big);
        CHECK(big->result.at("text").get_ref<const std::string&>() == big_text);
    }

    TEST_CASE("write_request writes what nlohmann's dump writes, with bad UTF-8 replaced") {
        const std::vector<json> params{
            json::object(),
            {{"name", "echo"}, {"arguments", {{"message", "hi \"there\"\n\t\x01\x7f é 😀"}}}},
            {{"n", {0, -1, 18446744073709551615ULL, 1.5, 0.1, 1e300, nullptr, true, false}}},
            {{"nested", {{"a", json::array({json::object(), json::array()})}}}},
            {{"long", std::string(100, 'a') + "\\" + std::string(13, 'b')}},
        };
        for (const json& p : params) {
            CAPTURE(p.dump());
            json envelope = {
                {"jsonrpc", "2.0"}, {"id", 4}, {"method", "tools/call"}, {"params", p}};
            CHECK(write_request(std::int64_t{4}, "tools/call", p) == envelope.dump());
        }
        const json bad = {{"s", std::string("a\xff") + "b"}};
        const json bad_envelope = {
            {"jsonrpc", "2.0"}, {"id", "x\n"}, {"method", "m"}, {"params", bad}};
        CHECK(
            write_request(std::string("x\n"), "m", bad) ==
            bad_envelope.dump(-1, ' ', false, json::error_handler_t::replace)
        );
        CHECK(
            write_request(std::int64_t{-5}, "ping", nullptr) ==
            R"({"id":-5,"jsonrpc":"2.0","method":"ping"})"
        );
    }
}
