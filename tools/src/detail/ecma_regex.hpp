// ECMA-262 regular expressions (what JSON Schema `pattern` and the search tool accept) run by
// RE2, whose matching time is linear in the input and whose stack use does not grow with it.
#pragma once

#include <memory>
#include <string>
#include <string_view>

namespace re2 {
class RE2;
} // namespace re2

namespace wafer::tools::detail {

/// A compiled pattern; immutable, safe to share between threads.
using regex_ptr = std::shared_ptr<const re2::RE2>;

/// The outcome of compile_ecma_regex: `re` on success, otherwise `error` says why (for a
/// message to the model or the schema author).
struct regex_compile_result {
    regex_ptr re;
    std::string error;
    /// The pattern is valid ECMA-262 but uses a construct RE2 cannot run (error says which).
    bool unsupported = false;
};

/// Compiles an ECMA-262 pattern (no flags) for an unanchored search. The constructs RE2 cannot
/// run in linear time, lookahead `(?=` `(?!`, lookbehind `(?<=` `(?<!` and backreferences `\1`
/// `\k<name>`, are refused with an error that names them; `\uXXXX`, `\u{...}`, `\0`, `[^]`
/// and `(?<name>` are translated to RE2's spelling. Matching is over UTF-8 code points.
regex_compile_result compile_ecma_regex(std::string_view pattern);

/// True if `re` matches somewhere in `text`.
bool regex_search(const re2::RE2& re, std::string_view text);

} // namespace wafer::tools::detail
