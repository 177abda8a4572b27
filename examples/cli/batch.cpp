// `wafer batch FILE.jsonl`: the I/O around batch_core.cpp. Lines are read as runs may start
// (never the whole file), each run goes through one shared client (its admission control keeps
// all runs inside the rate limits), results are appended to --out one line at a time.
#include "batch.hpp"

#include <wafer/agent.hpp>
#include <wafer/api/client.hpp>
#include <wafer/cerebras_model.hpp>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <deque>
#include <fcntl.h>
#include <filesystem>
#include <iostream>
#include <memory>
#include <sys/stat.h>
#include <unistd.h>

#include "coder.hpp"
#include "failure.hpp"
#include "session.hpp"
#include "stop_signals.hpp"
#include "terminal.hpp"
#include "visible.hpp"

namespace asio = boost::asio;
namespace fs = std::filesystem;

namespace wafer::cli {

namespace {

/// Reads a file line by line through line_splitter. An oversized line of a regular file is
/// skipped with SEEK_DATA over its holes, so a sparse multi-GB line costs only its real data.
class line_source {
public:
    explicit line_source(const std::string& path, std::size_t limit = max_batch_line_bytes)
        : splitter_(limit) {
        if (path == "-") {
            fd_ = STDIN_FILENO;
        } else {
            fd_ = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
            if (fd_ < 0) {
                throw cli_error("cannot open " + path + ": " + std::strerror(errno), exit_usage);
            }
            owned_ = true;
        }
        struct stat st {};
        regular_ = ::fstat(fd_, &st) == 0 && S_ISREG(st.st_mode);
        if (regular_) {
            size_ = static_cast<std::uint64_t>(st.st_size);
        }
    }
    ~line_source() {
        if (owned_) {
            ::close(fd_);
        }
    }
    line_source(const line_source&) = delete;
    line_source& operator=(const line_source&) = delete;

    bool regular() const noexcept { return regular_; }

    /// The next line, nullopt at the end. Errors: cli_error when reading fails.
    std::optional<line_splitter::line> next() {
        while (ready_.empty() && !eof_) {
            fill();
        }
        if (ready_.empty()) {
            return std::nullopt;
        }
        line_splitter::line l = std::move(ready_.front());
        ready_.pop_front();
        return l;
    }

private:
    void fill() {
        if (splitter_.skipping() && regular_) {
            const off_t data = ::lseek(fd_, static_cast<off_t>(offset_), SEEK_DATA);
            if (data < 0) { // ENXIO: only a hole up to the end
                splitter_.skipped(size_ > offset_ ? size_ - offset_ : 0);
                offset_ = size_;
                finish();
                return;
            }
            splitter_.skipped(static_cast<std::uint64_t>(data) - offset_);
            offset_ = static_cast<std::uint64_t>(data);
        }
        char buf[64 * 1024];
        const ssize_t n = ::read(fd_, buf, sizeof buf);
        if (n < 0) {
            if (errno == EINTR) {
                return;
            }
            throw cli_error(std::string("cannot read the batch file: ") + std::strerror(errno));
        }
        if (n == 0) {
            finish();
            return;
        }
        offset_ += static_cast<std::uint64_t>(n);
        std::vector<line_splitter::line> lines;
        splitter_.feed(std::string_view(buf, static_cast<std::size_t>(n)), lines);
        for (auto& l : lines) {
            ready_.push_back(std::move(l));
        }
    }
    void finish() {
        eof_ = true;
        if (auto last = splitter_.finish()) {
            ready_.push_back(std::move(*last));
        }
    }

