#include "loop/child_runs.hpp"

#include <nlohmann/json.hpp>

#include "compose/run_host.hpp"

namespace wafer::detail {

std::vector<std::pair<std::string, std::string>>
child_calls(const dispatch_job& job, const tools::registry& reg, const std::string& run_id) {
    std::vector<std::pair<std::string, std::string>> out;
    for (const auto& rq : job.requests) {
        const tools::tool* t = reg.find(rq.name);
        if (t != nullptr && t->options.child_run) {
            out.emplace_back(rq.id, run_id + "/" + rq.id);
        }
    }
    return out;
}

void attach_child(run_host& host, tool_finished& t) {
    const std::string& id = t.result.tool_call_id;
    // The child ended before its handler returned: the last record of this call is its run.
    for (auto it = host.children.rbegin(); it != host.children.rend(); ++it) {
        if (it->call_id == id) {
            t.child = *it;
            break;
        }
    }
    if (const auto it = host.paused.find(id); it != host.paused.end()) {
        if (t.child && t.result.status != tools::result_status::cancelled) {
            t.child_pending = std::move(it->second);
        }
        host.paused.erase(it);
    }
}

std::set<std::string> children_of(const nlohmann::json& dispatch_body) {
    std::set<std::string> out;
    if (const auto it = dispatch_body.find("children"); it != dispatch_body.end()) {
        for (const auto& [call, run] : it->items()) {
            out.insert(call);
        }
    }
    return out;
}

} // namespace wafer::detail
