// Tool registration and batch dispatch.
//
// Dispatch design: one shared `batch` object per async_dispatch, touched only on the caller's
// executor. Each call's result is *settled* exactly once, by whichever comes first: the handler
// finishing, the call deadline, the batch deadline or the caller's cancellation. Handlers run
// detached (co_spawn / pool post) and report back to the batch; a report for an already settled
// call is dropped. This is what lets a dispatch complete on time even when a handler ignores
// cancellation. The dispatching coroutine itself only waits on one timer, which doubles as the
// batch deadline and as the "all calls settled" notification.
#include <wafer/tools/registry.hpp>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/execution.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/prefer.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <exception>
#include <map>
#include <optional>
#include <set>
#include <stdexcept>
#include <stop_token>
#include <utility>

#include "detail/text.hpp"

namespace wafer::tools {

namespace asio = boost::asio;
using nlohmann::json;
using clock_type = std::chrono::steady_clock;

namespace {

struct registered {
    tool t;
    schema compiled;
};

bool valid_tool_name(std::string_view name) {
    if (name.empty() || name.size() > 64) {
        return false;
    }
    return std::all_of(name.begin(), name.end(), [](char c) {
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
               c == '_' || c == '-';
    });
}

bool handler_empty(const handler& h) {
    return std::visit([](const auto& x) { return !static_cast<bool>(x.fn); }, h);
}

// A JSON-quoted name for messages; bytes that are not UTF-8 become U+FFFD instead of throwing.
std::string quote_name(const std::string& s) {
    return json(s).dump(-1, ' ', false, json::error_handler_t::replace);
}

std::string ms_text(std::chrono::milliseconds d) {
    return std::to_string(d.count()) + " ms";
}

// The one mapping from an exception to a result, for every stage of a call: argument parsing,
// validation, typed-argument conversion and the handler itself. Arguments the handler could not
// use (argument_error, or a nlohmann exception before the handler ran: `1e400` is out_of_range,
// not parse_error) are invalid arguments; anything else the handler threw is a handler failure.
enum class call_stage { arguments, handler };

tool_result result_from_exception(std::exception_ptr e, const std::string& name, call_stage stage) {
    const std::string invalid = "invalid arguments for tool " + quote_name(name) + ": ";
    auto make = [](std::string text, result_status st) {
        return tool_result{{}, {}, std::move(text), true, st, false};
    };
    try {
        std::rethrow_exception(std::move(e));
    } catch (const argument_error& ex) {
        return make(invalid + ex.what(), result_status::invalid_arguments);
    } catch (const json::exception& ex) {
        if (stage == call_stage::arguments) {
            return make(
                invalid + "the arguments cannot be read (" + ex.what() +
                    "). Send one JSON object that matches the tool's parameters schema.",
                result_status::invalid_arguments
            );
        }
        return make(
            "tool " + quote_name(name) + " failed: " + ex.what(), result_status::handler_exception
        );
    } catch (const std::exception& ex) {
        if (stage == call_stage::arguments) {
            return make(
                invalid + "the arguments could not be checked (" + ex.what() + ")",
                result_status::invalid_arguments
            );
        }
        return make(
            "tool " + quote_name(name) + " failed: " + ex.what(), result_status::handler_exception
        );
    } catch (...) {
        return make(
            stage == call_stage::arguments
                ? invalid + "the arguments could not be checked (unknown exception)"
                : "tool " + quote_name(name) + " failed with an unknown exception",
            stage == call_stage::arguments ? result_status::invalid_arguments
                                           : result_status::handler_exception
        );
    }
}

// Stores every whole double that fits 64 bits (1.0, 1e3: JSON Schema integers) as a JSON
// integer, so a handler's get<int>() converts integer to integer (well defined) instead of a
// double (undefined when out of range). Iterative: arguments may nest deeply.
void integers_as_integers(json& root) {
    std::vector<json*> todo{&root};
    while (!todo.empty()) {
        json* v = todo.back();
        todo.pop_back();
        if (v->is_structured()) {
            for (auto& child : *v) {
                todo.push_back(&child);
            }
        } else if (v->is_number_float()) {
            const double d = v->get<double>();
            if (std::isfinite(d) && std::floor(d) == d) {
                if (d >= 0 && d < 18446744073709551616.0) {
                    *v = static_cast<std::uint64_t>(d);
                } else if (d < 0 && d >= -9223372036854775808.0) {
                    *v = static_cast<std::int64_t>(d);
                }
            }
        }
    }
}

tool_result result_from_output(tool_output out) {
    tool_result r;
    r.content = std::move(out.content);
    r.is_error = out.is_error;
    r.status = out.is_error ? result_status::tool_error : result_status::ok;
    return r;
}

// Runs a synchronous handler body and turns every outcome into a result; used inline and on
// the blocking pool.
tool_result run_sync(const sync_handler_fn& fn, const json& args, const call_context& ctx) {
    try {
        return result_from_output(fn(args, ctx));
    } catch (...) {
        return result_from_exception(std::current_exception(), ctx.tool_name, call_stage::handler);
    }
}

// A named coroutine (cpp-style P9) that keeps the registered tool alive while its handler runs.
asio::awaitable<tool_output>
run_async_handler(std::shared_ptr<const registered> t, json args, call_context ctx) {
    const auto& h = std::get<async_handler>(t->t.fn);
    co_return co_await h.fn(std::move(args), std::move(ctx));
}

enum class phase { waiting, running, done };

struct call_state {
    tool_call_request req;
    std::shared_ptr<const registered> tool; // null: unknown tool
    phase ph = phase::waiting;
    tool_result result;
    call_timing timing;
    std::optional<asio::steady_timer> deadline;
    std::optional<std::chrono::milliseconds> timeout;
    asio::cancellation_signal cancel;
    std::stop_source stop;
    bool async_outstanding = false;
};

class batch : public std::enable_shared_from_this<batch> {
public:
    batch(
        asio::any_io_executor ex,
        dispatch_options opts,
        std::shared_ptr<blocking_pool> pool,
        std::shared_ptr<const std::string> available,
        std::size_t registry_cap
    )
        : ex_(std::move(ex)), opts_(std::move(opts)), pool_(std::move(pool)),
          available_(std::move(available)), wake_(ex_),
          max_running_(opts_.max_concurrency != 0 ? opts_.max_concurrency : registry_cap) {}

