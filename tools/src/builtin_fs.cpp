// The file tools: read_file, write_file, edit_file, list_dir, search. They run on the blocking
// pool (file I/O blocks), resolve every path through the workspace, and report expected
// failures (missing file, ambiguous edit, ...) as error results with a hint the model can act on;
// path escapes are thrown as argument_error so they show up as invalid arguments.
#include <wafer/tools/builtin_tools.hpp>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fcntl.h>
#include <fstream>
#include <regex>
#include <sstream>
#include <stdexcept>
#include <sys/stat.h>
#include <system_error>
#include <unistd.h>
#include <utility>

#include "detail/text.hpp"
#include "detail/utf8.hpp"

namespace wafer::tools {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

using ws_ptr = std::shared_ptr<const workspace>;

std::string in_quotes(std::string_view s) {
    std::string out = "\"";
    out += s;
    out += '"';
    return out;
}

tool_output fail(std::string text) {
    return {std::move(text), true};
}

std::string size_text(std::uintmax_t bytes) {
    if (bytes >= 1024 * 1024) {
        return std::to_string(bytes / (1024 * 1024)) + " MiB";
    }
    if (bytes >= 1024) {
        return std::to_string(bytes / 1024) + " KiB";
    }
    return std::to_string(bytes) + " bytes";
}

std::size_t count_lines(std::string_view s) {
    if (s.empty()) {
        return 0;
    }
    const auto n = static_cast<std::size_t>(std::count(s.begin(), s.end(), '\n'));
    return s.back() == '\n' ? n : n + 1;
}

// 1-based line number of byte offset `pos`.
std::size_t line_of(std::string_view s, std::size_t pos) {
    return 1 +
           static_cast<std::size_t>(std::count(s.begin(), s.begin() + static_cast<long>(pos), '\n')
           );
}

// Checks that `real` is a regular file we may read whole; returns an error text or "".
std::string check_text_file(
    const workspace& ws, const fs::path& real, std::uintmax_t max_bytes, std::uintmax_t& size
) {
    std::error_code ec;
    const auto st = fs::status(real, ec);
    const std::string shown = in_quotes(ws.display(real));
    if (ec || !fs::exists(st)) {
        return "file " + shown + " does not exist. Use list_dir or search to find the right path.";
    }
    if (fs::is_directory(st)) {
        return shown + " is a directory, not a file. Use list_dir to see its entries.";
    }
    if (!fs::is_regular_file(st)) {
        return shown + " is not a regular file.";
    }
    size = fs::file_size(real, ec);
    if (ec) {
        return "cannot read " + shown + ": " + ec.message();
    }
    if (size > max_bytes) {
        return "file " + shown + " is " + size_text(size) + ", more than the " +
               size_text(max_bytes) +
               " limit of this tool. Use search to find the relevant lines, or run_command "
               "(e.g. `sed -n '100,200p' FILE`).";
    }
    return {};
}

std::string read_all(const fs::path& real) {
    std::ifstream in(real, std::ios::binary);
    if (!in) {
        throw std::runtime_error("cannot open " + real.string() + ": " + std::strerror(errno));
    }
    std::ostringstream ss;
    ss << in.rdbuf();
    return std::move(ss).str();
}

// Writes `data` to a temporary file next to `target`, then renames it over `target`, so readers
// see the old or the new content, never a partial file. Keeps an existing file's permissions.
void atomic_write(const fs::path& target, std::string_view data) {
    mode_t mode = 0644;
    struct stat st {};
    if (::stat(target.c_str(), &st) == 0) {
        mode = st.st_mode & 07777;
    }
    std::string tmpl =
        (target.parent_path() / ("." + target.filename().string() + ".wafer-XXXXXX")).string();
    const int fd = ::mkostemp(tmpl.data(), O_CLOEXEC);
    if (fd < 0) {
        throw std::system_error(
            errno,
            std::generic_category(),
            "cannot create a temporary file in " + target.parent_path().string()
        );
    }
    auto fail_with = [&](const char* what) {
        const int err = errno;
        ::close(fd);
        ::unlink(tmpl.c_str());
        throw std::system_error(err, std::generic_category(), what);
    };
    std::size_t done = 0;
    while (done < data.size()) {
        const ssize_t n = ::write(fd, data.data() + done, data.size() - done);
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            fail_with("cannot write the temporary file");
        }
        done += static_cast<std::size_t>(n);
    }
    if (::fchmod(fd, mode) != 0) {
        fail_with("cannot set permissions");
    }
    if (::close(fd) != 0) {
        const int err = errno;
        ::unlink(tmpl.c_str());
        throw std::system_error(err, std::generic_category(), "cannot write the temporary file");
    }
    if (::rename(tmpl.c_str(), target.c_str()) != 0) {
        const int err = errno;
        ::unlink(tmpl.c_str());
        throw std::system_error(err, std::generic_category(), "cannot replace " + target.string());
    }
}

