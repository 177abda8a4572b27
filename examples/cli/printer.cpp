#include "printer.hpp"

#include <wafer/api/message.hpp>

#include <cstdio>
#include <string_view>
#include <vector>

#include "visible.hpp"

namespace wafer::cli {

namespace {

constexpr std::string_view dim = "\x1b[2m";
constexpr std::string_view reset = "\x1b[0m";

/// At most `limit` bytes of `s`, cut on a UTF-8 boundary, with "..." when cut.
std::string cut(std::string_view s, std::size_t limit) {
    if (s.size() <= limit) {
        return std::string(s);
    }
    std::size_t end = limit;
    while (end > 0 && (static_cast<unsigned char>(s[end]) & 0xC0U) == 0x80U) {
        --end;
    }
    return std::string(s.substr(0, end)) + "...";
}

std::string milliseconds(std::chrono::microseconds d) {
    char buf[32];
    const double ms = static_cast<double>(d.count()) / 1000.0;
    std::snprintf(buf, sizeof buf, ms < 10 ? "%.1f ms" : "%.0f ms", ms);
    return buf;
}

// A progress figure: whole numbers without decimals.
std::string figure(double v) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.6g", v);
    return buf;
}

// Tokens the short way: 950, 41.2k, 131k.
std::string thousands(std::int64_t n) {
    if (n < 1000) {
        return std::to_string(n);
    }
    char buf[32];
    const double k = static_cast<double>(n) / 1000.0;
    std::snprintf(buf, sizeof buf, k < 100 ? "%.1fk" : "%.0fk", k);
    return buf;
}

std::string seconds(double s) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.2f s", s);
    return buf;
}

} // namespace

std::string preview(
    const std::string& text, const std::string& indent, std::size_t max_lines, std::size_t max_width
) {
    std::vector<std::string_view> lines;
    std::string_view rest = text;
    while (!rest.empty()) {
        const std::size_t nl = rest.find('\n');
        lines.push_back(rest.substr(0, nl));
        rest = nl == std::string_view::npos ? std::string_view() : rest.substr(nl + 1);
    }
    const auto show = [&](std::string_view line) {
        std::string shown = cut(line, max_width);
        for (auto& c : shown) {
            c = c == '\t' ? ' ' : c; // read_file's "N<tab>line" would jump to the next tab stop
        }
        return indent + visible(shown) + "\n";
    };
    std::string out;
    if (lines.size() <= max_lines) {
        for (auto line : lines) {
            out += show(line);
        }
        return out;
    }
    // The head says what it is, the tail how it ended (a test summary, an exit status).
    const std::size_t head = (max_lines + 1) / 2;
    const std::size_t tail = max_lines - head;
    for (std::size_t i = 0; i < head; ++i) {
        out += show(lines[i]);
    }
    const std::size_t left = lines.size() - head - tail;
    out += indent + "... (" + std::to_string(left) + " more line" + (left == 1 ? "" : "s") + ")\n";
    for (std::size_t i = lines.size() - tail; i < lines.size(); ++i) {
        out += show(lines[i]);
    }
    return out;
}

event_printer::event_printer(std::ostream& out, printer_options options, std::ostream* status)
    : out_(out), opts_(options), status_(status) {
    if (status_ == nullptr) {
        opts_.thinking = false;
    }
}

event_printer::~event_printer() {
    clear_thinking();
}

void event_printer::coalesce_writes(boost::asio::any_io_executor ex) {
    flush_timer_.emplace(std::move(ex));
}

void event_printer::flush_now() {
    out_.flush();
    last_flush_ = std::chrono::steady_clock::now();
}

void event_printer::text_written() {
    if (!flush_timer_) {
        out_.flush();
        return;
    }
    if (flush_pending_) {
        return; // the timer writes it with what follows
    }
    if (std::chrono::steady_clock::now() - last_flush_ >= flush_interval) {
        flush_now(); // the first text after a quiet spell: no wait
        return;
    }
    flush_pending_ = true;
    flush_timer_->expires_at(last_flush_ + flush_interval);
    flush_timer_->async_wait([this,
                              alive = std::weak_ptr<bool>(alive_)](boost::system::error_code ec) {
        if (ec || alive.expired()) {
            return;
        }
        flush_pending_ = false;
        flush_now();
    });
}

