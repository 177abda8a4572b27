#include "elicit.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <cstdint>
#include <stdexcept>
#include <sys/eventfd.h>
#include <unistd.h>
#include <utility>

#include "elicit_form.hpp"
#include "failure.hpp"
#include "terminal.hpp"
#include "visible.hpp"

namespace wafer::cli {

namespace asio = boost::asio;
namespace mcp = tools::mcp;
using nlohmann::json;

namespace {

asio::awaitable<json> ask_on_thread(std::string server, json params, int cancel_fd) {
    co_return ask_elicitation(server, params, cancel_fd);
}

[[noreturn]] void refuse(const std::string& server, const std::string& why) {
    print_failure("mcp: server \"" + server + "\" asked for input wafer cannot ask: " + why);
    throw std::runtime_error("the client cannot ask this: " + why);
}

} // namespace

json ask_elicitation(const std::string& server, const json& params, int cancel_fd) {
    if (!params.is_object()) {
        refuse(server, "its parameters are not an object");
    }
    if (const auto m = params.find("mode"); m != params.end() && *m != json("form")) {
        refuse(server, "only form elicitation is offered");
    }
    const auto schema = params.find("requestedSchema");
    const form f = form_from_schema(schema != params.end() ? *schema : json());
    if (!f.error.empty()) {
        refuse(server, f.error);
    }
    const auto msg = params.find("message");
    const std::string message =
        msg != params.end() && msg->is_string() ? msg->get<std::string>() : std::string();

    terminal_prompt p(cancel_fd);
    if (!p.ready()) {
        return form_result(form_action::cancel, nullptr);
    }
    const std::string who = "\"" + visible(server) + "\"";
    p.say("\nwafer: MCP server " + who + " asks: " + visible(shortened(message, 2000)) + "\n");
    for (const auto& s : f.skipped) {
        p.say("  (left out: " + s + ")\n");
    }
    if (!f.fields.empty()) {
        p.say("  (Enter takes the [default]; Ctrl-C cancels)\n");
    }
    json content = json::object();
    for (const auto& field : f.fields) {
        for (;;) {
            const auto line = p.ask(field_question(field));
            if (!line) {
                p.say("wafer: cancelled; " + who + " is told so\n");
                return form_result(form_action::cancel, nullptr);
            }
            const field_answer a = parse_field_answer(field, *line);
            if (a.type == field_answer::kind::invalid) {
                p.say("    " + a.problem + "\n");
                continue;
            }
            if (a.type == field_answer::kind::value) {
                content[field.name] = a.value;
            }
            break;
        }
    }
    for (;;) {
        const auto line = p.ask(
            "wafer: send " + content_summary(f, content) + " to " + who +
            "? [a]ccept, [d]ecline, [c]ancel: "
        );
        if (!line) {
            p.say("wafer: cancelled; " + who + " is told so\n");
            return form_result(form_action::cancel, nullptr);
        }
        if (const auto action = parse_form_action(*line)) {
            return form_result(*action, content);
        }
    }
}

terminal_elicitor::terminal_elicitor()
    : thread_(std::make_unique<asio::thread_pool>(1)), cancel_fd_(::eventfd(0, EFD_CLOEXEC)) {}

terminal_elicitor::~terminal_elicitor() {
    cancel_questions();
    thread_->join();
    if (cancel_fd_ >= 0) {
        ::close(cancel_fd_);
    }
}

void terminal_elicitor::cancel_questions() {
    if (cancel_fd_ >= 0) {
        const std::uint64_t one = 1;
        [[maybe_unused]] const ssize_t n = ::write(cancel_fd_, &one, sizeof one);
    }
}

mcp::server_request_handler terminal_elicitor::handler(std::string server) {
    return
        [self = shared_from_this(),
         server = std::move(server)](const mcp::server_request_event& ev) -> asio::awaitable<json> {
            if (ev.method != "elicitation/create") {
                throw std::runtime_error("the client does not answer " + ev.method);
            }
            // The terminal blocks: the form is asked on the elicitor's thread, and the answer comes
            // back to the client's executor.
            auto keep = self;
            json answer = co_await asio::co_spawn(
                keep->thread_->get_executor(),
                ask_on_thread(server, ev.params, keep->cancel_fd_),
                asio::use_awaitable
            );
            co_return answer;
        };
}

} // namespace wafer::cli
