// MCP servers in the wafer CLI (see mcp.hpp).
#include "mcp.hpp"

#include <wafer/mcp/http_transport.hpp>
#include <wafer/tools/mcp/config.hpp>
#include <wafer/tools/mcp/server_tools.hpp>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cctype>
#include <exception>
#include <fstream>
#include <iostream>
#include <optional>
#include <set>
#include <sstream>
#include <system_error>

#include "config.hpp"
#include "elicit.hpp"
#include "failure.hpp"
#include "mcp_oauth.hpp"
#include "terminal.hpp"
#include "visible.hpp"

namespace wafer::cli {

namespace asio = boost::asio;
namespace fs = std::filesystem;
namespace mcp = tools::mcp;
using nlohmann::json;

namespace {

std::string read_file(const fs::path& p) {
    std::ifstream in(p, std::ios::binary);
    if (!in) {
        throw cli_error(
            "cannot read the MCP configuration " + p.string() + ": " +
                std::error_code(errno, std::generic_category()).message(),
            exit_usage
        );
    }
    std::ostringstream s;
    s << in.rdbuf();
    return s.str();
}

// An mcpServers JSON file, or wafer's config.toml (its [mcp_servers] table).
std::vector<mcp::server_entry> read_config_file(const fs::path& p) {
    try {
        const std::string text = p.extension() == ".toml" ? mcp_servers_json(p) : read_file(p);
        return mcp::parse_server_config(text, p.string(), mcp::environment_lookup());
    } catch (const mcp::error& e) {
        throw cli_error(e.detail(), exit_usage);
    }
}

// A file:// URI for a directory: bytes outside the unreserved set and '/' percent-encoded.
std::string file_uri(const fs::path& dir) {
    static constexpr char hex[] = "0123456789ABCDEF";
    std::string out = "file://";
    for (const char ch : dir.string()) {
        const auto c = static_cast<unsigned char>(ch);
        const bool plain = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                           (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_' || c == '~' ||
                           c == '/';
        if (plain) {
            out += static_cast<char>(c);
        } else {
            out += '%';
            out += hex[c >> 4U];
            out += hex[c & 0xfU];
        }
    }
    return out;
}

bool ascii_iequals(std::string_view a, std::string_view b) {
    return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
               return std::tolower(static_cast<unsigned char>(x)) ==
                      std::tolower(static_cast<unsigned char>(y));
           });
}

std::string command_line(const mcp::stdio_server& s) {
    std::string out = s.command;
    for (const auto& a : s.args) {
        out += " " + a;
    }
    return out;
}

// Whether the workspace's .mcp.json may start its servers: --yes, or the user's answer.
bool workspace_config_allowed(
    const fs::path& file, const std::vector<mcp::server_entry>& entries, bool trusted
) {
    if (trusted) {
        return true;
    }
    std::string what;
    for (const auto& e : entries) {
        if (e.stdio && !e.disabled) {
            what += (what.empty() ? "" : "; ") + e.name + ": " + command_line(*e.stdio);
        } else if (e.http && !e.disabled) {
            // Its headers may hold the environment's secrets (${VAR}): a URL needs consent too.
            what += (what.empty() ? "" : "; ") + e.name + ": " + e.http->url;
        }
    }
    if (what.empty()) {
        return true; // nothing it would start
    }
    if (can_prompt()) {
        const auto yes = ask_yes_no(
            "wafer: start the MCP servers of " + visible(file.string()) + " (" + visible(what) +
            ")?"
        );
        if (yes && *yes) {
            return true;
        }
    }
    print_failure(
        "mcp: " + file.string() + " not used (it would start " + what + "); pass --mcp-config " +
        file.string() + " or --yes to use it"
    );
    return false;
}

// A configured server: a program to start (stdio) or a URL (Streamable HTTP).
struct configured {
    std::string name;
    std::optional<mcp::stdio_server> stdio;
    std::optional<wafer::mcp::http_server> http;
    /// Its own "startup_timeout" (else the flag's).
    std::optional<std::chrono::milliseconds> startup_timeout;

