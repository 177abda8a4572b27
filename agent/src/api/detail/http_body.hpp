// HTTP/1.1 response body framing, sans-io: chunked transfer coding, Content-Length, or
// read-until-close. Decodes in place and hands out the body bytes without copying them.
#pragma once

#include <wafer/error.hpp>

#include <boost/system/error_code.hpp>

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace wafer::detail {

class http_body_decoder {
public:
    enum class framing { chunked, length, until_eof };

    void reset(framing f, std::uint64_t length = 0) noexcept {
        framing_ = f;
        remaining_ = length;
        state_ = f == framing::chunked ? state::size_first : state::data;
        done_ = f == framing::length && length == 0;
    }

    /// True once the whole body was seen (last chunk and trailers, or Content-Length bytes).
    bool done() const noexcept { return done_; }
    framing kind() const noexcept { return framing_; }

    /// The peer closed the connection. Returns true if that ends the body cleanly.
    bool on_eof() noexcept {
        if (framing_ == framing::until_eof) {
            done_ = true;
        }
        return done_;
    }

    /// Consumes up to `n` bytes of `p`, calling `sink(std::string_view)` for each piece of body
    /// data. Returns the bytes consumed (less than n only when done). On malformed framing sets
    /// ec to errc::invalid_response.
    template <class Sink>
    std::size_t feed(const char* p, std::size_t n, Sink&& sink, boost::system::error_code& ec) {
        std::size_t i = 0;
        while (i < n && !done_) {
            switch (state_) {
            case state::data: {
                std::size_t take = n - i;
                if (framing_ != framing::until_eof && remaining_ < take) {
                    take = static_cast<std::size_t>(remaining_);
                }
                sink(std::string_view(p + i, take));
                i += take;
                if (framing_ != framing::until_eof) {
                    remaining_ -= take;
                    if (remaining_ == 0) {
                        if (framing_ == framing::length) {
                            done_ = true;
                        } else {
                            state_ = state::data_cr;
                        }
                    }
                }
                break;
            }
            case state::size_first:
            case state::size: {
                const char c = p[i];
                int digit = -1;
                if (c >= '0' && c <= '9') {
                    digit = c - '0';
                } else if (c >= 'a' && c <= 'f') {
                    digit = c - 'a' + 10;
                } else if (c >= 'A' && c <= 'F') {
                    digit = c - 'A' + 10;
                }
                if (digit >= 0) {
                    if (remaining_ > (UINT64_MAX >> 4)) {
                        return fail(ec, i);
                    }
                    remaining_ = (remaining_ << 4) | static_cast<std::uint64_t>(digit);
                    state_ = state::size;
                    ++i;
                } else if (state_ == state::size_first) {
                    return fail(ec, i);
                } else if (c == ';' || c == ' ' || c == '\t' || c == '\r') {
                    state_ = state::size_ext; // chunk extensions are ignored
                    ++i;
                } else if (c == '\n') {
                    end_size_line();
                    ++i;
                } else {
                    return fail(ec, i);
                }
                break;
            }
            case state::size_ext:
                if (p[i] == '\n') {
                    end_size_line();
                }
                ++i;
                break;
            case state::data_cr:
                if (p[i] == '\r') {
                    state_ = state::data_lf;
                } else if (p[i] == '\n') {
                    state_ = state::size_first;
                } else {
                    return fail(ec, i);
                }
                ++i;
                break;
            case state::data_lf:
                if (p[i] != '\n') {
                    return fail(ec, i);
                }
                state_ = state::size_first;
                ++i;
                break;
            case state::trailer_start:
                if (p[i] == '\r') {
                    state_ = state::trailer_end_lf;
                } else if (p[i] == '\n') {
                    done_ = true;
                } else {
                    state_ = state::trailer_line;
                }
                ++i;
                break;
            case state::trailer_line:
                if (p[i] == '\n') {
                    state_ = state::trailer_start;
                }
                ++i;
                break;
            case state::trailer_end_lf:
                if (p[i] != '\n') {
                    return fail(ec, i);
                }
                done_ = true;
                ++i;
                break;
            }
        }
        return i;
    }

private:
    enum class state {
        size_first,
        size,
        size_ext,
        data,
        data_cr,
        data_lf,
        trailer_start,
        trailer_line,
        trailer_end_lf
    };

    void end_size_line() noexcept { state_ = remaining_ == 0 ? state::trailer_start : state::data; }

    static std::size_t fail(boost::system::error_code& ec, std::size_t i) {
        ec = make_error_code(errc::invalid_response);
        return i;
    }

    framing framing_ = framing::until_eof;
    state state_ = state::data;
    std::uint64_t remaining_ = 0;
    bool done_ = false;
};

} // namespace wafer::detail
