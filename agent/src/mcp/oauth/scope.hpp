// Which scope an authorization requests (MCP's scope selection strategy), sans-io.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "mcp/oauth/challenge.hpp"
#include "mcp/oauth/metadata.hpp"

namespace wafer::mcp::oauth {

/// Authorizations one request may cause (the first and two step-ups); after that the server is
/// taken to refuse for good.
inline constexpr int max_authorizations = 3;

/// The challenge's scope; else every scope of the resource metadata; else the configured ones;
/// else none (the request then has no scope parameter).
std::string initial_scope(
    const std::optional<bearer_challenge>& c,
    const resource_metadata* prm,
    const std::vector<std::string>& configured
);

/// A step-up requests what was requested before and what the 403 asks for, each scope once,
/// in that order.
std::string union_scope(std::string_view previous, std::string_view challenged);

} // namespace wafer::mcp::oauth
