// How the wafer CLI shows a run: streamed text, reasoning (dimmed on a terminal), tool calls with
// their outcome, critic verdicts and a closing summary; or every event as one JSON line. Text
// that comes from the model, a server or a file is shown through visible() (never interpreted by
// the terminal); JSON lines are JSON, escaped by the encoder.
#pragma once

#include <wafer/event.hpp>
#include <wafer/run_result.hpp>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/steady_timer.hpp>

#include <chrono>
#include <cstddef>
#include <map>
#include <memory>
#include <optional>
#include <ostream>
#include <string>

namespace wafer::cli {

struct printer_options {
    /// One JSON line per event (wafer::to_json_line) and nothing else.
    bool json = false;
    /// Show the model's reasoning.
    bool reasoning = false;
    /// Dim the reasoning with ANSI escapes (standard output is a terminal).
    bool color = false;
    /// Show turns, tool calls (with the progress they report) and critic verdicts (wafer run).
    bool steps = false;
    /// With steps: show calls waiting for approval and the decisions (not with --yes, where
    /// every call is approved as it comes).
    bool approvals = true;
    /// Draw a "thinking…" line on `status` (standard error, a terminal) while the model works
    /// and nothing is shown yet; it is erased before anything else is written.
    bool thinking = false;
};

/// Prints events as they come (call on_event from the run's observer) and the end of the run.
///
/// Thread safety: none; call from the run's executor.
class event_printer {
public:
    event_printer(std::ostream& out, printer_options options, std::ostream* status = nullptr);
    ~event_printer();
    event_printer(const event_printer&) = delete;
    event_printer& operator=(const event_printer&) = delete;

    void on_event(const wafer::event& e);

    /// Streamed text is then flushed at most every flush_interval, by a timer on `ex` (so also
    /// soon after the stream pauses), instead of after every chunk: a fast stream costs a write
    /// per few milliseconds, not one per chunk. The first text after a quiet spell, and anything
    /// that is not streamed text, goes out at once; a terminal's line buffering still writes each
    /// line as it ends. Without it every chunk is flushed.
    void coalesce_writes(boost::asio::any_io_executor ex);
    static constexpr std::chrono::milliseconds flush_interval{5};

    /// Ends the streamed output. Text that never arrived as deltas (a non-streaming reply) is
    /// printed from the result.
    void finish(const run_result& r);

    /// The closing summary of `wafer run`: stop reason, turns, tokens (prompt, cached,
    /// completion, reasoning), tokens/s and wall time.
    void summary(const run_result& r);

private:
    enum class block { none, reasoning, content, steps };

    void enter(block b);
    void write_reasoning(const std::string& text);
    void write_content(const std::string& text);
    void end_line();
    void text_written();
    void flush_now();
    void show_thinking(std::chrono::system_clock::time_point now);
    void clear_thinking();

    std::ostream& out_;
    printer_options opts_;
    block block_ = block::none;
    bool at_line_start_ = true;
    bool saw_content_ = false;
    bool saw_reasoning_ = false;
    std::ostream* status_;
    bool thinking_shown_ = false;
    std::chrono::system_clock::time_point thinking_since_{};
    long thinking_drawn_s_ = -1;
    std::optional<boost::asio::steady_timer> flush_timer_;
    bool flush_pending_ = false;
    std::chrono::steady_clock::time_point last_flush_{};
    // The timer's handler may run after this printer is gone (aborted): it checks this first.
    std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
    // When the last progress line of each running call was shown.
    std::map<std::string, std::chrono::system_clock::time_point> progress_shown_;
};

/// A tool's output for display, each line prefixed by `indent` and cut to `max_width` bytes (on
/// a UTF-8 boundary), tabs shown as spaces, anything else a terminal would interpret escaped
/// (visible()). Longer than `max_lines` lines: the first and the last
/// lines with "... (N more lines)" between them.
std::string preview(
    const std::string& text, const std::string& indent, std::size_t max_lines, std::size_t max_width
);

} // namespace wafer::cli