    const char* transport() const { return stdio ? "stdio" : "http"; }
    std::string where() const { return stdio ? command_line(*stdio) : http->url; }
};

// Connects to one configured server.
asio::awaitable<std::shared_ptr<mcp::client>>
connect_server(configured server, mcp::client_options options) {
    if (server.stdio) {
        auto c = co_await mcp::client::async_connect(*server.stdio, options);
        co_return c;
    }
    auto c = co_await wafer::mcp::async_connect_http(*server.http, options);
    co_return c;
}

// The servers to use, in configuration order, names unique.
std::vector<configured> configured_servers(const mcp_sources& src) {
    std::vector<std::pair<fs::path, std::vector<mcp::server_entry>>> files;
    std::set<fs::path> seen;
    for (const auto& c : src.configs) {
        const fs::path p = fs::absolute(c).lexically_normal();
        if (seen.insert(p).second) {
            files.emplace_back(p, read_config_file(p));
        }
    }
    if (!src.workspace.empty()) {
        const fs::path p = (src.workspace / ".mcp.json").lexically_normal();
        std::error_code ec;
        if (fs::is_regular_file(p, ec) && !seen.contains(p)) {
            auto entries = read_config_file(p);
            if (workspace_config_allowed(p, entries, src.trust_workspace)) {
                files.emplace_back(p, std::move(entries));
            }
        }
    }
    std::vector<configured> out;
    std::set<std::string> names;
    for (auto& [file, entries] : files) {
        for (auto& e : entries) {
            if (e.disabled) {
                continue;
            }
            if (!names.insert(e.name).second) {
                print_failure(
                    "mcp: server \"" + e.name + "\" of " + file.string() +
                    " not started: an earlier configuration has a server of that name"
                );
                continue;
            }
            configured one;
            one.name = e.name;
            one.startup_timeout = e.startup_timeout;
            if (e.http) {
                wafer::mcp::http_server h;
                h.name = e.name;
                h.url = e.http->url;
                h.headers = e.http->headers;
                const bool own_token =
                    std::any_of(h.headers.begin(), h.headers.end(), [](const auto& kv) {
                        return ascii_iequals(kv.first, "authorization");
                    });
                if (!own_token) {
                    // A 401 is answered with kept tokens (refreshed when they expire); a new
                    // authorization is `wafer mcp login`'s, which has the browser step.
                    h.oauth = cli_oauth(h.name, h.url, false);
                }
                one.http = std::move(h);
                out.push_back(std::move(one));
                continue;
            }
            mcp::stdio_server s = std::move(*e.stdio);
            if (s.cwd.empty() && !src.workspace.empty()) {
                s.cwd = src.workspace.string();
            } else if (!s.cwd.empty() && fs::path(s.cwd).is_relative()) {
                s.cwd = (file.parent_path() / s.cwd).lexically_normal().string();
            }
            one.stdio = std::move(s);
            out.push_back(std::move(one));
        }
    }
    return out;
}

struct started {
    std::shared_ptr<mcp::client> client;
    /// What the server said of itself (kept once the client is gone: wafer mcp list).
    mcp::server_info info;
    std::vector<mcp::tool_info> tools;
    mcp::list_freshness freshness;
    std::vector<std::string> skipped;
    std::string failure;
    /// It missed its startup timeout (a server that does not answer is killed, not closed:
    /// it would not heed the end of its stdin either).
    bool timed_out = false;
    /// wafer run: the server's tools in the registry, following list_changed.
    std::shared_ptr<mcp::server_tool_set> set;
};

mcp::client_options
client_options_for(const std::string& name, const fs::path& workspace, bool verbose) {
    mcp::client_options o;
    // Either generation, as each server speaks (a server/discover probe first).
    o.session.era = mcp::protocol_era::automatic;
    if (!workspace.empty()) {
        o.session.roots.push_back({file_uri(workspace), workspace.filename().string()});
    }
    if (verbose) {
        o.on_stderr = [name](std::string_view line) {
            std::cerr << "mcp " << name << ": " << visible(line) << "\n";
        };
        o.on_log = [name](const mcp::log_event& e) {
            std::cerr << "mcp " << name << " [" << visible(e.level) << "] "
                      << visible(e.data.is_string() ? e.data.get<std::string>() : e.data.dump())
                      << "\n";
        };
        o.on_noise = [name](std::string_view what) {
            std::cerr << "mcp " << name << ": " << visible(what) << "\n";
        };
    }
    o.on_closed = [](const mcp::error& e) {
        print_failure(std::string("mcp: ") + e.what());
    };
    o.on_restarted = [name, max = o.restart.max_restarts](std::size_t n) {
        std::cerr << visible(
                         "mcp " + name + ": the server was started again (restart " +
                         std::to_string(n) + " of at most " + std::to_string(max) + ")"
                     )
                  << "\n"
                  << std::flush;
    };
    return o;
}

// Connects and lists the tools of one server; failures are text, never exceptions.
asio::awaitable<void>
connect_and_list(configured server, mcp::client_options options, started& out) {
    try {
        auto c = co_await connect_server(server, options);
        out.client = c;
        mcp::list_limits limits;
        out.tools = co_await mcp::async_list_tools(*c, limits, &out.skipped, &out.freshness);
    } catch (const mcp::error& e) {
        out.failure = e.what();
    } catch (const std::exception& e) {
        out.failure = "MCP server \"" + server.name + "\": " + e.what();
    }
}

std::string seconds_of(std::chrono::milliseconds ms) {
    const auto s = ms.count() / 1000;
    const auto frac = ms.count() % 1000;
    return std::to_string(s) + (frac != 0 ? "." + std::to_string(1000 + frac).substr(1) : "") +
           " s";
}

// connect_and_list within `timeout`: past it, the start is cancelled and reported as such.
asio::awaitable<void> start_one(
    configured server, mcp::client_options options, std::chrono::milliseconds timeout, started& out
) {
    using namespace asio::experimental::awaitable_operators;
    const std::string name = server.name;
    const bool own = server.startup_timeout.has_value();
    timeout = server.startup_timeout.value_or(timeout);
    asio::steady_timer t(co_await asio::this_coro::executor, timeout);
    const auto r = co_await (
        connect_and_list(std::move(server), std::move(options), out) ||
        t.async_wait(asio::use_awaitable)
    );
    if (r.index() == 1) {
        out.timed_out = true;
        out.failure = "MCP server \"" + name + "\" did not start within " + seconds_of(timeout) +
                      " (no answer to " + (out.client ? "tools/list" : "initialize") +
                      (own ? "; its \"startup_timeout\" sets the limit)"
                           : "; --mcp-startup-timeout sets the limit)");
    }
}

// Prints what a listing of `server`'s tools left out, and what a later one changed.
void report_update(const std::string& server, const mcp::tool_set_update& u) {
    const std::string who = "mcp: server \"" + server + "\": ";
    if (!u.failure.empty()) {
        print_failure(
            who + "its tools could not be listed again (" + u.failure + "); they stay as they were"
        );
        return;
    }
    for (const auto& s : u.skipped) {
        print_failure(who + "tool left out: " + s);
    }
    if (!u.refresh || (u.added.empty() && u.removed.empty())) {
        return;
    }
    auto list = [](const std::vector<std::string>& names) {
        std::string out;
        for (const auto& n : names) {
            out += (out.empty() ? "" : ", ") + n;
        }
        return out;
    };
    std::string line = "mcp " + server + ": the tools changed, " + std::to_string(u.count) + " now";
    if (!u.added.empty()) {
        line += "; added " + list(u.added);
    }
    if (!u.removed.empty()) {
        line += "; removed " + list(u.removed);
    }
    std::cerr << visible(line) << "\n" << std::flush;
}

// The tool set of one server in wafer run: destructive tools through `gate`, changes printed.
mcp::tool_set_options
tool_set_options_for(const std::string& name, const std::function<void(tools::tool&)>& gate) {
    mcp::tool_set_options o;
    o.tools.approve_destructive = true;
    o.prepare = [gate](tools::tool& t) {
        // make_registry_tools marked the tools that may be destructive; the CLI's approval
        // mode decides what that means.
        if (t.options.needs_approval.may_apply()) {
            t.options.needs_approval = false;
            if (gate) {
                gate(t);
            }
        }
    };
    o.on_update = [name](const mcp::tool_set_update& u) {
        report_update(name, u);
    };
    return o;
}

// Starts every server at once; returns when all are up or failed. With `gate` (wafer run),
// each server gets a tool set that follows its list_changed.
asio::awaitable<std::vector<started>> start_all(
    std::vector<configured> servers,
    const fs::path& workspace,
    bool verbose,
    std::chrono::milliseconds timeout,
    const std::function<void(tools::tool&)>* gate = nullptr,
    const std::shared_ptr<terminal_elicitor>& elicitor = nullptr
) {
    auto ex = co_await asio::this_coro::executor;
    std::vector<started> results(servers.size());
    auto pending = std::make_shared<std::size_t>(servers.size());
    asio::steady_timer all_done(ex, asio::steady_timer::time_point::max());
    for (std::size_t i = 0; i < servers.size(); ++i) {
        mcp::client_options o = client_options_for(servers[i].name, workspace, verbose);
        if (gate) {
            results[i].set =
                mcp::server_tool_set::create(ex, tool_set_options_for(servers[i].name, *gate));
            o.on_list_changed = results[i].set->list_changed_handler();
        }
        if (elicitor) {
            o.session.elicitation = true;
            o.on_server_request = elicitor->handler(servers[i].name);
        }
        asio::co_spawn(
            ex,
            start_one(std::move(servers[i]), std::move(o), timeout, results[i]),
            [pending, &all_done](std::exception_ptr) {
                if (--*pending == 0) {
                    all_done.cancel();
                }
            }
        );
    }
    if (*pending > 0) {
        boost::system::error_code ec;
        co_await all_done.async_wait(asio::redirect_error(asio::use_awaitable, ec));
    }
    co_return results;
}

std::string hints(const mcp::tool_info& t) {
    std::string out;
    auto add = [&out](const char* h) {
        out += (out.empty() ? "" : ", ") + std::string(h);
    };
    if (t.read_only_hint) {
        add("read-only");
    } else if (t.destructive_hint) {
        add("destructive");
    }
    if (t.idempotent_hint) {
        add("idempotent");
    }
    if (!t.open_world_hint) {
        add("closed-world");
    }
    return out;
}

// Runs `task` on a fresh io_context; rethrows what escaped it.
template <class T>
T run_here(asio::awaitable<T> task) {
    asio::io_context ioc;
    std::exception_ptr failure;
    std::optional<T> value;
    asio::co_spawn(ioc, std::move(task), [&](std::exception_ptr e, T v) {
        failure = e;
        if (!e) {
            value.emplace(std::move(v));
        }
    });
    ioc.run();
    if (failure) {
        std::rethrow_exception(failure);
    }
    return std::move(*value);
}

mcp_sources sources_of(const mcp_flags& f) {
    mcp_sources s;
    s.configs = f.configs;
    s.workspace = fs::absolute(f.workspace).lexically_normal();
    s.trust_workspace = f.yes;
    s.startup_timeout = std::chrono::seconds(f.startup_timeout_s);
    return s;
}

} // namespace

