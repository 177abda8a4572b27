#include <wafer/conversation.hpp>

#include <algorithm>
#include <map>
#include <stdexcept>
#include <unordered_set>

#include "detail/json_util.hpp"
#include "detail/meta_json.hpp"

namespace wafer {

using nlohmann::json;

namespace {
void make_unique_ids(std::vector<api::message>& messages, std::vector<history_repair>& repairs);
} // namespace

std::string_view to_string(history_repair::kind k) noexcept {
    switch (k) {
    case history_repair::kind::missing_result:
        return "missing_result";
    case history_repair::kind::orphan_result:
        return "orphan_result";
    case history_repair::kind::duplicate_result:
        return "duplicate_result";
    case history_repair::kind::moved_result:
        return "moved_result";
    case history_repair::kind::duplicate_call:
        return "duplicate_call";
    case history_repair::kind::renamed_call:
        return "renamed_call";
    }
    return "missing_result";
}

std::string history_repair::to_string() const {
    std::string out(wafer::to_string(what));
    out += ' ';
    out += call_id;
    out += " at #";
    out += std::to_string(index);
    if (what == kind::renamed_call) {
        out += " (was \"" + previous_id + "\")";
    }
    return out;
}

// ---- conversation -----------------------------------------------------------------------------

void conversation::append(api::message m, bool is_error) {
    if (m.role == api::role::user) {
        ++turn_;
    }
    message_meta meta{.turn = turn_, .is_error = is_error, .synthetic = false};
    messages_.push_back(std::move(m));
    meta_.push_back(meta);
}

void conversation::append(api::message m, message_meta meta) {
    turn_ = std::max(turn_, meta.turn);
    messages_.push_back(std::move(m));
    meta_.push_back(meta);
}

std::vector<history_repair> conversation::repair() {
    return repair_history(messages_, &meta_);
}

std::vector<history_repair> conversation::make_call_ids_unique() {
    std::vector<history_repair> repairs;
    make_unique_ids(messages_, repairs);
    return repairs;
}

bool conversation::set_call_arguments(std::string_view call_id, std::string arguments) {
    for (auto m = messages_.rbegin(); m != messages_.rend(); ++m) {
        if (m->role != api::role::assistant) {
            continue;
        }
        for (auto& c : m->tool_calls) {
            if (c.id == call_id) {
                c.arguments = std::move(arguments);
                return true;
            }
        }
    }
    return false;
}

void conversation::clear() {
    messages_.clear();
    meta_.clear();
    turn_ = 0;
}

const compaction_record&
conversation::apply_compaction(history_edit edit, compaction_record record) {
    record.originals.clear();
    if (!edit.rewrites.empty()) {
        for (const auto& [i, m] : edit.rewrites) {
            if (i >= messages_.size()) {
                throw std::out_of_range("conversation: a compaction rewrites a missing message");
            }
        }
        record.first = edit.rewrites.front().first;
        record.replaced = edit.rewrites.back().first + 1 - record.first;
        record.replacement = record.replaced;
        for (auto& [i, m] : edit.rewrites) {
            record.originals.push_back({i, std::move(messages_[i]), meta_[i]});
            messages_[i] = std::move(m);
        }
    } else {
        if (edit.first > messages_.size() || edit.count > messages_.size() - edit.first) {
            throw std::out_of_range("conversation: a compaction replaces a missing range");
        }
        record.first = edit.first;
        record.replaced = edit.count;
        record.replacement = edit.replacement.size();
        // What replaces a range belongs to the turn of its first message and starts none.
        const message_meta at = edit.count > 0 ? meta_[edit.first] : message_meta{};
        for (std::size_t k = 0; k < edit.count; ++k) {
            const std::size_t i = edit.first + k;
            record.originals.push_back({i, std::move(messages_[i]), meta_[i]});
        }
        const auto from = static_cast<std::ptrdiff_t>(edit.first);
        const auto to = static_cast<std::ptrdiff_t>(edit.first + edit.count);
        messages_.erase(messages_.begin() + from, messages_.begin() + to);
        meta_.erase(meta_.begin() + from, meta_.begin() + to);
        std::vector<message_meta> metas(
            edit.replacement.size(),
            message_meta{.turn = at.turn, .is_error = false, .synthetic = true}
        );
        messages_.insert(
            messages_.begin() + from,
            std::make_move_iterator(edit.replacement.begin()),
            std::make_move_iterator(edit.replacement.end())
        );
        meta_.insert(meta_.begin() + from, metas.begin(), metas.end());
    }
    record.seq = compactions_.size() + 1;
    record.digest = compaction_digest(record.originals);
    compactions_.push_back(std::move(record));
    return compactions_.back();
}

std::vector<api::message> conversation::full_messages() const {
    std::vector<api::message> out = messages_;
    for (auto r = compactions_.rbegin(); r != compactions_.rend(); ++r) {
        if (r->strategy != compaction_strategy::summarise && r->replaced == r->replacement) {
            for (const auto& o : r->originals) {
                if (o.index < out.size()) {
                    out[o.index] = o.message;
                }
            }
            continue;
        }
        const std::size_t first = std::min(r->first, out.size());
        const std::size_t n = std::min(r->replacement, out.size() - first);
        const auto from = static_cast<std::ptrdiff_t>(first);
        out.erase(out.begin() + from, out.begin() + from + static_cast<std::ptrdiff_t>(n));
        std::vector<api::message> back;
        back.reserve(r->originals.size());
        for (const auto& o : r->originals) {
            back.push_back(o.message);
        }
        out.insert(out.begin() + from, back.begin(), back.end());
    }
    return out;
}

void to_json(json& j, const conversation& c) {
    json meta = json::array();
    for (std::size_t i = 0; i < c.size(); ++i) {
        json e = json::object();
        detail::write_meta(e, c.meta()[i], c.messages()[i]);
        meta.push_back(std::move(e));
    }
    j = {
        {"version", conversation::format_version},
        {"turn", c.turn()},
        {"messages", c.messages()},
        {"meta", std::move(meta)},
        {"metadata", c.metadata()}};
    if (!c.compactions().empty()) {
        j["compactions"] = c.compactions();
    }
}

void from_json(const json& j, conversation& c) {
    const int version = detail::get_checked<int>(j.at("version"));
    if (version != conversation::format_version) {
        throw std::invalid_argument(
            "conversation: unsupported state version " + std::to_string(version)
        );
    }
    conversation out;
    const json& msgs = j.at("messages");
    const json* meta = detail::member(j, "meta");
    for (std::size_t i = 0; i < msgs.size(); ++i) {
        auto m = msgs.at(i).get<api::message>();
        message_meta mm;
        if (meta && i < meta->size()) {
            detail::read_meta(meta->at(i), mm, m);
        }
        out.append(std::move(m), mm);
    }
    // An explicit turn counter survives repairs that removed the latest messages.
    detail::read_value(j, "turn", out.turn_); // range-checked: no 1e300 cast to size_t
    if (auto* md = detail::member(j, "metadata"); md && md->is_object()) {
        out.metadata_ = *md;
    }
    if (const json* records = detail::member(j, "compactions")) {
        out.compactions_ = records->get<std::vector<compaction_record>>();
    }
    c = std::move(out);
}

// ---- repair -----------------------------------------------------------------------------------

namespace {

// The id given to call `k` of message `i` when its own id is missing or already taken: derived
// from positions only, so the same history always gets the same ids.
std::string
synthesized_call_id(std::size_t i, std::size_t k, const std::unordered_set<std::string>& taken) {
    std::string id = "wafer_call_" + std::to_string(i) + "_" + std::to_string(k);
    while (taken.contains(id)) {
        id += "_";
    }
    return id;
}

// Gives every tool call an id that no other call has and renames the results that answered the
// old one. Some servers send no ids, some reuse "call_0" every turn; dropping such calls would
// lose their results. The results of message `i` are the tool messages after it, up to the next
// assistant message, matched in order: the first unclaimed result with the old id belongs to the
// first call that had it.
void make_unique_ids(std::vector<api::message>& messages, std::vector<history_repair>& repairs) {
    std::unordered_set<std::string> all_ids; // every id in the history, to avoid collisions
    for (const auto& m : messages) {
        for (const auto& c : m.tool_calls) {
            all_ids.insert(c.id);
        }
    }
    std::unordered_set<std::string> used;
    const std::size_t n = messages.size();
    for (std::size_t i = 0; i < n; ++i) {
        auto& calls = messages[i].tool_calls;
        if (messages[i].role != api::role::assistant || calls.empty()) {
            continue;
        }
        struct rename {
            std::string old_id;
            std::size_t call = 0;
            bool renamed = false;
        };
        std::vector<rename> order;
        bool any = false;
        for (std::size_t k = 0; k < calls.size(); ++k) {
            rename r{calls[k].id, k, false};
            if (calls[k].id.empty() || used.contains(calls[k].id)) {
                std::string fresh = synthesized_call_id(i, k, all_ids);
                all_ids.insert(fresh);
                repairs.push_back({history_repair::kind::renamed_call, fresh, i, calls[k].id});
                calls[k].id = std::move(fresh);
                r.renamed = true;
                any = true;
            }
            used.insert(calls[k].id);
            order.push_back(std::move(r));
        }
        if (!any) {
            continue;
        }
        std::vector<bool> claimed(order.size(), false);
        for (std::size_t j = i + 1; j < n && messages[j].role != api::role::assistant; ++j) {
            if (messages[j].role != api::role::tool) {
                continue;
            }
            const std::string answered = messages[j].tool_call_id.value_or("");
            for (std::size_t k = 0; k < order.size(); ++k) {
                if (claimed[k] || order[k].old_id != answered) {
                    continue;
                }
                claimed[k] = true;
                if (order[k].renamed) {
                    messages[j].tool_call_id = calls[order[k].call].id;
                }
                break;
            }
        }
    }
}

} // namespace

std::vector<history_repair>
repair_history(std::vector<api::message>& messages, std::vector<message_meta>* meta) {
    using kind = history_repair::kind;
    std::vector<history_repair> repairs;
    const std::size_t n = messages.size();
    if (meta && meta->size() != n) {
        meta->resize(n);
    }

    // 1. Call ids must be unique across the history: a reused or missing id makes results
    // ambiguous, so such calls get a fresh id (and their results with them).
    make_unique_ids(messages, repairs);

    // 2. Where each id's tool messages are, in history order.
    std::map<std::string, std::vector<std::size_t>, std::less<>> results_by_id;
    for (std::size_t i = 0; i < n; ++i) {
        if (messages[i].role == api::role::tool && messages[i].tool_call_id) {
            results_by_id[*messages[i].tool_call_id].push_back(i);
        }
    }

    // 3. Rebuild: every non-tool message in order, each assistant's results right after it.
    std::vector<bool> consumed(n, false);
    std::vector<api::message> out;
    std::vector<message_meta> out_meta;
    out.reserve(n);
    out_meta.reserve(n);
    auto emit = [&](std::size_t i) {
        out.push_back(std::move(messages[i]));
        if (meta) {
            out_meta.push_back((*meta)[i]);
        }
    };

    for (std::size_t i = 0; i < n; ++i) {
        if (messages[i].role == api::role::tool) {
            continue;
        }
        // Copy what we need before the message is moved out.
        const bool is_assistant = messages[i].role == api::role::assistant;
        const std::vector<api::tool_call> calls =
            is_assistant ? messages[i].tool_calls : std::vector<api::tool_call>{};
        const message_meta owner_meta = meta ? (*meta)[i] : message_meta{};
        emit(i);
        if (calls.empty()) {
            continue;
        }
        // The contiguous block of tool messages right after the assistant message.
        std::size_t block_end = i + 1;
        while (block_end < n && messages[block_end].role == api::role::tool) {
            ++block_end;
        }
        std::size_t last_in_place = i;
        for (const auto& call : calls) {
            std::size_t found = n;
            if (auto it = results_by_id.find(call.id); it != results_by_id.end()) {
                for (std::size_t j : it->second) {
                    if (j > i && !consumed[j]) {
                        found = j;
                        break;
                    }
                }
            }
            if (found == n) {
                out.push_back(api::message::tool_result(call.id, std::string(not_run_result)));
                if (meta) {
                    out_meta.push_back(
                        {.turn = owner_meta.turn, .is_error = true, .synthetic = true}
                    );
                }
                repairs.push_back({kind::missing_result, call.id, i});
                continue;
            }
            consumed[found] = true;
            if (found < block_end && found > last_in_place) {
                last_in_place = found;
            } else {
                repairs.push_back({kind::moved_result, call.id, found});
            }
            emit(found);
        }
    }

    // 4. Whatever tool message was not used is dropped: a duplicate if an earlier call had its id.
    for (std::size_t i = 0; i < n; ++i) {
        if (messages[i].role != api::role::tool || consumed[i]) {
            continue;
        }
        const auto& id = messages[i].tool_call_id;
        bool duplicate = false;
        if (id) {
            if (auto it = results_by_id.find(*id); it != results_by_id.end()) {
                duplicate = std::any_of(it->second.begin(), it->second.end(), [&](std::size_t j) {
                    return j < i && consumed[j];
                });
            }
        }
        repairs.push_back(
            {duplicate ? kind::duplicate_result : kind::orphan_result, id.value_or(""), i}
        );
    }

    messages = std::move(out);
    if (meta) {
        *meta = std::move(out_meta);
    }
    return repairs;
}

// ---- request building -------------------------------------------------------------------------

namespace {

void prefix_think(api::message& m, const std::string& reasoning) {
    std::string tagged = "<think>" + reasoning + "</think>";
    if (!m.parts.empty()) {
        auto first = m.parts.begin();
        if (first->type == api::content_part::kind::text) {
            first->text.insert(0, tagged);
        } else {
            m.parts.insert(
                first,
                api::content_part{.type = api::content_part::kind::text, .text = std::move(tagged)}
            );
        }
        return;
    }
    m.content = std::move(tagged) + m.content.value_or(std::string{});
}

} // namespace

std::vector<api::message> build_request_messages(
    std::vector<api::message> messages,
    const replay_options& opts,
    std::vector<history_repair>* repairs
) {
    auto fixed = repair_history(messages);
    if (repairs) {
        *repairs = std::move(fixed);
    }

    std::size_t first_current = 0; // assistant messages at or after this index are "current turn"
    for (std::size_t i = messages.size(); i-- > 0;) {
        if (messages[i].role == api::role::user) {
            first_current = i + 1;
            break;
        }
    }
    const reasoning_carrier carrier = opts.effective_carrier();

    for (std::size_t i = 0; i < messages.size(); ++i) {
        auto& m = messages[i];
        if (m.role != api::role::assistant) {
            m.reasoning.reset();
            m.tool_calls.clear();
        }
        if (m.role != api::role::tool) {
            m.tool_call_id.reset();
        } else if (!m.content && m.parts.empty()) {
            m.content.emplace(); // content is required on tool messages
        }
        if (m.role != api::role::assistant) {
            continue;
        }

        std::optional<std::string> reasoning = std::move(m.reasoning);
        m.reasoning.reset();
        const bool keep = reasoning && !reasoning->empty() && carrier != reasoning_carrier::none &&
                          (opts.mode == replay_mode::preserve_all ||
                           (opts.mode == replay_mode::current_turn && i >= first_current));

        if (!m.tool_calls.empty()) {
            // An assistant turn that only calls tools has no content key at all.
            if (m.parts.empty() && m.content && m.content->empty()) {
                m.content.reset();
            }
        }
        if (keep) {
            if (carrier == reasoning_carrier::field) {
                m.reasoning = std::move(reasoning);
            } else {
                prefix_think(m, *reasoning);
            }
        }
        if (m.tool_calls.empty() && m.parts.empty() && !m.content) {
            m.content.emplace(); // without tool calls an assistant message needs content
        }
    }
    return messages;
}

std::vector<api::message> build_request_messages(
    const conversation& c, const replay_options& opts, std::vector<history_repair>* repairs
) {
    return build_request_messages(c.messages(), opts, repairs);
}

} // namespace wafer