    void add(tool_call_request req, std::shared_ptr<const registered> t) {
        auto& c = calls_.emplace_back(std::make_unique<call_state>());
        c->req = std::move(req);
        c->tool = std::move(t);
        if (c->tool) {
            c->timeout =
                c->tool->t.options.timeout ? c->tool->t.options.timeout : opts_.call_timeout;
        }
    }

    std::size_t size() const noexcept { return calls_.size(); }
    bool all_done() const noexcept { return done_ == calls_.size(); }
    asio::steady_timer& wake() noexcept { return wake_; }

    // Starts every call the concurrency cap and the sequential barriers allow, in order.
    void pump() {
        if (pumping_) {
            return; // the loop below re-reads the counters after each start
        }
        pumping_ = true;
        while (!closed_ && next_ < calls_.size() && !barrier_) {
            const call_state& c = *calls_[next_];
            const bool seq = c.tool && c.tool->t.options.sequential;
            if (seq && running_ > 0) {
                break;
            }
            if (max_running_ != 0 && running_ >= max_running_) {
                break;
            }
            start(next_++);
        }
        pumping_ = false;
    }

    // Settles every unsettled call with a timeout or cancelled result and interrupts it.
    void close_all(result_status why) {
        closed_ = true;
        for (std::size_t i = 0; i < calls_.size(); ++i) {
            call_state& c = *calls_[i];
            if (c.ph == phase::done) {
                continue;
            }
            const bool started = c.ph == phase::running;
            std::string text;
            const std::string name = quote_name(c.req.name);
            if (why == result_status::timeout) {
                text = "tool " + name +
                       (started ? " did not finish before the batch deadline ("
                                : " did not start before the batch deadline (") +
                       ms_text(*opts_.batch_timeout) + "); its result is lost";
            } else {
                text = "tool " + name +
                       (started ? " was cancelled before it finished"
                                : " was cancelled before it started");
            }
            settle(i, {{}, {}, std::move(text), true, why, false});
            interrupt(c);
        }
    }

