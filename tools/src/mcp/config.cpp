#include <wafer/tools/mcp/config.hpp>
#include <wafer/tools/mcp/jsonrpc.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <utility>

namespace wafer::tools::mcp {

using nlohmann::json;

namespace {

[[noreturn]] void refuse(std::string_view source, std::string_view entry, std::string why) {
    std::string where(source);
    if (!entry.empty()) {
        where += ": server \"" + std::string(entry) + "\"";
    }
    throw error(
        errc::bad_config, std::string(entry.empty() ? "(config)" : entry), where + ": " + why
    );
}

bool valid_name(std::string_view name) {
    if (name.empty() || name.size() > 64) {
        return false;
    }
    for (const char c : name) {
        const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                        (c >= '0' && c <= '9') || c == '_' || c == '-';
        if (!ok) {
            return false;
        }
    }
    return true;
}

struct entry_reader {
    std::string_view source;
    std::string_view name;
    const variable_lookup& lookup;

    [[noreturn]] void fail(std::string why) const { refuse(source, name, std::move(why)); }

    // ${NAME} and ${NAME:-default}; a '$' not followed by '{' is kept.
    std::string expand(std::string_view text, std::string_view field) const {
        std::string out;
        for (std::size_t i = 0; i < text.size();) {
            if (text[i] != '$' || i + 1 >= text.size() || text[i + 1] != '{') {
                out += text[i++];
                continue;
            }
            const std::size_t close = text.find('}', i + 2);
            if (close == std::string_view::npos) {
                fail(std::string(field) + ": \"${\" without a closing \"}\"");
            }
            std::string_view inner = text.substr(i + 2, close - i - 2);
            std::optional<std::string_view> fallback;
            if (const std::size_t dash = inner.find(":-"); dash != std::string_view::npos) {
                fallback = inner.substr(dash + 2);
                inner = inner.substr(0, dash);
            }
            std::optional<std::string> value = lookup ? lookup(inner) : std::nullopt;
            if (!value && !fallback) {
                fail(std::string(field) + ": the variable " + std::string(inner) + " is not set");
            }
            out += value ? *value : std::string(*fallback);
            i = close + 1;
        }
        return out;
    }

    std::string string_field(const json& obj, const char* key) const {
        const auto it = obj.find(key);
        if (it == obj.end()) {
            return {};
        }
        if (!it->is_string()) {
            fail(std::string("\"") + key + "\" is not a string");
        }
        return expand(it->get<std::string>(), key);
    }

    std::vector<std::pair<std::string, std::string>>
    string_map(const json& obj, const char* key) const {
        std::vector<std::pair<std::string, std::string>> out;
        const auto it = obj.find(key);
        if (it == obj.end()) {
            return out;
        }
        if (!it->is_object()) {
            fail(std::string("\"") + key + "\" is not an object of strings");
        }
        for (const auto& [k, v] : it->items()) {
            if (!v.is_string()) {
                fail(std::string("\"") + key + "\": \"" + k + "\" is not a string");
            }
            out.emplace_back(k, expand(v.get<std::string>(), std::string(key) + "." + k));
        }
        return out;
    }

    server_entry read(const json& e) const {
        if (!e.is_object()) {
            fail("the entry is not an object");
        }
        server_entry out;
        out.name = std::string(name);
        if (const auto d = e.find("disabled"); d != e.end()) {
            if (!d->is_boolean()) {
                fail("\"disabled\" is not true or false");
            }
            out.disabled = d->get<bool>();
        }
        if (const auto t = e.find("startup_timeout"); t != e.end()) {
            const double max = static_cast<double>(max_startup_timeout.count());
            const std::string shown = t->dump(-1, ' ', false, json::error_handler_t::replace);
            if (!t->is_number()) {
                fail(
                    "\"startup_timeout\" is not a number of seconds (got " + shown.substr(0, 64) +
                    ")"
                );
            }
            const double seconds = t->get<double>();
            if (!std::isfinite(seconds) || seconds <= 0 || seconds > max) {
                fail(
                    "\"startup_timeout\" must be more than 0 and at most " +
                    std::to_string(max_startup_timeout.count()) + " seconds (got " + shown + ")"
                );
            }
            // At least a millisecond: 0.0001 is more than 0.
            out.startup_timeout =
                std::chrono::milliseconds(std::max<std::int64_t>(1, std::llround(seconds * 1000.0))
                );
        }
        const std::string type = string_field(e, "type");
        const bool has_command = e.contains("command");
        const bool has_url = e.contains("url");
        if (has_command == has_url) {
            fail(
                has_command ? "it has both \"command\" and \"url\""
                            : "it has neither \"command\" (stdio) nor \"url\" (HTTP)"
            );
        }
        if (has_command) {
            if (!type.empty() && type != "stdio") {
                fail("\"type\" is \"" + type + "\" but the entry has a \"command\"");
            }
            stdio_server s;
            s.name = out.name;
            s.command = string_field(e, "command");
            if (s.command.empty()) {
                fail("\"command\" is empty");
            }
            if (const auto a = e.find("args"); a != e.end()) {
                if (!a->is_array()) {
                    fail("\"args\" is not an array of strings");
                }
                for (const auto& arg : *a) {
                    if (!arg.is_string()) {
                        fail("\"args\" is not an array of strings");
                    }
                    s.args.push_back(expand(arg.get<std::string>(), "args"));
                }
            }
            s.env = string_map(e, "env");
            s.cwd = string_field(e, "cwd");
            out.stdio = std::move(s);
        } else {
            if (!type.empty() && type != "http" && type != "streamable-http") {
                fail(
                    "\"type\" is \"" + type +
                    "\" but the entry has a \"url\" (the SSE transport of 2024 is not supported)"
                );
            }
            http_server h;
            h.name = out.name;
            h.url = string_field(e, "url");
            if (!h.url.starts_with("http://") && !h.url.starts_with("https://")) {
                fail("\"url\" is not an http:// or https:// URL");
            }
            h.headers = string_map(e, "headers");
            out.http = std::move(h);
        }
        return out;
    }
};

} // namespace

std::vector<server_entry>
read_server_config(const json& doc, std::string_view source, const variable_lookup& lookup) {
    if (!doc.is_object()) {
        refuse(source, {}, "not a JSON object");
    }
    const auto servers = doc.find("mcpServers");
    if (servers == doc.end()) {
        refuse(source, {}, "no \"mcpServers\" object");
    }
    if (!servers->is_object()) {
        refuse(source, {}, "\"mcpServers\" is not an object");
    }
    std::vector<server_entry> out;
    for (const auto& [name, entry] : servers->items()) {
        if (!valid_name(name)) {
            refuse(
                source,
                {},
                "the server name \"" + name + "\" is not 1-64 characters of A-Z a-z 0-9 _ -"
            );
        }
        out.push_back(entry_reader{source, name, lookup}.read(entry));
    }
    return out;
}

std::vector<server_entry>
parse_server_config(std::string_view text, std::string_view source, const variable_lookup& lookup) {
    json doc;
    if (!nesting_within(text, max_nesting)) {
        refuse(source, {}, "nested deeper than " + std::to_string(max_nesting) + " levels");
    }
    try {
        doc = json::parse(text);
    } catch (const json::parse_error& e) {
        refuse(source, {}, std::string("not valid JSON (") + e.what() + ")");
    }
    return read_server_config(doc, source, lookup);
}

variable_lookup environment_lookup() {
    return [](std::string_view name) -> std::optional<std::string> {
        const char* v = std::getenv(std::string(name).c_str());
        return v ? std::optional<std::string>(v) : std::nullopt;
    };
}

} // namespace wafer::tools::mcp