asio::awaitable<mcp_servers>
async_start_mcp(mcp_sources sources, bool verbose, std::function<void(tools::tool&)> gate) {
    std::vector<configured> servers = configured_servers(sources);
    mcp_servers out;
    if (servers.empty()) {
        co_return out;
    }
    if (sources.elicit) {
        out.elicitor = std::make_shared<terminal_elicitor>();
    }
    std::vector<started> results = co_await start_all(
        std::move(servers), sources.workspace, verbose, sources.startup_timeout, &gate, out.elicitor
    );
    for (auto& r : results) {
        if (!r.failure.empty()) {
            print_failure("mcp: " + r.failure + " (its tools are not offered)");
            r.set->stop();
            if (r.client && !r.timed_out) {
                co_await r.client->async_close();
            }
            r.client.reset();
            continue;
        }
        for (const auto& s : r.skipped) {
            print_failure("mcp: server \"" + r.client->name() + "\": tool left out: " + s);
        }
        mcp_server one;
        one.client = r.client;
        one.tools = r.set;
        one.listing = std::move(r.tools);
        one.freshness = r.freshness;
        out.servers.push_back(std::move(one));
    }
    co_return out;
}

void attach_mcp_tools(mcp_servers& servers, const std::shared_ptr<tools::registry>& reg) {
    for (auto& s : servers.servers) {
        // Prints what is left out (on_update); the first listing is not needed after this.
        s.tools->start(reg, s.client, std::move(s.listing), s.freshness);
        s.listing.clear();
    }
}