void event_printer::show_thinking(std::chrono::system_clock::time_point now) {
    if (!opts_.thinking || opts_.json) {
        return;
    }
    if (!thinking_shown_) {
        out_.flush(); // the line goes below what is already shown
        thinking_shown_ = true;
        thinking_since_ = now;
        thinking_drawn_s_ = -1;
    }
    const long s = static_cast<long>(
        std::chrono::duration_cast<std::chrono::seconds>(now - thinking_since_).count()
    );
    if (s == thinking_drawn_s_) {
        return; // redrawn once a second at most
    }
    thinking_drawn_s_ = s;
    *status_ << "\r\x1b[Kthinking\xe2\x80\xa6";
    if (s > 0) {
        *status_ << " " << s << " s";
    }
    status_->flush();
}

void event_printer::clear_thinking() {
    if (thinking_shown_) {
        thinking_shown_ = false;
        *status_ << "\r\x1b[K" << std::flush;
    }
}

void event_printer::end_line() {
    if (!at_line_start_) {
        out_ << '\n';
        at_line_start_ = true;
    }
}

void event_printer::enter(block b) {
    if (b == block_) {
        return;
    }
    if (block_ == block::reasoning) {
        if (opts_.color) {
            out_ << reset;
        }
        end_line();
        if (b == block::content) {
            out_ << '\n'; // a blank line between the reasoning and the answer
        }
    }
    if (b == block::steps || b == block::reasoning) {
        end_line();
    }
    if (b == block::reasoning) {
        if (opts_.color) {
            out_ << dim;
        } else {
            out_ << "thinking: ";
            at_line_start_ = false;
        }
    }
    block_ = b;
}

void event_printer::write_reasoning(const std::string& model_text) {
    if (model_text.empty()) {
        return;
    }
    const std::string text = visible(model_text, layout::text);
    enter(block::reasoning);
    out_ << text;
    at_line_start_ = text.back() == '\n';
    saw_reasoning_ = true;
}

void event_printer::write_content(const std::string& model_text) {
    if (model_text.empty()) {
        return;
    }
    const std::string text = visible(model_text, layout::text);
    enter(block::content);
    out_ << text;
    at_line_start_ = text.back() == '\n';
    saw_content_ = true;
}

