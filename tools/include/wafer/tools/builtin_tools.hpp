// The built-in coding tools (files, search, shell), all confined to one workspace.
#pragma once

#include <wafer/tools/registry.hpp>
#include <wafer/tools/run_command.hpp>
#include <wafer/tools/tool.hpp>
#include <wafer/tools/workspace.hpp>

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

namespace wafer::tools {

/// Limits of the file tools. Every cap is visible to the model: cut output ends with a marker
/// that says what was left out and how to get it.
struct fs_tool_limits {
    /// read_file: lines returned when the model gives no limit.
    std::size_t read_default_lines = 2000;
    /// read_file: longer lines are cut, with a marker.
    std::size_t read_max_line_bytes = 2000;
    /// read_file: bytes of text returned per call; the rest is left for a later offset.
    std::size_t read_max_output = 48 * 1024;
    /// read_file and edit_file refuse larger files.
    std::uintmax_t max_file_bytes = 16 * 1024 * 1024;
    /// list_dir: entries listed.
    std::size_t list_max_entries = 1000;
    /// search: matching lines reported.
    std::size_t search_max_matches = 200;
    /// search: bytes of output.
    std::size_t search_max_output = 32 * 1024;
    /// search: larger files are skipped (and counted in the result).
    std::uintmax_t search_max_file_bytes = 2 * 1024 * 1024;
    /// search: files scanned at most.
    std::size_t search_max_files = 20000;
    /// search: only the first this many bytes of each line are matched and shown.
    std::size_t search_max_line_bytes = 1000;
};

/// `read_file {path, offset?, limit?}` (read_only): lines of a text file, each prefixed with its
/// 1-based number and a tab; offset is the first line (1-based), limit the number of lines.
/// Binary files (a NUL byte in the first 8 KiB) and files over max_file_bytes are refused.
tool make_read_file_tool(std::shared_ptr<const workspace> ws, fs_tool_limits limits = {});
/// `write_file {path, content}`: creates or replaces a file, creating parent directories inside
/// the workspace. Atomic (temporary file + rename); an existing file keeps its permissions. A
/// file with several hard links is refused (another name may lie outside the workspace).
tool make_write_file_tool(std::shared_ptr<const workspace> ws, fs_tool_limits limits = {});
/// `edit_file {path, old_text, new_text}`: replaces the single occurrence of old_text. Zero or
/// several occurrences are an error result that says how many and where (or what nearly
/// matched). Atomic like write_file; hard-linked files are refused like there.
tool make_edit_file_tool(std::shared_ptr<const workspace> ws, fs_tool_limits limits = {});
/// `list_dir {path}` (read_only): entries sorted by name, directories with a trailing '/',
/// symbolic links as `name -> target`.
tool make_list_dir_tool(std::shared_ptr<const workspace> ws, fs_tool_limits limits = {});
/// `search {pattern, path?}` (read_only): ECMAScript regular expression over the lines of the
/// files under path (default: the workspace), reported as `path:line: text`. Skips .git,
/// binary files, files over search_max_file_bytes and symbolic links that lead out. The regex
/// runs on RE2 (time linear in the input, no backtracking): lookahead, lookbehind and
/// backreferences give an invalid-arguments result. The handler stops between files and every
/// 4096 lines once its stop token fires (call deadline, cancellation).
tool make_search_tool(std::shared_ptr<const workspace> ws, fs_tool_limits limits = {});

/// The names of the built-in tools, in registration order.
std::vector<std::string> builtin_tool_names();

/// What add_builtin_tools registers.
struct builtin_tools_options {
    /// The directory every tool is confined to (must exist).
    std::filesystem::path workspace_root;
    /// Names of the tools to register (see builtin_tool_names()); empty: all of them.
    std::vector<std::string> only;
    fs_tool_limits fs;
    run_command_options command;
};

/// Registers the built-in tools on `reg`: read_file, write_file, edit_file, list_dir, search,
/// run_command (or the subset in `options.only`). File tools run on the registry's blocking
/// pool; run_command is an async handler (no thread per command).
///
/// Every path argument is resolved by one shared workspace (see workspace.hpp): `..`, absolute
/// paths outside the root and symbolic links leading out give an invalid-arguments result the
/// model can read. The file tools then open, create, list and replace only through the root's
/// directory descriptor (openat2 RESOLVE_BENEATH), so a link swapped in during the call is
/// refused, not followed. Names that are not UTF-8 are shown with `\xNN` escapes. Missing files,
/// directories given as files, zero or several edit matches and similar give an error result with a
/// hint.
///
/// Errors: throws std::invalid_argument if the root is not a directory or `only` names an
/// unknown tool; whatever registry::add throws (a name already registered).
///
/// Returns the workspace, for callers that want to resolve paths the same way.
std::shared_ptr<const workspace> add_builtin_tools(registry& reg, builtin_tools_options options);

} // namespace wafer::tools