    dispatch_result take_results() {
        dispatch_result out;
        out.results.reserve(calls_.size());
        out.timings.reserve(calls_.size());
        for (auto& c : calls_) {
            out.results.push_back(std::move(c->result));
            out.timings.push_back(c->timing);
        }
        return out;
    }

private:
    void start(std::size_t i) {
        call_state& c = *calls_[i];
        c.ph = phase::running;
        c.timing.started = clock_type::now();
        c.timing.ran = true;
        ++running_;
        if (c.tool && c.tool->t.options.sequential) {
            barrier_ = true;
        }
        notify_start(i);

        if (!c.tool) {
            std::string text = "unknown tool " + quote_name(c.req.name) + ". ";
            text += available_->empty() ? std::string("No tools are available.")
                                        : "Available tools: " + *available_ + ".";
            settle(i, {{}, {}, std::move(text), true, result_status::unknown_tool, false});
            return;
        }
        json args;
        bool usable = false;
        try {
            usable = parse_and_validate(c, i, args);
        } catch (...) {
            settle(
                i,
                result_from_exception(std::current_exception(), c.req.name, call_stage::arguments)
            );
            return;
        }
        if (!usable) {
            return;
        }
        call_context ctx{
            c.req.id, c.req.name, c.stop.get_token(), {}, c.req.approved, {}, opts_.host};
        if (!opts_.idempotency_scope.empty()) {
            ctx.idempotency_key = opts_.idempotency_scope + "/" + c.req.id;
        }
        if (opts_.observer.on_progress) {
            // Dispatched: inline from the executor's thread, so that progress an async handler
            // reports before it returns is seen before its result; posted from a pool thread.
            // The batch may be gone by then.
            ctx.report_progress = [weak = weak_from_this(), ex = ex_, i](call_progress p) {
                asio::dispatch(ex, [weak, i, p = std::move(p)] {
                    if (auto self = weak.lock()) {
                        self->notify_progress(i, p);
                    }
                });
            };
        }
        const handler& h = c.tool->t.fn;
        if (const auto* inl = std::get_if<inline_handler>(&h)) {
            // Inline handlers cannot be interrupted, so no deadline is armed for them.
            settle(i, run_sync(inl->fn, args, ctx));
            return;
        }
        arm_deadline(c, i);
        if (std::holds_alternative<async_handler>(h)) {
            c.async_outstanding = true;
            asio::co_spawn(
                ex_,
                run_async_handler(c.tool, std::move(args), std::move(ctx)),
                asio::bind_cancellation_slot(c.cancel.slot(), async_done{shared_from_this(), i})
            );
        } else {
            // The work guard keeps the executor's io_context from running out of work before
            // the pool posts the result back, even if the call was settled long before.
            asio::post(
                pool_->get_executor(),
                blocking_job{
                    c.tool,
                    std::move(args),
                    std::move(ctx),
                    asio::prefer(ex_, asio::execution::outstanding_work.tracked),
                    shared_from_this(),
                    i}
            );
        }
    }

