// The file tools: read_file, write_file, edit_file, list_dir, search. They run on the blocking
// pool (file I/O blocks), resolve every path through the workspace, and report expected
// failures (missing file, ambiguous edit, ...) as error results with a hint the model can act on;
// path escapes are thrown as argument_error so they show up as invalid arguments.
#include <wafer/tools/builtin_tools.hpp>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <dirent.h>
#include <fcntl.h>
#include <random>
#include <re2/re2.h>
#include <stdexcept>
#include <sys/stat.h>
#include <system_error>
#include <unistd.h>
#include <utility>

#include "detail/ecma_regex.hpp"
#include "detail/json_count.hpp"
#include "detail/text.hpp"
#include "detail/unique_fd.hpp"
#include "detail/utf8.hpp"

namespace wafer::tools {

namespace fs = std::filesystem;
using detail::unique_fd;
using nlohmann::json;

namespace {

using ws_ptr = std::shared_ptr<const workspace>;

// Quoted for a message; bytes that are not UTF-8 (file names are bytes) are shown as \xNN.
std::string in_quotes(std::string_view s) {
    std::string out = "\"";
    out += text::escape_invalid_utf8(s);
    out += '"';
    return out;
}

std::string errno_text(int err) {
    return std::generic_category().message(err);
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

// A count argument (offset, limit) as std::size_t. The schema has checked it is an integer of
// at most 64 bits; the conversion is still range-checked, never undefined.
std::size_t count_argument(const json& args, const char* key, std::size_t fallback) {
    const auto it = args.find(key);
    if (it == args.end()) {
        return fallback;
    }
    const json& v = *it;
    if (auto n = detail::whole_count(v, false)) {
        return *n;
    }
    throw argument_error(
        std::string(key) + " must be a non-negative integer of at most 64 bits, got " +
        v.dump(-1, ' ', false, json::error_handler_t::replace)
    );
}

// Opens `real` through the workspace's directory descriptor. Returns the descriptor, or -1 with
// `err` set for the caller to word (ENOENT, ENOTDIR, ...). A path that now leads out of the
// workspace (a symbolic link swapped in after resolve()) is an argument error.
unique_fd open_in(const workspace& ws, const fs::path& real, int flags, int& err) {
    unique_fd fd(ws.open_beneath(real, flags));
    err = fd ? 0 : errno;
    if (err == EXDEV) {
        throw argument_error(
            "path " + in_quotes(ws.display(real)) +
            " now leads outside the workspace: a symbolic link on it was changed while the call "
            "ran, and it was not followed"
        );
    }
    if (err == ELOOP) {
        throw argument_error(
            "path " + in_quotes(ws.display(real)) +
            " has too many levels of symbolic links or goes through a /proc magic link"
        );
    }
    return fd;
}

std::string open_failure(const std::string& shown, int err, const char* kind) {
    if (err == ENOENT || err == ENOTDIR) {
        return std::string(kind) + " " + shown +
               " does not exist. Use list_dir or search to find the right path.";
    }
    return "cannot open " + shown + ": " + errno_text(err);
}

// Opens a regular file we may read whole, or returns an error text. O_NONBLOCK: opening a FIFO
// must not hang the tool; it is refused after fstat.
std::string open_text_file(
    const workspace& ws,
    const fs::path& real,
    std::uintmax_t max_bytes,
    unique_fd& out,
    struct stat& st
) {
    const std::string shown = in_quotes(ws.display(real));
    int err = 0;
    out = open_in(ws, real, O_RDONLY | O_NOCTTY | O_NONBLOCK, err);
    if (!out) {
        return open_failure(shown, err, "file");
    }
    if (::fstat(out.get(), &st) != 0) {
        return "cannot read " + shown + ": " + errno_text(errno);
    }
    if (S_ISDIR(st.st_mode)) {
        return shown + " is a directory, not a file. Use list_dir to see its entries.";
    }
    if (!S_ISREG(st.st_mode)) {
        return shown + " is not a regular file.";
    }
    const auto size = static_cast<std::uintmax_t>(st.st_size);
    if (size > max_bytes) {
        return "file " + shown + " is " + size_text(size) + ", more than the " +
               size_text(max_bytes) +
               " limit of this tool. Use search to find the relevant lines, or run_command "
               "(e.g. `sed -n '100,200p' FILE`).";
    }
    return {};
}

// Reads at most `max_bytes` from `fd` (a file that grows while we read is cut there).
std::string read_fd(int fd, std::uintmax_t max_bytes) {
    std::string out;
    char buf[65536];
    while (out.size() < max_bytes) {
        const std::size_t want =
            static_cast<std::size_t>(std::min<std::uintmax_t>(sizeof buf, max_bytes - out.size()));
        const ssize_t n = ::read(fd, buf, want);
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            throw std::system_error(errno, std::generic_category(), "read failed");
        }
        if (n == 0) {
            break;
        }
        out.append(buf, static_cast<std::size_t>(n));
    }
    return out;
}

// Refuses to replace a file with several names: one of them may be a hard link from outside
// the workspace, and a path inside cannot tell which.
std::string check_single_link(const struct stat& st, const std::string& shown) {
    if (S_ISREG(st.st_mode) && st.st_nlink > 1) {
        return "refusing to change " + shown + ": it is a hard link (" +
               std::to_string(st.st_nlink) +
               " names for the same file), and another name may lie outside the workspace. "
               "Remove the extra links, or copy the file to a new name first.";
    }
    return {};
}

// The directory `real` (inside the workspace) opened through the root's descriptor, created with
// its missing parents if `create`. Every step is an openat2 from the root, so a component
// swapped for a link that leads out is refused.
unique_fd open_dir(const workspace& ws, const fs::path& real, bool create, int& err) {
    unique_fd fd = open_in(ws, real, O_RDONLY | O_DIRECTORY, err);
    if (fd || !create || err != ENOENT || real == ws.root()) {
        return fd;
    }
    unique_fd parent = open_dir(ws, real.parent_path(), true, err);
    if (!parent) {
        return parent;
    }
    const std::string name = real.filename().string();
    if (::mkdirat(parent.get(), name.c_str(), 0777) != 0 && errno != EEXIST) {
        err = errno;
        return unique_fd();
    }
    return open_in(ws, real, O_RDONLY | O_DIRECTORY, err);
}

std::string temp_name(const std::string& name) {
    static std::atomic<std::uint64_t> counter{0};
    thread_local std::mt19937_64 rng{std::random_device{}()};
    char suffix[32];
    std::snprintf(
        suffix,
        sizeof suffix,
        ".wafer-%08llx",
        static_cast<unsigned long long>((rng() ^ ++counter) & 0xFFFFFFFFULL)
    );
    // Stay well inside NAME_MAX (255) whatever the length of `name`.
    return "." + name.substr(0, 200) + suffix;
}

// Writes `data` to a temporary file in the directory `dir`, then renames it over `name`, so
// readers see the old or the new content, never a partial file. Everything happens relative to
// `dir` (no path is looked up again).
void atomic_write_at(int dir, const std::string& name, std::string_view data, mode_t mode) {
    std::string tmp;
    int fd = -1;
    for (int attempt = 0; attempt < 100 && fd < 0; ++attempt) {
        tmp = temp_name(name);
        fd = ::openat(dir, tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
        if (fd < 0 && errno != EEXIST) {
            break;
        }
    }
    if (fd < 0) {
        throw std::system_error(errno, std::generic_category(), "cannot create a temporary file");
    }
    auto fail_with = [&](const char* what) {
        const int err = errno;
        ::close(fd);
        ::unlinkat(dir, tmp.c_str(), 0);
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
        ::unlinkat(dir, tmp.c_str(), 0);
        throw std::system_error(err, std::generic_category(), "cannot write the temporary file");
    }
    if (::renameat(dir, tmp.c_str(), dir, name.c_str()) != 0) {
        const int err = errno;
        ::unlinkat(dir, tmp.c_str(), 0);
        throw std::system_error(err, std::generic_category(), "cannot replace the file");
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
    const std::size_t offset = count_argument(args, "offset", 1);
    const std::size_t limit = count_argument(args, "limit", lim.read_default_lines);
    unique_fd fd;
    struct stat st {};
    if (auto err = open_text_file(ws, real, lim.max_file_bytes, fd, st); !err.empty()) {
        return fail(std::move(err));
    }
    const std::string content = read_fd(fd.get(), lim.max_file_bytes);
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
    // Every existing component of `real` has been resolved, so the directories created here
    // are plain new directories inside the workspace; open_dir refuses any that changed since.
    int err = 0;
    const unique_fd dir = open_dir(ws, real.parent_path(), true, err);
    if (!dir) {
        return fail(
            err == ENOTDIR
                ? "cannot create " + shown + ": one of its parent directories is a file."
                : "cannot create the parent directories of " + shown + ": " + errno_text(err)
        );
    }
    const std::string name = real.filename().string();
    struct stat st {};
    bool existed = false;
    mode_t mode = 0644;
    if (::fstatat(dir.get(), name.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0) {
        existed = true;
        if (S_ISDIR(st.st_mode)) {
            return fail(shown + " is a directory; give the path of a file to write.");
        }
        if (auto refused = check_single_link(st, shown); !refused.empty()) {
            return fail(std::move(refused));
        }
        if (S_ISREG(st.st_mode)) {
            mode = st.st_mode & 07777;
        }
    }
    try {
        atomic_write_at(dir.get(), name, content, mode);
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
    unique_fd fd;
    struct stat st {};
    if (auto err = open_text_file(ws, real, lim.max_file_bytes, fd, st); !err.empty()) {
        return fail(std::move(err));
    }
    const std::string shown = in_quotes(ws.display(real));
    if (auto refused = check_single_link(st, shown); !refused.empty()) {
        return fail(std::move(refused));
    }
    std::string content = read_fd(fd.get(), lim.max_file_bytes);
    fd.reset();
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
    int err = 0;
    const unique_fd dir = open_dir(ws, real.parent_path(), false, err);
    const std::string name = real.filename().string();
    struct stat now {};
    if (!dir || ::fstatat(dir.get(), name.c_str(), &now, AT_SYMLINK_NOFOLLOW) != 0 ||
        now.st_dev != st.st_dev || now.st_ino != st.st_ino) {
        return fail(
            "file " + shown +
            " was replaced or removed while it was being edited; nothing was written. Read it "
            "again and retry."
        );
    }
    try {
        atomic_write_at(dir.get(), name, content, st.st_mode & 07777);
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

// The names in the directory `fd` (consumed), without "." and "..", in byte order.
std::vector<std::string> read_names(unique_fd fd) {
    std::vector<std::string> names;
    DIR* d = ::fdopendir(fd.get());
    if (d == nullptr) {
        throw std::system_error(errno, std::generic_category(), "cannot read the directory");
    }
    fd.release(); // owned by `d` now
    while (const dirent* e = ::readdir(d)) {
        const std::string_view n = e->d_name;
        if (n != "." && n != "..") {
            names.emplace_back(n);
        }
    }
    ::closedir(d);
    std::sort(names.begin(), names.end());
    return names;
}

std::string read_link_at(int dir, const std::string& name) {
    std::string target(4096, '\0');
    const ssize_t n = ::readlinkat(dir, name.c_str(), target.data(), target.size());
    if (n < 0) {
        return "?";
    }
    target.resize(static_cast<std::size_t>(n));
    return target;
}

tool_output list_dir(const workspace& ws, const fs_tool_limits& lim, const json& args) {
    const fs::path real = ws.resolve(args.at("path").get<std::string>());
    const std::string shown = in_quotes(ws.display(real));
    int err = 0;
    unique_fd fd = open_in(ws, real, O_RDONLY | O_DIRECTORY, err);
    if (!fd) {
        if (err == ENOTDIR) {
            return fail(shown + " is a file, not a directory. Use read_file to read it.");
        }
        if (err == ENOENT) {
            return fail("directory " + shown + " does not exist.");
        }
        return fail("cannot list " + shown + ": " + errno_text(err));
    }
    const int dir = ::dup(fd.get()); // kept for fstatat/readlinkat while `fd` is read
    const unique_fd dir_guard(dir);
    std::vector<std::string> names;
    try {
        for (auto& raw : read_names(std::move(fd))) {
            struct stat st {};
            const bool known = ::fstatat(dir, raw.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0;
            std::string name = text::escape_invalid_utf8(raw);
            if (known && S_ISLNK(st.st_mode)) {
                struct stat target {};
                if (::fstatat(dir, raw.c_str(), &target, 0) == 0 && S_ISDIR(target.st_mode)) {
                    name += '/';
                }
                name += " -> " + text::escape_invalid_utf8(read_link_at(dir, raw));
            } else if (known && S_ISDIR(st.st_mode)) {
                name += '/';
            }
            names.push_back(std::move(name));
        }
    } catch (const std::system_error& e) {
        return fail("cannot list " + shown + ": " + e.what());
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

// Walks the tree through directory descriptors: subdirectories are opened relative to their
// parent without following links, files are read through the descriptor that was checked, and
// a file symlink is followed only through openat2 from the root (so only while it stays inside).
struct search_state {
    const workspace& ws;
    const fs_tool_limits& lim;
    const re2::RE2& re;
    const call_context& ctx;
    std::string out;
    std::size_t matches = 0;
    std::size_t files = 0;
    std::size_t skipped_large = 0;
    bool stopped = false; // a cap was reached, or the call was cancelled
    std::string stop_reason;

    void stop(std::string why) {
        stopped = true;
        stop_reason = std::move(why);
    }

    // Checked between files and every few thousand lines: the stop token fires on the call's
    // deadline and on cancellation.
    bool cancelled() {
        if (!stopped && ctx.stop.stop_requested()) {
            stop("the call was cancelled or timed out");
        }
        return stopped;
    }

    // `fd` is open on something found at `rel` (bytes, relative to the root).
    void file(unique_fd fd, const std::string& rel) {
        if (cancelled()) {
            return;
        }
        struct stat st {};
        if (::fstat(fd.get(), &st) != 0 || !S_ISREG(st.st_mode)) {
            return;
        }
        if (++files > lim.search_max_files) {
            stop("searched " + std::to_string(lim.search_max_files) + " files");
            return;
        }
        if (static_cast<std::uintmax_t>(st.st_size) > lim.search_max_file_bytes) {
            ++skipped_large;
            return;
        }
        std::string content;
        try {
            content = read_fd(fd.get(), lim.search_max_file_bytes);
        } catch (const std::exception&) {
            return; // unreadable: skip, like grep -s
        }
        if (text::looks_binary(content)) {
            return;
        }
        const std::string shown = text::escape_invalid_utf8(rel);
        std::size_t line_no = 0;
        for (std::size_t pos = 0; pos < content.size();) {
            std::size_t end = content.find('\n', pos);
            if (end == std::string::npos) {
                end = content.size();
            }
            ++line_no;
            if (line_no % 4096 == 0 && cancelled()) {
                return;
            }
            std::string_view line(content.data() + pos, end - pos);
            if (!line.empty() && line.back() == '\r') {
                line.remove_suffix(1);
            }
            const bool cut = line.size() > lim.search_max_line_bytes;
            if (cut) {
                line = line.substr(0, utf8::boundary_at_or_before(line, lim.search_max_line_bytes));
            }
            if (detail::regex_search(re, line)) {
                std::string entry = shown + ":" + std::to_string(line_no) + ": ";
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
    void dir(unique_fd fd, const std::string& prefix) {
        const int at = fd.get();
        std::vector<std::string> names;
        try {
            names = read_names(unique_fd(::dup(at)));
        } catch (const std::system_error&) {
            return;
        }
        for (const auto& name : names) {
            if (cancelled()) {
                return;
            }
            const std::string rel = prefix + name;
            struct stat st {};
            if (::fstatat(at, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
                continue;
            }
            if (S_ISLNK(st.st_mode)) {
                try {
                    const fs::path target = ws.resolve(rel);
                    file(unique_fd(ws.open_beneath(target, O_RDONLY | O_NOCTTY | O_NONBLOCK)), rel);
                } catch (const argument_error&) {
                    // leads out of the workspace: skipped
                }
            } else if (S_ISDIR(st.st_mode)) {
                if (name != ".git") {
                    unique_fd sub(
                        ::openat(at, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
                    );
                    if (sub) {
                        dir(std::move(sub), rel + "/");
                    }
                }
            } else if (S_ISREG(st.st_mode)) {
                file(
                    unique_fd(::openat(
                        at, name.c_str(), O_RDONLY | O_NOCTTY | O_NONBLOCK | O_NOFOLLOW | O_CLOEXEC
                    )),
                    rel
                );
            }
        }
    }
};

tool_output
search(const workspace& ws, const fs_tool_limits& lim, const json& args, const call_context& ctx) {
    const std::string& pattern = args.at("pattern").get_ref<const std::string&>();
    // RE2 compiles in time and memory proportional to the pattern; a model has no use for more.
    constexpr std::size_t max_pattern_bytes = 4096;
    if (pattern.size() > max_pattern_bytes) {
        throw argument_error(
            "the pattern is " + std::to_string(pattern.size()) + " bytes long; at most " +
            std::to_string(max_pattern_bytes) + " are accepted. Search for a shorter pattern."
        );
    }
    const auto compiled = detail::compile_ecma_regex(pattern);
    if (compiled.unsupported) {
        throw argument_error(
            "regular expression " + in_quotes(pattern) + " cannot be used: " + compiled.error +
            ". Rewrite it without lookaround or backreferences (search for a simpler pattern "
            "and filter the matches), or use run_command with grep -P."
        );
    }
    if (!compiled.re) {
        throw argument_error(
            "invalid regular expression " + in_quotes(pattern) + ": " + compiled.error +
            ". The pattern uses ECMAScript (JavaScript) syntax; escape special characters such as "
            "( [ { . * + ? with a backslash to match them literally."
        );
    }
    const std::string path_arg =
        args.contains("path") ? args["path"].get<std::string>() : std::string();
    const fs::path real = ws.resolve(path_arg);
    const std::string shown = in_quotes(ws.display(real));
    int err = 0;
    unique_fd fd = open_in(ws, real, O_RDONLY | O_NOCTTY | O_NONBLOCK, err);
    if (!fd) {
        return fail(
            err == ENOENT || err == ENOTDIR ? "path " + shown + " does not exist."
                                            : "cannot open " + shown + ": " + errno_text(err)
        );
    }
    struct stat st {};
    if (::fstat(fd.get(), &st) != 0) {
        return fail("cannot read " + shown + ": " + errno_text(errno));
    }
    search_state s{ws, lim, *compiled.re, ctx, {}, 0, 0, 0, false, {}};
    const std::string rel = ws.relative(real);
    if (S_ISDIR(st.st_mode)) {
        s.dir(std::move(fd), rel == "." ? std::string() : rel + "/");
    } else {
        s.file(std::move(fd), rel);
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
        "case-sensitive; use [Aa] for either case; no lookahead, lookbehind or backreferences). "
        "Searches every file under path (default: "
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
