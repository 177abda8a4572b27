#include <wafer/tools/mcp/server_tools.hpp>

#include <algorithm>
#include <set>
#include <string_view>
#include <utility>

#include "mcp/text.hpp"

namespace wafer::tools::mcp {

using nlohmann::json;

namespace {

using detail::text_of;

bool hint(const json& annotations, const char* key, bool fallback) {
    const auto it = annotations.find(key);
    return it != annotations.end() && it->is_boolean() ? it->get<bool>() : fallback;
}

std::string dump(const json& j) {
    return j.dump(-1, ' ', false, json::error_handler_t::replace);
}

// Bytes that base64 text decodes to, for describing a binary block without it.
std::size_t base64_bytes(std::string_view data) {
    std::size_t pad = 0;
    for (auto it = data.rbegin(); it != data.rend() && *it == '='; ++it) {
        ++pad;
    }
    const std::size_t whole = data.size() / 4 * 3;
    return whole - std::min({pad, std::size_t{2}, whole});
}

std::string describe_block(const json& block) {
    const std::string type = text_of(block, "type");
    if (type == "text") {
        return text_of(block, "text");
    }
    if (type == "image" || type == "audio") {
        return "[" + type + " " + text_of(block, "mimeType") + ", " +
               std::to_string(base64_bytes(text_of(block, "data"))) + " bytes]";
    }
    if (type == "resource_link") {
        std::string s =
            "[resource link: " + text_of(block, "name") + " <" + text_of(block, "uri") + ">";
        if (const std::string mime = text_of(block, "mimeType"); !mime.empty()) {
            s += " " + mime;
        }
        if (const std::string d = text_of(block, "description"); !d.empty()) {
            s += ": " + d;
        }
        return s + "]";
    }
    if (type == "resource" && block.contains("resource") && block["resource"].is_object()) {
        const json& r = block["resource"];
        std::string s = "[resource <" + text_of(r, "uri") + ">";
        if (const std::string mime = text_of(r, "mimeType"); !mime.empty()) {
            s += " " + mime;
        }
        if (r.contains("text") && r["text"].is_string()) {
            return s + "]\n" + r["text"].get<std::string>();
        }
        return s + ", " + std::to_string(base64_bytes(text_of(r, "blob"))) + " bytes]";
    }
    return dump(block);
}

} // namespace

namespace {

bool is_tchar(char c) {
    const auto u = static_cast<unsigned char>(c);
    if ((u >= '0' && u <= '9') || (u >= 'a' && u <= 'z') || (u >= 'A' && u <= 'Z')) {
        return true;
    }
    return std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
}

std::string lower_ascii(std::string s) {
    for (char& c : s) {
        if (c >= 'A' && c <= 'Z') {
            c = static_cast<char>(c - 'A' + 'a');
        }
    }
    return s;
}

// Walks a schema for x-mcp-header: `reachable` marks a property schema reached from the root
// through `properties` alone (`path` is its argument path).
struct header_walk {
    std::vector<param_header> found;
    std::set<std::string> seen_lower;
    std::string error;

    // Server schemas are untrusted: a deep one must not exhaust the stack.
    static constexpr std::size_t max_depth = 256;
    std::size_t depth = 0;

    void visit(const json& node, bool reachable, bool is_root, std::vector<std::string>& path) {
        if (!error.empty()) {
            return;
        }
        if (depth >= max_depth) {
            error = "the inputSchema nests deeper than " + std::to_string(max_depth) + " levels";
            return;
        }
        ++depth;
        visit_children(node, reachable, is_root, path);
        --depth;
    }

    void
    visit_children(const json& node, bool reachable, bool is_root, std::vector<std::string>& path) {
        if (node.is_array()) {
            for (const auto& item : node) {
                visit(item, false, false, path);
            }
            return;
        }
        if (!node.is_object()) {
            return;
        }
        if (const auto h = node.find("x-mcp-header"); h != node.end()) {
            check(node, *h, reachable && !is_root, path);
            if (!error.empty()) {
                return;
            }
        }
        for (const auto& [key, value] : node.items()) {
            if (key == "enum" || key == "const" || key == "default" || key == "examples" ||
                key == "x-mcp-header") {
                continue; // values, not schemas
            }
            if (key == "properties" && value.is_object()) {
                for (const auto& [name, prop] : value.items()) {
                    path.push_back(name);
                    visit(prop, reachable, false, path);
                    path.pop_back();
                }
                continue;
            }
            visit(value, false, false, path);
        }
    }

