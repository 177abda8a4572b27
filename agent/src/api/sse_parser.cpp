#include <wafer/api/sse_parser.hpp>

#include <cstring>
#include <stdexcept>

namespace wafer::api {

namespace {

constexpr std::string_view utf8_bom = "\xEF\xBB\xBF";

bool all_digits(std::string_view s) {
    if (s.empty() || s.size() > 9) {
        return false;
    }
    for (char c : s) {
        if (c < '0' || c > '9') {
            return false;
        }
    }
    return true;
}

} // namespace

void sse_parser::feed(std::string_view bytes) {
    // The only event data not yet copied is a single data line referenced in place (see next());
    // copy it before the buffer moves.
    if (single_line_pending_) {
        data_.assign(buffer_, single_line_off_, single_line_len_);
        single_line_pending_ = false;
    }
    if (pos_ == buffer_.size()) {
        buffer_.clear();
        pos_ = 0;
    } else if (pos_ > 0) {
        buffer_.erase(0, pos_);
        pos_ = 0;
    }
    buffer_.append(bytes);
    if (!bom_checked_) {
        // A UTF-8 byte order mark at the very start of the stream is ignored.
        if (buffer_.size() < utf8_bom.size() && utf8_bom.starts_with(buffer_)) {
            return; // not enough bytes to decide yet
        }
        if (buffer_.starts_with(utf8_bom)) {
            buffer_.erase(0, utf8_bom.size());
        }
        bom_checked_ = true;
    }
}

std::size_t sse_parser::pending_bytes() const noexcept {
    return buffer_.size() - pos_;
}

bool sse_parser::has_partial_event() const noexcept {
    return has_data_ || pending_bytes() != 0;
}

std::optional<sse_event> sse_parser::next() {
    if (!bom_checked_) {
        return std::nullopt;
    }
    for (;;) {
        const char* base = buffer_.data();
        std::size_t size = buffer_.size();
        if (skip_lf_ && pos_ < size) {
            // The previous line ended in CR at the end of a feed; its LF arrived now.
            if (base[pos_] == '\n') {
                ++pos_;
            }
            skip_lf_ = false;
        }
        if (pos_ >= size) {
            return std::nullopt;
        }
        const char* start = base + pos_;
        std::size_t avail = size - pos_;
        const void* lf = std::memchr(start, '\n', avail);
        std::size_t scan =
            lf ? static_cast<std::size_t>(static_cast<const char*>(lf) - start) : avail;
        const void* cr = std::memchr(start, '\r', scan);
        std::size_t len;
        std::size_t terminator;
        if (cr) {
            len = static_cast<std::size_t>(static_cast<const char*>(cr) - start);
            if (len + 1 < avail) {
                terminator = start[len + 1] == '\n' ? 2 : 1;
            } else {
                terminator = 1;
                skip_lf_ = true;
            }
        } else if (lf) {
            len = scan;
            terminator = 1;
        } else {
            if (avail > max_event_size_) {
                throw std::length_error("SSE line exceeds the maximum event size");
            }
            return std::nullopt;
        }
        std::size_t line_off = pos_;
        pos_ += len + terminator;
        std::string_view line(start, len);

        if (line.empty()) {
            if (!has_data_) {
                event_type_.clear();
                continue;
            }
            sse_event ev;
            if (single_line_pending_) {
                ev.data = std::string_view(buffer_).substr(single_line_off_, single_line_len_);
                single_line_pending_ = false;
            } else {
                out_data_.swap(data_);
                ev.data = out_data_;
            }
            data_.clear();
            out_event_.swap(event_type_);
            event_type_.clear();
            ev.event = out_event_.empty() ? std::string_view("message") : out_event_;
            ev.id = last_id_;
            ev.retry = retry_;
            retry_.reset();
            has_data_ = false;
            return ev;
        }
        if (line.front() == ':') {
            continue; // comment
        }
        std::string_view field = line;
        std::string_view value = line.substr(line.size()); // empty, but positioned in the buffer
        if (auto colon = line.find(':'); colon != std::string_view::npos) {
            field = line.substr(0, colon);
            value = line.substr(colon + 1);
            if (!value.empty() && value.front() == ' ') {
                value.remove_prefix(1);
            }
        }
        if (field == "data") {
            std::size_t value_off = line_off + static_cast<std::size_t>(value.data() - line.data());
            if (!has_data_) {
                // Common case: one data line per event. Reference it in place; copy only if a
                // second line or a feed() comes first.
                has_data_ = true;
                single_line_pending_ = true;
                single_line_off_ = value_off;
                single_line_len_ = value.size();
                if (value.size() > max_event_size_) {
                    throw std::length_error("SSE event exceeds the maximum event size");
                }
                continue;
            }
            if (single_line_pending_) {
                data_.assign(buffer_, single_line_off_, single_line_len_);
                single_line_pending_ = false;
            }
            if (data_.size() + 1 + value.size() > max_event_size_) {
                throw std::length_error("SSE event exceeds the maximum event size");
            }
            data_ += '\n';
            data_.append(value);
        } else if (field == "event") {
            event_type_.assign(value);
        } else if (field == "id") {
            if (value.find('\0') == std::string_view::npos) {
                last_id_.assign(value);
            }
        } else if (field == "retry") {
            if (all_digits(value)) {
                retry_ = std::stoul(std::string(value));
                reconnection_ = retry_;
            }
        }
        // Any other field is ignored, as the specification says.
    }
}

} // namespace wafer::api
