#include <wafer/agent.hpp>
#include <wafer/event_emitter.hpp>
#include <wafer/store/error.hpp>

#include <nlohmann/json.hpp>

#include <stdexcept>

#include "critics/critic_review.hpp"
#include "loop/driver.hpp"
#include "loop/journal.hpp"

namespace wafer {

namespace asio = boost::asio;

std::string_view to_string(stop_reason r) noexcept {
    switch (r) {
    case stop_reason::completed:
        return "completed";
    case stop_reason::max_turns:
        return "max_turns";
    case stop_reason::deadline:
        return "deadline";
    case stop_reason::token_budget:
        return "token_budget";
    case stop_reason::cancelled:
        return "cancelled";
    case stop_reason::error:
        return "error";
    case stop_reason::critic_denied:
        return "critic_denied";
    case stop_reason::revisions_exhausted:
        return "revisions_exhausted";
    case stop_reason::awaiting_approval:
        return "awaiting_approval";
    case stop_reason::handoff:
        return "handoff";
    }
    return "error";
}

agent::agent(agent_config cfg) : cfg_(std::move(cfg)) {
    if (!cfg_.model) {
        throw std::invalid_argument("wafer::agent: agent_config::model is required");
    }
    auto critics = std::make_shared<std::vector<agent>>();
    critics->reserve(cfg_.critics.size());
    for (std::size_t i = 0; i < cfg_.critics.size(); ++i) {
        const critic& c = cfg_.critics[i];
        const std::string where = "wafer::agent: critic '" + c.name + "': ";
        if (c.name.empty()) {
            throw std::invalid_argument("wafer::agent: every critic needs a name");
        }
        for (std::size_t j = 0; j < i; ++j) {
            if (cfg_.critics[j].name == c.name) {
                throw std::invalid_argument(where + "the name is used twice");
            }
        }
        if (!c.model) {
            throw std::invalid_argument(where + "a model is required");
        }
        if (c.gates.empty()) {
            throw std::invalid_argument(where + "it is attached to no gate");
        }
        if (c.tools) {
            for (const auto& name : c.tools->names()) {
                if (!c.tools->find(name)->options.read_only) {
                    throw std::invalid_argument(
                        where + "tool '" + name + "' is not read_only; critics may only look"
                    );
                }
            }
        }
        agent_config sub = detail::critic_agent_config(c);
        sub.tracer = cfg_.tracer; // a review is an invoke_agent span under the run's
        critics->emplace_back(std::move(sub));
    }
    critic_agents_ = std::move(critics);
    tool_defs_ = std::make_shared<const std::vector<api::function_tool>>(
        detail::tool_definitions(cfg_.tools.get())
    );
    tool_defs_revision_ = cfg_.tools ? cfg_.tools->revision() : 0;
}

std::shared_ptr<const std::vector<api::function_tool>> agent::current_tool_defs() const {
    if (cfg_.tools && cfg_.tools->revision() != tool_defs_revision_) {
        return std::make_shared<const std::vector<api::function_tool>>(
            detail::tool_definitions(cfg_.tools.get())
        );
    }
    return tool_defs_;
}

asio::awaitable<run_result> agent::async_run(std::string input, run_options options) const {
    detail::run_setup setup;
    setup.run_id = options.run_id.empty() ? make_run_id() : options.run_id;
    setup.input = std::move(input);
    setup.history = std::move(options.history);
    options.history.reset();
    setup.started = detail::clock_type::now();
    setup.tool_defs = current_tool_defs();
    setup.tool_defs_revision = cfg_.tools ? cfg_.tools->revision() : 0;
    setup.priority = options.priority;
    setup.deadline = options.deadline;
    std::optional<detail::drive_journal> journal;
    if (options.store) {
        journal.emplace();
        journal->store = options.store;
        journal->owner =
            options.lease_owner.empty() ? detail::make_lease_owner() : options.lease_owner;
        journal->parent_id = options.parent_run_id;
        journal->scope = options.scope;
        journal->metadata = options.metadata;
        journal->lease_ttl = options.lease_ttl;
    }
    co_return co_await detail::async_drive(
        cfg_, *critic_agents_, options, std::move(setup), std::move(journal)
    );
}

asio::awaitable<run_result> agent::async_resume(std::string run_id, resume_options options) const {
    if (!options.store) {
        throw std::invalid_argument("wafer::agent::async_resume: resume_options::store is required"
        );
    }
    const std::shared_ptr<store::run_store> st = options.store;
    std::optional<store::run_info> info = co_await st->async_find_run(run_id);
    if (!info) {
        store::throw_error(store::errc::run_not_found, "run " + run_id + " does not exist");
    }
    const bool finished = info->status == store::run_status::finished;
    const bool read_back = finished && !options.message && options.read_back;
    if (finished && !options.message && !read_back) {
        diagnostics d;
        d.detail = "run " + run_id + " finished (" + info->stop_reason +
                   "); give a message to continue it";
        throw wafer::error(errc::invalid_request, std::move(d));
    }
    if (!finished && options.message) {
        diagnostics d;
        d.detail = "run " + run_id + " has not finished (" +
                   std::string(store::to_string(info->status)) +
                   "); resume it without a message first";
        throw wafer::error(errc::invalid_request, std::move(d));
    }
    detail::run_setup setup;
    try {
        detail::read_setup(info->setup, setup);
    } catch (const std::exception& e) {
        store::throw_error(
            store::errc::corrupt, "run " + run_id + ": its setup does not parse: " + e.what()
        );
    }
    const std::string owner =
        options.lease_owner.empty() ? detail::make_lease_owner() : options.lease_owner;
    // A lease held by a process of this host that died (a crash), or by the holder the caller
    // knows is gone (a resumed parent's previous owner), is taken over at once.
    std::string dead_holder;
    if (!info->lease_owner.empty() && (info->lease_owner == options.take_over_from ||
                                       detail::lease_owner_is_dead(info->lease_owner))) {
        dead_holder = info->lease_owner;
    }
    if (!read_back &&
        !co_await st->async_acquire_lease(run_id, owner, options.lease_ttl, dead_holder)) {
        store::throw_error(
            store::errc::lease_held,
            "run " + run_id + " is being driven by another process (" + info->lease_owner + ")"
        );
    }
    std::exception_ptr failure;
    run_result result;
    try {
        std::vector<store::journal_entry> entries = co_await st->async_read_journal(run_id);
        detail::drive_journal plan;
        plan.store = st;
        plan.owner = owner;
        plan.create = false;
        plan.scope = info->scope;
        plan.lease_ttl = options.lease_ttl;
        plan.previous_owner = info->lease_owner;
        plan.read_back = read_back;
        plan.parent_id = info->parent_id;
        plan.segments.emplace_back();
        for (auto& e : entries) {
            if (e.kind == detail::journal_kind::follow_up) {
                detail::drive_journal::segment next;
                try {
                    next.message = nlohmann::json::parse(e.body).at("message").get<std::string>();
                } catch (const std::exception& x) {
                    store::throw_error(
                        store::errc::corrupt,
                        "run " + run_id + ": journal entry " + std::to_string(e.seq) +
                            " (follow_up) does not parse: " + x.what()
                    );
                }
                plan.segments.push_back(std::move(next));
                continue;
            }
            plan.segments.back().entries.push_back(std::move(e));
        }
        plan.message = std::move(options.message);
        plan.reconcile = std::move(options.reconcile);
        setup.started = detail::clock_type::now();
        setup.tool_defs = current_tool_defs();
        setup.tool_defs_revision = cfg_.tools ? cfg_.tools->revision() : 0;
        run_options ro;
        ro.on_event = std::move(options.on_event);
        ro.events = std::move(options.events);
        ro.approvals = std::move(options.approvals);
        ro.run_id = run_id;
        ro.store = st;
        ro.scope = info->scope;
        ro.lease_ttl = options.lease_ttl;
        ro.parent_run_id = options.parent_run_id.empty() ? info->parent_id : options.parent_run_id;
        ro.deadline = options.deadline;
        ro.finish_events = options.finish_events;
        ro.children = std::move(options.children);
        setup.deadline = options.deadline;
        result = co_await detail::async_drive(
            cfg_, *critic_agents_, ro, std::move(setup), std::move(plan)
        );
    } catch (...) {
        failure = std::current_exception();
    }
    if (failure) {
        if (!read_back) {
            try {
                co_await st->async_release_lease(run_id, owner);
            } catch (const std::exception&) { // NOLINT(bugprone-empty-catch)
                // The lease expires by itself.
            }
        }
        std::rethrow_exception(failure);
    }
    co_return result;
}

nlohmann::json run_metadata(const store::run_info& run) {
    const nlohmann::json setup = nlohmann::json::parse(run.setup, nullptr, false);
    if (!setup.is_object()) {
        return nullptr;
    }
    const auto it = setup.find("metadata");
    return it == setup.end() ? nlohmann::json() : *it;
}

} // namespace wafer
