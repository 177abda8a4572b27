#include <wafer/tools/secret_redactor.hpp>

#include <algorithm>
#include <utility>

namespace wafer::tools {

secret_redactor::secret_redactor(std::vector<std::string> secrets) {
    for (auto& s : secrets) {
        if (!s.empty()) {
            longest_ = std::max(longest_, s.size());
            secrets_.push_back(std::move(s));
        }
    }
}

std::size_t secret_redactor::scan(std::size_t limit, std::string& out) {
    std::size_t pos = 0;
    for (;;) {
        std::size_t best = std::string::npos;
        std::size_t best_len = 0;
        for (const auto& s : secrets_) {
            const std::size_t at = pending_.find(s, pos);
            if (at < limit && (at < best || (at == best && s.size() > best_len))) {
                best = at;
                best_len = s.size();
            }
        }
        if (best == std::string::npos) {
            break;
        }
        out.append(pending_, pos, best - pos);
        out += marker;
        pos = best + best_len;
    }
    if (pos < limit) {
        out.append(pending_, pos, limit - pos);
        pos = limit;
    }
    return pos;
}

void secret_redactor::feed(std::string_view chunk, std::string& out) {
    if (secrets_.empty()) {
        out += chunk;
        return;
    }
    pending_ += chunk;
    // An occurrence starting before `safe` is complete; later bytes may begin one.
    const std::size_t hold = longest_ - 1;
    const std::size_t safe = pending_.size() > hold ? pending_.size() - hold : 0;
    pending_.erase(0, scan(safe, out));
}

void secret_redactor::finish(std::string& out) {
    if (!pending_.empty()) {
        scan(pending_.size(), out);
        pending_.clear();
    }
}

std::string
secret_redactor::redact(std::string_view text, const std::vector<std::string>& secrets) {
    secret_redactor r(secrets);
    std::string out;
    r.feed(text, out);
    r.finish(out);
    return out;
}

} // namespace wafer::tools
