#include "edits.hpp"

#include <algorithm>
#include <cstdint>

namespace wafer::cli {

namespace fs = std::filesystem;

namespace {

/// Lines with their newline (the last one may have none).
std::vector<std::string_view> split_lines(std::string_view s) {
    std::vector<std::string_view> out;
    while (!s.empty()) {
        const std::size_t nl = s.find('\n');
        const std::size_t len = nl == std::string_view::npos ? s.size() : nl + 1;
        out.push_back(s.substr(0, len));
        s.remove_prefix(len);
    }
    return out;
}

enum class op : char { same = ' ', removed = '-', added = '+' };

struct diff_line {
    op kind;
    std::string_view text;
};

/// The middle of a diff (after the common start and end): longest common subsequence when it is
/// small enough, else all removed then all added.
void diff_middle(
    const std::vector<std::string_view>& a,
    std::size_t a0,
    std::size_t a1,
    const std::vector<std::string_view>& b,
    std::size_t b0,
    std::size_t b1,
    std::vector<diff_line>& out
) {
    const std::size_t n = a1 - a0;
    const std::size_t m = b1 - b0;
    constexpr std::uint64_t max_cells = 4'000'000;
    if (n == 0 || m == 0 || static_cast<std::uint64_t>(n) * m > max_cells) {
        for (std::size_t i = a0; i < a1; ++i) {
            out.push_back({op::removed, a[i]});
        }
        for (std::size_t j = b0; j < b1; ++j) {
            out.push_back({op::added, b[j]});
        }
        return;
    }
    // lcs[i][j]: the common subsequence length of a[a0+i..a1) and b[b0+j..b1).
    std::vector<std::uint32_t> lcs((n + 1) * (m + 1), 0);
    const auto at = [m](std::size_t i, std::size_t j) {
        return i * (m + 1) + j;
    };
    for (std::size_t i = n; i-- > 0;) {
        for (std::size_t j = m; j-- > 0;) {
            lcs[at(i, j)] = a[a0 + i] == b[b0 + j] ? lcs[at(i + 1, j + 1)] + 1
                                                   : std::max(lcs[at(i + 1, j)], lcs[at(i, j + 1)]);
        }
    }
    std::size_t i = 0;
    std::size_t j = 0;
    while (i < n || j < m) {
        if (i < n && j < m && a[a0 + i] == b[b0 + j]) {
            out.push_back({op::same, a[a0 + i]});
            ++i;
            ++j;
        } else if (i < n && (j == m || lcs[at(i + 1, j)] >= lcs[at(i, j + 1)])) {
            out.push_back({op::removed, a[a0 + i]}); // removals first, as diff(1) shows them
            ++i;
        } else {
            out.push_back({op::added, b[b0 + j]});
            ++j;
        }
    }
}

std::string range(std::size_t start, std::size_t count) {
    // A hunk with no lines names the line before it.
    const std::size_t first = count == 0 ? start : start + 1;
    return std::to_string(first) + (count == 1 ? "" : "," + std::to_string(count));
}

} // namespace

std::string unified_diff(
    std::string_view name,
    const std::optional<std::string>& before,
    const std::optional<std::string>& after
) {
    if (before == after) {
        return {};
    }
    const std::vector<std::string_view> a = split_lines(before ? *before : std::string_view());
    const std::vector<std::string_view> b = split_lines(after ? *after : std::string_view());
    std::size_t head = 0;
    while (head < a.size() && head < b.size() && a[head] == b[head]) {
        ++head;
    }
    std::size_t tail = 0;
    while (tail < a.size() - head && tail < b.size() - head &&
           a[a.size() - 1 - tail] == b[b.size() - 1 - tail]) {
        ++tail;
    }
    std::vector<diff_line> lines;
    for (std::size_t i = 0; i < head; ++i) {
        lines.push_back({op::same, a[i]});
    }
    diff_middle(a, head, a.size() - tail, b, head, b.size() - tail, lines);
    for (std::size_t i = a.size() - tail; i < a.size(); ++i) {
        lines.push_back({op::same, a[i]});
    }

    std::string out = "--- " + (before ? "a/" + std::string(name) : std::string("/dev/null")) +
                      "\n+++ " + (after ? "b/" + std::string(name) : std::string("/dev/null")) +
                      "\n";
    constexpr std::size_t context = 3;
    std::size_t k = 0;
    std::size_t a_line = 0; // lines of `a` (and `b`) before lines[k]
    std::size_t b_line = 0;
    while (k < lines.size()) {
        if (lines[k].kind == op::same) {
            ++k;
            ++a_line;
            ++b_line;
            continue;
        }
        // A hunk: up to `context` lines before, the changes, and runs of fewer than 2 * context
        // unchanged lines between changes, then up to `context` lines after.
        const std::size_t lead = std::min({context, a_line, k});
        std::size_t start = k - lead;
        std::size_t end = k;
        while (end < lines.size()) {
            if (lines[end].kind != op::same) {
                ++end;
                continue;
            }
            std::size_t run = 0;
            while (end + run < lines.size() && lines[end + run].kind == op::same) {
                ++run;
            }
            if (end + run == lines.size() || run > 2 * context) {
                end += std::min(run, context);
                break;
            }
            end += run;
        }
        std::size_t a_count = 0;
        std::size_t b_count = 0;
        std::string body;
        for (std::size_t x = start; x < end; ++x) {
            a_count += lines[x].kind != op::added ? 1U : 0U;
            b_count += lines[x].kind != op::removed ? 1U : 0U;
            body += static_cast<char>(lines[x].kind);
            body += lines[x].text;
            if (!lines[x].text.ends_with('\n')) {
                body += "\n\\ No newline at end of file\n";
            }
        }
        const std::size_t a_start = a_line - lead;
        const std::size_t b_start = b_line - lead;
        out += "@@ -" + range(a_start, a_count) + " +" + range(b_start, b_count) + " @@\n" + body;
        a_line = a_start + a_count;
        b_line = b_start + b_count;
        k = end;
    }
    return out;
}

void edit_log::call_started(std::string call_id, fs::path path, std::optional<std::string> before) {
    file_edit e{call_id, std::move(path), std::move(before), std::nullopt};
    running_[std::move(call_id)] = std::move(e);
}

void edit_log::call_finished(
    const std::string& call_id, bool is_error, std::optional<std::string> after
) {
    const auto it = running_.find(call_id);
    if (it == running_.end()) {
        return;
    }
    file_edit e = std::move(it->second);
    running_.erase(it);
    if (is_error || e.before == after) {
        return;
    }
    e.after = std::move(after);
    edits_.push_back(std::move(e));
}

undo_plan edit_log::plan_undo(const std::optional<std::string>& now) const {
    undo_plan plan;
    if (edits_.empty()) {
        plan.error = "nothing to undo: the agent has not changed a file in this session";
        return plan;
    }
    const file_edit& last = edits_.back();
    plan.path = last.path;
    if (now != last.after) {
        plan.error = last.path.string() + " changed since the agent's last edit; not undone";
        return plan;
    }
    plan.restore = last.before;
    return plan;
}

void edit_log::pop_last() {
    if (!edits_.empty()) {
        edits_.pop_back();
    }
}

std::string edit_log::diff(const fs::path& root) const {
    // Each file once, in the order it was first changed: its first `before`, its last `after`.
    std::vector<fs::path> order;
    std::map<fs::path, std::pair<std::optional<std::string>, std::optional<std::string>>> span;
    for (const auto& e : edits_) {
        const auto [it, fresh] = span.try_emplace(e.path, e.before, e.after);
        if (fresh) {
            order.push_back(e.path);
        } else {
            it->second.second = e.after;
        }
    }
    std::string out;
    for (const auto& path : order) {
        const auto& [before, after] = span.at(path);
        const fs::path shown = path.lexically_relative(root);
        out += unified_diff(shown.empty() ? path.string() : shown.string(), before, after);
    }
    return out;
}

} // namespace wafer::cli
