// Handoffs: each member runs as an ordinary agent run; a transfer tool (tool_options::ends_run)
// ends the sender's run after its step, and the team starts the receiver's run on the
// filtered history. The team reads the transfer from the sender's conversation, so the tools
// keep no state of their own.
#include <wafer/event_emitter.hpp>
#include <wafer/handoff.hpp>

#include <nlohmann/json.hpp>

#include <stdexcept>

namespace wafer {

namespace asio = boost::asio;
using nlohmann::json;

namespace {

constexpr std::string_view transfer_prefix = "transfer_to_";

tools::tool transfer_tool(const std::string& to, const std::string& description) {
    json params = {
        {"type", "object"},
        {"properties",
         {{"message",
           {{"type", "string"},
            {"description", "What the next agent needs to know to go on (optional)."}}}}}};
    tools::tool_options o;
    o.ends_run = true;
    o.read_only = true;
    const std::string text = "Transferred to " + to + ".";
    return tools::make_tool<json>(
        std::string(transfer_prefix) + to,
        description.empty() ? "Hand the conversation over to the agent '" + to + "'." : description,
        std::move(params),
        [text](const json&) { return text; },
        o
    );
}

// The transfer a handed-off run made: the first transfer call of its last step whose result
// is no error.
struct transfer {
    std::string to;
    std::string message;
    // Where the step that made it starts in the sender's history.
    std::size_t step_begin = 0;
};

std::optional<transfer> find_transfer(const conversation& conv) {
    const auto& msgs = conv.messages();
    const auto& meta = conv.meta();
    std::size_t a = msgs.size();
    while (a > 0 && !(msgs[a - 1].role == api::role::assistant && !msgs[a - 1].tool_calls.empty())
    ) {
        --a;
    }
    if (a == 0) {
        return std::nullopt;
    }
    const api::message& step = msgs[a - 1];
    for (const auto& call : step.tool_calls) {
        if (!call.name.starts_with(transfer_prefix)) {
            continue;
        }
        bool ok = false;
        for (std::size_t i = a; i < msgs.size(); ++i) {
            if (msgs[i].role == api::role::tool && msgs[i].tool_call_id == call.id) {
                ok = i >= meta.size() || !meta[i].is_error;
            }
        }
        if (!ok) {
            continue;
        }
        transfer t;
        t.to = call.name.substr(transfer_prefix.size());
        const json args = json::parse(call.arguments, nullptr, false);
        if (args.is_object()) {
            if (auto it = args.find("message"); it != args.end() && it->is_string()) {
                t.message = it->get<std::string>();
            }
        }
        t.step_begin = a - 1;
        return t;
    }
    return std::nullopt;
}

} // namespace

handoff_history handoff_history::all() {
    return {};
}

handoff_history handoff_history::none() {
    handoff_history h;
    h.kind_ = kind::none;
    return h;
}

handoff_history handoff_history::last(std::size_t n) {
    handoff_history h;
    h.kind_ = kind::last;
    h.n_ = n;
    return h;
}

handoff_history handoff_history::filter(std::function<bool(const api::message&)> keep) {
    handoff_history h;
    h.kind_ = kind::filter;
    h.keep_ = std::move(keep);
    return h;
}

std::vector<api::message> handoff_history::apply(const std::vector<api::message>& history) const {
    std::vector<api::message> out;
    for (const auto& m : history) {
        if (m.role != api::role::system) {
            out.push_back(m);
        }
    }
    switch (kind_) {
    case kind::all:
        break;
    case kind::none:
        out.clear();
        break;
    case kind::last:
        if (out.size() > n_) {
            out.erase(out.begin(), out.end() - static_cast<std::ptrdiff_t>(n_));
        }
        break;
    case kind::filter:
        std::erase_if(out, [this](const api::message& m) { return !keep_ || !keep_(m); });
        break;
    }
    return out;
}

handoff_team::handoff_team(std::string name) : name_(std::move(name)) {}

handoff_team& handoff_team::add(const agent& a) {
    const std::string& name = a.config().name;
    if (members_.count(name) != 0) {
        throw std::invalid_argument("wafer::handoff_team: two members are named '" + name + "'");
    }
    members_.emplace(name, member{a, {}, a});
    return *this;
}

handoff_team& handoff_team::route(
    const std::string& from, const std::string& to, handoff_history history, std::string description
) {
    auto it = members_.find(from);
    if (it == members_.end() || members_.count(to) == 0) {
        throw std::invalid_argument(
            "wafer::handoff_team: route " + from + " -> " + to + " names an unknown member"
        );
    }
    member& m = it->second;
    std::erase_if(m.routes, [&to](const route_entry& r) { return r.to == to; });
    m.routes.push_back({to, std::move(description), std::move(history)});
    agent_config cfg = m.base.config();
    std::shared_ptr<tools::registry> reg =
        cfg.tools ? cfg.tools->clone() : std::make_shared<tools::registry>();
    for (const auto& r : m.routes) {
        if (reg->find(std::string(transfer_prefix) + r.to) == nullptr) {
            reg->add(transfer_tool(r.to, r.description));
        }
    }
    cfg.tools = std::move(reg);
    m.running = agent(std::move(cfg));
    return *this;
}

const handoff_team::member& handoff_team::find(const std::string& name) const {
    auto it = members_.find(name);
    if (it == members_.end()) {
        throw std::invalid_argument("wafer::handoff_team: no member is named '" + name + "'");
    }
    return it->second;
}

asio::awaitable<handoff_result>
handoff_team::async_run(std::string first, std::string input, run_options options) const {
    const member* current = &find(first);
    handoff_result out;
    out.run_id = options.run_id.empty() ? make_run_id() : options.run_id;
    // Every run calls the caller's callback object itself, not a copy: a stateful callback
    // must see every event.
    std::function<void(const event&)> on_event;
    if (options.on_event) {
        on_event = [&options](const event& e) {
            options.on_event(e);
        };
    }
    event_emitter emitter(out.run_id, name_, on_event, options.events);
    emitter.set_parent_run_id(options.parent_run_id);
    std::optional<conversation> history = std::move(options.history);
    std::string next_input = input;
    for (std::size_t k = 0;; ++k) {
        run_options ro;
        ro.on_event = on_event;
        ro.events = options.events;
        ro.finish_events = false;
        ro.run_id = out.run_id + "/" + std::to_string(k);
        ro.parent_run_id = out.run_id;
        ro.deadline = options.deadline;
        ro.priority = options.priority;
        ro.approvals = options.approvals;
        ro.history = std::move(history);
        history.reset();
        run_result r = co_await current->running.async_run(next_input, std::move(ro));
        out.usage += r.total_usage();
        std::optional<transfer> t;
        if (r.stop_reason == stop_reason::handoff) {
            t = find_transfer(r.conversation);
        }
        const route_entry* route = nullptr;
        if (t) {
            for (const auto& re : current->routes) {
                if (re.to == t->to) {
                    route = &re;
                }
            }
        }
        if (!t || route == nullptr || out.handoffs.size() >= max_handoffs) {
            out.result = r;
            out.runs.push_back(std::move(r));
            break;
        }
        const member& to = find(t->to);
        // The receiver's history: its system prompt, then what the policy passes of the
        // sender's, without the step that made the transfer.
        std::vector<api::message> before(
            r.conversation.messages().begin(),
            r.conversation.messages().begin() + static_cast<std::ptrdiff_t>(t->step_begin)
        );
        std::vector<api::message> passed = route->history.apply(before);
        conversation next;
        if (!to.base.config().system_prompt.empty()) {
            next.add_system(to.base.config().system_prompt);
        }
        for (auto& m : passed) {
            next.append(std::move(m));
        }
        events::handoff ev{
            current->base.config().name,
            t->to,
            r.run_id,
            out.run_id + "/" + std::to_string(k + 1),
            t->message,
            passed.size()};
        next_input = "The agent '" + ev.from + "' handed this conversation over to you" +
                     (ev.message.empty() ? std::string(".") : ": " + ev.message) +
                     "\nThe user's request: " + input;
        history = std::move(next);
        out.handoffs.push_back(ev);
        out.runs.push_back(std::move(r));
        event_data d = std::move(ev);
        co_await emitter.async_emit(std::move(d));
        current = &to;
    }
    if (options.events && options.finish_events) {
        co_await options.events->async_finish();
    }
    co_return out;
}

} // namespace wafer
