// What the agent changed in the interactive session, for /diff and /undo: the content of each
// file before and after every write_file / edit_file call of the session. Sans-io: the session
// reads the files and hands the contents in; this decides what the diff shows and what an undo
// writes back.
#pragma once

#include <cstddef>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace wafer::cli {

/// One change of one file by one call.
struct file_edit {
    std::string call_id;
    std::filesystem::path path;
    /// nullopt: the file did not exist.
    std::optional<std::string> before;
    std::optional<std::string> after;
};

/// What /undo does: write `restore` to `path` (nullopt: remove the file), or refuse with `error`.
struct undo_plan {
    std::filesystem::path path;
    std::optional<std::string> restore;
    std::string error;
};

/// The session's edits, in the order they happened.
///
/// Thread safety: none.
class edit_log {
public:
    /// A file-changing call is about to run on `path`, which holds `before` now.
    void call_started(
        std::string call_id, std::filesystem::path path, std::optional<std::string> before
    );
    /// The call ended and `path` holds `after` now. A failed call, or one that changed nothing,
    /// is not an edit.
    void call_finished(const std::string& call_id, bool is_error, std::optional<std::string> after);

    const std::vector<file_edit>& edits() const noexcept { return edits_; }

    /// What undoing the last edit takes, given what its file holds `now`: the content before the
    /// edit; refused when there is no edit or the file changed since (someone else edited it).
    undo_plan plan_undo(const std::optional<std::string>& now) const;
    /// Forgets the last edit (after its undo was written).
    void pop_last();

    /// Every file the session changed, as a unified diff of its content before the session's
    /// first edit and after its last one (paths shown relative to `root`); empty when nothing
    /// changed (or everything was changed back).
    std::string diff(const std::filesystem::path& root) const;

private:
    std::vector<file_edit> edits_;
    std::map<std::string, file_edit> running_;
};

/// A unified diff (3 lines of context) of `before` and `after` of the file `name`; nullopt is a
/// missing file (/dev/null). Empty when they are equal. A file too large to compare line by
/// line (over 4 million line pairs after the common start and end) shows its changed middle as
/// removed and added whole.
std::string unified_diff(
    std::string_view name,
    const std::optional<std::string>& before,
    const std::optional<std::string>& after
);

} // namespace wafer::cli
