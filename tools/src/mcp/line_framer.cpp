#include <wafer/tools/mcp/line_framer.hpp>

namespace wafer::tools::mcp {

void line_framer::feed(std::string_view bytes) {
    if (pos_ > 0 && pos_ >= buf_.size() / 2) {
        // Reclaim what was returned, so the buffer holds about one partial line.
        buf_.erase(0, pos_);
        scan_ -= pos_;
        pos_ = 0;
    }
    buf_.append(bytes);
}

std::optional<frame> line_framer::next() {
    const std::size_t nl = buf_.find('\n', scan_);
    if (nl == std::string::npos) {
        scan_ = buf_.size();
        if (buf_.size() - pos_ > max_line_) {
            // Too long already: stop keeping it, remember how much was seen and its ends. A
            // last "\r" stays: it may be the start of the line end.
            if (!dropping_) {
                head_.assign(buf_, pos_, head_max_);
            }
            dropping_ = true;
            const std::size_t keep = buf_.back() == '\r' ? 1 : 0;
            const std::string_view skipped(buf_.data() + pos_, buf_.size() - pos_ - keep);
            dropped_ += skipped.size();
            keep_tail(skipped);
            buf_.erase(0, buf_.size() - keep);
            pos_ = 0;
            scan_ = buf_.size();
        }
        return std::nullopt;
    }
    frame f = take(nl);
    pos_ = scan_ = nl + 1;
    return f;
}

std::optional<frame> line_framer::finish() {
    const std::size_t partial = buf_.size() - pos_;
    if (partial == 0 && !dropping_) {
        return std::nullopt;
    }
    frame f = take(buf_.size());
    buf_.clear();
    pos_ = scan_ = 0;
    return f;
}

frame line_framer::take(std::size_t end) {
    if (end > pos_ && buf_[end - 1] == '\r') {
        --end;
    }
    const std::size_t size = end - pos_;
    frame f;
    if (dropping_ || size > max_line_) {
        const std::string_view rest(buf_.data() + pos_, size);
        if (!dropping_) {
            head_.assign(rest.substr(0, head_max_));
        }
        keep_tail(rest);
        f.type = frame::kind::oversized;
        f.text = std::move(head_);
        f.tail = std::move(tail_);
        f.size = dropped_ + size;
    } else {
        f.text.assign(buf_, pos_, size);
        f.size = size;
    }
    dropping_ = false;
    dropped_ = 0;
    head_.clear();
    tail_.clear();
    return f;
}

void line_framer::keep_tail(std::string_view bytes) {
    if (bytes.size() >= tail_max_) {
        tail_.assign(bytes.substr(bytes.size() - tail_max_));
        return;
    }
    tail_.append(bytes);
    if (tail_.size() > tail_max_) {
        tail_.erase(0, tail_.size() - tail_max_);
    }
}

} // namespace wafer::tools::mcp
