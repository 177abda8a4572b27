#include <wafer/scripted_model.hpp>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <stdexcept>

// GCC 12 false positive on Asio's awaitable frame allocator (aligned_alloc paired with its own
// operator delete) when a coroutine frame is inlined at -O1 and above.
#if defined(__GNUC__) && !defined(__clang__) && __GNUC__ == 12
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
#endif

namespace wafer {

namespace asio = boost::asio;

namespace {

[[noreturn]] void fail(errc code, std::string message) {
    diagnostics d;
    d.message = std::move(message);
    throw error(make_error_code(code), std::move(d));
}

[[noreturn]] void fail_cancelled() {
    fail(errc::cancelled, "scripted_model: cancelled");
}

std::int64_t approx_tokens(std::size_t chars) {
    return static_cast<std::int64_t>((chars + 3) / 4);
}

api::usage derived_usage(const api::chat_request& req, const scripted_model::turn& t) {
    std::size_t prompt_chars = 0;
    for (const auto& m : req.messages) {
        prompt_chars += m.text().size() + m.reasoning.value_or(std::string{}).size();
        for (const auto& c : m.tool_calls) {
            prompt_chars += c.name.size() + c.arguments.size();
        }
    }
    std::size_t completion_chars = t.content.size() + t.reasoning.size();
    for (const auto& c : t.tool_calls) {
        completion_chars += c.name.size() + c.arguments.size();
    }
    api::usage u;
    u.prompt_tokens = approx_tokens(prompt_chars);
    u.completion_tokens = approx_tokens(completion_chars);
    u.reasoning_tokens = approx_tokens(t.reasoning.size());
    u.total_tokens = u.prompt_tokens + u.completion_tokens;
    return u;
}

// Waits `d` on a timer; ends early with errc::cancelled when the caller cancels.
asio::awaitable<void> pause(std::chrono::milliseconds d) {
    asio::steady_timer timer(co_await asio::this_coro::executor);
    timer.expires_after(d);
    auto [ec] = co_await timer.async_wait(asio::as_tuple(asio::use_awaitable));
    auto cs = co_await asio::this_coro::cancellation_state;
    if (ec || cs.cancelled() != asio::cancellation_type::none) {
        fail_cancelled();
    }
}

enum class piece_kind { reasoning, content };

asio::awaitable<void> stream_pieces(
    model_observer* observer,
    piece_kind kind,
    std::string text,
    std::size_t piece_chars,
    std::chrono::milliseconds gap,
    bool first_field
) {
    if (text.empty()) {
        co_return;
    }
    const std::size_t step = piece_chars == 0 ? text.size() : piece_chars;
    for (std::size_t pos = 0; pos < text.size(); pos += step) {
        if ((pos > 0 || !first_field) && gap.count() > 0) {
            co_await pause(gap);
        }
        std::string piece = text.substr(pos, step);
        if (kind == piece_kind::reasoning) {
            co_await observer->on_reasoning_delta(std::move(piece));
        } else {
            co_await observer->on_content_delta(std::move(piece));
        }
        auto cs = co_await asio::this_coro::cancellation_state;
        if (cs.cancelled() != asio::cancellation_type::none) {
            fail_cancelled();
        }
    }
}

} // namespace

// ---- turn builders ----------------------------------------------------------------------------

scripted_model::turn scripted_model::turn::text(std::string content, std::string reasoning) {
    turn t;
    t.content = std::move(content);
    t.reasoning = std::move(reasoning);
    return t;
}

scripted_model::turn
scripted_model::turn::calls(std::vector<api::tool_call> calls, std::string reasoning) {
    turn t;
    t.tool_calls = std::move(calls);
    t.reasoning = std::move(reasoning);
    return t;
}

scripted_model::turn
scripted_model::turn::failure(boost::system::error_code code, std::string message) {
    turn t;
    t.error = code;
    t.error_diagnostics.message = std::move(message);
    return t;
}

// ---- scripted_model ---------------------------------------------------------------------------

scripted_model::scripted_model(std::string id) : info_(model_info::for_id(std::move(id))) {}

scripted_model::scripted_model(model_info info) : info_(std::move(info)) {}

scripted_model& scripted_model::push(turn t) {
    std::lock_guard lock(mutex_);
    queue_.push_back(std::move(t));
    return *this;
}

void scripted_model::set_responder(responder r) {
    std::lock_guard lock(mutex_);
    responder_ = std::move(r);
}

void scripted_model::check_requests(bool on) noexcept {
    std::lock_guard lock(mutex_);
    check_requests_ = on;
}

std::size_t scripted_model::remaining() const {
    std::lock_guard lock(mutex_);
    return queue_.size();
}

std::size_t scripted_model::request_count() const {
    std::lock_guard lock(mutex_);
    return requests_.size();
}

api::chat_request scripted_model::request(std::size_t i) const {
    std::lock_guard lock(mutex_);
    if (i >= requests_.size()) {
        throw std::out_of_range(
            "scripted_model: request " + std::to_string(i) + " of " +
            std::to_string(requests_.size())
        );
    }
    return requests_[i];
}

std::vector<api::chat_request> scripted_model::requests() const {
    std::lock_guard lock(mutex_);
    return requests_;
}

void scripted_model::clear_requests() {
    std::lock_guard lock(mutex_);
    requests_.clear();
}

scripted_model::turn scripted_model::next_turn(const api::chat_request& req, std::size_t index) {
    responder r;
    {
        std::lock_guard lock(mutex_);
        if (!queue_.empty()) {
            turn t = std::move(queue_.front());
            queue_.pop_front();
            return t;
        }
        r = responder_;
    }
    // Called without the lock so a responder may inspect the model.
    if (r) {
        return r(req, index);
    }
    fail(
        errc::invalid_request,
        "scripted_model '" + info_.id + "': no scripted turn left for request #" +
            std::to_string(index) + " (" + std::to_string(index) +
            " turns were consumed; push more turns or set a responder)"
    );
}

asio::awaitable<model_reply>
scripted_model::async_complete(api::chat_request req, model_observer* observer) {
    // Asio reports cancellation noticed at a co_await (throw_if_cancelled, on by default) as
    // operation_aborted; callers of a model expect wafer::error(errc::cancelled).
    try {
        model_reply reply = co_await complete(std::move(req), observer);
        co_return reply;
    } catch (const boost::system::system_error& e) {
        if (e.code() != asio::error::operation_aborted) {
            throw;
        }
    }
    fail_cancelled();
}

asio::awaitable<model_reply>
scripted_model::complete(api::chat_request req, model_observer* observer) {
    if (req.model.empty()) {
        req.model = info_.id;
    }
    std::size_t index = 0;
    bool check = false;
    {
        std::lock_guard lock(mutex_);
        index = requests_.size();
        requests_.push_back(req);
        check = check_requests_;
    }
    turn t = next_turn(req, index);
    if (check) {
        if (std::string problem = api::validate(req); !problem.empty()) {
            fail(
                errc::invalid_request,
                "scripted_model: request #" + std::to_string(index) + " is invalid: " + problem
            );
        }
    }

    auto cs = co_await asio::this_coro::cancellation_state;
    if (cs.cancelled() != asio::cancellation_type::none) {
        fail_cancelled();
    }
    if (t.delay.count() > 0) {
        co_await pause(t.delay);
    }
    if (observer) {
        co_await stream_pieces(
            observer, piece_kind::reasoning, t.reasoning, t.delta_chars, t.delta_delay, true
        );
        co_await stream_pieces(
            observer,
            piece_kind::content,
            t.content,
            t.delta_chars,
            t.delta_delay,
            t.reasoning.empty()
        );
    }
    if (t.error) {
        throw error(*t.error, t.error_diagnostics);
    }

    model_reply reply;
    reply.usage = t.usage ? *t.usage : derived_usage(req, t);
    reply.time_info = t.time_info;
    reply.finish_reason = t.finish_reason.value_or(
        t.tool_calls.empty() ? api::finish_reason::stop : api::finish_reason::tool_calls
    );
    reply.model_id = t.model_id.value_or(info_.id);
    reply.response_id = "scripted-" + std::to_string(index);
    reply.message.role = api::role::assistant;
    if (!t.reasoning.empty()) {
        reply.message.reasoning = std::move(t.reasoning);
    }
    // As the server does: no content key on a tool-call-only reply.
    if (!t.content.empty() || t.tool_calls.empty()) {
        reply.message.content = std::move(t.content);
    }
    reply.message.tool_calls = std::move(t.tool_calls);
    co_return reply;
}

} // namespace wafer
