// Test helpers for driving mcp::session sans-io: the messages a take_output() block holds,
// the events of one kind, and one line of input.
#pragma once

#include <wafer/tools/mcp/session.hpp>

#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

#include <string>
#include <variant>
#include <vector>

namespace wafer::testing {

/// The JSON messages of a take_output() block.
inline std::vector<nlohmann::json> sent(tools::mcp::session& s) {
    std::vector<nlohmann::json> out;
    const std::string text = s.take_output();
    std::size_t start = 0;
    while (start < text.size()) {
        const std::size_t nl = text.find('\n', start);
        REQUIRE(nl != std::string::npos);
        out.push_back(nlohmann::json::parse(text.substr(start, nl - start)));
        start = nl + 1;
    }
    return out;
}

/// The events of type Event, in order.
template <class Event>
std::vector<Event> only(const std::vector<tools::mcp::session_event>& events) {
    std::vector<Event> out;
    for (const auto& e : events) {
        if (const auto* p = std::get_if<Event>(&e)) {
            out.push_back(*p);
        }
    }
    return out;
}

/// One line of what a stdio server writes.
inline std::string line(const nlohmann::json& j) {
    return j.dump() + "\n";
}

} // namespace wafer::testing
