// Child runs of a journaled run as its driver sees them: which calls of a dispatch start child
// runs (tools::tool_options::child_run), what a finished call's report says about its child, and
// what a dispatch entry recorded. The child's own I/O is its handler's (compose/child_run.hpp).
#pragma once

#include <wafer/tools/registry.hpp>

#include <nlohmann/json_fwd.hpp>

#include <set>
#include <string>
#include <utility>
#include <vector>

#include "loop/journal.hpp"

namespace wafer::detail {

class run_host;

/// The calls of `job` whose tools start child runs, each with the child's run id
/// ("<run_id>/<call id>"), for the dispatch entry's "children".
std::vector<std::pair<std::string, std::string>>
child_calls(const dispatch_job& job, const tools::registry& reg, const std::string& run_id);

/// Gives a call's report what `host` learnt from its child (the child's run, the calls it
/// stopped at), so that it is journaled as child_finished or child_paused.
void attach_child(run_host& host, tool_finished& t);

/// The calls a dispatch entry's body records as children (none in older journals).
std::set<std::string> children_of(const nlohmann::json& dispatch_body);

} // namespace wafer::detail
