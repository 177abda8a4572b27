// The configuration file (config.hpp), read with toml++.
#include "config.hpp"

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string_view>
#include <system_error>
#include <toml++/toml.h>

#include "failure.hpp"
#include "visible.hpp"

namespace fs = std::filesystem;

namespace wafer::cli {

namespace {

// Larger than any configuration a person writes; a bigger file is a mistake (or not ours).
constexpr std::uintmax_t max_config_bytes = 1024 * 1024;

constexpr std::array<std::string_view, 4> known_critics{
    "security", "code-review", "qa", "performance"};
constexpr std::array<std::string_view, 3> known_sandbox_modes{"on", "auto", "off"};

[[noreturn]] void
fail_at(const fs::path& path, const toml::source_region& where, const std::string& what) {
    std::string line = path.string();
    if (where.begin.line > 0) {
        line += ":" + std::to_string(where.begin.line) + ":" + std::to_string(where.begin.column);
    }
    line += ": " + what;
    throw cli_error(line, exit_usage);
}

std::string read_config_text(const fs::path& path) {
    std::error_code ec;
    const auto size = fs::file_size(path, ec);
    if (!ec && size > max_config_bytes) {
        throw cli_error(
            path.string() + ": larger than " + std::to_string(max_config_bytes) +
                " bytes; not a wafer configuration",
            exit_usage
        );
    }
    std::ifstream in(path, std::ios::binary);
    if (!in) {
        throw cli_error(
            "cannot read the configuration " + path.string() + ": " +
                std::error_code(errno, std::generic_category()).message(),
            exit_usage
        );
    }
    std::ostringstream s;
    s << in.rdbuf();
    return s.str();
}

// The parsed file; nullopt when it does not exist.
std::optional<toml::table> parse_config(const fs::path& path) {
    std::error_code ec;
    if (!fs::exists(path, ec)) {
        return std::nullopt;
    }
    const std::string text = read_config_text(path);
    try {
        return toml::parse(text, path.string());
    } catch (const toml::parse_error& e) {
        fail_at(path, e.source(), std::string(e.description()));
    }
}

std::string string_value(const fs::path& path, const std::string& key, const toml::node& n) {
    const auto v = n.value_exact<std::string>();
    if (!v) {
        fail_at(path, n.source(), key + " must be a string");
    }
    return *v;
}

std::string
one_of(const fs::path& path, const std::string& key, const toml::node& n, auto allowed) {
    std::string v = string_value(path, key, n);
    if (std::find(allowed.begin(), allowed.end(), v) == allowed.end()) {
        std::string list;
        for (const auto a : allowed) {
            list += (list.empty() ? "" : ", ") + std::string(a);
        }
        fail_at(path, n.source(), key + " \"" + visible(v) + "\" is not one of " + list);
    }
    return v;
}

} // namespace

fs::path user_config_path() {
    const char* xdg = std::getenv("XDG_CONFIG_HOME");
    if (xdg != nullptr && *xdg == '/') { // the spec: a relative value is ignored
        return fs::path(xdg) / "wafer" / "config.toml";
    }
    const char* home = std::getenv("HOME");
    if (home != nullptr && *home != '\0') {
        return fs::path(home) / ".config" / "wafer" / "config.toml";
    }
    return {};
}

user_config load_user_config(const fs::path& path) {
    user_config cfg;
    if (path.empty()) {
        return cfg;
    }
    const auto table = parse_config(path);
    if (!table) {
        return cfg;
    }
    cfg.path = path;
    for (const auto& [key, node] : *table) {
        const std::string k(key.str());
        if (k == "model") {
            cfg.model = string_value(path, k, node);
            if (cfg.model->empty()) {
                fail_at(path, node.source(), "model must not be empty");
            }
        } else if (k == "base_url") {
            cfg.base_url = string_value(path, k, node);
        } else if (k == "critics") {
            const toml::array* list = node.as_array();
            if (list == nullptr) {
                fail_at(path, node.source(), "critics must be an array of critic names");
            }
            std::vector<std::string> names;
            for (const auto& item : *list) {
                names.push_back(one_of(path, "critic", item, known_critics));
            }
            cfg.critics = std::move(names);
        } else if (k == "sandbox") {
            const toml::table* sandbox = node.as_table();
            if (sandbox == nullptr) {
                fail_at(path, node.source(), "sandbox must be a table ([sandbox])");
            }
            for (const auto& [skey, snode] : *sandbox) {
                const std::string sk(skey.str());
                if (sk == "mode") {
                    cfg.sandbox = one_of(path, "sandbox.mode", snode, known_sandbox_modes);
                } else if (sk == "allow_network") {
                    const auto v = snode.value_exact<bool>();
                    if (!v) {
                        fail_at(
                            path, snode.source(), "sandbox.allow_network must be true or false"
                        );
                    }
                    cfg.allow_network = *v;
                } else {
                    fail_at(
                        path,
                        skey.source(),
                        "unknown key sandbox." + visible(sk) + " (mode, allow_network)"
                    );
                }
            }
        } else if (k == "mcp_servers") {
            if (!node.is_table()) {
                fail_at(path, node.source(), "mcp_servers must be a table ([mcp_servers.NAME])");
            }
            cfg.has_mcp_servers = true;
        } else {
            fail_at(
                path,
                key.source(),
                "unknown key " + visible(k) +
                    " (model, base_url, critics, [sandbox], [mcp_servers.NAME])"
            );
        }
    }
    return cfg;
}

std::string mcp_servers_json(const fs::path& path) {
    const auto table = parse_config(path);
    std::ostringstream out;
    out << R"({"mcpServers":)";
    const toml::table* servers = table ? (*table)["mcp_servers"].as_table() : nullptr;
    if (servers != nullptr) {
        out << toml::json_formatter{*servers};
    } else {
        out << "{}";
    }
    out << "}";
    return out.str();
}

void apply_user_config(
    const user_config& cfg, model_flags& flags, bool model_given, bool base_url_given
) {
    if (cfg.model && !model_given) {
        flags.model = *cfg.model;
    }
    const char* env_base = std::getenv("CEREBRAS_BASE_URL");
    const bool env_given = env_base != nullptr && *env_base != '\0';
    if (cfg.base_url && !base_url_given && !env_given) {
        flags.base_url = *cfg.base_url;
    }
}

void apply_user_config(
    const user_config& cfg,
    run_flags& flags,
    const std::set<std::string>& given,
    bool base_url_given
) {
    apply_user_config(
        cfg, static_cast<model_flags&>(flags), given.contains("--model"), base_url_given
    );
    if (cfg.critics && !given.contains("--critic")) {
        flags.critics = *cfg.critics;
    }
    if (cfg.sandbox && !given.contains("--sandbox")) {
        flags.sandbox = *cfg.sandbox;
    }
    if (cfg.allow_network && !given.contains("--allow-network")) {
        flags.allow_network = *cfg.allow_network;
    }
    if (cfg.has_mcp_servers) {
        flags.mcp_configs.push_back(cfg.path.string());
    }
}

void apply_user_config(const user_config& cfg, models_flags& flags, bool base_url_given) {
    const char* env_base = std::getenv("CEREBRAS_BASE_URL");
    const bool env_given = env_base != nullptr && *env_base != '\0';
    if (cfg.base_url && !base_url_given && !env_given) {
        flags.base_url = *cfg.base_url;
    }
}

void apply_user_config(const user_config& cfg, mcp_flags& flags) {
    if (cfg.has_mcp_servers) {
        flags.configs.push_back(cfg.path.string());
    }
}

} // namespace wafer::cli