std::string plural(std::size_t n, const char* one, const char* many) {
    return std::to_string(n) + " " + (n == 1 ? one : many);
}

json path_property(const char* what) {
    return {{"type", "string"}, {"description", what}};
}

// ---------------------------------------------------------------------------------------------
// read_file

tool_output read_file(
    const workspace& ws, const fs_tool_limits& lim, const json& args, const call_context& ctx
) {
    const fs::path real = ws.resolve(args.at("path").get<std::string>());
    const auto offset =
        args.contains("offset") ? args["offset"].get<std::size_t>() : std::size_t{1};
    const auto limit =
        args.contains("limit") ? args["limit"].get<std::size_t>() : lim.read_default_lines;
    std::uintmax_t size = 0;
    if (auto err = check_text_file(ws, real, lim.max_file_bytes, size); !err.empty()) {
        return fail(std::move(err));
    }
    const std::string content = read_all(real);
    const std::string shown = in_quotes(ws.display(real));
    if (text::looks_binary(content)) {
        return fail(
            "file " + shown +
            " looks binary (it contains NUL bytes); read_file only shows text. Use run_command "
            "(e.g. `xxd FILE | head`) to inspect it."
        );
    }
    if (content.empty()) {
        return {"(file " + shown + " is empty)", false};
    }
    const std::size_t total = count_lines(content);
    if (offset > total) {
        return fail(
            "offset " + std::to_string(offset) + " is past the end of " + shown + ", which has " +
            plural(total, "line", "lines") + "."
        );
    }

    std::string out;
    std::size_t line_no = 0;
    std::size_t last = 0; // last line shown
    std::size_t pos = 0;
    bool cut_lines = false;
    while (pos < content.size()) {
        std::size_t end = content.find('\n', pos);
        if (end == std::string::npos) {
            end = content.size();
        }
        ++line_no;
        if (line_no >= offset) {
            if (line_no - offset >= limit || ctx.stop.stop_requested()) {
                break;
            }
            std::string_view line(content.data() + pos, end - pos);
            if (!line.empty() && line.back() == '\r') {
                line.remove_suffix(1);
            }
            std::string shown_line;
            if (line.size() > lim.read_max_line_bytes) {
                shown_line.assign(
                    line.substr(0, utf8::boundary_at_or_before(line, lim.read_max_line_bytes))
                );
                shown_line += " [... line cut: " + std::to_string(line.size()) + " bytes]";
                cut_lines = true;
            } else {
                shown_line.assign(line);
            }
            char num[32];
            std::snprintf(num, sizeof num, "%6zu\t", line_no);
            if (last != 0 && out.size() + shown_line.size() + 8 > lim.read_max_output) {
                break;
            }
            out += num;
            out += shown_line;
            out += '\n';
            last = line_no;
        }
        pos = end + 1;
    }
    text::sanitize_utf8(out);
    if (last < total) {
        out += "[showing lines " + std::to_string(offset) + "-" + std::to_string(last) + " of " +
               std::to_string(total) + "; call read_file with offset=" + std::to_string(last + 1) +
               " to read more]\n";
    }
    if (cut_lines) {
        out +=
            "[some long lines were cut at " + std::to_string(lim.read_max_line_bytes) + " bytes]\n";
    }
    return {std::move(out), false};
}

