#include "mcp/oauth/token_store.hpp"

#include <nlohmann/json.hpp>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fcntl.h>
#include <fstream>
#include <sstream>
#include <sys/stat.h>
#include <unistd.h>

namespace wafer::mcp::oauth {

namespace {

using nlohmann::json;

json load(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) {
        return json::object();
    }
    std::stringstream ss;
    ss << in.rdbuf();
    auto j = json::parse(ss.str(), nullptr, false);
    return j.is_object() ? j : json::object();
}

std::string str(const json& j, const char* key) {
    const auto it = j.find(key);
    return it != j.end() && it->is_string() ? it->get<std::string>() : std::string();
}

// Writes a sibling file created 0600 (never wider, whatever the umask) and renames it over
// the store.
std::string write(const std::string& path, const json& j) {
    const std::string tmp = path + ".tmp";
    const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0) {
        return "cannot write the token store " + path + " (" + std::strerror(errno) + ")";
    }
    const std::string text = j.dump(2) + "\n";
    bool ok = ::fchmod(fd, 0600) == 0;
    std::size_t done = 0;
    while (ok && done < text.size()) {
        const auto n = ::write(fd, text.data() + done, text.size() - done);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        ok = n > 0;
        done += ok ? static_cast<std::size_t>(n) : 0;
    }
    ok = ::fsync(fd) == 0 && ok;
    ok = ::close(fd) == 0 && ok;
    if (!ok || std::rename(tmp.c_str(), path.c_str()) != 0) {
        const std::string err = std::strerror(errno);
        std::remove(tmp.c_str());
        return "cannot write the token store " + path + " (" + err + ")";
    }
    return {};
}

} // namespace

std::optional<stored_tokens> token_store::tokens(std::string_view resource) const {
    if (path_.empty()) {
        return std::nullopt;
    }
    const json j = load(path_);
    const auto r = j.find("resources");
    if (r == j.end() || !r->is_object()) {
        return std::nullopt;
    }
    const auto e = r->find(std::string(resource));
    if (e == r->end() || !e->is_object()) {
        return std::nullopt;
    }
    stored_tokens t;
    t.issuer = str(*e, "issuer");
    t.access_token = str(*e, "access_token");
    t.refresh_token = str(*e, "refresh_token");
    t.scope = str(*e, "scope");
    t.resource = str(*e, "resource");
    t.token_endpoint = str(*e, "token_endpoint");
    t.auth_method = str(*e, "auth_method");
    if (t.access_token.empty() && t.refresh_token.empty()) {
        return std::nullopt;
    }
    return t;
}

std::optional<client_credentials> token_store::client(std::string_view issuer) const {
    if (path_.empty()) {
        return std::nullopt;
    }
    const json j = load(path_);
    const auto c = j.find("clients");
    if (c == j.end() || !c->is_object()) {
        return std::nullopt;
    }
    const auto e = c->find(std::string(issuer));
    if (e == c->end() || !e->is_object() || str(*e, "client_id").empty()) {
        return std::nullopt;
    }
    client_credentials out;
    out.client_id = str(*e, "client_id");
    out.client_secret = str(*e, "client_secret");
    out.auth_method = str(*e, "auth_method");
    return out;
}

std::string token_store::save_tokens(std::string_view resource, const stored_tokens& t) const {
    if (path_.empty()) {
        return {};
    }
    json j = load(path_);
    json e = json::object();
    e["issuer"] = t.issuer;
    e["access_token"] = t.access_token;
    e["refresh_token"] = t.refresh_token;
    e["scope"] = t.scope;
    e["resource"] = t.resource;
    e["token_endpoint"] = t.token_endpoint;
    e["auth_method"] = t.auth_method;
    if (!j["resources"].is_object()) {
        j["resources"] = json::object();
    }
    j["resources"][std::string(resource)] = std::move(e);
    return write(path_, j);
}

std::string token_store::save_client(std::string_view issuer, const client_credentials& c) const {
    if (path_.empty()) {
        return {};
    }
    json j = load(path_);
    json e = json::object();
    e["client_id"] = c.client_id;
    e["client_secret"] = c.client_secret;
    e["auth_method"] = c.auth_method;
    if (!j["clients"].is_object()) {
        j["clients"] = json::object();
    }
    j["clients"][std::string(issuer)] = std::move(e);
    return write(path_, j);
}

} // namespace wafer::mcp::oauth