    line_splitter splitter_;
    std::deque<line_splitter::line> ready_;
    int fd_ = -1;
    bool owned_ = false;
    bool regular_ = false;
    bool eof_ = false;
    std::uint64_t size_ = 0;
    std::uint64_t offset_ = 0;
};

/// Lines of a regular file (for the progress line's queued count and ETA), counted without
/// keeping any.
std::size_t count_lines(const std::string& path) {
    line_source counter(path, 0);
    std::size_t n = 0;
    while (counter.next()) {
        ++n;
    }
    return n;
}

/// Opens --out for appending, after rewriting an existing file to its finished results
/// (resume_index): returns the file and the ids to skip.
std::FILE* open_results(const std::string& path, resume_index& done) {
    std::error_code ec;
    if (fs::exists(path, ec)) {
        const std::string tmp = path + ".wafer-resume";
        std::FILE* kept = std::fopen(tmp.c_str(), "wbe");
        if (kept == nullptr) {
            throw cli_error("cannot write " + tmp + ": " + std::strerror(errno), exit_usage);
        }
        // Results lines are small; a line over the limit is no result of ours and is dropped.
        line_source old(path);
        while (auto l = old.next()) {
            // A last line without newline is a write cut short: dropped, the run is redone.
            if (!l->oversized && l->terminated && done.add_line(l->text)) {
                std::fwrite(l->text.data(), 1, l->text.size(), kept);
                std::fputc('\n', kept);
            }
        }
        if (std::fflush(kept) != 0 || ::fsync(::fileno(kept)) != 0 || std::fclose(kept) != 0) {
            throw cli_error("cannot write " + tmp + ": " + std::strerror(errno));
        }
        fs::rename(tmp, path, ec);
        if (ec) {
            throw cli_error("cannot replace " + path + ": " + ec.message());
        }
    }
    std::FILE* out = std::fopen(path.c_str(), "ae");
    if (out == nullptr) {
        throw cli_error("cannot write " + path + ": " + std::strerror(errno), exit_usage);
    }
    return out;
}

/// The progress line on a terminal's standard error: drawn over itself, erased before any other
/// output, throttled.
class progress_line {
public:
    explicit progress_line(bool enabled) : enabled_(enabled) {}
    bool enabled() const noexcept { return enabled_; }

    void draw(const batch_progress& p, bool force = false) {
        if (!enabled_) {
            return;
        }
        const auto now = std::chrono::steady_clock::now();
        if (!force && drawn_ && now - last_ < std::chrono::milliseconds(100)) {
            return;
        }
        last_ = now;
        drawn_ = true;
        std::cerr << "\r\x1b[Kbatch: " << progress_text(p) << std::flush;
    }
    void erase() {
        if (enabled_ && drawn_) {
            std::cerr << "\r\x1b[K" << std::flush;
            drawn_ = false;
        }
    }

private:
    bool enabled_;
    bool drawn_ = false;
    std::chrono::steady_clock::time_point last_{};
};

class batch_driver {
public:
    batch_driver(
        const batch_flags& flags,
        std::shared_ptr<api::client> client,
        std::string base_url,
        asio::any_io_executor ex
    )
        : flags_(flags), client_(std::move(client)), base_url_(std::move(base_url)),
          order_(flags.order == "input", std::max<std::size_t>(4 * flags.concurrency, 64)),
          progress_line_(stderr_is_tty()), wake_(ex, std::chrono::steady_clock::time_point::max()),
          ex_(ex) {}

    /// The first SIGINT or SIGTERM: no new runs; the running ones are cancelled.
    void stop(int sig) {
        stopped_by_ = sig;
        progress_line_.erase();
        std::cerr << "wafer: interrupted, stopping the batch (finished results are kept; Ctrl-C "
                     "again to quit at once)\n";
        for (auto& [seq, signal] : running_) {
            signal->emit(asio::cancellation_type::terminal);
        }
        wake_.cancel();
    }
    int stopped_by() const noexcept { return stopped_by_; }