// ---------------------------------------------------------------------------------------------
// write_file

tool_output write_file(const workspace& ws, const json& args) {
    const fs::path real = ws.resolve(args.at("path").get<std::string>());
    const std::string& content = args.at("content").get_ref<const std::string&>();
    const std::string shown = in_quotes(ws.display(real));
    if (real == ws.root()) {
        return fail("write_file needs a file path, not the workspace root.");
    }
    std::error_code ec;
    const auto st = fs::status(real, ec);
    if (fs::is_directory(st)) {
        return fail(shown + " is a directory; give the path of a file to write.");
    }
    const bool existed = fs::exists(st);
    // Every existing component of `real` has been resolved, so the directories created here
    // are plain new directories inside the workspace.
    fs::create_directories(real.parent_path(), ec);
    if (ec) {
        return fail("cannot create the parent directories of " + shown + ": " + ec.message());
    }
    try {
        atomic_write(real, content);
    } catch (const std::system_error& e) {
        return fail("cannot write " + shown + ": " + e.what());
    }
    return {
        (existed ? "overwrote " : "created ") + shown + " (" +
            plural(content.size(), "byte", "bytes") + ", " +
            plural(count_lines(content), "line", "lines") + ")",
        false};
}

// ---------------------------------------------------------------------------------------------
// edit_file

std::string_view trim(std::string_view s) {
    const auto b = s.find_first_not_of(" \t\r");
    if (b == std::string_view::npos) {
        return {};
    }
    return s.substr(b, s.find_last_not_of(" \t\r") - b + 1);
}

std::vector<std::size_t> find_all(std::string_view hay, std::string_view needle) {
    std::vector<std::size_t> at;
    for (std::size_t p = hay.find(needle); p != std::string_view::npos;
         p = hay.find(needle, p + 1)) {
        at.push_back(p);
    }
    return at;
}

// Why old_text did not match, as a hint: line endings, or where its first line appears when
// whitespace is ignored.
std::string no_match_hint(std::string_view content, std::string_view old_text) {
    if (content.find("\r\n") != std::string_view::npos &&
        old_text.find('\n') != std::string_view::npos &&
        old_text.find("\r\n") == std::string_view::npos) {
        return " The file uses CRLF line endings; old_text must contain \\r\\n between lines.";
    }
    // First non-blank line of old_text, compared trimmed against every line of the file.
    std::string_view first;
    for (std::size_t p = 0; p <= old_text.size();) {
        std::size_t e = old_text.find('\n', p);
        if (e == std::string_view::npos) {
            e = old_text.size();
        }
        first = trim(old_text.substr(p, e - p));
        if (!first.empty()) {
            break;
        }
        p = e + 1;
    }
    if (first.empty()) {
        return {};
    }
    std::vector<std::size_t> lines;
    std::size_t line_no = 0;
    for (std::size_t p = 0; p < content.size();) {
        std::size_t e = content.find('\n', p);
        if (e == std::string_view::npos) {
            e = content.size();
        }
        ++line_no;
        if (trim(content.substr(p, e - p)) == first && lines.size() < 5) {
            lines.push_back(line_no);
        }
        p = e + 1;
    }
    if (lines.empty()) {
        return " Even its first line does not appear in the file; read the file again to get the "
               "current text.";
    }
    std::string s = " Its first line appears (ignoring indentation) at line";
    s += lines.size() == 1 ? " " : "s ";
    for (std::size_t i = 0; i < lines.size(); ++i) {
        s += (i ? ", " : "") + std::to_string(lines[i]);
    }
    s += ", but the text after it differs: check whitespace, indentation and the following lines "
         "with read_file.";
    return s;
}

