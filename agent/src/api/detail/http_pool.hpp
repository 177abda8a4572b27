// Idle keep-alive connections keyed by (scheme, host, port). Single-threaded (the client's
// executor). A connection is put back only after a complete response on a keep-alive
// connection with no error, timeout or cancellation; everything else is closed.
#pragma once

#include <chrono>
#include <cstddef>
#include <deque>
#include <map>
#include <memory>
#include <string>

#include "api/detail/http_connection.hpp"

namespace wafer::detail {

class http_pool {
public:
    http_pool(std::size_t max_idle_per_key, std::chrono::milliseconds idle_timeout)
        : max_idle_(max_idle_per_key), idle_timeout_(idle_timeout) {}

    /// The most recently parked live connection for `key` (marked reused), or nullptr.
    std::unique_ptr<http_connection> take(const std::string& key) {
        auto it = idle_.find(key);
        if (it == idle_.end()) {
            return nullptr;
        }
        const auto now = std::chrono::steady_clock::now();
        auto& q = it->second;
        while (!q.empty()) {
            auto c = std::move(q.back());
            q.pop_back();
            if (c->is_open() && now - c->idle_since < idle_timeout_) {
                c->reused = true;
                return c;
            }
        }
        return nullptr;
    }

    /// Parks a connection whose response completed cleanly.
    void put(std::unique_ptr<http_connection> c) {
        if (!c || !c->is_open() || c->size() != 0) {
            return; // unread bytes would be mistaken for the next response
        }
        auto& q = idle_[c->key];
        if (q.size() >= max_idle_) {
            q.pop_front();
        }
        c->park();
        c->idle_since = std::chrono::steady_clock::now();
        q.push_back(std::move(c));
    }

    std::size_t idle_count() const noexcept {
        std::size_t n = 0;
        for (const auto& [k, q] : idle_) {
            n += q.size();
        }
        return n;
    }

    void note_connect() noexcept { ++opened_; }
    std::size_t opened() const noexcept { return opened_; }

private:
    std::size_t max_idle_;
    std::chrono::milliseconds idle_timeout_;
    std::map<std::string, std::deque<std::unique_ptr<http_connection>>> idle_;
    std::size_t opened_ = 0;
};

} // namespace wafer::detail
