// visible(): how the wafer CLI shows untrusted text on a terminal. The CLI's sources are not a
// library, so the one translation unit under test is compiled into the tests here.
#include <doctest/doctest.h>

#include <string>

#include "../../examples/cli/visible.cpp"

using wafer::cli::layout;
using wafer::cli::visible;

TEST_SUITE("unit/cli_visible") {

    TEST_CASE("printable text, UTF-8 and backslashes are unchanged") {
        CHECK(visible("ls -la ~/src") == "ls -la ~/src");
        CHECK(
            visible("h\xc3\xa9llo \xe4\xb8\x96\xe7\x95\x8c \xf0\x9f\x98\x80") ==
            "h\xc3\xa9llo \xe4\xb8\x96\xe7\x95\x8c \xf0\x9f\x98\x80"
        );
        CHECK(visible("printf 'a\\n' | grep '\\x41'") == "printf 'a\\n' | grep '\\x41'");
        CHECK(visible("") == "");
    }

    TEST_CASE("C0 controls, ESC and DEL are escaped; named ones by name") {
        CHECK(visible("a\x1b[2Kb") == "a\\x1b[2Kb");
        CHECK(visible("a\rb\nc\td") == "a\\rb\\nc\\td");
        CHECK(
            visible(std::string(
                "nul\0bell\x07"
                "del\x7f",
                13
            )) == "nul\\x00bell\\x07del\\x7f"
        );
        CHECK(visible("\x1b]0;title\x07") == "\\x1b]0;title\\x07");
    }

    TEST_CASE("layout::text keeps newlines and tabs, nothing else") {
        CHECK(visible("a\nb\tc", layout::text) == "a\nb\tc");
        CHECK(visible("a\r\nb\x1b[1A", layout::text) == "a\\r\nb\\x1b[1A");
    }

    TEST_CASE("C1 controls, bidi controls and invisible format characters are escaped") {
        CHECK(
            visible("\xc2\x9b"
                    "2J") == "\\u{009b}2J"
        );                                         // CSI as U+009B
        CHECK(visible("\xc2\x85") == "\\u{0085}"); // NEL
        CHECK(
            visible("abc\xe2\x80\xae"
                    "fed") == "abc\\u{202e}fed"
        );                                                                    // RLO
        CHECK(visible("\xe2\x80\xaa\xe2\x80\xac") == "\\u{202a}\\u{202c}");   // LRE, PDF
        CHECK(visible("\xe2\x81\xa6x\xe2\x81\xa9") == "\\u{2066}x\\u{2069}"); // LRI, PDI
        CHECK(visible("\xe2\x80\x8f\xd8\x9c") == "\\u{200f}\\u{061c}");       // RLM, ALM
        CHECK(visible("r\xe2\x80\x8bm") == "r\\u{200b}m");                    // zero-width space
        CHECK(visible("\xef\xbb\xbfx") == "\\u{feff}x");                      // BOM
        CHECK(visible("\xc2\xad") == "\\u{00ad}");                            // soft hyphen
        CHECK(visible("\xe2\x80\xa8\xe2\x80\xa9") == "\\u{2028}\\u{2029}");   // line/para sep
        CHECK(visible("\xf3\xa0\x81\x81") == "\\u{e0041}");                   // tag character
    }

    TEST_CASE("joiners are kept in text, escaped on one line") {
        const std::string family = "\xf0\x9f\x91\xa9\xe2\x80\x8d\xf0\x9f\x91\xa7";
        CHECK(visible(family, layout::text) == family);
        CHECK(visible(family) == "\xf0\x9f\x91\xa9\\u{200d}\xf0\x9f\x91\xa7");
    }

    TEST_CASE("invalid UTF-8 is shown byte by byte") {
        CHECK(
            visible("a\x9b"
                    "b") == "a\\x9bb"
        );                                                            // lone continuation (raw CSI)
        CHECK(visible("\xc0\xaf") == "\\xc0\\xaf");                   // overlong '/'
        CHECK(visible("\xe0\x80\xaf") == "\\xe0\\x80\\xaf");          // overlong, 3 bytes
        CHECK(visible("\xed\xa0\x80") == "\\xed\\xa0\\x80");          // surrogate U+D800
        CHECK(visible("\xf4\x90\x80\x80") == "\\xf4\\x90\\x80\\x80"); // above U+10FFFF
        CHECK(visible("end\xe2\x82") == "end\\xe2\\x82");             // truncated at the end
        CHECK(
            visible("\xe2\x82"
                    "a") == "\\xe2\\x82a"
        ); // truncated mid-text
        CHECK(visible("\xff\xfe") == "\\xff\\xfe");
    }
}