    asio::awaitable<int> drive() {
        line_source source(flags_.input);
        std::size_t total = 0;
        // (Standard input cannot be read twice, even when it is a file.)
        if (progress_line_.enabled() && source.regular() && flags_.input != "-") {
            total = count_lines(flags_.input);
        }
        if (!flags_.out.empty()) {
            out_ = open_results(flags_.out, done_);
        }
        started_ = std::chrono::steady_clock::now();
        std::size_t consumed = 0;
        std::size_t seq = 0;
        for (;;) {
            while (stopped_by_ == 0 &&
                   (running_.size() >= flags_.concurrency || !order_.may_start(seq))) {
                co_await wake_.async_wait(asio::as_tuple(asio::use_awaitable));
                wake_.expires_at(std::chrono::steady_clock::time_point::max());
            }
            if (stopped_by_ != 0) {
                break;
            }
            std::optional<line_splitter::line> line = source.next();
            if (!line) {
                break;
            }
            ++consumed;
            progress_.queued = total > consumed ? total - consumed : 0;
            std::optional<batch_spec> spec = take(*line);
            if (!spec) {
                draw();
                continue;
            }
            start(std::move(*spec), seq++);
            draw();
        }
        while (!running_.empty()) {
            co_await wake_.async_wait(asio::as_tuple(asio::use_awaitable));
            wake_.expires_at(std::chrono::steady_clock::time_point::max());
        }
        // After a stop, results held back for input order are written anyway.
        for (const std::string& l : order_.drain()) {
            write(l);
        }
        progress_.queued = 0;
        progress_line_.draw(progress_, true);
        progress_line_.erase();
        if (out_ != nullptr) {
            std::fclose(out_);
            out_ = nullptr;
        }
        if (skipped_ > 0) {
            std::cerr << "wafer: " << skipped_ << " id" << (skipped_ == 1 ? "" : "s")
                      << " already finished in " << visible(flags_.out) << ", skipped\n";
        }
        if (write_failed_) {
            co_return exit_failure;
        }
        if (bad_lines_ > 0 || progress_.failed > 0) {
            std::cerr << "wafer: batch: " << progress_.done << " done, " << progress_.failed
                      << " failed, " << bad_lines_ << " bad line" << (bad_lines_ == 1 ? "" : "s")
                      << "\n";
            co_return exit_batch_partial;
        }
        co_return exit_ok;
    }

private:
    /// The run spec of `line`, or nothing (reported if bad, or already finished).
    std::optional<batch_spec> take(const line_splitter::line& line) {
        if (line.oversized) {
            report(
                line.number,
                "longer than " + std::to_string(max_batch_line_bytes) + " bytes (" +
                    std::to_string(line.bytes) + "), skipped"
            );
            return std::nullopt;
        }
        if (std::all_of(line.text.begin(), line.text.end(), [](unsigned char c) {
                return std::isspace(c) != 0;
            })) {
            return std::nullopt; // blank lines are ignored
        }
        auto parsed = parse_batch_line(line.text, line.number);
        if (auto* why = std::get_if<std::string>(&parsed)) {
            report(line.number, *why + ", skipped");
            return std::nullopt;
        }
        batch_spec spec = std::get<batch_spec>(std::move(parsed));
        const auto [first, fresh] = first_line_of_id_.emplace(spec.id, line.number);
        if (!fresh) {
            report(
                line.number,
                "duplicate id \"" + spec.id + "\" (first on line " + std::to_string(first->second) +
                    "), skipped"
            );
            return std::nullopt;
        }
        if (done_.finished(spec.id)) {
            ++skipped_;
            return std::nullopt;
        }
        return spec;
    }

    void report(std::size_t line, const std::string& why) {
        ++bad_lines_;
        progress_line_.erase();
        print_failure("line " + std::to_string(line) + ": " + why);
    }

    agent_config config_for(const batch_spec& spec) {
        const std::string model = spec.model.value_or(flags_.model);
        agent_config cfg;
        if (spec.builtin_tools) {
            if (!root_) {
                root_ = workspace_root(flags_.workspace);
            }
            run_flags f = flags_;
            f.model = model;
            // Nobody to ask in a batch: the tools that change the workspace or run commands
            // are denied unless --yes.
            const approval_mode mode = flags_.yes ? approval_mode::allow : approval_mode::deny;
            cfg = make_config(f, *root_, client_, mode, no_mcp_);
        } else {
            cfg.name = "batch";
            cfg.model = std::make_shared<cerebras_model>(client_, model, false);
            cfg.limits.max_turns = 1;
            cfg.limits.on_max_turns = max_turns_policy::stop;
            if (flags_.timeout_s > 0) {
                cfg.limits.run_timeout = std::chrono::seconds(flags_.timeout_s);
            }
            apply_sampling_defaults(cfg.request, model);
        }
        if (spec.system) {
            cfg.system_prompt = *spec.system;
        }
        if (spec.max_completion_tokens) {
            cfg.request.max_completion_tokens = *spec.max_completion_tokens;
        }
        if (spec.response_format) {
            cfg.request.response_format = *spec.response_format;
        }
        return cfg;
    }

    void start(batch_spec spec, std::size_t seq) {
        auto a = std::make_shared<const agent>(config_for(spec));
        auto& signal = running_[seq];
        signal = std::make_unique<asio::cancellation_signal>();
        ++progress_.running;
        asio::co_spawn(
            ex_,
            run_one(std::move(a), std::move(spec), seq),
            asio::bind_cancellation_slot(
                signal->slot(),
                [this, seq](std::exception_ptr e) {
                    if (e) {
                        std::string what = "the run failed";
                        try {
                            std::rethrow_exception(e);
                        } catch (const std::exception& x) {
                            what = x.what();
                        }
                        nlohmann::json j = {
                            {"id", ids_[seq]},
                            {"error", {{"code", "internal"}, {"message", what}}}};
                        finished(seq, j.dump(), true);
                    }
                    ids_.erase(seq);
                    // The signal is released after this handler returns.
                    asio::post(ex_, [this, seq] {
                        running_.erase(seq);
                        wake_.cancel();
                    });
                }
            )
        );
    }

