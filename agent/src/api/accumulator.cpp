#include <wafer/api/accumulator.hpp>

#include <algorithm>

namespace wafer::api {

void accumulator::add(const chunk_view& c) {
    if (id_.empty() && !c.id.empty()) {
        id_.assign(c.id);
    }
    if (model_.empty() && !c.model.empty()) {
        model_.assign(c.model);
    }
    if (fingerprint_.empty() && !c.system_fingerprint.empty()) {
        fingerprint_.assign(c.system_fingerprint);
    }
    if (created_ == 0) {
        created_ = c.created;
    }
    if (c.has_reasoning) {
        if (!message_.reasoning) {
            message_.reasoning.emplace();
        }
        message_.reasoning->append(c.reasoning);
    }
    if (c.has_content) {
        if (!message_.content) {
            message_.content.emplace();
        }
        message_.content->append(c.content);
    }
    for (std::size_t i = 0; i < c.tool_call_count; ++i) {
        const tool_call_delta& d = c.tool_calls[i];
        auto it = std::find(call_index_.begin(), call_index_.end(), d.index);
        tool_call* call;
        if (it == call_index_.end()) {
            // Keep calls ordered by their wire index, whatever order the deltas came in.
            auto pos = std::upper_bound(call_index_.begin(), call_index_.end(), d.index);
            auto offset = pos - call_index_.begin();
            call_index_.insert(pos, d.index);
            call = &*message_.tool_calls.insert(message_.tool_calls.begin() + offset, tool_call{});
        } else {
            call = &message_.tool_calls[static_cast<std::size_t>(it - call_index_.begin())];
        }
        if (call->id.empty() && !d.id.empty()) {
            call->id.assign(d.id);
        }
        if (call->name.empty() && !d.name.empty()) {
            call->name.assign(d.name);
        }
        call->arguments.append(d.arguments);
    }
    if (c.finish_reason != finish_reason::none) {
        finish_ = c.finish_reason;
    }
    if (c.usage) {
        usage_ = c.usage;
    }
    if (c.time_info) {
        time_info_ = c.time_info;
    }
}

chat_response accumulator::to_response() const {
    chat_response r;
    r.id = id_;
    r.object = "chat.completion";
    r.created = created_;
    r.model = model_;
    r.system_fingerprint = fingerprint_;
    r.choices.push_back(choice{.index = 0, .message = message_, .finish_reason = finish_});
    r.usage = usage_;
    r.time_info = time_info_;
    return r;
}

void accumulator::reset() {
    *this = accumulator{};
}

} // namespace wafer::api