asio::awaitable<void> async_stop_mcp(mcp_servers& servers) {
    if (servers.elicitor) {
        servers.elicitor->cancel_questions(); // a form still on the terminal ends as cancel
    }
    for (auto& s : servers.servers) {
        s.tools->stop();
        co_await s.client->async_close();
    }
    servers.servers.clear();
}

int mcp_list(const mcp_flags& flags) {
    const mcp_sources src = sources_of(flags);
    std::vector<configured> servers = configured_servers(src);
    if (servers.empty()) {
        print_failure(
            "mcp: no MCP servers configured (--mcp-config FILE, or .mcp.json in the workspace)"
        );
        return exit_usage;
    }
    std::vector<std::string> names;
    std::vector<std::string> transports;
    std::vector<std::string> commands;
    for (const auto& s : servers) {
        names.push_back(s.name);
        transports.push_back(s.transport());
        commands.push_back(s.where());
    }
    std::vector<started> results = run_here([&]() -> asio::awaitable<std::vector<started>> {
        auto r = co_await start_all(
            std::move(servers), src.workspace, flags.verbose, src.startup_timeout
        );
        for (auto& one : r) {
            if (one.client) {
                one.info = one.client->server();
                if (!one.timed_out) {
                    co_await one.client->async_close();
                }
                // A client must not outlive the io_context its timers belong to.
                one.client.reset();
            }
        }
        co_return r;
    }());
    int status = exit_ok;
    for (std::size_t i = 0; i < results.size(); ++i) {
        const auto& r = results[i];
        if (!r.failure.empty()) {
            status = exit_failure;
        }
        if (flags.json) {
            json j{{"name", names[i]}, {"transport", transports[i]}};
            j[transports[i] == "stdio" ? "command" : "url"] = commands[i];
            if (!r.failure.empty()) {
                j["error"] = r.failure;
            } else {
                const auto& info = r.info;
                j["protocol_version"] = info.protocol_version;
                j["server"] = {{"name", info.name}, {"version", info.version}};
                json tools = json::array();
                for (const auto& t : r.tools) {
                    tools.push_back(
                        {{"name", t.name},
                         {"title", t.title},
                         {"description", t.description},
                         {"annotations", t.annotations},
                         {"input_schema", t.input_schema}}
                    );
                }
                j["tools"] = std::move(tools);
                if (r.freshness.ttl) {
                    // 2026 caching hints of the listing (mcp.md §4.5).
                    j["tools_ttl_ms"] = r.freshness.ttl->count();
                    j["tools_cache_scope"] = r.freshness.cache_scope;
                }
            }
            std::cout << j.dump(-1, ' ', false, json::error_handler_t::replace) << "\n";
            continue;
        }
        if (!r.failure.empty()) {
            std::cout << visible(names[i]) << "  " << transports[i] << "  " << visible(commands[i])
                      << "\n  failed: " << visible(r.failure) << "\n";
            continue;
        }
        const auto& info = r.info;
        std::cout << visible(names[i]) << "  " << transports[i] << "  " << visible(commands[i])
                  << "\n  server " << visible(info.name) << " " << visible(info.version)
                  << ", protocol " << visible(info.protocol_version) << ", " << r.tools.size()
                  << " tools";
        if (r.freshness.ttl) {
            std::cout << " (fresh for " << r.freshness.ttl->count() << " ms, "
                      << r.freshness.cache_scope << ")";
        }
        std::cout << "\n";
        for (const auto& t : r.tools) {
            std::string line = "  " + visible(t.name);
            if (const std::string h = hints(t); !h.empty()) {
                line += "  [" + h + "]";
            }
            if (!t.description.empty()) {
                std::string d = t.description.substr(0, t.description.find('\n'));
                if (d.size() > 100) {
                    d = d.substr(0, 100) + "...";
                }
                line += "  " + visible(d);
            }
            std::cout << line << "\n";
        }
        for (const auto& s : r.skipped) {
            std::cout << "  (left out: " << visible(s) << ")\n";
        }
    }
    std::cout << std::flush;
    return status;
}

