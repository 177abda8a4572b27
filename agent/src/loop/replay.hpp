// Reading a journal back into a run machine (a resumed run), without I/O: every entry is fed as
// the input it records, checked against what the machine asks for, and the operations the
// journal leaves without an outcome are handed back to be run.
#pragma once

#include <wafer/resume.hpp>
#include <wafer/store/run_store.hpp>

#include <functional>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "loop/journal.hpp"
#include "loop/run_machine.hpp"

namespace wafer::detail {

/// An operation the machine started that the journal has no end for.
struct open_op {
    run_action action;
    /// A dispatch: whether the journal has its dispatch entry, which of its calls have a
    /// journaled result, and which calls the entry says start child runs.
    bool dispatched = false;
    std::vector<bool> reported;
    std::set<std::string> children;
};

/// Feeds `entries` (one exchange: no follow_up) to `machine` through `feed`, and returns what is
/// left open, in the order it was started.
///
/// Errors: wafer::error(errc::invalid_request) for an entry the machine did not ask for (another
/// agent configuration journaled it), store::errc::corrupt for one that does not parse.
std::vector<open_op> replay_entries(
    run_machine& machine,
    const std::vector<store::journal_entry>& entries,
    const std::string& run_id,
    const std::function<void(report)>& feed
);

[[noreturn]] void
journal_mismatch(const std::string& run_id, const store::journal_entry& e, const std::string& why);
[[noreturn]] void
journal_corrupt(const std::string& run_id, const store::journal_entry& e, const std::string& why);

/// The result of an in-doubt call (its dispatch was journaled, its result not), or nullopt to
/// run it again: read_only calls and calls that start child runs (`child`: their handler goes on
/// from the child's journal) run again; for the others `hook` decides (unset, or if it throws:
/// a result saying the outcome is unknown).
std::optional<tools::tool_result> in_doubt_outcome(
    const in_doubt_call& c,
    bool child,
    const std::function<reconcile_decision(const in_doubt_call&)>& hook
);

} // namespace wafer::detail