tool_output edit_file(const workspace& ws, const fs_tool_limits& lim, const json& args) {
    const fs::path real = ws.resolve(args.at("path").get<std::string>());
    const std::string& old_text = args.at("old_text").get_ref<const std::string&>();
    const std::string& new_text = args.at("new_text").get_ref<const std::string&>();
    if (old_text.empty()) {
        throw argument_error(
            "old_text must not be empty; to create or replace a whole file use write_file"
        );
    }
    if (old_text == new_text) {
        throw argument_error("new_text is identical to old_text; nothing would change");
    }
    std::uintmax_t size = 0;
    if (auto err = check_text_file(ws, real, lim.max_file_bytes, size); !err.empty()) {
        return fail(std::move(err));
    }
    std::string content = read_all(real);
    const std::string shown = in_quotes(ws.display(real));
    if (text::looks_binary(content)) {
        return fail(
            "file " + shown + " looks binary (it contains NUL bytes); edit_file only edits text."
        );
    }
    const auto at = find_all(content, old_text);
    if (at.empty()) {
        return fail(
            "old_text was not found in " + shown +
            ". It must match the file exactly, including whitespace and indentation." +
            no_match_hint(content, old_text)
        );
    }
    if (at.size() > 1) {
        std::string s =
            "old_text matches " + std::to_string(at.size()) + " times in " + shown + " (at lines ";
        for (std::size_t i = 0; i < at.size() && i < 10; ++i) {
            s += (i ? ", " : "") + std::to_string(line_of(content, at[i]));
        }
        s += at.size() > 10 ? ", ...)" : ")";
        s += "; it must match exactly once. Include more surrounding lines in old_text to make it "
             "unique.";
        return fail(std::move(s));
    }
    const std::size_t line = line_of(content, at.front());
    content.replace(at.front(), old_text.size(), new_text);
    try {
        atomic_write(real, content);
    } catch (const std::system_error& e) {
        return fail("cannot write " + shown + ": " + e.what());
    }
    return {
        "edited " + shown + ": replaced " + plural(count_lines(old_text), "line", "lines") +
            " with " + plural(count_lines(new_text), "line", "lines") + " at line " +
            std::to_string(line),
        false};
}

// ---------------------------------------------------------------------------------------------
// list_dir

tool_output list_dir(const workspace& ws, const fs_tool_limits& lim, const json& args) {
    const fs::path real = ws.resolve(args.at("path").get<std::string>());
    const std::string shown = in_quotes(ws.display(real));
    std::error_code ec;
    const auto st = fs::status(real, ec);
    if (!fs::exists(st)) {
        return fail("directory " + shown + " does not exist.");
    }
    if (!fs::is_directory(st)) {
        return fail(shown + " is a file, not a directory. Use read_file to read it.");
    }
    std::vector<std::string> names;
    fs::directory_iterator it(real, ec);
    if (ec) {
        return fail("cannot list " + shown + ": " + ec.message());
    }
    for (; it != fs::directory_iterator(); it.increment(ec)) {
        const auto& e = *it;
        std::string name = e.path().filename().string();
        std::error_code e2;
        if (e.is_directory(e2)) {
            name += '/';
        }
        if (e.is_symlink(e2)) {
            name += " -> " + fs::read_symlink(e.path(), e2).string();
        }
        names.push_back(std::move(name));
        if (ec) {
            break;
        }
    }
    std::sort(names.begin(), names.end());
    if (names.empty()) {
        return {"(directory " + shown + " is empty)", false};
    }
    std::string out;
    const std::size_t shown_n = std::min(names.size(), lim.list_max_entries);
    for (std::size_t i = 0; i < shown_n; ++i) {
        out += names[i];
        out += '\n';
    }
    if (names.size() > shown_n) {
        out += "[... " + std::to_string(names.size() - shown_n) + " more entries not shown; " +
               std::to_string(names.size()) +
               " in total. Use search or run_command (e.g. `ls DIR | grep ...`) to find specific "
               "entries]\n";
    }
    text::sanitize_utf8(out);
    return {std::move(out), false};
}