int mcp_call(const mcp_flags& flags) {
    const json args = json::parse(flags.arguments, nullptr, false);
    if (args.is_discarded() || !args.is_object()) {
        print_failure("mcp call: the arguments are not a JSON object: " + flags.arguments);
        return exit_usage;
    }
    std::vector<configured> servers = configured_servers(sources_of(flags));
    auto it = std::find_if(servers.begin(), servers.end(), [&](const configured& s) {
        return s.name == flags.server;
    });
    if (it == servers.end()) {
        std::string names;
        for (const auto& s : servers) {
            names += (names.empty() ? "" : ", ") + s.name;
        }
        print_failure(
            "mcp call: no MCP server \"" + flags.server +
            "\" (configured: " + (names.empty() ? "none" : names) + ")"
        );
        return exit_usage;
    }
    const configured server = *it;
    const fs::path workspace = fs::absolute(flags.workspace).lexically_normal();
    // On a terminal the server may ask for input (elicitation), as in `wafer run`; elsewhere
    // the capability is not declared.
    const std::shared_ptr<terminal_elicitor> elicitor =
        can_prompt() ? std::make_shared<terminal_elicitor>() : nullptr;
    try {
        const mcp::call_result r = run_here([&]() -> asio::awaitable<mcp::call_result> {
            mcp::client_options o = client_options_for(server.name, workspace, flags.verbose);
            if (elicitor) {
                o.session.elicitation = true;
                o.on_server_request = elicitor->handler(server.name);
            }
            const std::chrono::milliseconds startup =
                server.startup_timeout.value_or(std::chrono::seconds(flags.startup_timeout_s));
            o.session.initialize_limits = mcp::request_limits{startup, startup};
            auto c = co_await connect_server(server, o);
            std::string tool = flags.tool;
            json a = args;
            // A call that throws leaves `c` to its destructor, which kills the server.
            mcp::call_result res = co_await mcp::async_call_tool(*c, std::move(tool), std::move(a));
            co_await c->async_close();
            co_return res;
        }());
        if (flags.json) {
            std::cout
                << json{{"text", r.text}, {"is_error", r.is_error}, {"structured", r.structured}}
                       .dump(-1, ' ', false, json::error_handler_t::replace)
                << "\n";
        } else {
            std::cout << visible(r.text, layout::text) << "\n";
        }
        std::cout << std::flush;
        return r.is_error ? exit_failure : exit_ok;
    } catch (const mcp::error& e) {
        print_failure(std::string("mcp call: ") + e.what());
        return exit_failure;
    }
}

