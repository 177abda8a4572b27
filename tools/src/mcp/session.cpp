#include <wafer/tools/mcp/session.hpp>

#include <algorithm>
#include <charconv>
#include <cstdint>
#include <optional>
#include <system_error>
#include <utility>

#include "mcp/text.hpp"

namespace wafer::tools::mcp {

using nlohmann::json;

namespace {

// The subscriptions/listen a 2026 notification names (`_meta`
// "io.modelcontextprotocol/subscriptionId"); 0 if none or not an integer.
std::int64_t subscription_of(const json& params) {
    if (!params.is_object()) {
        return 0;
    }
    const auto meta = params.find("_meta");
    if (meta == params.end() || !meta->is_object()) {
        return 0;
    }
    const auto id = meta->find("io.modelcontextprotocol/subscriptionId");
    return id != meta->end() && id->is_number_integer() ? id->get<std::int64_t>() : 0;
}

using detail::escaped;
using detail::text_of;

// What a noise event shows of a line: its start, escaped.
std::string excerpt(std::string_view line) {
    return escaped(line, 120);
}

// A result's resultType (2026): absent or "complete" is a plain result; "input_required" is
// for the caller to answer (mrtr.hpp).
bool result_type_known(const nlohmann::json& result) {
    if (!result.is_object()) {
        return true;
    }
    const auto t = result.find("resultType");
    return t == result.end() || *t == "complete" || *t == "input_required";
}

std::string millis(std::chrono::milliseconds ms) {
    return std::to_string(ms.count()) + " ms";
}

} // namespace

session::session(session_config config)
    : config_(std::move(config)), framer_(config_.max_message) {}

void session::send(const std::string& line) {
    output_ += line;
    output_ += '\n';
}

json session::client_capabilities() const {
    json capabilities = json::object();
    if (!config_.roots.empty()) {
        capabilities["roots"] = json{{"listChanged", false}};
    }
    if (config_.elicitation) {
        capabilities["elicitation"] = json{{"form", json::object()}};
    }
    if (config_.sampling) {
        capabilities["sampling"] = json::object();
    }
    return capabilities;
}

void session::start(session_clock::time_point now) {
    if (state_ != state::idle) {
        return;
    }
    state_ = state::initializing;
    if (config_.era == protocol_era::stateless) {
        send_discover();
        pending_[initialize_id_] = {"server/discover", now, now, config_.initialize_limits};
        return;
    }
    if (config_.era == protocol_era::automatic) {
        send_discover();
        const request_limits probe{config_.probe_timeout, config_.probe_timeout};
        pending_[initialize_id_] = {"server/discover", now, now, probe};
        return;
    }
    send_initialize(now);
}

void session::send_initialize(session_clock::time_point now) {
    json params{
        {"protocolVersion", std::string(handshake_versions[0])},
        {"capabilities", client_capabilities()},
        {"clientInfo", {{"name", config_.client_name}, {"version", config_.client_version}}}};
    initialize_id_ = next_id_++;
    send(write_request(initialize_id_, "initialize", std::move(params)));
    pending_[initialize_id_] = {"initialize", now, now, config_.initialize_limits};
}

// The probe found a server of the initialize handshake.
void session::fall_back(session_clock::time_point now) {
    config_.era = protocol_era::dated;
    send_initialize(now);
}

void session::send_discover() {
    initialize_id_ = next_id_++;
    json params = json::object();
    add_request_meta(params);
    send(write_request(initialize_id_, "server/discover", std::move(params)));
}

void session::add_request_meta(json& params) const {
    json& meta = params["_meta"];
    meta["io.modelcontextprotocol/protocolVersion"] = std::string(stateless_version);
    meta["io.modelcontextprotocol/clientCapabilities"] = client_capabilities();
    meta["io.modelcontextprotocol/clientInfo"] =
        json{{"name", config_.client_name}, {"version", config_.client_version}};
}

std::int64_t session::request(
    std::string_view method, json params, session_clock::time_point now, request_options options
) {
    const std::int64_t id = next_id_++;
    if (state_ == state::closed) {
        response_event ev;
        ev.id = id;
        ev.failure = errc::closed;
        ev.detail = "the connection is closed";
        events_.emplace_back(std::move(ev));
        return id;
    }
    if (options.progress || config_.era == protocol_era::stateless) {
        if (params.is_null()) {
            params = json::object();
        }
    }
    if (options.progress && params.is_object()) {
        params["_meta"]["progressToken"] = id;
    }
    if (config_.era == protocol_era::stateless && params.is_object()) {
        add_request_meta(params);
    }
    send(write_request(id, method, std::move(params)));
    pending_[id] = {std::string(method), now, now, options.limits.value_or(limits_)};
    return id;
}

std::int64_t session::listen(const subscriptions& wanted, session_clock::time_point now) {
    if (config_.era != protocol_era::stateless && state_ != state::closed) {
        const std::int64_t id = next_id_++;
        response_event ev;
        ev.id = id;
        ev.failure = errc::protocol;
        ev.detail = "subscriptions/listen is a 2026-07-28 request; this connection speaks " +
                    server_.protocol_version + " (its server sends list_changed unasked)";
        events_.emplace_back(std::move(ev));
        return id;
    }
    json notifications = json::object();
    if (wanted.tools_list_changed) {
        notifications["toolsListChanged"] = true;
    }
    if (wanted.prompts_list_changed) {
        notifications["promptsListChanged"] = true;
    }
    if (wanted.resources_list_changed) {
        notifications["resourcesListChanged"] = true;
    }
    if (!wanted.resources.empty()) {
        notifications["resourceSubscriptions"] = wanted.resources;
    }
    const std::int64_t id =
        request("subscriptions/listen", json{{"notifications", std::move(notifications)}}, now);
    if (const auto it = pending_.find(id); it != pending_.end()) {
        it->second.open_ended = true;
    }
    return id;
}

bool session::listening(std::int64_t id) const noexcept {
    const auto it = pending_.find(id);
    return it != pending_.end() && it->second.open_ended;
}

void session::notify(std::string_view method, json params) {
    if (state_ != state::closed) {
        send(write_notification(method, std::move(params)));
    }
}

void session::cancel(std::int64_t id, std::string_view reason) {
    const auto it = pending_.find(id);
    if (it == pending_.end()) {
        return;
    }
    // initialize must not be cancelled (lifecycle); the connection is dropped instead.
    if (id != initialize_id_) {
        notify("notifications/cancelled", json{{"requestId", id}, {"reason", std::string(reason)}});
    }
    response_event ev;
    ev.id = id;
    ev.failure = errc::cancelled;
    ev.detail = std::string(reason);
    finish(id, std::move(ev));
}

void session::respond(const rpc_id& id, json result, session_clock::time_point now) {
    answered(id, now);
    if (state_ != state::closed) {
        send(write_result(id, std::move(result)));
    }
}

void session::respond_error(const rpc_id& id, rpc_error error, session_clock::time_point now) {
    answered(id, now);
    if (state_ != state::closed) {
        send(write_error(id, std::move(error)));
    }
}

void session::answered(const rpc_id& id, session_clock::time_point now) {
    const auto it = std::find(asking_.begin(), asking_.end(), id);
    if (it == asking_.end()) {
        return;
    }
    asking_.erase(it);
    if (asking_.empty()) {
        // The person answered: the requests they held up wait afresh.
        for (auto& [_, p] : pending_) {
            p.last_sign = std::max(p.last_sign, now);
        }
    }
}

void session::receive(std::string_view bytes, session_clock::time_point now) {
    framer_.feed(bytes);
    while (auto f = framer_.next()) {
        on_frame(*f, now);
    }
}

void session::on_frame(const frame& f, session_clock::time_point now) {
    if (f.type == frame::kind::line) {
        on_line(f.text, now);
        return;
    }
    events_.emplace_back(noise_event{
        "a message of " + std::to_string(f.size) + " bytes, over the limit of " +
        std::to_string(config_.max_message) + ", was dropped"});
    // Its request must not wait for an answer that came and was refused. The framer saw every
    // byte of the line: its top-level "id" wherever it was; else what the head and tail show.
    std::optional<std::int64_t> id;
    const line_members& m = f.members;
    if (m.result && !m.method && !m.id.empty() && m.id.front() != '"') {
        std::int64_t n = 0;
        const auto [end, ec] = std::from_chars(m.id.data(), m.id.data() + m.id.size(), n);
        if (ec == std::errc() && end == m.id.data() + m.id.size()) {
            id = n;
        }
    }
    if (!id && !m.method) {
        id = oversized_response_id(f.text, f.tail);
    }
    if (id && pending_.contains(*id)) {
        abandon(
            *id,
            errc::transport,
            "the answer of " + std::to_string(f.size) + " bytes is over the limit of " +
                std::to_string(config_.max_message) + " bytes"
        );
    }
}

void session::receive_message(std::string_view message, session_clock::time_point now) {
    if (message.size() > config_.max_message) {
        events_.emplace_back(noise_event{
            "a message of " + std::to_string(message.size()) + " bytes, over the limit of " +
            std::to_string(config_.max_message) + ", was dropped"});
        return;
    }
    on_line(message, now);
}

void session::abandon(std::int64_t id, errc reason, std::string_view why) {
    if (!pending_.contains(id)) {
        return;
    }
    if (id == initialize_id_) {
        pending_.erase(id);
        close(reason, why);
        return;
    }
    response_event ev;
    ev.id = id;
    ev.failure = reason;
    ev.detail = std::string(why);
    finish(id, std::move(ev));
}

void session::refused(std::int64_t id, std::string_view why, session_clock::time_point now) {
    if (id == initialize_id_ && pending_.contains(id) && config_.era == protocol_era::automatic) {
        pending_.erase(id);
        fall_back(now);
        return;
    }
    abandon(id, errc::transport, why);
}

void session::end_of_stream(std::string_view why, session_clock::time_point now) {
    if (auto f = framer_.finish()) {
        on_frame(*f, now);
    }
    if (state_ != state::closed && config_.era == protocol_era::automatic) {
        probe_lost_ = true;
        close(errc::closed, std::string(why) + " (on the server/discover probe)");
        return;
    }
    if (state_ != state::closed) {
        close(errc::closed, why);
    }
}

void session::on_line(std::string_view line, session_clock::time_point now) {
    if (line.empty() || state_ == state::closed) {
        return;
    }
    std::string why;
    auto m = read_message(line, &why);
    if (!m) {
        events_.emplace_back(noise_event{"not a JSON-RPC message (" + why + "): " + excerpt(line)});
        return;
    }
    switch (m->type) {
    case rpc_message::kind::result:
    case rpc_message::kind::error:
        on_response(*m, now);
        break;
    case rpc_message::kind::request:
        on_server_request(std::move(*m));
        break;
    case rpc_message::kind::notification:
        on_notification(*m, now);
        break;
    }
}

void session::on_response(rpc_message& m, session_clock::time_point now) {
    const auto* id = m.id ? std::get_if<std::int64_t>(&*m.id) : nullptr;
    if (id == nullptr) {
        if (m.type == rpc_message::kind::error) {
            events_.emplace_back(noise_event{
                "an error for no request: " + std::to_string(m.error.code) + " " +
                excerpt(m.error.message)});
        } else {
            events_.emplace_back(noise_event{"a response whose id this client never sent"});
        }
        return;
    }
    if (!pending_.contains(*id)) {
        // Late (after a timeout or a cancel) or never sent: races are normal after a cancel.
        if (*id <= 0 || *id >= next_id_) {
            events_.emplace_back(noise_event{
                "a response for request " + std::to_string(*id) + ", which this client never sent"}
            );
        }
        return;
    }
    if (*id == initialize_id_ && config_.era != protocol_era::dated) {
        pending_.erase(*id);
        on_discovered(m, now);
        return;
    }
    if (*id == initialize_id_) {
        pending_.erase(*id);
        if (m.type == rpc_message::kind::error) {
            close(
                errc::rpc_error,
                "initialize was refused: " + std::to_string(m.error.code) + " " + m.error.message
            );
            return;
        }
        on_initialized(m.result);
        return;
    }
    response_event ev;
    ev.id = *id;
    if (m.type == rpc_message::kind::error) {
        ev.failure = errc::rpc_error;
        ev.error = m.error;
    } else if (config_.era == protocol_era::stateless && !result_type_known(m.result)) {
        ev.failure = errc::protocol;
        ev.detail =
            "the result has resultType \"" +
            excerpt(
                m.result["resultType"].is_string() ? m.result["resultType"].get<std::string>()
                                                   : m.result["resultType"].dump()
            ) +
            "\", which this client does not know";
    } else {
        ev.result = std::move(m.result);
    }
    finish(*id, std::move(ev));
}

void session::on_discovered(const rpc_message& m, session_clock::time_point now) {
    const auto speaks = [](const json& versions) {
        return versions.is_array() &&
               std::find(versions.begin(), versions.end(), json(std::string(stateless_version))) !=
                   versions.end();
    };
    if (m.type == rpc_message::kind::error) {
        const bool version_refused = m.error.code == rpc_code::unsupported_protocol_version;
        const json supported = version_refused && m.error.data && m.error.data->is_object()
                                   ? m.error.data->value("supported", json())
                                   : json();
        const bool probing = config_.era == protocol_era::automatic;
        if (probing && (!version_refused || !speaks(supported))) {
            // Legacy servers refuse the unknown method in their own ways: not era evidence.
            fall_back(now);
            return;
        }
        if (version_refused && !speaks(supported)) {
            close(
                errc::protocol,
                "the server does not speak protocol version " + std::string(stateless_version) +
                    " (it supports " + excerpt(supported.dump()) + ")"
            );
            return;
        }
        config_.era = protocol_era::stateless; // a refusal listing 2026-07-28 is modern
        if (version_refused && !discover_retried_) {
            // Servers may refuse a first request to name their versions: once more.
            discover_retried_ = true;
            send_discover();
            pending_[initialize_id_] = {"server/discover", now, now, config_.initialize_limits};
            return;
        }
        // server/discover is optional for clients: without it the server is only unknown.
        server_.protocol_version = std::string(stateless_version);
        state_ = state::ready;
        events_.emplace_back(ready_event{});
        return;
    }
    const json& r = m.result;
    if (!r.is_object()) {
        close(errc::protocol, "the server/discover result is not an object");
        return;
    }
    if (config_.era == protocol_era::automatic) {
        const auto v = r.find("supportedVersions");
        if (v == r.end() || !v->is_array()) {
            // Not a DiscoverResult: a legacy server that answers what it does not know.
            fall_back(now);
            return;
        }
    }
    config_.era = protocol_era::stateless;
    if (const auto v = r.find("supportedVersions"); v != r.end() && !speaks(*v)) {
        close(
            errc::protocol,
            "the server does not speak protocol version " + std::string(stateless_version) +
                " (it supports " + excerpt(v->dump()) + ")"
        );
        return;
    }
    server_.protocol_version = std::string(stateless_version);
    json info = json::object();
    if (const auto meta = r.find("_meta"); meta != r.end() && meta->is_object()) {
        info = meta->value("io.modelcontextprotocol/serverInfo", json::object());
    }
    if (!info.is_object() || info.empty()) {
        info = r.value("serverInfo", json::object());
    }
    server_.name = text_of(info, "name");
    server_.title = text_of(info, "title");
    server_.version = text_of(info, "version");
    if (const auto caps = r.find("capabilities"); caps != r.end() && caps->is_object()) {
        server_.capabilities = *caps;
    }
    server_.instructions = text_of(r, "instructions");
    state_ = state::ready;
    events_.emplace_back(ready_event{});
}

void session::on_initialized(const json& result) {
    if (!result.is_object()) {
        close(errc::protocol, "the initialize result is not an object");
        return;
    }
    const std::string version = text_of(result, "protocolVersion");
    if (version.empty()) {
        close(errc::protocol, "the initialize result has no protocolVersion");
        return;
    }
    if (std::find(std::begin(handshake_versions), std::end(handshake_versions), version) ==
        std::end(handshake_versions)) {
        close(
            errc::protocol,
            "the server answered protocol version \"" + excerpt(version) +
                "\", which this client does not speak"
        );
        return;
    }
    server_.protocol_version = version;
    const auto info = result.find("serverInfo");
    if (info != result.end()) {
        server_.name = text_of(*info, "name");
        server_.title = text_of(*info, "title");
        server_.version = text_of(*info, "version");
    }
    if (const auto caps = result.find("capabilities"); caps != result.end() && caps->is_object()) {
        server_.capabilities = *caps;
    }
    server_.instructions = text_of(result, "instructions");
    state_ = state::ready;
    notify("notifications/initialized");
    events_.emplace_back(ready_event{});
}

void session::on_server_request(rpc_message m) {
    const rpc_id& id = *m.id;
    if (m.method == "ping") {
        respond(id, json::object());
        return;
    }
    if (m.method == "roots/list" && !config_.roots.empty()) {
        json roots = json::array();
        for (const auto& r : config_.roots) {
            json entry{{"uri", r.uri}};
            if (!r.name.empty()) {
                entry["name"] = r.name;
            }
            roots.push_back(std::move(entry));
        }
        respond(id, json{{"roots", std::move(roots)}});
        return;
    }
    if ((m.method == "elicitation/create" && config_.elicitation) ||
        (m.method == "sampling/createMessage" && config_.sampling)) {
        asking_.push_back(id);
        events_.emplace_back(server_request_event{id, std::move(m.method), std::move(m.params)});
        return;
    }
    // sampling/createMessage among them unless session_config::sampling declares it.
    respond_error(
        id,
        rpc_error{
            rpc_code::method_not_found,
            "this client does not support " + excerpt(m.method),
            std::nullopt}
    );
}

void session::on_notification(const rpc_message& m, session_clock::time_point now) {
    if (m.method == "notifications/progress") {
        const auto token = m.params.is_object() ? m.params.find("progressToken") : m.params.end();
        if (token == m.params.end() || !token->is_number_integer()) {
            return; // not a token of this client's (it sends integer tokens)
        }
        const auto id = token->get<std::int64_t>();
        const auto it = pending_.find(id);
        if (it == pending_.end()) {
            return; // progress may trail the response
        }
        it->second.last_sign = now;
        progress_event ev;
        ev.id = id;
        if (const auto p = m.params.find("progress"); p != m.params.end() && p->is_number()) {
            ev.progress = p->get<double>();
        }
        if (const auto t = m.params.find("total"); t != m.params.end() && t->is_number()) {
            ev.total = t->get<double>();
        }
        ev.message = text_of(m.params, "message");
        events_.emplace_back(std::move(ev));
        return;
    }
    if (m.method == "notifications/message") {
        log_event ev;
        ev.level = text_of(m.params, "level");
        ev.logger = text_of(m.params, "logger");
        if (m.params.is_object() && m.params.contains("data")) {
            ev.data = m.params["data"];
        }
        events_.emplace_back(std::move(ev));
        return;
    }
    if (m.method == "notifications/subscriptions/acknowledged") {
        const std::int64_t id = subscription_of(m.params);
        if (!listening(id)) {
            events_.emplace_back(noise_event{"an acknowledgment for no open subscriptions/listen"});
            return;
        }
        subscriptions_acknowledged_event ev;
        ev.id = id;
        if (const auto n = m.params.find("notifications"); n != m.params.end() && n->is_object()) {
            const auto flag = [&](const char* key) {
                const auto it = n->find(key);
                return it != n->end() && it->is_boolean() && it->get<bool>();
            };
            ev.granted.tools_list_changed = flag("toolsListChanged");
            ev.granted.prompts_list_changed = flag("promptsListChanged");
            ev.granted.resources_list_changed = flag("resourcesListChanged");
            if (const auto r = n->find("resourceSubscriptions"); r != n->end() && r->is_array()) {
                for (const auto& uri : *r) {
                    if (uri.is_string()) {
                        ev.granted.resources.push_back(uri.get<std::string>());
                    }
                }
            }
        }
        events_.emplace_back(std::move(ev));
        return;
    }
    for (const char* list : {"tools", "prompts", "resources"}) {
        if (m.method == std::string("notifications/") + list + "/list_changed") {
            events_.emplace_back(list_changed_event{list, subscription_of(m.params)});
            return;
        }
    }
    // notifications/cancelled of a server request, resources/updated, ...: nothing to do.
}

void session::finish(std::int64_t id, response_event ev) {
    pending_.erase(id);
    events_.emplace_back(std::move(ev));
}

void session::fail_all(errc reason, std::string_view why) {
    auto open = std::move(pending_);
    pending_.clear();
    for (auto& [id, p] : open) {
        if (id == initialize_id_) {
            continue;
        }
        response_event ev;
        ev.id = id;
        ev.failure = reason;
        ev.detail = std::string(why);
        events_.emplace_back(std::move(ev));
    }
}

void session::close(errc reason, std::string_view why) {
    if (state_ == state::closed) {
        return;
    }
    state_ = state::closed;
    fail_all(errc::closed, why);
    events_.emplace_back(closed_event{reason, std::string(why)});
}

session_clock::time_point session::deadline_of(const pending& p) const noexcept {
    const auto hard = p.sent + p.limits.max_total;
    if (!asking_.empty()) {
        return hard; // a person is answering the server: silence is expected
    }
    return std::min(p.last_sign + p.limits.timeout, hard);
}

void session::on_time(session_clock::time_point now) {
    std::vector<std::int64_t> due;
    for (const auto& [id, p] : pending_) {
        if (!p.open_ended && deadline_of(p) <= now) {
            due.push_back(id);
        }
    }
    for (const std::int64_t id : due) {
        const pending p = pending_.at(id);
        const bool hard = p.sent + p.limits.max_total <= now;
        const std::string why =
            hard ? p.method + " ran past its maximum of " + millis(p.limits.max_total)
                 : p.method + " had no answer nor progress for " + millis(p.limits.timeout);
        if (id == initialize_id_ && config_.era == protocol_era::automatic) {
            pending_.erase(id); // the probe: a server that does not know it may stay silent
            fall_back(now);
            continue;
        }
        if (id == initialize_id_) {
            pending_.erase(id);
            close(errc::timeout, why);
            return;
        }
        notify("notifications/cancelled", json{{"requestId", id}, {"reason", "timed out: " + why}});
        response_event ev;
        ev.id = id;
        ev.failure = errc::timeout;
        ev.detail = why;
        finish(id, std::move(ev));
    }
}

std::optional<session_clock::time_point> session::next_deadline() const {
    std::optional<session_clock::time_point> next;
    for (const auto& [id, p] : pending_) {
        if (p.open_ended) {
            continue;
        }
        const auto d = deadline_of(p);
        if (!next || d < *next) {
            next = d;
        }
    }
    return next;
}

std::string session::take_output() {
    return std::exchange(output_, {});
}

std::vector<session_event> session::take_events() {
    return std::exchange(events_, {});
}

} // namespace wafer::tools::mcp
