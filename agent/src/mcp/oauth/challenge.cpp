#include "mcp/oauth/challenge.hpp"

#include <cctype>

namespace wafer::mcp::oauth {

namespace {

bool token_char(char c) {
    const auto u = static_cast<unsigned char>(c);
    return std::isalnum(u) != 0 ||
           std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
}

bool iequals(std::string_view a, std::string_view b) {
    if (a.size() != b.size()) {
        return false;
    }
    for (std::size_t i = 0; i < a.size(); ++i) {
        if (std::tolower(static_cast<unsigned char>(a[i])) !=
            std::tolower(static_cast<unsigned char>(b[i]))) {
            return false;
        }
    }
    return true;
}

struct cursor {
    std::string_view s;
    std::size_t i = 0;
    void skip_space() {
        while (i < s.size() && (s[i] == ' ' || s[i] == '\t')) {
            ++i;
        }
    }
    void skip_space_commas() {
        while (i < s.size() && (s[i] == ' ' || s[i] == '\t' || s[i] == ',')) {
            ++i;
        }
    }
    std::string_view token() {
        const std::size_t b = i;
        while (i < s.size() && token_char(s[i])) {
            ++i;
        }
        return s.substr(b, i - b);
    }
    // A quoted-string (backslash escapes) or a token (token68 padding '=' included).
    std::string value() {
        std::string out;
        if (i < s.size() && s[i] == '"') {
            for (++i; i < s.size() && s[i] != '"'; ++i) {
                if (s[i] == '\\' && i + 1 < s.size()) {
                    ++i;
                }
                out += s[i];
            }
            if (i < s.size()) {
                ++i;
            }
            return out;
        }
        while (i < s.size() && s[i] != ',' && s[i] != ' ' && s[i] != '\t') {
            out += s[i++];
        }
        return out;
    }
};

} // namespace

std::optional<bearer_challenge> parse_bearer_challenge(std::string_view header) {
    cursor c{header};
    std::optional<bearer_challenge> found;
    bool in_bearer = false;
    for (;;) {
        c.skip_space_commas();
        if (c.i >= header.size()) {
            break;
        }
        const std::string_view name = c.token();
        if (name.empty()) {
            ++c.i; // not HTTP syntax: skip the character
            continue;
        }
        c.skip_space();
        if (c.i < header.size() && header[c.i] == '=') {
            ++c.i;
            c.skip_space();
            std::string v = c.value();
            if (in_bearer && found) {
                if (iequals(name, "resource_metadata")) {
                    found->resource_metadata = std::move(v);
                } else if (iequals(name, "scope")) {
                    found->scope = std::move(v);
                } else if (iequals(name, "error")) {
                    found->error = std::move(v);
                }
            }
            continue;
        }
        // A scheme name starts a new challenge.
        in_bearer = iequals(name, "bearer") && !found;
        if (in_bearer) {
            found.emplace();
        }
    }
    return found;
}

auth_demand classify_auth_failure(int status, const std::optional<bearer_challenge>& c) {
    if (status == 401) {
        return auth_demand::authorize;
    }
    if (status == 403 && c && c->error == "insufficient_scope") {
        return auth_demand::more_scope;
    }
    return auth_demand::none;
}

} // namespace wafer::mcp::oauth
