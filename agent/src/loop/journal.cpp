#include "loop/journal.hpp"

#include <wafer/store/codec.hpp>
#include <wafer/store/error.hpp>
#include <wafer/tools/detail/json_write.hpp>

#include <cerrno>
#include <mutex>
#include <random>
#include <signal.h>
#include <unistd.h>

namespace wafer::detail {

using nlohmann::json;

namespace {

std::string_view failure_name(model_failure f) {
    switch (f) {
    case model_failure::error:
        return "error";
    case model_failure::cancelled:
        return "cancelled";
    case model_failure::run_deadline:
        return "run_deadline";
    case model_failure::turn_timeout:
        return "turn_timeout";
    }
    return "error";
}

model_failure failure_of(const std::string& s) {
    if (s == "run_deadline") {
        return model_failure::run_deadline;
    }
    if (s == "turn_timeout") {
        return model_failure::turn_timeout;
    }
    if (s == "error") {
        return model_failure::error;
    }
    throw json::other_error::create(501, "unknown model failure \"" + s + "\"", nullptr);
}

store::journal_entry entry(std::string_view kind, const json& body) {
    store::journal_entry e;
    e.kind = std::string(kind);
    e.body = body.dump();
    return e;
}

// ---- The entries of every turn, written without a JSON tree -----------------------------------
// Byte for byte what entry() writes for the same body (nlohmann's dump: keys in sorted order,
// floats in its shortest form): the body written is the codec's, only cheaper. Each put_* is
// false where it does not apply (invalid UTF-8, content parts): the caller then builds the tree.

// `,"key":` (or `"key":` first); keys are plain ASCII literals.
void put_key(std::string& out, std::string_view key, bool& first) {
    if (!first) {
        out += ',';
    }
    first = false;
    out += '"';
    out += key;
    out += "\":";
}

bool put_text(std::string& out, std::string_view key, std::string_view value, bool& first) {
    put_key(out, key, first);
    return put_string(out, value);
}

void put_double(std::string& out, double v) {
    out += json(v).dump();
}

bool put_message(std::string& out, const api::message& m) {
    if (!m.parts.empty()) {
        return false;
    }
    bool first = true;
    out += '{';
    if ((m.content && !put_text(out, "content", *m.content, first)) ||
        (m.name && !put_text(out, "name", *m.name, first)) ||
        (m.reasoning && !put_text(out, "reasoning", *m.reasoning, first)) ||
        !put_text(out, "role", api::to_string(m.role), first) ||
        (m.tool_call_id && !put_text(out, "tool_call_id", *m.tool_call_id, first))) {
        return false;
    }
    if (!m.tool_calls.empty()) {
        put_key(out, "tool_calls", first);
        out += '[';
        for (std::size_t i = 0; i < m.tool_calls.size(); ++i) {
            const auto& c = m.tool_calls[i];
            out += i == 0 ? "{\"function\":{\"arguments\":" : ",{\"function\":{\"arguments\":";
            if (!put_string(out, c.arguments)) {
                return false;
            }
            out += ",\"name\":";
            if (!put_string(out, c.name)) {
                return false;
            }
            out += "},\"id\":";
            if (!put_string(out, c.id)) {
                return false;
            }
            out += ",\"type\":\"function\"}";
        }
        out += ']';
    }
    out += '}';
    return true;
}

void put_usage(std::string& out, const api::usage& u) {
    out += "{\"completion_tokens\":";
    put_int(out, u.completion_tokens);
    out += ",\"completion_tokens_details\":{\"accepted_prediction_tokens\":";
    put_int(out, u.accepted_prediction_tokens);
    out += ",\"reasoning_tokens\":";
    put_int(out, u.reasoning_tokens);
    out += ",\"rejected_prediction_tokens\":";
    put_int(out, u.rejected_prediction_tokens);
    out += "},\"prompt_tokens\":";
    put_int(out, u.prompt_tokens);
    out += ",\"prompt_tokens_details\":{\"cached_tokens\":";
    put_int(out, u.cached_tokens);
    out += "},\"total_tokens\":";
    put_int(out, u.total_tokens);
    out += '}';
}

void put_time_info(std::string& out, const api::time_info& t) {
    out += "{\"completion_time\":";
    put_double(out, t.completion_time);
    out += ",\"created\":";
    put_double(out, t.created);
    out += ",\"prompt_time\":";
    put_double(out, t.prompt_time);
    out += ",\"queue_time\":";
    put_double(out, t.queue_time);
    out += ",\"total_time\":";
    put_double(out, t.total_time);
    out += '}';
}

bool put_reply(std::string& out, const model_reply& r) {
    bool first = true;
    out += '{';
    if (!put_text(out, "finish_reason", api::to_string(r.finish_reason), first)) {
        return false;
    }
    put_key(out, "message", first);
    if (!put_message(out, r.message) || !put_text(out, "model_id", r.model_id, first) ||
        !put_text(out, "response_id", r.response_id, first)) {
        return false;
    }
    if (r.time_info) {
        put_key(out, "time_info", first);
        put_time_info(out, *r.time_info);
    }
    if (r.usage) {
        put_key(out, "usage", first);
        put_usage(out, *r.usage);
    }
    out += '}';
    return true;
}

bool put_tool_result(std::string& out, const tools::tool_result& r) {
    bool first = true;
    out += '{';
    if (!put_text(out, "content", r.content, first)) {
        return false;
    }
    out += r.is_error ? ",\"is_error\":true" : ",\"is_error\":false";
    if (!put_text(out, "name", r.name, first) ||
        !put_text(out, "status", to_string(r.status), first) ||
        !put_text(out, "tool_call_id", r.tool_call_id, first)) {
        return false;
    }
    out += r.truncated ? ",\"truncated\":true}" : ",\"truncated\":false}";
    return true;
}

// The body of a model_reply entry, or nullopt (then the tree writes it).
std::optional<std::string> reply_body(const model_done& m) {
    std::string out;
    const auto size_of = [](const std::optional<std::string>& t) {
        return t ? t->size() : 0;
    };
    out.reserve(256 + size_of(m.reply->message.content) + size_of(m.reply->message.reasoning));
    out += "{\"op\":";
    put_int(out, m.op);
    if (m.summary) {
        out += ",\"purpose\":\"summary\"";
    }
    out += ",\"reply\":";
    if (!put_reply(out, *m.reply)) {
        return std::nullopt;
    }
    out += ",\"took_us\":";
    put_int(out, m.took.count());
    out += '}';
    return out;
}

std::optional<std::string> tool_result_body(const tool_finished& t) {
    std::string out;
    out.reserve(160 + t.result.content.size());
    out += "{\"k\":";
    put_int(out, t.k);
    out += ",\"op\":";
    put_int(out, t.op);
    out += ",\"result\":";
    if (!put_tool_result(out, t.result)) {
        return std::nullopt;
    }
    out += ",\"took_us\":";
    put_int(out, t.took.count());
    out += '}';
    return out;
}

store::journal_entry text_entry(std::string_view kind, std::string body) {
    store::journal_entry e;
    e.kind = std::string(kind);
    e.body = std::move(body);
    return e;
}

std::uint32_t op_of(const json& j) {
    return j.at("op").get<std::uint32_t>();
}

json pending_json(const pending_approval& p) {
    json j = {
        {"call_id", p.call_id}, {"tool", p.tool}, {"arguments", p.arguments}, {"turn", p.turn}};
    if (!p.run_id.empty()) {
        j["run_id"] = p.run_id; // a child's call (absent in journals before child runs)
    }
    return j;
}

pending_approval pending_from(const json& j) {
    return {
        j.at("call_id").get<std::string>(),
        j.at("tool").get<std::string>(),
        j.at("arguments").get<std::string>(),
        j.at("turn").get<std::size_t>(),
        j.value("run_id", std::string())};
}

json pending_list(const std::vector<pending_approval>& pending) {
    json list = json::array();
    for (const auto& p : pending) {
        list.push_back(pending_json(p));
    }
    return list;
}

stop_reason stop_reason_of(const std::string& s) {
    for (int i = 0; i <= static_cast<int>(stop_reason::handoff); ++i) {
        if (to_string(static_cast<stop_reason>(i)) == s) {
            return static_cast<stop_reason>(i);
        }
    }
    throw json::other_error::create(501, "unknown stop reason \"" + s + "\"", nullptr);
}

json child_json(const child_run& c) {
    return {
        {"run_id", c.run_id},
        {"agent", c.agent},
        {"tool", c.tool},
        {"call_id", c.call_id},
        {"stop_reason", to_string(c.stop_reason)},
        {"turns", c.turns},
        {"usage", c.usage}};
}

child_run child_from(const json& j) {
    child_run c;
    c.run_id = j.at("run_id").get<std::string>();
    c.agent = j.value("agent", std::string());
    c.tool = j.value("tool", std::string());
    c.call_id = j.value("call_id", std::string());
    c.stop_reason = stop_reason_of(j.at("stop_reason").get<std::string>());
    c.turns = j.value("turns", std::size_t{0});
    if (const auto it = j.find("usage"); it != j.end()) {
        c.usage = it->get<api::usage>();
    }
    return c;
}

} // namespace

bool journaled(const report& r, bool cancelling) {
    if (cancelling) {
        return false;
    }
    if (const auto* m = std::get_if<model_done>(&r)) {
        return m->why != model_failure::cancelled || m->reply.has_value();
    }
    if (const auto* t = std::get_if<tool_finished>(&r)) {
        return t->result.status != tools::result_status::cancelled;
    }
    if (std::holds_alternative<child_resumed>(r)) {
        return true;
    }
    if (const auto* d = std::get_if<dispatch_done>(&r)) {
        return !d->cancelled;
    }
    return std::holds_alternative<review_done>(r) || std::holds_alternative<approval_given>(r);
}

store::journal_entry journal_entry_of(const report& r) {
    if (const auto* m = std::get_if<model_done>(&r)) {
        if (m->reply) {
            if (auto text = reply_body(*m)) {
                return text_entry(journal_kind::model_reply, std::move(*text));
            }
            json body = {{"op", m->op}, {"reply", *m->reply}, {"took_us", m->took.count()}};
            if (m->summary) {
                body["purpose"] = "summary";
            }
            return entry(journal_kind::model_reply, body);
        }
        json body = {{"op", m->op}, {"why", failure_name(m->why)}, {"took_us", m->took.count()}};
        if (m->summary) {
            body["purpose"] = "summary";
        }
        if (m->error) {
            body["error"] = *m->error;
        }
        return entry(journal_kind::model_failed, body);
    }
    if (const auto* t = std::get_if<tool_finished>(&r)) {
        if (!t->child) {
            if (auto text = tool_result_body(*t)) {
                return text_entry(journal_kind::tool_result, std::move(*text));
            }
        }
        json body = {
            {"op", t->op}, {"k", t->k}, {"result", t->result}, {"took_us", t->took.count()}};
        if (!t->child) {
            return entry(journal_kind::tool_result, body);
        }
        body["child"] = child_json(*t->child);
        if (t->child_pending.empty()) {
            return entry(journal_kind::child_finished, body);
        }
        body["pending"] = pending_list(t->child_pending);
        return entry(journal_kind::child_paused, body);
    }
    if (const auto* c = std::get_if<child_resumed>(&r)) {
        return entry(journal_kind::child_resumed, {{"call_id", c->call_id}});
    }
    if (const auto* d = std::get_if<dispatch_done>(&r)) {
        if (!d->failure) {
            std::string text = "{\"op\":";
            put_int(text, d->op);
            text += '}';
            return text_entry(journal_kind::dispatch_done, std::move(text));
        }
        json body = {{"op", d->op}};
        if (d->failure) {
            body["failure"] = *d->failure;
        }
        return entry(journal_kind::dispatch_done, body);
    }
    if (const auto* a = std::get_if<approval_given>(&r)) {
        return approval_entry(a->call_id, a->decision, a->run_id);
    }
    const auto& v = std::get<review_done>(r);
    return entry(journal_kind::review, {{"op", v.op}, {"review", v.review}});
}

store::journal_entry
approval_entry(const std::string& call_id, const approval_decision& d, const std::string& run_id) {
    json body = {{"call_id", call_id}, {"approved", d.approved}, {"message", d.message}};
    if (d.arguments) {
        body["arguments"] = *d.arguments;
    }
    if (!run_id.empty()) {
        body["run_id"] = run_id;
    }
    return entry(journal_kind::approval, body);
}

std::vector<pending_approval> pending_in(const std::vector<store::journal_entry>& journal) {
    std::vector<pending_approval> out;
    for (const auto& e : journal) {
        if (e.kind == journal_kind::stopped) {
            out.clear();
            const json j = json::parse(e.body);
            if (const auto it = j.find("pending"); it != j.end()) {
                for (const auto& p : *it) {
                    out.push_back(pending_from(p));
                }
            }
        } else if (e.kind == journal_kind::approval) {
            const json j = json::parse(e.body);
            const std::string id = j.at("call_id").get<std::string>();
            const std::string run = j.value("run_id", std::string());
            std::erase_if(out, [&](const pending_approval& p) {
                return p.call_id == id && p.run_id == run;
            });
        } else if (e.kind != journal_kind::follow_up) {
            out.clear(); // the run went on after its stop
        }
    }
    return out;
}

store::journal_entry dispatch_entry(
    std::uint32_t op,
    const dispatch_job& job,
    const std::vector<std::pair<std::string, std::string>>& children
) {
    if (children.empty()) {
        std::string text = "{\"calls\":[";
        bool ok = true;
        for (std::size_t i = 0; i < job.requests.size() && ok; ++i) {
            if (i > 0) {
                text += ',';
            }
            ok = put_string(text, job.requests[i].id);
        }
        if (ok) {
            text += "],\"op\":";
            put_int(text, op);
            text += ",\"turn\":";
            put_int(text, job.turn);
            text += '}';
            return text_entry(journal_kind::dispatch, std::move(text));
        }
    }
    json ids = json::array();
    for (const auto& c : job.requests) {
        ids.push_back(c.id);
    }
    json body = {{"op", op}, {"turn", job.turn}, {"calls", ids}};
    if (!children.empty()) {
        // "Child started": the child's run id per call, synced with the dispatch before any
        // child runs.
        json map = json::object();
        for (const auto& [call, run] : children) {
            map[call] = run;
        }
        body["children"] = std::move(map);
    }
    return entry(journal_kind::dispatch, body);
}

store::journal_entry follow_up_entry(const std::string& message) {
    return entry(journal_kind::follow_up, {{"message", message}});
}

store::journal_entry stopped_entry(stop_reason why, const std::vector<pending_approval>& pending) {
    if (pending.empty()) {
        std::string text = "{\"stop_reason\":";
        put_string(text, to_string(why)); // an ASCII name
        text += '}';
        return text_entry(journal_kind::stopped, std::move(text));
    }
    json body = {{"stop_reason", to_string(why)}};
    if (!pending.empty()) {
        body["pending"] = pending_list(pending);
    }
    return entry(journal_kind::stopped, body);
}

report report_of(const store::journal_entry& e) {
    const json j = json::parse(e.body);
    if (e.kind == journal_kind::model_reply) {
        model_done d;
        d.op = op_of(j);
        d.reply = j.at("reply").get<model_reply>();
        d.took = std::chrono::microseconds(j.at("took_us").get<std::int64_t>());
        return d;
    }
    if (e.kind == journal_kind::model_failed) {
        model_done d;
        d.op = op_of(j);
        d.why = failure_of(j.at("why").get<std::string>());
        d.took = std::chrono::microseconds(j.at("took_us").get<std::int64_t>());
        if (j.contains("error")) {
            d.error = j.at("error").get<run_error>();
        }
        return d;
    }
    if (e.kind == journal_kind::tool_result || e.kind == journal_kind::child_finished ||
        e.kind == journal_kind::child_paused) {
        tool_finished t;
        t.op = op_of(j);
        t.k = j.at("k").get<std::size_t>();
        t.result = j.at("result").get<tools::tool_result>();
        t.took = std::chrono::microseconds(j.at("took_us").get<std::int64_t>());
        if (e.kind != journal_kind::tool_result) {
            t.child = child_from(j.at("child"));
        }
        if (e.kind == journal_kind::child_paused) {
            for (const auto& p : j.at("pending")) {
                t.child_pending.push_back(pending_from(p));
            }
        }
        return t;
    }
    if (e.kind == journal_kind::child_resumed) {
        return child_resumed{j.at("call_id").get<std::string>()};
    }
    if (e.kind == journal_kind::dispatch_done) {
        dispatch_done d;
        d.op = op_of(j);
        if (j.contains("failure")) {
            d.failure = j.at("failure").get<std::string>();
        }
        return d;
    }
    if (e.kind == journal_kind::review) {
        return review_done{op_of(j), j.at("review").get<critic_review>()};
    }
    if (e.kind == journal_kind::approval) {
        approval_given a;
        a.call_id = j.at("call_id").get<std::string>();
        a.decision.approved = j.at("approved").get<bool>();
        a.decision.message = j.value("message", std::string());
        a.run_id = j.value("run_id", std::string());
        if (const auto it = j.find("arguments"); it != j.end()) {
            a.decision.arguments = it->get<std::string>();
        }
        return a;
    }
    throw json::other_error::create(501, "unknown journal entry kind \"" + e.kind + "\"", nullptr);
}

std::string setup_text(const run_setup& s, const json& metadata) {
    json j = {{"version", 1}, {"run_id", s.run_id}, {"input", s.input}, {"history", nullptr}};
    if (s.history) {
        j["history"] = *s.history;
    }
    if (!metadata.is_null()) {
        j["metadata"] = metadata;
    }
    return j.dump();
}

void read_setup(std::string_view text, run_setup& s) {
    const json j = json::parse(text);
    if (j.at("version").get<int>() != 1) {
        throw json::other_error::create(501, "unknown setup version", &j);
    }
    s.run_id = j.at("run_id").get<std::string>();
    s.input = j.at("input").get<std::string>();
    if (!j.at("history").is_null()) {
        s.history = j.at("history").get<wafer::conversation>();
    }
}

std::string make_lease_owner() {
    // The host, pid and salt are computed once per process (again in a forked child):
    // random_device is far too slow to open per run. The counter keeps two drivers of one
    // process apart, so that the same run is never driven twice even within one process.
    struct cached {
        pid_t pid = 0;
        std::string owner;
        std::uint64_t next = 0;
    };
    static std::mutex m;
    static cached c;
    std::lock_guard lock(m);
    const pid_t pid = ::getpid();
    if (c.pid != pid) {
        char host[256] = {};
        if (::gethostname(host, sizeof(host) - 1) != 0) {
            host[0] = '\0';
        }
        std::random_device rd;
        const auto salt = (static_cast<std::uint64_t>(rd()) << 32U) ^ rd();
        char buf[32];
        std::snprintf(buf, sizeof(buf), "%016llx", static_cast<unsigned long long>(salt));
        c.owner = std::string(host) + ":" + std::to_string(pid) + ":" + buf;
        c.pid = pid;
    }
    return c.owner + ":" + std::to_string(++c.next);
}

bool lease_owner_is_dead(const std::string& owner) {
    const auto first = owner.find(':');
    const auto second = first == std::string::npos ? first : owner.find(':', first + 1);
    if (second == std::string::npos) {
        return false;
    }
    char host[256] = {};
    if (::gethostname(host, sizeof(host) - 1) != 0 || owner.compare(0, first, host) != 0) {
        return false; // another machine's process: only its lease's expiry tells
    }
    const std::string pid_text = owner.substr(first + 1, second - first - 1);
    if (pid_text.empty() || pid_text.find_first_not_of("0123456789") != std::string::npos ||
        pid_text.size() > 9) {
        return false;
    }
    const auto pid = static_cast<pid_t>(std::stol(pid_text));
    return pid > 0 && pid != ::getpid() && ::kill(pid, 0) != 0 && errno == ESRCH;
}

journal_writer::journal_writer(
    std::shared_ptr<store::run_store> store,
    std::string run_id,
    std::string owner,
    std::chrono::milliseconds lease_ttl
)
    : store_(std::move(store)), run_id_(std::move(run_id)), owner_(std::move(owner)),
      lease_ttl_(lease_ttl) {}

boost::asio::awaitable<void> journal_writer::async_flush(store::run_update update) {
    co_await async_keep_lease();
    std::vector<store::journal_entry> entries = std::move(pending_);
    pending_.clear();
    // Synced: what makes calls start (a dispatch), decisions, and a run's end. Results, replies
    // and verdicts ride along with the next synced commit: lost to a power loss, they are
    // asked again (a reply, a verdict) or leave their call in doubt (a result), never repeated.
    update.sync = update.status.has_value() || update.release_lease ||
                  std::any_of(entries.begin(), entries.end(), [](const store::journal_entry& e) {
                      return e.kind == journal_kind::dispatch || e.kind == journal_kind::approval ||
                             e.kind == journal_kind::stopped || e.kind == journal_kind::follow_up;
                  });
    co_await store_->async_append(run_id_, owner_, std::move(entries), std::move(update));
}

boost::asio::awaitable<void> journal_writer::async_keep_lease() {
    if (clock_type::now() < renew_at_) {
        co_return;
    }
    const bool ok = co_await store_->async_acquire_lease(run_id_, owner_, lease_ttl_);
    if (!ok) {
        store::throw_error(
            store::errc::lease_held,
            "run " + run_id_ + ": another process took the run over (its lease expired)"
        );
    }
    leased_now();
}

boost::asio::awaitable<void> journal_writer::async_release() {
    co_await store_->async_release_lease(run_id_, owner_);
}

} // namespace wafer::detail
