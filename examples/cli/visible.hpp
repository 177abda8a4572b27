// Text from the model, a server or a file made safe to show on a terminal: everything a terminal
// would interpret (control characters, escape sequences, bidirectional overrides, invisible
// format characters, invalid UTF-8) is shown as a visible escape instead, so such text can
// neither move the cursor, erase or recolour what is on screen, nor reorder or hide characters.
#pragma once

#include <string>
#include <string_view>

namespace wafer::cli {

/// How line structure is shown.
enum class layout {
    /// One line: newlines and tabs are escaped too (approval prompts, previews, error lines).
    one_line,
    /// Multi-line text (the model's answer and reasoning): newlines and tabs stay as they are.
    text,
};

/// `s` with every byte sequence a terminal would act on replaced by a visible escape:
/// - C0 controls and DEL: `\n`, `\r`, `\t` by name, others as `\xNN` (ESC is `\x1b`);
///   with layout::text, newline and tab are kept;
/// - C1 controls (U+0080-U+009F), bidirectional controls (U+202A-U+202E, U+2066-U+2069,
///   U+200E, U+200F, U+061C), other invisible format characters (zero-width spaces and
///   joiners, U+2060-U+2064, U+FEFF, tag characters, ...), and the line and paragraph
///   separators U+2028/U+2029: `\u{XXXX}`; with layout::text the joiners U+200C/U+200D stay
///   (scripts and emoji need them);
/// - bytes that are not valid UTF-8 (stray continuation bytes, overlong forms, surrogates,
///   truncated sequences): `\xNN` each.
/// Everything else, including backslashes and printable non-ASCII characters, is unchanged.
std::string visible(std::string_view s, layout how = layout::one_line);

/// At most `limit` bytes of `s`, cut on a UTF-8 boundary, with "..." when cut (previews).
std::string shortened(const std::string& s, std::size_t limit);

} // namespace wafer::cli
