// The sans-io parts of `wafer batch` (batch.hpp).
#include <algorithm>
#include <cctype>
#include <cstdio>
#include <stdexcept>

#include "batch.hpp"

namespace wafer::cli {

void line_splitter::feed(std::string_view chunk, std::vector<line>& out) {
    while (!chunk.empty()) {
        const auto nl = chunk.find('\n');
        const std::string_view part = chunk.substr(0, nl);
        bytes_ += part.size();
        if (!oversized_ && current_.size() + part.size() > limit_) {
            // Over the limit: what was kept goes, the rest is only counted.
            oversized_ = true;
            std::string().swap(current_);
        }
        if (!oversized_) {
            current_.append(part);
        }
        if (nl == std::string_view::npos) {
            return;
        }
        out.push_back(take());
        chunk.remove_prefix(nl + 1);
    }
}

std::optional<line_splitter::line> line_splitter::finish() {
    if (current_.empty() && !oversized_ && bytes_ == 0) {
        return std::nullopt;
    }
    line last = take();
    last.terminated = false;
    return last;
}

line_splitter::line line_splitter::take() {
    line l;
    l.number = number_++;
    l.oversized = oversized_;
    l.bytes = bytes_;
    if (!oversized_) {
        l.text = std::move(current_);
    }
    current_.clear();
    bytes_ = 0;
    oversized_ = false;
    return l;
}

std::string batch_spec::line_id(std::size_t line_number) {
    return "line-" + std::to_string(line_number);
}

namespace {

constexpr std::size_t max_id_bytes = 256;

bool blank(std::string_view s) {
    return std::all_of(s.begin(), s.end(), [](unsigned char c) { return std::isspace(c) != 0; });
}

std::string type_of(const nlohmann::json& j) {
    return std::string(j.type_name());
}

} // namespace

std::variant<batch_spec, std::string> parse_batch_line(std::string_view text, std::size_t number) {
    if (blank(text)) {
        return std::string("empty line");
    }
    nlohmann::json j = nlohmann::json::parse(text, nullptr, false);
    if (j.is_discarded()) {
        return std::string("not valid JSON");
    }
    batch_spec spec;
    if (j.is_string()) {
        spec.id = batch_spec::line_id(number);
        spec.input = j.get<std::string>();
        if (blank(spec.input)) {
            return std::string("the prompt is empty");
        }
        return spec;
    }
    if (!j.is_object()) {
        return "a line is a JSON string (a prompt) or an object (a run spec), not " + type_of(j);
    }
    static const std::set<std::string> known = {
        "id", "input", "model", "system", "max_completion_tokens", "response_format", "tools"};
    for (const auto& [key, value] : j.items()) {
        if (!known.contains(key)) {
            return "unknown key \"" + key +
                   "\" (known: id, input, model, system, max_completion_tokens, "
                   "response_format, tools)";
        }
    }
    const auto want_string = [&](const char* key, bool non_empty) -> std::optional<std::string> {
        const auto& v = j[key];
        if (!v.is_string()) {
            return std::string("\"") + key + "\" must be a string, not " + type_of(v);
        }
        if (non_empty && blank(v.get_ref<const std::string&>())) {
            return std::string("\"") + key + "\" is empty";
        }
        return std::nullopt;
    };
    if (!j.contains("input")) {
        return std::string("no \"input\"");
    }
    if (auto bad = want_string("input", true)) {
        return *bad;
    }
    spec.input = j["input"].get<std::string>();
    if (j.contains("id")) {
        if (auto bad = want_string("id", true)) {
            return *bad;
        }
        spec.id = j["id"].get<std::string>();
        if (spec.id.size() > max_id_bytes) {
            return "\"id\" is longer than " + std::to_string(max_id_bytes) + " bytes";
        }
    } else {
        spec.id = batch_spec::line_id(number);
    }
    if (j.contains("model")) {
        if (auto bad = want_string("model", true)) {
            return *bad;
        }
        spec.model = j["model"].get<std::string>();
    }
    if (j.contains("system")) {
        if (auto bad = want_string("system", false)) {
            return *bad;
        }
        spec.system = j["system"].get<std::string>();
    }
    if (j.contains("max_completion_tokens")) {
        const auto& v = j["max_completion_tokens"];
        if (!v.is_number_integer() || v.get<std::int64_t>() < 1 ||
            v.get<std::int64_t>() > 10'000'000) {
            return std::string("\"max_completion_tokens\" must be an integer from 1 to 10000000");
        }
        spec.max_completion_tokens = v.get<std::int64_t>();
    }
    if (j.contains("response_format")) {
        const auto& v = j["response_format"];
        const bool typed = v.is_object() && v.contains("type") && v["type"].is_string();
        const std::string type = typed ? v["type"].get<std::string>() : "";
        if (type != "text" && type != "json_object" && type != "json_schema") {
            return std::string(
                "\"response_format\" must be an object with \"type\" text, json_object or "
                "json_schema"
            );
        }
        const auto& js = type == "json_schema" ? v.value("json_schema", nlohmann::json()) : v;
        const bool named = js.is_object() && js.contains("name") && js["name"].is_string() &&
                           js.contains("schema") && js["schema"].is_object();
        try {
            if (type == "json_schema" && !named) {
                throw std::invalid_argument("json_schema");
            }
            spec.response_format = v.get<api::response_format>();
        } catch (const std::exception&) {
            return std::string(
                "\"response_format\" of type json_schema needs \"json_schema\": {\"name\", "
                "\"schema\"}"
            );
        }
    }
    if (j.contains("tools")) {
        const auto& v = j["tools"];
        if (!v.is_string() || (v != "builtin" && v != "none")) {
            return std::string("\"tools\" must be \"builtin\" or \"none\"");
        }
        spec.builtin_tools = v == "builtin";
    }
    return spec;
}

bool resume_index::add_line(std::string_view text) {
    nlohmann::json j = nlohmann::json::parse(text, nullptr, false);
    if (j.is_discarded() || !j.is_object() || !j.contains("id") || !j["id"].is_string()) {
        return false;
    }
    if (is_failure(j)) {
        return false; // run again
    }
    // A second line for one id (two batches appended by hand): one is enough.
    return done_.insert(j["id"].get<std::string>()).second;
}

std::vector<std::string> output_order::finished(std::size_t seq, std::string line) {
    std::vector<std::string> out;
    if (!input_order_) {
        if (!line.empty()) {
            out.push_back(std::move(line));
        }
        return out;
    }
    pending_[seq] = std::move(line);
    pop_ready(out);
    return out;
}

void output_order::pop_ready(std::vector<std::string>& out) {
    for (auto it = pending_.begin(); it != pending_.end() && it->first == next_;
         it = pending_.erase(it)) {
        if (!it->second.empty()) {
            out.push_back(std::move(it->second));
        }
        ++next_;
    }
}

std::vector<std::string> output_order::drain() {
    std::vector<std::string> out;
    for (auto& [seq, line] : pending_) {
        if (!line.empty()) {
            out.push_back(std::move(line));
        }
    }
    pending_.clear();
    return out;
}

namespace {

double ms(std::chrono::microseconds d) {
    return static_cast<double>(d.count()) / 1000.0;
}

// "rate limited" -> "rate_limited": an error code from the error's message.
std::string slug(std::string s) {
    for (char& c : s) {
        c = std::isalnum(static_cast<unsigned char>(c)) ? static_cast<char>(std::tolower(c)) : '_';
    }
    return s;
}

} // namespace

nlohmann::json
result_json(const batch_outcome& o, const std::function<std::string(const run_error&)>& describe) {
    const run_result& r = o.result;
    nlohmann::json j;
    j["id"] = o.id;
    const bool completed = r.stop_reason == stop_reason::completed;
    if (completed && o.wants_json && r.final_json) {
        j["json"] = *r.final_json;
    } else {
        j["text"] = r.final_text;
    }
    j["usage"] = r.usage;
    j["stop_reason"] = std::string(to_string(r.stop_reason));
    if (o.finish != api::finish_reason::none) {
        j["finish_reason"] = std::string(api::to_string(o.finish));
    }
    j["queue_wait_ms"] = ms(r.queue_wait);
    j["duration_ms"] = ms(r.duration);
    if (r.stop_reason == stop_reason::error) {
        nlohmann::json e;
        if (r.error) {
            e["code"] = !r.error->diagnostics.code.empty() ? r.error->diagnostics.code
                                                           : slug(r.error->code.message());
            if (r.error->diagnostics.http_status != 0) {
                e["http_status"] = r.error->diagnostics.http_status;
            }
            e["message"] = describe(*r.error);
        } else {
            e["code"] = "error";
            e["message"] = "the run failed";
        }
        j["error"] = std::move(e);
    } else if (!completed) {
        j["error"] = {
            {"code", std::string(to_string(r.stop_reason))},
            {"message", "the run stopped before a final answer"}};
    } else if (o.wants_json && !r.final_json) {
        j["error"] = {{"code", "invalid_json"}, {"message", "the answer is not valid JSON"}};
    }
    return j;
}

std::string progress_text(const batch_progress& p) {
    std::string s = std::to_string(p.done) + " done, " + std::to_string(p.failed) + " failed, " +
                    std::to_string(p.running) + " running, " + std::to_string(p.queued) + " queued";
    const double secs = static_cast<double>(p.elapsed.count()) / 1000.0;
    if (secs > 0) {
        char rate[32];
        std::snprintf(rate, sizeof rate, "%.0f", static_cast<double>(p.tokens) / secs);
        s += std::string(" | ") + rate + " tok/s";
    }
    const std::size_t finished = p.done + p.failed;
    const std::size_t left = p.running + p.queued;
    if (finished > 0 && left > 0) {
        const auto eta = static_cast<long long>(
            secs * static_cast<double>(left) / static_cast<double>(finished) + 0.5
        );
        s += " | ETA " + (eta >= 60 ? std::to_string(eta / 60) + "m" : std::string()) +
             (eta >= 60 && eta % 60 < 10 ? "0" : "") + std::to_string(eta % 60) + "s";
    }
    return s;
}

} // namespace wafer::cli