// ---------------------------------------------------------------------------------------------
// search

struct search_state {
    const workspace& ws;
    const fs_tool_limits& lim;
    const std::regex& re;
    const call_context& ctx;
    std::string out;
    std::size_t matches = 0;
    std::size_t files = 0;
    std::size_t skipped_large = 0;
    bool stopped = false; // a cap was reached
    std::string stop_reason;

    void stop(std::string why) {
        stopped = true;
        stop_reason = std::move(why);
    }

    void file(const fs::path& p) {
        if (stopped) {
            return;
        }
        if (++files > lim.search_max_files) {
            stop("searched " + std::to_string(lim.search_max_files) + " files");
            return;
        }
        std::error_code ec;
        const auto size = fs::file_size(p, ec);
        if (ec) {
            return;
        }
        if (size > lim.search_max_file_bytes) {
            ++skipped_large;
            return;
        }
        std::string content;
        try {
            content = read_all(p);
        } catch (const std::exception&) {
            return; // unreadable: skip, like grep -s
        }
        if (text::looks_binary(content)) {
            return;
        }
        const std::string rel = ws.display(p);
        std::size_t line_no = 0;
        for (std::size_t pos = 0; pos < content.size();) {
            std::size_t end = content.find('\n', pos);
            if (end == std::string::npos) {
                end = content.size();
            }
            ++line_no;
            std::string_view line(content.data() + pos, end - pos);
            if (!line.empty() && line.back() == '\r') {
                line.remove_suffix(1);
            }
            const bool cut = line.size() > lim.search_max_line_bytes;
            if (cut) {
                line = line.substr(0, utf8::boundary_at_or_before(line, lim.search_max_line_bytes));
            }
            if (std::regex_search(line.begin(), line.end(), re)) {
                std::string entry = rel + ":" + std::to_string(line_no) + ": ";
                entry += line;
                if (cut) {
                    entry += " [...]";
                }
                entry += '\n';
                if (out.size() + entry.size() > lim.search_max_output) {
                    stop("reaching the output limit of " + size_text(lim.search_max_output));
                    return;
                }
                out += entry;
                if (++matches >= lim.search_max_matches) {
                    stop(std::to_string(matches) + " matches");
                    return;
                }
            }
            pos = end + 1;
        }
    }

    // Depth-first in name order, so results are stable. Directory symlinks are not followed;
    // file symlinks only when they stay inside the workspace.
    void dir(const fs::path& d) {
        std::vector<fs::directory_entry> entries;
        std::error_code ec;
        for (fs::directory_iterator it(d, ec); !ec && it != fs::directory_iterator();
             it.increment(ec)) {
            entries.push_back(*it);
        }
        std::sort(entries.begin(), entries.end(), [](const auto& a, const auto& b) {
            return a.path().filename() < b.path().filename();
        });
        for (const auto& e : entries) {
            if (stopped) {
                return;
            }
            if (ctx.stop.stop_requested()) {
                stop("the call was cancelled");
                return;
            }
            std::error_code e2;
            if (e.is_symlink(e2)) {
                fs::path target = fs::canonical(e.path(), e2);
                if (!e2 && ws.contains(target) && fs::is_regular_file(target, e2)) {
                    file(e.path());
                }
                continue;
            }
            if (e.is_directory(e2)) {
                if (e.path().filename() != ".git") {
                    dir(e.path());
                }
            } else if (e.is_regular_file(e2)) {
                file(e.path());
            }
        }
    }
};

