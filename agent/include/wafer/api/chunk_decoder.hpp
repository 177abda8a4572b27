// Decodes SSE data payloads into chunk_views with simdjson on-demand (no DOM, no allocation in the
// steady state). The decoder owns a padded copy of the payload, so callers may pass any view.
#pragma once

#include <wafer/api/chunk.hpp>

#include <boost/system/error_code.hpp>

#include <memory>
#include <string_view>

namespace wafer::api {

class chunk_decoder {
public:
    chunk_decoder();
    ~chunk_decoder();
    chunk_decoder(chunk_decoder&&) noexcept;
    chunk_decoder& operator=(chunk_decoder&&) noexcept;

    /// Decodes one SSE data payload (a JSON object). On malformed JSON, a payload that is not an
    /// object, or one nested deeper than 64 levels, sets ec to errc::invalid_response and returns
    /// an empty view. The returned views
    /// are valid until the next call.
    const chunk_view& decode(std::string_view payload, boost::system::error_code& ec);

private:
    struct impl;
    std::unique_ptr<impl> impl_;
};

} // namespace wafer::api