    void
    check(const json& node, const json& header, bool placed, const std::vector<std::string>& path) {
        if (!placed) {
            error = "x-mcp-header on a schema that is not a property reached through properties";
            return;
        }
        if (!header.is_string() || header.get_ref<const std::string&>().empty()) {
            error = "x-mcp-header is not a non-empty string";
            return;
        }
        const auto& name = header.get_ref<const std::string&>();
        if (!std::all_of(name.begin(), name.end(), is_tchar)) {
            error = "x-mcp-header \"" + detail::escaped(name, 64) + "\" is not an HTTP token";
            return;
        }
        const auto type = node.find("type");
        if (type == node.end() || !type->is_string() ||
            (*type != "string" && *type != "integer" && *type != "boolean")) {
            error = "x-mcp-header \"" + name +
                    "\" on a property that is not a string, integer or boolean";
            return;
        }
        if (!seen_lower.insert(lower_ascii(name)).second) {
            error = "x-mcp-header \"" + name + "\" appears twice";
            return;
        }
        found.push_back(param_header{name, path});
    }
};

} // namespace

std::optional<std::vector<param_header>>
read_param_headers(const json& input_schema, std::string* why) {
    header_walk walk;
    std::vector<std::string> path;
    walk.visit(input_schema, true, true, path);
    if (!walk.error.empty()) {
        if (why) {
            *why = walk.error;
        }
        return std::nullopt;
    }
    return std::move(walk.found);
}

std::optional<tool_info> read_tool_info(const json& entry, std::string* why) {
    auto refuse = [why](std::string reason) -> std::optional<tool_info> {
        if (why) {
            *why = std::move(reason);
        }
        return std::nullopt;
    };
    if (!entry.is_object()) {
        return refuse("a tools/list entry that is not an object");
    }
    tool_info t;
    t.name = text_of(entry, "name");
    if (t.name.empty()) {
        return refuse("a tool without a name");
    }
    const auto schema = entry.find("inputSchema");
    if (schema == entry.end() || !schema->is_object()) {
        return refuse(t.name + ": inputSchema is not an object");
    }
    t.input_schema = *schema;
    std::string header_why;
    auto headers = read_param_headers(t.input_schema, &header_why);
    if (!headers) {
        return refuse(t.name + ": " + header_why);
    }
    t.param_headers = std::move(*headers);
    if (const auto out = entry.find("outputSchema"); out != entry.end() && !out->is_null()) {
        t.output_schema = *out;
    }
    t.description = text_of(entry, "description");
    if (const auto a = entry.find("annotations"); a != entry.end() && a->is_object()) {
        t.annotations = *a;
    }
    t.title = text_of(entry, "title");
    if (t.title.empty()) {
        t.title = text_of(t.annotations, "title");
    }
    t.read_only_hint = hint(t.annotations, "readOnlyHint", false);
    t.destructive_hint = hint(t.annotations, "destructiveHint", true);
    t.idempotent_hint = hint(t.annotations, "idempotentHint", false);
    t.open_world_hint = hint(t.annotations, "openWorldHint", true);
    return t;
}

boost::asio::awaitable<std::vector<tool_info>> async_list_tools(client& c) {
    return async_list_tools(c, list_limits(), nullptr);
}

boost::asio::awaitable<call_result> async_call_tool(client& c, std::string name, json arguments) {
    return async_call_tool(c, std::move(name), std::move(arguments), call_options());
}

void add_page_freshness(list_freshness& into, const json& page, bool first_page) {
    std::chrono::milliseconds ttl{0};
    if (const auto t = page.find("ttlMs");
        t != page.end() && t->is_number_integer() && t->get<std::int64_t>() > 0) {
        ttl = std::chrono::milliseconds(t->get<std::int64_t>());
    }
    into.ttl = first_page || !into.ttl ? ttl : std::min(*into.ttl, ttl);
    const auto scope = page.find("cacheScope");
    const bool is_public = scope != page.end() && scope->is_string() && *scope == "public";
    const bool all_public_so_far = first_page || into.cache_scope == "public";
    into.cache_scope = is_public && all_public_so_far ? "public" : "private";
}

boost::asio::awaitable<std::vector<tool_info>> async_list_tools(
    client& c, list_limits limits, std::vector<std::string>* skipped, list_freshness* freshness
) {
    const bool cacheable = c.server().protocol_version == stateless_version;
    if (freshness) {
        *freshness = list_freshness{};
    }
    std::vector<tool_info> tools;
    std::set<std::string> names;
    std::set<std::string> cursors_seen;
    std::optional<std::string> cursor;
    bool over_limit = false;
    for (std::size_t page = 0; page < limits.max_pages; ++page) {
        json params = json::object();
        if (cursor) {
            params["cursor"] = *cursor;
        }
        std::string method = "tools/list";
        call_options options;
        json result =
            co_await c.async_request(std::move(method), std::move(params), std::move(options));
        if (!result.is_object() || !result.contains("tools") || !result["tools"].is_array()) {
            throw error(errc::protocol, c.name(), "the tools/list result has no tools array");
        }
        if (freshness && cacheable) {
            add_page_freshness(*freshness, result, page == 0);
        }
        for (const auto& entry : result["tools"]) {
            std::string why;
            auto t = read_tool_info(entry, &why);
            if (!t) {
                if (skipped) {
                    skipped->push_back(why);
                }
                continue;
            }
            if (!names.insert(t->name).second) {
                if (skipped) {
                    skipped->push_back(t->name + ": listed twice by the server; the first is kept");
                }
                continue;
            }
            if (tools.size() >= limits.max_tools) {
                if (skipped && tools.size() == limits.max_tools && !over_limit) {
                    skipped->push_back(
                        "tools/list: more than " + std::to_string(limits.max_tools) +
                        " tools; the rest are left out"
                    );
                }
                over_limit = true;
                continue;
            }
            tools.push_back(std::move(*t));
        }
        const auto next = result.find("nextCursor");
        if (next == result.end() || !next->is_string()) {
            co_return tools;
        }
        if (!cursors_seen.insert(next->get<std::string>()).second) {
            if (skipped) {
                skipped->push_back("tools/list: the server repeated a cursor; listing stopped");
            }
            co_return tools;
        }
        cursor = next->get<std::string>();
    }
    if (skipped) {
        skipped->push_back(
            "tools/list: stopped after " + std::to_string(limits.max_pages) + " pages"
        );
    }
    co_return tools;
}

call_result read_call_result(const json& result) {
    call_result r;
    if (!result.is_object()) {
        r.is_error = true;
        r.text = "the MCP server's tools/call result is not an object";
        return r;
    }
    bool any_text = false;
    if (const auto content = result.find("content");
        content != result.end() && content->is_array()) {
        for (const auto& block : *content) {
            if (!r.text.empty()) {
                r.text += '\n';
            }
            any_text = any_text || text_of(block, "type") == "text";
            r.text += describe_block(block);
        }
    }
    if (const auto sc = result.find("structuredContent"); sc != result.end() && !sc->is_null()) {
        r.structured = *sc;
        if (!any_text) {
            if (!r.text.empty()) {
                r.text += '\n';
            }
            r.text += dump(*sc);
        }
    }
    if (const auto e = result.find("isError"); e != result.end() && e->is_boolean()) {
        r.is_error = e->get<bool>();
    }
    return r;
}

boost::asio::awaitable<call_result>
async_call_tool(client& c, std::string name, json arguments, call_options options) {
    json params{{"name", std::move(name)}};
    params["arguments"] = arguments.is_null() ? json::object() : std::move(arguments);
    std::string method = "tools/call";
    const json result =
        co_await c.async_request(std::move(method), std::move(params), std::move(options));
    co_return read_call_result(result);
}

std::string registry_name(std::string_view prefix, std::string_view tool_name) {
    constexpr std::size_t max_name = 64;
    std::string out;
    out.reserve(prefix.size() + tool_name.size());
    for (const std::string_view part : {prefix, tool_name}) {
        for (const char c : part) {
            const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                            (c >= '0' && c <= '9') || c == '_' || c == '-';
            out += ok ? c : '_';
        }
    }
    return out.size() <= max_name ? out : std::string{};
}

namespace {

// The handler of one MCP tool (a named coroutine owning what it uses, see cpp-style P9).
boost::asio::awaitable<tool_output> call_mcp_tool(
    std::shared_ptr<client> c,
    std::string tool_name,
    std::optional<request_limits> limits,
    json args,
    call_context ctx
) {
    call_options options;
    options.limits = limits;
    // Progress is always asked for: it keeps a long call alive past request_limits::timeout
    // (never past max_total), and the run shows it when someone listens.
    options.on_progress = [report = std::move(ctx.report_progress)](const progress_event& e) {
        if (report) {
            report(call_progress{e.progress, e.total, e.message});
        }
    };
    try {
        std::string name = tool_name;
        call_result r =
            co_await async_call_tool(*c, std::move(name), std::move(args), std::move(options));
        co_return tool_output{std::move(r.text), r.is_error};
    } catch (const error& e) {
        if (e.code() == errc::cancelled) {
            throw;
        }
        // The model sees which server failed and how (a crash, a timeout, a refused message).
        co_return tool_output{
            "MCP server \"" + e.server() + "\", tool \"" + tool_name + "\": " + e.detail(), true};
    }
}

} // namespace

std::vector<tool> make_registry_tools(
    const std::shared_ptr<client>& c,
    const std::vector<tool_info>& tools,
    const registry_tool_options& options,
    std::vector<std::string>* skipped
) {
    const std::string prefix = options.prefix.value_or(c->name() + "__");
    std::vector<tool> out;
    for (const auto& t : tools) {
        std::string name = registry_name(prefix, t.name);
        if (name.empty()) {
            if (skipped) {
                skipped->push_back(
                    t.name + ": the name \"" + prefix + t.name + "\" is longer than 64 characters"
                );
            }
            continue;
        }
        tool rt;
        rt.name = std::move(name);
        rt.description = t.description.empty() ? t.title : t.description;
        rt.parameters = t.input_schema;
        rt.options.read_only = t.read_only_hint;
        if (options.approve_destructive && !t.read_only_hint && t.destructive_hint) {
            rt.options.needs_approval = true;
        }
        rt.fn = async_handler{
            [c, tool_name = t.name, limits = options.limits](json args, call_context ctx) {
                return call_mcp_tool(c, tool_name, limits, std::move(args), std::move(ctx));
            }};
        out.push_back(std::move(rt));
    }
    return out;
}

} // namespace wafer::tools::mcp