tool_output
search(const workspace& ws, const fs_tool_limits& lim, const json& args, const call_context& ctx) {
    const std::string& pattern = args.at("pattern").get_ref<const std::string&>();
    std::regex re;
    try {
        re = std::regex(pattern, std::regex::ECMAScript);
    } catch (const std::regex_error& e) {
        throw argument_error(
            "invalid regular expression " + in_quotes(pattern) + ": " + e.what() +
            ". The pattern uses ECMAScript (JavaScript) syntax; escape special characters such as "
            "( [ { . * + ? with a backslash to match them literally."
        );
    }
    const std::string path_arg =
        args.contains("path") ? args["path"].get<std::string>() : std::string();
    const fs::path real = ws.resolve(path_arg);
    const std::string shown = in_quotes(ws.display(real));
    std::error_code ec;
    const auto st = fs::status(real, ec);
    if (!fs::exists(st)) {
        return fail("path " + shown + " does not exist.");
    }
    search_state s{ws, lim, re, ctx, {}, 0, 0, 0, false, {}};
    if (fs::is_directory(st)) {
        s.dir(real);
    } else {
        s.file(real);
    }
    std::string out = std::move(s.out);
    if (s.matches == 0 && !s.stopped) {
        out = "no matches for " + in_quotes(pattern) + " in " + shown + " (" +
              plural(s.files, "file", "files") + " searched)\n";
    }
    if (s.stopped) {
        out += "[search stopped after " + s.stop_reason +
               "; more matches may exist. Narrow the pattern or give a more specific path]\n";
    }
    if (s.skipped_large > 0) {
        out += "[skipped " + plural(s.skipped_large, "file", "files") + " larger than " +
               size_text(lim.search_max_file_bytes) + "]\n";
    }
    text::sanitize_utf8(out);
    return {std::move(out), false};
}

} // namespace

// ---------------------------------------------------------------------------------------------
// Factories

tool make_read_file_tool(ws_ptr ws, fs_tool_limits limits) {
    tool t;
    t.name = "read_file";
    t.description =
        "Read a text file in the workspace. Each returned line is prefixed with its line number "
        "and a tab; that prefix is not part of the file (never copy it into edit_file). Reads "
        "up to " +
        std::to_string(limits.read_default_lines) +
        " lines by default; for longer files, page with offset (1-based number of the first "
        "line to return) and limit (number of lines). When more lines follow, the output ends "
        "with a note giving the next offset. Binary files and files over " +
        size_text(limits.max_file_bytes) + " are refused.";
    t.parameters = {
        {"type", "object"},
        {"properties",
         {{"path", path_property("File path, relative to the workspace root.")},
          {"offset",
           {{"type", "integer"},
            {"minimum", 1},
            {"description", "1-based line number to start reading at (default 1)."}}},
          {"limit",
           {{"type", "integer"},
            {"minimum", 1},
            {"description", "Maximum number of lines to return."}}}}},
        {"required", {"path"}},
        {"additionalProperties", false}};
    t.options.read_only = true;
    t.options.output_cap = limits.read_max_output + 4096; // our own cap ends with a usable note
    t.fn = blocking_handler{[ws, limits](const json& a, const call_context& ctx) {
        return read_file(*ws, limits, a, ctx);
    }};
    return t;
}

tool make_write_file_tool(ws_ptr ws, fs_tool_limits /*limits*/) {
    tool t;
    t.name = "write_file";
    t.description =
        "Create a file, or replace the whole content of an existing file, in the workspace. "
        "Missing parent directories are created. The write is atomic. To change part of an "
        "existing file, prefer edit_file.";
    t.parameters = {
        {"type", "object"},
        {"properties",
         {{"path", path_property("File path, relative to the workspace root.")},
          {"content",
           {{"type", "string"}, {"description", "The complete new content of the file."}}}}},
        {"required", {"path", "content"}},
        {"additionalProperties", false}};
    t.fn = blocking_handler{[ws](const json& a, const call_context&) {
        return write_file(*ws, a);
    }};
    return t;
}

