#include <wafer/agent.hpp>
#include <wafer/event_emitter.hpp>

#include <stdexcept>

#include "critics/critic_review.hpp"
#include "loop/driver.hpp"

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
    }
    return "error";
}

namespace {

std::vector<api::function_tool> tool_definitions(const tools::registry* registry) {
    std::vector<api::function_tool> out;
    if (!registry) {
        return out;
    }
    for (auto& d : registry->definitions()) {
        api::function_tool t;
        t.name = std::move(d.name);
        if (!d.description.empty()) {
            t.description = std::move(d.description);
        }
        t.parameters = std::move(d.parameters);
        t.strict = d.strict;
        out.push_back(std::move(t));
    }
    return out;
}

} // namespace

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
        critics->emplace_back(detail::critic_agent_config(c));
    }
    critic_agents_ = std::move(critics);
    tool_defs_ =
        std::make_shared<const std::vector<api::function_tool>>(tool_definitions(cfg_.tools.get()));
    tool_defs_revision_ = cfg_.tools ? cfg_.tools->revision() : 0;
}

asio::awaitable<run_result> agent::async_run(std::string input, run_options options) const {
    detail::run_setup setup;
    setup.run_id = options.run_id.empty() ? make_run_id() : options.run_id;
    setup.input = std::move(input);
    setup.history = std::move(options.history);
    options.history.reset();
    setup.started = detail::clock_type::now();
    setup.tool_defs = tool_defs_;
    if (cfg_.tools && cfg_.tools->revision() != tool_defs_revision_) {
        setup.tool_defs = std::make_shared<const std::vector<api::function_tool>>(
            tool_definitions(cfg_.tools.get())
        );
    }
    co_return co_await detail::async_drive(cfg_, *critic_agents_, options, std::move(setup));
}

} // namespace wafer
