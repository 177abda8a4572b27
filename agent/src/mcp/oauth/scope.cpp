#include "mcp/oauth/scope.hpp"

#include <algorithm>

namespace wafer::mcp::oauth {

namespace {

std::string join(const std::vector<std::string>& v) {
    std::string out;
    for (const auto& s : v) {
        if (!out.empty()) {
            out += ' ';
        }
        out += s;
    }
    return out;
}

void add_words(std::vector<std::string>& out, std::string_view s) {
    while (!s.empty()) {
        const auto b = s.find_first_not_of(' ');
        if (b == std::string_view::npos) {
            break;
        }
        s.remove_prefix(b);
        const auto e = s.find(' ');
        std::string word(s.substr(0, e));
        if (std::find(out.begin(), out.end(), word) == out.end()) {
            out.push_back(std::move(word));
        }
        s = e == std::string_view::npos ? std::string_view{} : s.substr(e);
    }
}

} // namespace

std::string initial_scope(
    const std::optional<bearer_challenge>& c,
    const resource_metadata* prm,
    const std::vector<std::string>& configured
) {
    if (c && !c->scope.empty()) {
        return union_scope({}, c->scope);
    }
    if (prm != nullptr && !prm->scopes_supported.empty()) {
        return join(prm->scopes_supported);
    }
    return join(configured);
}

std::string union_scope(std::string_view previous, std::string_view challenged) {
    std::vector<std::string> words;
    add_words(words, previous);
    add_words(words, challenged);
    return join(words);
}

} // namespace wafer::mcp::oauth