    bool parse_and_validate(call_state& c, std::size_t i, json& args) {
        const std::string prefix = "invalid arguments for tool " + quote_name(c.req.name) + ": ";
        const auto& text = c.req.arguments;
        // Models send "" for tools without parameters; read it as an empty object.
        if (std::all_of(text.begin(), text.end(), [](char ch) {
                return ch == ' ' || ch == '\t' || ch == '\n' || ch == '\r';
            })) {
            args = json::object();
        } else {
            try {
                args = json::parse(text);
            } catch (const json::exception& e) { // parse_error, or out_of_range for 1e400
                // nlohmann quotes the bytes it read last, possibly half a UTF-8 sequence; the
                // text goes back to the model inside a JSON string.
                std::string reason = e.what();
                text::sanitize_utf8(reason);
                settle(
                    i,
                    {{},
                     {},
                     prefix + "the arguments are not valid JSON (" + reason +
                         "). Send one JSON object that matches the tool's parameters schema.",
                     true,
                     result_status::invalid_arguments,
                     false}
                );
                return false;
            }
        }
        auto errors = c.tool->compiled.validate(args, opts_.max_reported_violations + 1);
        if (errors.empty()) {
            integers_as_integers(args);
            return true;
        }
        std::string text_out = prefix + "the arguments do not match the parameters schema:";
        const std::size_t shown = std::min(errors.size(), opts_.max_reported_violations);
        for (std::size_t k = 0; k < shown; ++k) {
            text_out += "\n- " + errors[k].to_string();
        }
        if (errors.size() > shown) {
            text_out += "\n- (more violations not shown)";
        }
        settle(i, {{}, {}, std::move(text_out), true, result_status::invalid_arguments, false});
        return false;
    }

    void arm_deadline(call_state& c, std::size_t i) {
        if (!c.timeout) {
            return;
        }
        c.deadline.emplace(ex_, *c.timeout);
        c.deadline->async_wait([self = shared_from_this(), i](boost::system::error_code ec) {
            if (!ec) {
                self->on_call_deadline(i);
            }
        });
    }

    void on_call_deadline(std::size_t i) {
        call_state& c = *calls_[i];
        if (c.ph != phase::running) {
            return;
        }
        settle(
            i,
            {{},
             {},
             "tool " + quote_name(c.req.name) + " timed out after " + ms_text(*c.timeout) +
                 " and was abandoned",
             true,
             result_status::timeout,
             false}
        );
        interrupt(c);
    }

    // Asks a running handler to stop: stop token for everyone, cancellation slot for async ones.
    static void interrupt(call_state& c) {
        c.stop.request_stop();
        if (c.async_outstanding) {
            c.cancel.emit(asio::cancellation_type::terminal);
        }
    }

    struct async_done {
        std::shared_ptr<batch> self;
        std::size_t i;

        void operator()(std::exception_ptr e, tool_output out) {
            call_state& c = *self->calls_[i];
            c.async_outstanding = false;
            if (c.ph != phase::done) {
                self->settle(
                    i,
                    e ? result_from_exception(e, c.req.name, call_stage::handler)
                      : result_from_output(std::move(out))
                );
            }
            // co_spawn (1.81) still touches the cancellation state living in our signal's
            // slot after this handler returns: release the batch later, not here.
            auto ex = self->ex_;
            asio::post(ex, [keep = std::move(self)] {});
        }
    };

    struct blocking_job {
        std::shared_ptr<const registered> tool;
        json args;
        call_context ctx;
        asio::any_io_executor home; // tracks outstanding work
        std::shared_ptr<batch> self;
        std::size_t i;

        void operator()() {
            tool_result r;
            // Settled (timed out or cancelled) while queued behind busy threads: do not run.
            if (!ctx.stop.stop_requested()) {
                r = run_sync(std::get<blocking_handler>(tool->t.fn).fn, args, ctx);
            }
            // Hand everything back to the caller's executor; nothing of the batch is released
            // on the pool thread. The tracked executor moves into the handler and the post uses
            // an untracked copy, so this thread never drops the io_context's last unit of work:
            // if it did after the handler ran, it would stop an io_context the caller had just
            // restarted for its next operation.
            auto ex = asio::prefer(home, asio::execution::outstanding_work.untracked);
            asio::post(
                ex,
                [self_ = std::move(self), i_ = i, r_ = std::move(r), w = std::move(home)](
                ) mutable { self_->on_blocking_done(i_, std::move(r_)); }
            );
        }
    };

    void on_blocking_done(std::size_t i, tool_result r) {
        if (calls_[i]->ph != phase::done) {
            settle(i, std::move(r));
        }
    }