    asio::awaitable<void>
    run_one(std::shared_ptr<const agent> a, batch_spec spec, std::size_t seq) {
        ids_[seq] = spec.id;
        auto finish = std::make_shared<api::finish_reason>(api::finish_reason::none);
        run_options options;
        options.run_id = "batch-" + std::to_string(seq);
        options.on_event = [finish](const event& e) {
            if (const auto* t = e.get_if<events::turn_finished>()) {
                *finish = t->finish_reason;
            }
        };
        std::string input = std::move(spec.input);
        auto op = a->async_run(std::move(input), std::move(options));
        batch_outcome o;
        o.result = co_await std::move(op);
        o.id = spec.id;
        o.finish = *finish;
        o.wants_json =
            spec.response_format && spec.response_format->type != api::response_format::kind::text;
        if (o.result.stop_reason == stop_reason::cancelled) {
            finished(seq, {}, false); // not a result: a rerun does it
            co_return;
        }
        const nlohmann::json j = result_json(o, [this](const run_error& e) {
            return failure_line(e.code, e.diagnostics, base_url_);
        });
        progress_.tokens += o.result.usage.total_tokens;
        finished(seq, j.dump(), is_failure(j));
    }

    void finished(std::size_t seq, std::string line, bool failed) {
        --progress_.running;
        if (!line.empty()) {
            ++(failed ? progress_.failed : progress_.done);
        }
        for (const std::string& l : order_.finished(seq, std::move(line))) {
            write(l);
        }
        draw();
    }

    void write(const std::string& line) {
        if (out_ == nullptr) {
            progress_line_.erase();
            std::cout << line << '\n' << std::flush;
            return;
        }
        // One write per line, flushed: a crash leaves at most the last line cut short.
        const std::string with_newline = line + '\n';
        if (std::fwrite(with_newline.data(), 1, with_newline.size(), out_) != with_newline.size() ||
            std::fflush(out_) != 0) {
            progress_line_.erase();
            print_failure("cannot write " + flags_.out + ": " + std::strerror(errno));
            write_failed_ = true;
        }
    }

    void draw() {
        progress_.elapsed = std::chrono::duration_cast<std::chrono::milliseconds>(
            std::chrono::steady_clock::now() - started_
        );
        progress_line_.draw(progress_);
    }

    const batch_flags& flags_;
    std::shared_ptr<api::client> client_;
    std::string base_url_;
    output_order order_;
    resume_index done_;
    std::map<std::string, std::size_t> first_line_of_id_;
    std::map<std::size_t, std::unique_ptr<asio::cancellation_signal>> running_;
    std::map<std::size_t, std::string> ids_;
    std::optional<fs::path> root_;
    mcp_servers no_mcp_;
    batch_progress progress_;
    progress_line progress_line_;
    asio::steady_timer wake_;
    asio::any_io_executor ex_;
    std::chrono::steady_clock::time_point started_{};
    std::FILE* out_ = nullptr;
    std::size_t bad_lines_ = 0;
    std::size_t skipped_ = 0;
    bool write_failed_ = false;
    int stopped_by_ = 0;
};

} // namespace

int batch(const batch_flags& flags) {
    asio::io_context ioc(1);
    endpoint ep = open_endpoint(
        ioc.get_executor(), endpoint_request::from_env(flags.base_url, flags.ca_file)
    );
    if (flags.admission != "auto") {
        ep.config.admission.enabled = flags.admission == "on";
    }
    if (flags.tokens_per_minute) {
        ep.config.admission.tokens_per_minute = *flags.tokens_per_minute;
    }
    auto client = std::make_shared<api::client>(ioc.get_executor(), ep.config);
    batch_driver driver(flags, client, ep.display_url, ioc.get_executor());
    stop_signals signals(ioc.get_executor(), [&driver](int sig) { driver.stop(sig); });
    int status = exit_failure;
    asio::co_spawn(ioc, driver.drive(), [&](std::exception_ptr e, int rc) {
        status = rc;
        if (e) {
            try {
                std::rethrow_exception(e);
            } catch (const cli_error& x) {
                print_failure(x.what());
                status = x.status();
            } catch (const std::exception& x) {
                print_failure(x.what());
                status = exit_failure;
            }
        }
        signals.cancel();
        if (ep.offline) {
            ep.offline->stop();
        }
    });
    ioc.run();
    if (driver.stopped_by() != 0 && (status == exit_ok || status == exit_batch_partial)) {
        return driver.stopped_by() == SIGTERM ? exit_terminated : exit_interrupted;
    }
    return status;
}

} // namespace wafer::cli
