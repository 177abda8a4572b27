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
                members_.reset();
            }
            dropping_ = true;
            const std::size_t keep = buf_.back() == '\r' ? 1 : 0;
            const std::string_view skipped(buf_.data() + pos_, buf_.size() - pos_ - keep);
            dropped_ += skipped.size();
            keep_tail(skipped);
            members_.feed(skipped);
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
            members_.reset();
        }
        keep_tail(rest);
        members_.feed(rest);
        f.members = members_.finish();
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

void member_scanner::feed(std::string_view bytes) noexcept {
    for (const char c : bytes) {
        if (in_string_) {
            if (escaped_) {
                escaped_ = false;
                if (st_ == state::in_key) {
                    key_escaped_ = true; // an escaped key is none of those looked for
                } else if (st_ == state::id_string) {
                    st_ = state::other; // an escaped id is not kept
                }
                continue;
            }
            if (c == '\\') {
                escaped_ = true;
                continue;
            }
            if (c == '"') {
                in_string_ = false;
                if (st_ == state::in_key) {
                    end_key();
                } else if (st_ == state::id_string) {
                    found_.id = "\"" + token_ + "\"";
                    st_ = state::other;
                }
                continue;
            }
            if (st_ == state::in_key && key_.size() < 8) {
                key_ += c;
            } else if (st_ == state::in_key) {
                key_escaped_ = true; // longer than any key looked for
            } else if (st_ == state::id_string) {
                if (token_.size() >= 256) {
                    st_ = state::other;
                } else {
                    token_ += c;
                }
            }
            continue;
        }
        if (st_ == state::id_number) {
            if ((c >= '0' && c <= '9') || c == '-' || c == '+' || c == '.' || c == 'e' ||
                c == 'E') {
                if (token_.size() > 20) {
                    st_ = state::other;
                } else {
                    token_ += c;
                }
                continue;
            }
            end_number();
        }
        const bool space = c == ' ' || c == '\t' || c == '\n' || c == '\r';
        if (space) {
            continue;
        }
        switch (c) {
        case '"':
            in_string_ = true;
            if (st_ == state::key) {
                st_ = state::in_key;
                key_.clear();
                key_escaped_ = false;
            } else if (st_ == state::member && value_is_id_) {
                st_ = state::id_string;
                token_.clear();
            } else if (st_ == state::member) {
                st_ = state::other;
            }
            break;
        case '{':
        case '[':
            ++depth_;
            if (depth_ == 1) {
                st_ = c == '{' ? state::key : state::value;
            } else if (depth_ == 2 && st_ == state::member) {
                st_ = state::other;
            }
            break;
        case '}':
        case ']':
            if (depth_ > 0) {
                --depth_;
            }
            if (depth_ == 0) {
                st_ = state::value;
            }
            break;
        case ':':
            if (depth_ == 1 && st_ == state::colon) {
                st_ = state::member;
            }
            break;
        case ',':
            if (depth_ == 1 && st_ != state::value) {
                st_ = state::key;
            }
            break;
        default:
            if (depth_ == 1 && st_ == state::member) {
                if (value_is_id_ && ((c >= '0' && c <= '9') || c == '-')) {
                    st_ = state::id_number;
                    token_.assign(1, c);
                } else {
                    st_ = state::other;
                }
            }
            break;
        }
    }
}

void member_scanner::end_key() {
    value_is_id_ = false;
    st_ = state::colon;
    if (key_escaped_) {
        return;
    }
    if (key_ == "id") {
        value_is_id_ = true;
    } else if (key_ == "method") {
        found_.method = true;
    } else if (key_ == "result" || key_ == "error") {
        found_.result = true;
    }
}

void member_scanner::end_number() {
    // An integer: an optional '-' then digits (no fraction, exponent or '+').
    const bool integer =
        token_.size() <= 20 && !token_.empty() &&
        token_.find_first_not_of("0123456789", token_[0] == '-' ? 1 : 0) == std::string::npos &&
        token_ != "-";
    if (integer) {
        found_.id = token_;
    }
    st_ = state::other;
}

line_members member_scanner::finish() {
    if (!in_string_ && st_ == state::id_number) {
        end_number();
    }
    line_members out = std::move(found_);
    reset();
    return out;
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