void event_printer::on_event(const wafer::event& e) {
    using namespace wafer::events;
    if (opts_.json) {
        out_ << wafer::to_json_line(e) << '\n' << std::flush;
        return;
    }
    if (const auto* r = e.get_if<reasoning_delta>()) {
        if (opts_.reasoning) {
            clear_thinking();
            write_reasoning(r->text);
            text_written();
        } else {
            show_thinking(e.time);
        }
        return;
    }
    if (const auto* c = e.get_if<content_delta>()) {
        if (!c->text.empty()) {
            clear_thinking();
        }
        write_content(c->text);
        text_written();
        return;
    }
    if (!opts_.steps) {
        if (e.is<model_request>() && at_line_start_) {
            show_thinking(e.time); // on a line of its own
        }
        return;
    }
    clear_thinking();
    if (const auto* m = e.get_if<model_request>()) {
        enter(block::steps);
        out_ << (m->turn > 1 ? "\n" : "") << "[turn " << m->turn << "] " << visible(m->model);
        if (m->context_window > 0) {
            // What the request uses of the window: "ctx 41% of 131k".
            const auto pct = m->context_tokens * 100 / m->context_window;
            out_ << ", ctx " << pct << "% of " << thousands(m->context_window);
        }
        out_ << "\n";
        show_thinking(e.time);
    } else if (const auto* c = e.get_if<context_compacted>()) {
        enter(block::steps);
        out_ << "  (context compacted: " << visible(c->strategy) << ", " << c->replaced
             << " message" << (c->replaced == 1 ? "" : "s") << " from #" << c->first << ", "
             << thousands(c->tokens_before) << " -> " << thousands(c->tokens_after) << " tokens"
             << (c->trigger == "threshold" ? "" : ", " + visible(c->trigger)) << ")\n";
    } else if (const auto* s = e.get_if<tool_call_started>()) {
        enter(block::steps);
        out_ << "  -> " << visible(s->name) << " " << visible(cut(s->arguments, 300)) << "\n";
    } else if (const auto* p = e.get_if<tool_call_progress>()) {
        // A server may report often: at most one line per call every 250 ms, and the last step.
        const bool last = p->total && p->progress >= *p->total;
        auto& shown = progress_shown_[p->call_id];
        if (!last && shown != std::chrono::system_clock::time_point{} &&
            e.time - shown < std::chrono::milliseconds(250)) {
            return;
        }
        shown = e.time;
        enter(block::steps);
        // The server's words are untrusted: escaped, one line, cut.
        out_ << "  .. " << visible(p->name) << " " << figure(p->progress)
             << (p->total ? "/" + figure(*p->total) : std::string())
             << (p->message.empty() ? "" : ": " + visible(cut(p->message, 200))) << "\n";
    } else if (const auto* f = e.get_if<tool_call_finished>()) {
        progress_shown_.erase(f->call_id);
        enter(block::steps);
        out_ << "  <- " << visible(f->name) << (f->is_error ? " failed" : " ok") << " ("
             << milliseconds(f->duration) << ")\n"
             << preview(f->output, "       ", f->is_error ? 6 : 5, 120);
    } else if (const auto* v = e.get_if<critic_verdict>()) {
        enter(block::steps);
        out_ << "  [critic " << visible(v->critic) << ", " << visible(v->gate) << "] "
             << to_string(v->decision) << " (" << milliseconds(v->latency) << ")";
        for (std::size_t i = 0; i < v->reasons.size(); ++i) {
            out_ << (i == 0 ? ": " : "; ") << visible(v->reasons[i]);
        }
        if (v->error) {
            out_ << " [the review failed: " << visible(cut(*v->error, 200)) << "]";
        }
        out_ << "\n";
    } else if (!opts_.approvals && (e.is<approval_requested>() || e.is<approval_decided>())) {
        return;
    } else if (const auto* q = e.get_if<approval_requested>()) {
        enter(block::steps);
        out_ << "  ?  " << visible(q->name) << " waits for approval (call " << visible(q->call_id)
             << ")\n";
    } else if (const auto* d = e.get_if<approval_decided>()) {
        enter(block::steps);
        out_ << "  " << (d->approved ? "approved " : "denied ") << visible(d->name) << " (call "
             << visible(d->call_id) << ")"
             << (d->message.empty() ? "" : ": " + visible(cut(d->message, 200))) << "\n";
    } else if (const auto* h = e.get_if<history_repaired>()) {
        enter(block::steps);
        for (const auto& repair : h->repairs) {
            out_ << "  (history repaired: " << visible(repair) << ")\n";
        }
    }
    out_.flush();
}

void event_printer::finish(const run_result& r) {
    clear_thinking();
    if (opts_.json) {
        out_.flush();
        return;
    }
    // A non-streaming reply arrives whole: show what the deltas would have shown.
    if (opts_.reasoning && !saw_reasoning_ && !saw_content_) {
        const auto& msgs = r.conversation.messages();
        for (auto it = msgs.rbegin(); it != msgs.rend(); ++it) {
            if (it->role == api::role::assistant) {
                if (it->reasoning) {
                    write_reasoning(*it->reasoning);
                }
                break;
            }
        }
    }
    if (!saw_content_ && !r.final_text.empty()) {
        write_content(r.final_text);
    }
    enter(block::none);
    end_line();
    out_.flush();
}

void event_printer::summary(const run_result& r) {
    if (opts_.json) {
        return;
    }
    const auto& u = r.usage;
    const double wall = static_cast<double>(r.duration.count()) / 1e6;
    // Generation speed from the server's completion time when it reports one.
    const double gen = r.time_info.completion_time > 0 ? r.time_info.completion_time : wall;
    out_ << "\n== " << to_string(r.stop_reason) << ": " << r.turn_count() << " turn"
         << (r.turn_count() == 1 ? "" : "s") << ", wall time " << seconds(wall) << "\n"
         << "   tokens: prompt " << u.prompt_tokens << " (cached " << u.cached_tokens
         << "), completion " << u.completion_tokens << " (reasoning " << u.reasoning_tokens << ")";
    if (gen > 0 && u.completion_tokens > 0) {
        char buf[32];
        std::snprintf(buf, sizeof buf, "%.0f", static_cast<double>(u.completion_tokens) / gen);
        out_ << ", " << buf << " tokens/s";
    }
    out_ << "\n" << std::flush;
}

} // namespace wafer::cli