    void settle(std::size_t i, tool_result r) {
        call_state& c = *calls_[i];
        if (c.ph == phase::done) {
            return;
        }
        const bool was_running = c.ph == phase::running;
        c.ph = phase::done;
        c.timing.finished = clock_type::now();
        if (!was_running) {
            c.timing.started = c.timing.finished;
            c.timing.ran = false;
        }
        if (c.deadline) {
            c.deadline->cancel();
        }
        r.tool_call_id = c.req.id;
        r.name = c.req.name;
        // Results become JSON strings: handler output, exception texts and quoted argument bytes
        // must be valid UTF-8 or the next request cannot be serialised.
        text::sanitize_utf8(r.content);
        std::size_t cap = opts_.output_cap;
        if (c.tool && c.tool->t.options.output_cap != 0) {
            cap = c.tool->t.options.output_cap;
        }
        r.truncated = truncate_output(r.content, cap);
        c.result = std::move(r);
        ++done_;
        if (was_running) {
            --running_;
            if (c.tool && c.tool->t.options.sequential) {
                barrier_ = false;
            }
        }
        notify_finish(i, c.result);
        if (all_done()) {
            wake_.cancel(); // wakes the dispatching coroutine
        } else {
            pump();
        }
    }

    void notify_start(std::size_t i) noexcept {
        if (opts_.observer.on_start) {
            try {
                opts_.observer.on_start(i);
            } catch (...) { // NOLINT(bugprone-empty-catch): documented as swallowed
            }
        }
    }

    void notify_progress(std::size_t i, const call_progress& p) noexcept {
        if (calls_[i]->ph != phase::running) {
            return; // settled (timed out, cancelled): its result is out
        }
        try {
            opts_.observer.on_progress(i, p);
        } catch (...) { // NOLINT(bugprone-empty-catch): documented as swallowed
        }
    }

    void notify_finish(std::size_t i, const tool_result& r) noexcept {
        if (opts_.observer.on_finish) {
            try {
                opts_.observer.on_finish(i, r);
            } catch (...) { // NOLINT(bugprone-empty-catch): documented as swallowed
            }
        }
    }

    asio::any_io_executor ex_;
    dispatch_options opts_;
    std::shared_ptr<blocking_pool> pool_;
    std::shared_ptr<const std::string> available_; // "a, b, c": for unknown-tool results
    asio::steady_timer wake_;
    std::vector<std::unique_ptr<call_state>> calls_;
    std::size_t next_ = 0;
    std::size_t running_ = 0;
    std::size_t done_ = 0;
    bool barrier_ = false; // a sequential call is running
    bool closed_ = false;  // batch deadline or cancellation: start nothing more
    bool pumping_ = false;
    std::size_t max_running_; // 0: no cap
};

} // namespace

struct registry::impl {
    registry_params params;
    std::vector<std::shared_ptr<const registered>> tools; // registration order
    std::map<std::string, std::shared_ptr<const registered>, std::less<>> by_name;
    std::shared_ptr<blocking_pool> pool;
    // Registered names joined by ", ", rebuilt by add(); shared so a dispatch does not copy it.
    std::shared_ptr<const std::string> available = std::make_shared<const std::string>();
    std::uint64_t revision = next_revision();
    std::vector<std::pair<std::uint64_t, turn_hook>> turn_hooks;
    std::uint64_t next_hook = 0;

