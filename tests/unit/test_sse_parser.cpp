#include <wafer/api/sse_parser.hpp>

#include <doctest/doctest.h>

#include <stdexcept>
#include <string>
#include <vector>

using wafer::api::sse_parser;

namespace {

struct collected {
    std::string event;
    std::string data;
    std::string id;
    long retry = -1;
    friend bool operator==(const collected&, const collected&) = default;
};

void drain(sse_parser& p, std::vector<collected>& out) {
    while (auto ev = p.next()) {
        out.push_back(
            {std::string(ev->event),
             std::string(ev->data),
             std::string(ev->id),
             ev->retry ? static_cast<long>(*ev->retry) : -1}
        );
    }
}

// Feeds the transcript in pieces cut at the given offsets.
std::vector<collected> parse_split(std::string_view text, std::vector<std::size_t> cuts) {
    sse_parser p;
    std::vector<collected> out;
    std::size_t prev = 0;
    cuts.push_back(text.size());
    for (std::size_t cut : cuts) {
        p.feed(text.substr(prev, cut - prev));
        drain(p, out);
        prev = cut;
    }
    return out;
}

// Every split into two pieces, every split into three around it, and byte by byte must give the
// same events as one feed.
void check_all_splits(std::string_view text, const std::vector<collected>& expected) {
    CHECK(parse_split(text, {}) == expected);
    for (std::size_t i = 0; i <= text.size(); ++i) {
        INFO("split at " << i);
        REQUIRE(parse_split(text, {i}) == expected);
        if (i + 1 <= text.size()) {
            REQUIRE(parse_split(text, {i, i + 1}) == expected);
        }
    }
    std::vector<std::size_t> every;
    for (std::size_t i = 1; i < text.size(); ++i) {
        every.push_back(i);
    }
    CHECK(parse_split(text, every) == expected);
}

} // namespace

TEST_SUITE("unit/sse_parser") {
    TEST_CASE("data lines with and without the space, LF endings") {
        check_all_splits(
            "data: {\"a\":1}\n\ndata:{\"b\":2}\n\n",
            {{"message", "{\"a\":1}", "", -1}, {"message", "{\"b\":2}", "", -1}}
        );
    }

    TEST_CASE("CRLF, CR and mixed line endings") {
        std::vector<collected> two{{"message", "x", "", -1}, {"message", "y", "", -1}};
        check_all_splits("data: x\r\n\r\ndata: y\r\n\r\n", two);
        check_all_splits("data: x\r\rdata: y\r\r", two);
        check_all_splits("data: x\r\n\ndata: y\n\r\n", two);
        check_all_splits("data: x\r\n\rdata: y\n\r", two);
    }

    TEST_CASE("multi-line data is joined with LF") {
        check_all_splits(
            "data: first\ndata: second\ndata:\ndata: fourth\n\n",
            {{"message", "first\nsecond\n\nfourth", "", -1}}
        );
    }

    TEST_CASE("comments are ignored and events without data are not dispatched") {
        check_all_splits(
            ": keep-alive\n\n:another\nevent: ping\n\ndata: real\n\n", {{"message", "real", "", -1}}
        );
    }

    TEST_CASE("event, id and retry fields") {
        check_all_splits(
            "event: error\nid: 7\nretry: 1500\ndata: {\"error\":{}}\n\ndata: next\n\n",
            {{"error", "{\"error\":{}}", "7", 1500}, {"message", "next", "7", -1}}
        );
    }

    TEST_CASE("invalid retry values and ids with NUL are ignored") {
        std::string text = "retry: 12a\nid: ok\ndata: a\n\nid: bad";
        text += '\0';
        text += "\ndata: b\n\n";
        check_all_splits(text, {{"message", "a", "ok", -1}, {"message", "b", "ok", -1}});
    }

    TEST_CASE("a field name without a colon has an empty value") {
        check_all_splits(
            "data\n\ndata\ndata\n\n", {{"message", "", "", -1}, {"message", "\n", "", -1}}
        );
    }

    TEST_CASE("a leading UTF-8 BOM is skipped, later ones are not") {
        check_all_splits(
            "\xEF\xBB\xBF"
            "data: a\n\n",
            {{"message", "a", "", -1}}
        );
        check_all_splits(
            "\xEF\xBB\xBF"
            "\xEF\xBB\xBF"
            "data: a\n\ndata: b\n\n",
            {{"message", "b", "", -1}}
        );
    }

    TEST_CASE("unknown fields are ignored; space only stripped once") {
        check_all_splits("foo: bar\ndata:  two spaces\n\n", {{"message", " two spaces", "", -1}});
    }

    TEST_CASE("a partial event at the end is kept pending, not dispatched") {
        sse_parser p;
        p.feed("data: complete\n\ndata: partial");
        std::vector<collected> out;
        drain(p, out);
        CHECK(out.size() == 1);
        CHECK(p.has_partial_event());
        p.feed("\n");
        drain(p, out);
        CHECK(out.size() == 1);
        p.feed("\n");
        drain(p, out);
        REQUIRE(out.size() == 2);
        CHECK(out[1].data == "partial");
        CHECK_FALSE(p.has_partial_event());
    }

    TEST_CASE("the event size cap is enforced") {
        sse_parser p;
        p.set_max_event_size(16);
        p.feed("data: 0123456789\ndata: 0123456789\n\n");
        CHECK_THROWS_AS((void)p.next(), std::length_error);
        sse_parser q;
        q.set_max_event_size(16);
        q.feed(std::string(64, 'x'));
        CHECK_THROWS_AS((void)q.next(), std::length_error);
    }

    TEST_CASE("views of a single-line event survive until the next call") {
        sse_parser p;
        p.feed("data: one\n\ndata: two\n\n");
        auto a = p.next();
        REQUIRE(a);
        CHECK(a->data == "one");
        auto b = p.next();
        REQUIRE(b);
        CHECK(b->data == "two");
    }
}