int mcp_login(const mcp_flags& flags) {
    std::vector<configured> servers = configured_servers(sources_of(flags));
    auto it = std::find_if(servers.begin(), servers.end(), [&](const configured& s) {
        return s.name == flags.server;
    });
    if (it == servers.end()) {
        print_failure("mcp login: no MCP server \"" + flags.server + "\" in the configuration");
        return exit_usage;
    }
    configured server = *it;
    if (!server.http) {
        print_failure(
            "mcp login: \"" + server.name +
            "\" is a stdio server: it takes its credentials from its \"env\", not from OAuth"
        );
        return exit_usage;
    }
    if (!server.http->oauth) {
        print_failure(
            "mcp login: \"" + server.name +
            "\" sends its own Authorization header (its \"headers\"): nothing to log in to"
        );
        return exit_usage;
    }
    const auto store = mcp_token_store();
    if (!store) {
        print_failure("mcp login: no place for the tokens: neither XDG_STATE_HOME nor HOME is set");
        return exit_usage;
    }
    auto browsed = std::make_shared<bool>(false);
    wafer::mcp::oauth_config o = cli_oauth(server.name, server.http->url, true);
    o.authorize = [step = std::move(o.authorize), browsed](std::string url) {
        *browsed = true;
        return step(std::move(url));
    };
    server.http->oauth = std::move(o);
    const fs::path workspace = fs::absolute(flags.workspace).lexically_normal();
    try {
        const std::size_t tools = run_here([&]() -> asio::awaitable<std::size_t> {
            mcp::client_options opts = client_options_for(server.name, workspace, flags.verbose);
            auto c = co_await connect_server(server, opts);
            const auto listed = co_await mcp::async_list_tools(*c);
            co_await c->async_close();
            co_return listed.size();
        }());
        std::cout << "mcp " << visible(server.name) << ": "
                  << (*browsed ? "authorized; the tokens are kept in " + visible(store->string())
                               : std::string("no new authorization was needed"))
                  << " (" << tools << " tools)\n"
                  << std::flush;
        return exit_ok;
    } catch (const mcp::error& e) {
        print_failure(std::string("mcp login: ") + e.what());
        return exit_failure;
    }
}

} // namespace wafer::cli