    static std::uint64_t next_revision() noexcept {
        static std::atomic<std::uint64_t> counter{0};
        return ++counter;
    }
};

registry::registry(registry_params params) : impl_(std::make_shared<impl>()) {
    impl_->pool = params.pool;
    impl_->params = std::move(params);
}

registry::~registry() = default;
registry::registry(registry&&) noexcept = default;
registry& registry::operator=(registry&&) noexcept = default;

namespace {

// A tool checked and compiled for registration (the name is not checked against others here).
std::shared_ptr<const registered> checked_entry(tool t) {
    if (!valid_tool_name(t.name)) {
        throw std::invalid_argument(
            "tool name " + quote_name(t.name) + " must match [A-Za-z0-9_-]{1,64}"
        );
    }
    if (handler_empty(t.fn)) {
        throw std::invalid_argument("tool " + quote_name(t.name) + " has no handler");
    }
    schema compiled;
    try {
        compiled = schema::compile(t.parameters);
    } catch (const schema_error& e) {
        throw schema_error("tool " + quote_name(t.name) + ": parameters schema: " + e.what());
    }
    return std::make_shared<const registered>(registered{std::move(t), std::move(compiled)});
}

} // namespace

void registry::add(tool t) {
    if (valid_tool_name(t.name) && impl_->by_name.count(t.name) != 0) {
        throw std::invalid_argument("tool " + quote_name(t.name) + " is already registered");
    }
    auto entry = checked_entry(std::move(t));
    if (std::holds_alternative<blocking_handler>(entry->t.fn) && !impl_->pool) {
        impl_->pool = std::make_shared<blocking_pool>(impl_->params.blocking_threads);
    }
    impl_->available = std::make_shared<const std::string>(
        impl_->available->empty() ? entry->t.name : *impl_->available + ", " + entry->t.name
    );
    impl_->by_name.emplace(entry->t.name, entry);
    impl_->tools.push_back(std::move(entry));
    impl_->revision = impl::next_revision();
}

void registry::replace(const std::vector<std::string>& remove, std::vector<tool> add) {
    const std::set<std::string, std::less<>> gone(remove.begin(), remove.end());
    // Everything is checked before anything changes.
    std::vector<std::shared_ptr<const registered>> added;
    std::set<std::string, std::less<>> added_names;
    bool blocking = false;
    for (auto& t : add) {
        if (valid_tool_name(t.name)) {
            if (impl_->by_name.count(t.name) != 0 && gone.count(t.name) == 0) {
                throw std::invalid_argument(
                    "tool " + quote_name(t.name) + " is already registered (by another owner)"
                );
            }
            if (!added_names.insert(t.name).second) {
                throw std::invalid_argument("tool " + quote_name(t.name) + " is added twice");
            }
        }
        added.push_back(checked_entry(std::move(t)));
        blocking = blocking || std::holds_alternative<blocking_handler>(added.back()->t.fn);
    }
    if (blocking && !impl_->pool) {
        impl_->pool = std::make_shared<blocking_pool>(impl_->params.blocking_threads);
    }
    std::vector<std::shared_ptr<const registered>> tools;
    tools.reserve(impl_->tools.size() + added.size());
    bool placed = false;
    for (auto& r : impl_->tools) {
        if (gone.count(r->t.name) == 0) {
            tools.push_back(std::move(r));
        } else if (!placed) {
            placed = true;
            tools.insert(tools.end(), added.begin(), added.end());
        }
    }
    if (!placed) {
        tools.insert(tools.end(), added.begin(), added.end());
    }
    impl_->tools = std::move(tools);
    impl_->by_name.clear();
    std::string names;
    for (const auto& r : impl_->tools) {
        impl_->by_name.emplace(r->t.name, r);
        names += (names.empty() ? "" : ", ") + r->t.name;
    }
    // New objects rather than edits: running dispatches hold the old ones.
    impl_->available = std::make_shared<const std::string>(std::move(names));
    impl_->revision = impl::next_revision();
}

std::uint64_t registry::add_turn_hook(turn_hook hook) {
    impl_->turn_hooks.emplace_back(++impl_->next_hook, std::move(hook));
    return impl_->next_hook;
}

void registry::remove_turn_hook(std::uint64_t id) noexcept {
    std::erase_if(impl_->turn_hooks, [id](const auto& h) { return h.first == id; });
}

void registry::turn_starting() const {
    for (const auto& [id, hook] : impl_->turn_hooks) {
        hook();
    }
}

std::shared_ptr<const registry> registry::snapshot() const {
    auto out = std::make_shared<registry>(impl_->params);
    out->impl_->tools = impl_->tools;
    out->impl_->by_name = impl_->by_name;
    out->impl_->pool = impl_->pool;
    out->impl_->available = impl_->available;
    out->impl_->revision = impl_->revision;
    return out;
}

std::shared_ptr<registry> registry::clone() const {
    auto out = std::make_shared<registry>(impl_->params);
    out->impl_->tools = impl_->tools;
    out->impl_->by_name = impl_->by_name;
    out->impl_->pool = impl_->pool;
    out->impl_->available = impl_->available;
    out->impl_->revision = impl::next_revision();
    return out;
}

std::uint64_t registry::revision() const noexcept {
    return impl_->revision;
}

std::vector<tool_definition> registry::definitions() const {
    std::vector<tool_definition> out;
    out.reserve(impl_->tools.size());
    for (const auto& r : impl_->tools) {
        out.push_back(r->t.definition());
    }
    return out;
}

std::vector<std::string> registry::names() const {
    std::vector<std::string> out;
    out.reserve(impl_->tools.size());
    for (const auto& r : impl_->tools) {
        out.push_back(r->t.name);
    }
    return out;
}

const tool* registry::find(std::string_view name) const {
    auto it = impl_->by_name.find(name);
    return it == impl_->by_name.end() ? nullptr : &it->second->t;
}

const schema* registry::find_schema(std::string_view name) const {
    auto it = impl_->by_name.find(name);
    return it == impl_->by_name.end() ? nullptr : &it->second->compiled;
}

std::size_t registry::size() const noexcept {
    return impl_->tools.size();
}

asio::awaitable<dispatch_result>
registry::async_dispatch(std::vector<tool_call_request> calls, dispatch_options options) const {
    // We always return a result, so cancellation must not turn our own waits into exceptions.
    co_await asio::this_coro::throw_if_cancelled(false);
    auto cs = co_await asio::this_coro::cancellation_state;
    auto ex = co_await asio::this_coro::executor;

    const auto batch_timeout = options.batch_timeout;
    auto b = std::make_shared<batch>(
        ex, std::move(options), impl_->pool, impl_->available, impl_->params.max_concurrent_calls
    );
    for (auto& c : calls) {
        auto it = impl_->by_name.find(c.name);
        b->add(std::move(c), it == impl_->by_name.end() ? nullptr : it->second);
    }
    if (batch_timeout) {
        b->wake().expires_after(*batch_timeout);
    } else {
        b->wake().expires_at(clock_type::time_point::max());
    }

    bool cancelled = false;
    bool timed_out = false;
    b->pump();
    while (!b->all_done()) {
        if (cs.cancelled() != asio::cancellation_type::none) {
            cancelled = true;
            b->close_all(result_status::cancelled);
            break;
        }
        auto [ec] = co_await b->wake().async_wait(asio::as_tuple(asio::use_awaitable));
        if (cs.cancelled() != asio::cancellation_type::none) {
            cancelled = true;
            b->close_all(result_status::cancelled);
            break;
        }
        if (!ec) { // the timer expired: batch deadline
            timed_out = true;
            b->close_all(result_status::timeout);
            break;
        }
        // operation_aborted without cancellation: a notification; re-check.
    }
    dispatch_result out = b->take_results();
    out.cancelled = cancelled;
    out.batch_timed_out = timed_out;
    co_return out;
}

asio::awaitable<dispatch_result> registry::async_dispatch(std::vector<tool_call_request> calls
) const {
    return async_dispatch(std::move(calls), dispatch_options());
}

asio::awaitable<tool_result> registry::async_call(tool_call_request call) const {
    return async_call(std::move(call), dispatch_options());
}

asio::awaitable<tool_result>
registry::async_call(tool_call_request call, dispatch_options options) const {
    std::vector<tool_call_request> one;
    one.push_back(std::move(call));
    auto r = co_await async_dispatch(std::move(one), std::move(options));
    co_return std::move(r.results.front());
}

} // namespace wafer::tools