tool make_edit_file_tool(ws_ptr ws, fs_tool_limits limits) {
    tool t;
    t.name = "edit_file";
    t.description =
        "Replace one exact piece of text in a file of the workspace. old_text must occur exactly "
        "once in the file, matching character for character (whitespace and indentation "
        "included, without read_file's line-number prefixes); include enough surrounding lines "
        "to make it unique. If it occurs zero or several times nothing is changed and the error "
        "says where it occurs. The write is atomic.";
    t.parameters = {
        {"type", "object"},
        {"properties",
         {{"path", path_property("File path, relative to the workspace root.")},
          {"old_text",
           {{"type", "string"},
            {"description", "The exact text to replace; must occur exactly once."}}},
          {"new_text", {{"type", "string"}, {"description", "The text to put in its place."}}}}},
        {"required", {"path", "old_text", "new_text"}},
        {"additionalProperties", false}};
    t.fn = blocking_handler{[ws, limits](const json& a, const call_context&) {
        return edit_file(*ws, limits, a);
    }};
    return t;
}

tool make_list_dir_tool(ws_ptr ws, fs_tool_limits limits) {
    tool t;
    t.name = "list_dir";
    t.description =
        "List the entries of a directory in the workspace, sorted by name, one per line. "
        "Directories end with '/'; symbolic links are shown as `name -> target`. Use \".\" for "
        "the workspace root. At most " +
        std::to_string(limits.list_max_entries) + " entries are shown.";
    t.parameters = {
        {"type", "object"},
        {"properties",
         {{"path",
           path_property("Directory path, relative to the workspace root (\".\" for the root).")}}},
        {"required", {"path"}},
        {"additionalProperties", false}};
    t.options.read_only = true;
    t.fn = blocking_handler{[ws, limits](const json& a, const call_context&) {
        return list_dir(*ws, limits, a);
    }};
    return t;
}

tool make_search_tool(ws_ptr ws, fs_tool_limits limits) {
    tool t;
    t.name = "search";
    t.description =
        "Search the lines of text files for a regular expression (ECMAScript/JavaScript syntax, "
        "case-sensitive; use [Aa] for either case). Searches every file under path (default: "
        "the whole workspace), skipping .git, binary files and files over " +
        size_text(limits.search_max_file_bytes) +
        ". Each match is reported as `path:line: text`. At most " +
        std::to_string(limits.search_max_matches) + " matches are reported.";
    t.parameters = {
        {"type", "object"},
        {"properties",
         {{"pattern",
           {{"type", "string"}, {"description", "Regular expression matched against each line."}}},
          {"path",
           path_property(
               "File or directory to search, relative to the workspace root (default: the root)."
           )}}},
        {"required", {"pattern"}},
        {"additionalProperties", false}};
    t.options.read_only = true;
    t.options.output_cap = limits.search_max_output + 4096;
    t.fn = blocking_handler{[ws, limits](const json& a, const call_context& ctx) {
        return search(*ws, limits, a, ctx);
    }};
    return t;
}

std::vector<std::string> builtin_tool_names() {
    return {"read_file", "write_file", "edit_file", "list_dir", "search", "run_command"};
}

std::shared_ptr<const workspace> add_builtin_tools(registry& reg, builtin_tools_options options) {
    auto ws = std::make_shared<const workspace>(options.workspace_root);
    const auto all = builtin_tool_names();
    for (const auto& n : options.only) {
        if (std::find(all.begin(), all.end(), n) == all.end()) {
            throw std::invalid_argument("unknown built-in tool " + in_quotes(n));
        }
    }
    const auto wanted = [&](const char* n) {
        return options.only.empty() ||
               std::find(options.only.begin(), options.only.end(), n) != options.only.end();
    };
    if (wanted("read_file")) {
        reg.add(make_read_file_tool(ws, options.fs));
    }
    if (wanted("write_file")) {
        reg.add(make_write_file_tool(ws, options.fs));
    }
    if (wanted("edit_file")) {
        reg.add(make_edit_file_tool(ws, options.fs));
    }
    if (wanted("list_dir")) {
        reg.add(make_list_dir_tool(ws, options.fs));
    }
    if (wanted("search")) {
        reg.add(make_search_tool(ws, options.fs));
    }
    if (wanted("run_command")) {
        reg.add(make_run_command_tool(ws, options.command));
    }
    return ws;
}

} // namespace wafer::tools
