// The compaction strategies: pure functions from a history to an edit.
#include <wafer/compaction.hpp>

#include <algorithm>
#include <cctype>
#include <map>
#include <string>
#include <unordered_map>

namespace wafer {

namespace {

// A cut at or before `at` that does not split a UTF-8 sequence.
std::size_t utf8_floor(std::string_view s, std::size_t at) {
    at = std::min(at, s.size());
    while (at > 0 && at < s.size() && (static_cast<unsigned char>(s[at]) & 0xC0) == 0x80) {
        --at;
    }
    return at;
}

std::size_t count_lines(std::string_view s) {
    return static_cast<std::size_t>(std::count(s.begin(), s.end(), '\n'));
}

api::message with_text(const api::message& m, std::string text) {
    api::message out = m;
    out.parts.clear();
    out.content = std::move(text);
    return out;
}

// The tool call each tool message answers: result index -> (assistant index, call index).
struct call_ref {
    std::size_t assistant = 0;
    std::size_t call = 0;
};
std::unordered_map<std::size_t, call_ref> calls_of_results(const conversation& c) {
    std::unordered_map<std::size_t, call_ref> out;
    std::unordered_map<std::string, call_ref> open;
    const auto& ms = c.messages();
    for (std::size_t i = 0; i < ms.size(); ++i) {
        const auto& m = ms[i];
        if (m.role == api::role::assistant) {
            open.clear();
            for (std::size_t k = 0; k < m.tool_calls.size(); ++k) {
                open.emplace(m.tool_calls[k].id, call_ref{i, k});
            }
        } else if (m.role == api::role::tool && m.tool_call_id) {
            if (auto it = open.find(*m.tool_call_id); it != open.end()) {
                out.emplace(i, it->second);
            }
        }
    }
    return out;
}

const api::tool_call* call_of(
    const conversation& c, const std::unordered_map<std::size_t, call_ref>& refs, std::size_t i
) {
    auto it = refs.find(i);
    if (it == refs.end()) {
        return nullptr;
    }
    return &c.messages()[it->second.assistant].tool_calls[it->second.call];
}

constexpr std::string_view wafer_mark = "[wafer: ";

// summary_request shows at most this much of one text (head and tail).
constexpr std::size_t per_message_chars = 2'000;

// What a message adds to a summary transcript, about.
std::size_t transcript_chars(const api::message& m) {
    std::size_t n = 48 + std::min(m.text().size(), per_message_chars + 64);
    for (const auto& call : m.tool_calls) {
        n += 8 + call.name.size() + std::min(call.arguments.size(), per_message_chars + 64);
    }
    return n;
}

} // namespace

bool is_protected(const conversation& c, std::size_t i) noexcept {
    const auto& m = c.messages()[i];
    switch (m.role) {
    case api::role::system:
    case api::role::developer:
        return true;
    case api::role::user:
        return !c.meta()[i].synthetic;
    default:
        return false;
    }
}

std::size_t
kept_tail_start(const conversation& c, std::size_t keep_pairs, std::size_t max_chars) noexcept {
    const auto& ms = c.messages();
    if (keep_pairs == 0) {
        return ms.size();
    }
    const replay_options all{};
    std::size_t seen = 0;
    std::size_t chars = 0;
    std::size_t start = ms.size(); // the start of the last step taken in
    for (std::size_t i = ms.size(); i-- > 0;) {
        chars += request_chars(ms[i], all);
        if (ms[i].role != api::role::assistant || ms[i].tool_calls.empty()) {
            continue;
        }
        // A step begins here: it joins the tail if there is room (the first always does).
        if (seen > 0 && chars > max_chars) {
            return start;
        }
        start = i;
        seen += ms[i].tool_calls.size();
        if (seen >= keep_pairs) {
            return start;
        }
    }
    return 0; // fewer results than that: everything is kept
}

history_edit clamp_tool_results(
    const conversation& c, std::size_t max_chars, std::size_t tail_at, std::size_t tail_max_chars
) {
    history_edit edit;
    const auto& ms = c.messages();
    for (std::size_t i = 0; i < ms.size(); ++i) {
        if (ms[i].role != api::role::tool) {
            continue;
        }
        const std::string text = ms[i].text();
        const std::size_t cap = i >= tail_at && tail_max_chars > 0 ? tail_max_chars : max_chars;
        if (text.size() <= cap) {
            continue;
        }
        const std::size_t head_budget = cap * 3 / 5;
        const std::size_t tail_budget = cap * 3 / 10;
        // Cut at line ends where there is one near, so that the marker can name lines.
        std::size_t head = utf8_floor(text, head_budget);
        if (auto nl = text.rfind('\n', head); nl != std::string::npos && nl > head / 2) {
            head = nl + 1;
        }
        std::size_t tail = utf8_floor(text, text.size() - tail_budget);
        if (auto nl = text.find('\n', tail);
            nl != std::string::npos && nl < text.size() - tail_budget / 2) {
            tail = nl + 1;
        }
        tail = std::max(tail, head);
        const std::string_view t(text);
        const std::size_t first_line = count_lines(t.substr(0, head)) + 1;
        const std::size_t omitted_lines = count_lines(t.substr(head, tail - head));
        std::string out(t.substr(0, head));
        out += "\n";
        out += wafer_mark;
        out += std::to_string(tail - head);
        out += " of ";
        out += std::to_string(text.size());
        out += " characters of this result were left out to fit the context window";
        if (omitted_lines > 0) {
            out += " (lines ";
            out += std::to_string(first_line);
            out += "-";
            out += std::to_string(first_line + omitted_lines - 1);
            out += ")";
        }
        out += ". To see them, call the tool again for just that part: a line range, a narrower "
               "command, a search.]\n";
        out += t.substr(tail);
        edit.rewrites.emplace_back(i, with_text(ms[i], std::move(out)));
    }
    return edit;
}

history_edit
dedupe_reads(const conversation& c, const std::function<bool(std::string_view)>& is_read_only) {
    history_edit edit;
    if (!is_read_only) {
        return edit;
    }
    const auto refs = calls_of_results(c);
    const auto& ms = c.messages();
    // The latest result of each (tool, arguments).
    std::map<std::pair<std::string_view, std::string_view>, std::size_t> latest;
    for (std::size_t i = 0; i < ms.size(); ++i) {
        if (ms[i].role != api::role::tool) {
            continue;
        }
        if (const auto* call = call_of(c, refs, i); call && is_read_only(call->name)) {
            latest[{call->name, call->arguments}] = i;
        }
    }
    for (std::size_t i = 0; i < ms.size(); ++i) {
        if (ms[i].role != api::role::tool) {
            continue;
        }
        const auto* call = call_of(c, refs, i);
        if (!call || !is_read_only(call->name)) {
            continue;
        }
        const std::size_t later = latest[{call->name, call->arguments}];
        if (later == i) {
            continue;
        }
        std::string marker(wafer_mark);
        marker += "superseded: ";
        marker += call->name;
        marker += " was called again with the same arguments; its result is in a later message]";
        if (ms[i].text().size() <= marker.size()) {
            continue;
        }
        edit.rewrites.emplace_back(i, with_text(ms[i], std::move(marker)));
    }
    return edit;
}

history_edit drop_reasoning(const conversation& c, std::size_t tail) {
    history_edit edit;
    const auto& ms = c.messages();
    tail = std::min(tail, ms.size());
    for (std::size_t i = 0; i < tail; ++i) {
        if (ms[i].role == api::role::assistant && ms[i].reasoning && !ms[i].reasoning->empty()) {
            api::message m = ms[i];
            m.reasoning.reset();
            edit.rewrites.emplace_back(i, std::move(m));
        }
    }
    return edit;
}

history_edit clear_tool_results(const conversation& c, std::size_t tail, std::size_t min_chars) {
    history_edit edit;
    const auto& ms = c.messages();
    tail = std::min(tail, ms.size());
    const auto refs = calls_of_results(c);
    for (std::size_t i = 0; i < tail; ++i) {
        if (ms[i].role != api::role::tool) {
            continue;
        }
        const std::string text = ms[i].text();
        if (text.size() < min_chars || text.starts_with(wafer_mark)) {
            continue;
        }
        const auto* call = call_of(c, refs, i);
        std::string marker(wafer_mark);
        marker += "this result (";
        marker += std::to_string(text.size());
        marker += " characters) was cleared to fit the context window; call ";
        marker += call ? std::string_view(call->name) : std::string_view("the tool");
        marker += " again if you need it]";
        edit.rewrites.emplace_back(i, with_text(ms[i], std::move(marker)));
    }
    return edit;
}

std::optional<message_range>
summary_range(const conversation& c, std::size_t tail, std::size_t max_chars) {
    const auto& ms = c.messages();
    tail = std::min(tail, ms.size());
    std::size_t i = 0;
    while (i < tail) {
        if (is_protected(c, i) || ms[i].role == api::role::tool) {
            ++i;
            continue;
        }
        std::size_t j = i;
        std::size_t transcript = 0;
        while (j < tail && !is_protected(c, j)) {
            transcript += transcript_chars(ms[j]);
            if (transcript > max_chars) {
                break;
            }
            ++j;
        }
        // The range must end where a step ends: the first message after it is no result.
        while (j > i && j < ms.size() && ms[j].role == api::role::tool) {
            --j;
        }
        if (j - i >= 2) {
            return message_range{i, j};
        }
        i = std::max(j, i + 1);
    }
    return std::nullopt;
}

api::chat_request summary_request(
    const conversation& c, message_range range, std::string_view prompt, std::int64_t max_tokens
) {
    const auto& ms = c.messages();
    const auto refs = calls_of_results(c);
    const auto excerpt = [](std::string_view text) {
        if (text.size() <= per_message_chars) {
            return std::string(text);
        }
        const std::size_t head = utf8_floor(text, per_message_chars * 2 / 3);
        const std::size_t tail = utf8_floor(text, text.size() - per_message_chars / 3);
        std::string out(text.substr(0, head));
        out += "\n[... ";
        out += std::to_string(tail - head);
        out += " characters left out ...]\n";
        out += text.substr(tail);
        return out;
    };
    std::string transcript;
    for (std::size_t i = 0; i < ms.size(); ++i) {
        if (ms[i].role == api::role::user && !c.meta()[i].synthetic) {
            transcript += "## The task\n";
            transcript += ms[i].text();
            transcript += "\n\n";
            break;
        }
    }
    transcript += "## The transcript to summarise\n";
    for (std::size_t i = range.first; i < range.last && i < ms.size(); ++i) {
        const auto& m = ms[i];
        transcript += "\n### #";
        transcript += std::to_string(i);
        transcript += " ";
        transcript += api::to_string(m.role);
        if (m.role == api::role::tool) {
            if (const auto* call = call_of(c, refs, i)) {
                transcript += " (result of ";
                transcript += call->name;
                transcript += ")";
            }
        }
        transcript += "\n";
        if (auto text = m.text(); !text.empty()) {
            transcript += excerpt(text);
            transcript += "\n";
        }
        for (const auto& call : m.tool_calls) {
            transcript += "call ";
            transcript += call.name;
            transcript += " ";
            transcript += excerpt(call.arguments);
            transcript += "\n";
        }
    }
    api::chat_request req;
    req.messages.push_back(api::message::system(std::string(prompt)));
    req.messages.push_back(api::message::user(std::move(transcript)));
    req.max_completion_tokens = max_tokens;
    return req;
}

history_edit summary_edit(const conversation& c, message_range range, std::string_view summary) {
    history_edit edit;
    while (!summary.empty() && std::isspace(static_cast<unsigned char>(summary.front()))) {
        summary.remove_prefix(1);
    }
    while (!summary.empty() && std::isspace(static_cast<unsigned char>(summary.back()))) {
        summary.remove_suffix(1);
    }
    if (summary.empty() || range.last > c.size() || range.size() == 0) {
        return edit;
    }
    std::string text(wafer_mark);
    text += "a summary of messages #";
    text += std::to_string(range.first);
    text += "-#";
    text += std::to_string(range.last - 1);
    text += " of this session, written to fit the context window; the originals are kept in the "
            "run record]\n\n";
    text += summary;
    const replay_options all{};
    const std::size_t before =
        request_chars(std::span(c.messages()).subspan(range.first, range.size()), all);
    if (text.size() >= before) {
        return edit; // a summary no shorter than the original saves nothing
    }
    edit.first = range.first;
    edit.count = range.size();
    api::message m = api::message::user(std::move(text));
    edit.replacement.push_back(std::move(m));
    return edit;
}

} // namespace wafer
