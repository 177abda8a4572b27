// Path confinement for the built-in tools. The resolver walks the path one component at a time
// with lstat/readlink (what realpath does) instead of std::filesystem::weakly_canonical, because
// weakly_canonical stops at the first missing component: a dangling symlink `out -> /tmp/x`
// would look like an ordinary missing file inside the workspace, and creating it would create
// /tmp/x.
#include <wafer/tools/tool.hpp>
#include <wafer/tools/workspace.hpp>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdint>
#include <fcntl.h>
#include <linux/openat2.h>
#include <stdexcept>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <system_error>
#include <unistd.h>
#include <vector>

#include "detail/text.hpp"

namespace wafer::tools {

namespace fs = std::filesystem;

namespace {

constexpr int max_symlinks = 40; // Linux's MAXSYMLINKS

// Removes a trailing separator ("a/b/" -> "a/b") so component comparisons line up.
fs::path strip_trailing(fs::path p) {
    if (!p.has_filename() && p.has_relative_path()) {
        p = p.parent_path();
    }
    return p;
}

bool is_within(const fs::path& p, const fs::path& base) {
    auto pi = p.begin();
    for (auto bi = base.begin(); bi != base.end(); ++bi, ++pi) {
        if (bi->empty()) {
            continue; // trailing "" of a path ending in '/'
        }
        if (pi == p.end() || *pi != *bi) {
            return false;
        }
    }
    return true;
}

// Quoted for a message; bytes that are not UTF-8 are shown as \xNN.
std::string in_quotes(std::string_view s) {
    std::string out = "\"";
    out += text::escape_invalid_utf8(s);
    out += '"';
    return out;
}

// openat2 is new in Linux 5.6; remembered once it is known to be missing.
std::atomic<bool> openat2_missing{false};

int openat2_beneath(int dirfd, const char* path, int flags, unsigned mode) {
    open_how how{};
    how.flags = static_cast<__u64>(static_cast<unsigned>(flags));
    how.mode = (flags & (O_CREAT | O_TMPFILE)) != 0 ? mode : 0;
    how.resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS;
    for (int attempt = 0;; ++attempt) {
        const long fd = ::syscall(SYS_openat2, dirfd, path, &how, sizeof how);
        // EAGAIN: a rename raced with the lookup of ".."; the kernel asks for a retry.
        if (fd < 0 && (errno == EINTR || (errno == EAGAIN && attempt < 16))) {
            continue;
        }
        return static_cast<int>(fd);
    }
}

// realpath over an absolute, lexically normal path; missing components are kept as written.
fs::path resolve_links(const fs::path& abs, std::string_view original) {
    std::vector<std::string> pending; // components still to walk, last one first
    for (const auto& c : abs.relative_path()) {
        pending.push_back(c.string());
    }
    std::reverse(pending.begin(), pending.end());

    fs::path cur = "/";
    int links = 0;
    while (!pending.empty()) {
        std::string c = std::move(pending.back());
        pending.pop_back();
        if (c.empty() || c == ".") {
            continue;
        }
        if (c == "..") {
            cur = cur.parent_path();
            continue;
        }
        fs::path next = cur / c;
        struct stat st {};
        if (::lstat(next.c_str(), &st) != 0 || !S_ISLNK(st.st_mode)) {
            cur = std::move(next); // a directory, a file, or not there (yet)
            continue;
        }
        if (++links > max_symlinks) {
            throw argument_error(
                "path " + in_quotes(original) + " has too many levels of symbolic links (a loop?)"
            );
        }
        std::error_code ec;
        fs::path target = fs::read_symlink(next, ec);
        if (ec) {
            throw argument_error(
                "path " + in_quotes(original) + ": cannot read symbolic link " +
                in_quotes(next.string()) + ": " + ec.message()
            );
        }
        if (target.is_absolute()) {
            cur = "/";
        }
        std::vector<std::string> parts;
        for (const auto& t : target.relative_path()) {
            parts.push_back(t.string());
        }
        pending.insert(pending.end(), parts.rbegin(), parts.rend());
    }
    return cur;
}

} // namespace

workspace::workspace(const fs::path& root) {
    std::error_code ec;
    fs::path canon = fs::canonical(root, ec);
    if (ec || !fs::is_directory(canon, ec)) {
        throw std::invalid_argument(
            "workspace root " + in_quotes(root.string()) + " is not an existing directory"
        );
    }
    root_ = std::move(canon);
    given_ = strip_trailing(fs::absolute(root).lexically_normal());
    root_fd_ = ::open(root_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (root_fd_ < 0) {
        throw std::invalid_argument(
            "workspace root " + in_quotes(root.string()) +
            " cannot be opened: " + std::generic_category().message(errno)
        );
    }
}

workspace::~workspace() {
    ::close(root_fd_);
}

std::string workspace::relative(const fs::path& real) const {
    fs::path rel = real.lexically_relative(root_);
    if (rel.empty() || rel == ".") {
        return ".";
    }
    return rel.string();
}

int workspace::open_beneath(const fs::path& real, int flags, unsigned mode) const {
    const std::string rel = relative(real);
    if (rel == ".." || rel.rfind("../", 0) == 0) {
        errno = EXDEV;
        return -1;
    }
    flags |= O_CLOEXEC;
    if (!openat2_missing.load(std::memory_order_relaxed)) {
        const int fd = openat2_beneath(root_fd_, rel.c_str(), flags, mode);
        if (fd >= 0 || errno != ENOSYS) {
            return fd;
        }
        openat2_missing.store(true, std::memory_order_relaxed);
    }
    // No openat2 (Linux < 5.6, or a seccomp filter that hides it): resolve() has checked the
    // path, which is all the protection left; a link swapped in since then is followed.
    return ::openat(root_fd_, rel.c_str(), flags, static_cast<mode_t>(mode));
}

bool workspace::contains(const fs::path& real) const {
    return is_within(real, root_);
}

std::string workspace::display(const fs::path& real) const {
    fs::path rel = real.lexically_relative(root_);
    if (rel.empty() || rel == ".") {
        return ".";
    }
    return text::escape_invalid_utf8(rel.generic_string());
}

fs::path workspace::resolve(std::string_view text) const {
    if (text.find('\0') != std::string_view::npos) {
        throw argument_error("path " + in_quotes(text) + " contains a NUL byte");
    }
    const std::string root_text = root_.string();
    fs::path p{std::string(text)};
    fs::path lexical;
    if (text.empty()) {
        lexical = root_;
    } else if (p.is_absolute()) {
        lexical = strip_trailing(p.lexically_normal());
        if (!is_within(lexical, root_)) {
            if (!is_within(lexical, given_)) {
                throw argument_error(
                    "absolute path " + in_quotes(text) + " is outside the workspace " +
                    in_quotes(root_text) +
                    ". Only files inside the workspace can be used; give a path relative to "
                    "the workspace root."
                );
            }
            // The root as the caller spelled it (through a symlink): rebase onto the real one.
            lexical = root_ / lexical.lexically_relative(given_);
        }
    } else {
        lexical = strip_trailing((root_ / p).lexically_normal());
        if (!is_within(lexical, root_)) {
            throw argument_error(
                "path " + in_quotes(text) +
                " leads outside the workspace through \"..\". Only files inside the workspace "
                "can be used; give a path relative to the workspace root without going above it."
            );
        }
    }
    fs::path real = resolve_links(lexical, text);
    if (!is_within(real, root_)) {
        throw argument_error(
            "path " + in_quotes(text) + " resolves through a symbolic link to " +
            in_quotes(real.string()) +
            ", which is outside the workspace. Symbolic links that lead out of the workspace "
            "cannot be followed."
        );
    }
    return real;
}

} // namespace wafer::tools
