#include <wafer/model.hpp>

#include <boost/asio/error.hpp>

namespace wafer {

// Out of line so every translation unit shares one coroutine body (and no-op defaults need no
// override in observers that only want one kind of piece).
boost::asio::awaitable<void> model_observer::on_reasoning_delta(std::string) {
    co_return;
}

boost::asio::awaitable<void> model_observer::on_content_delta(std::string) {
    co_return;
}

boost::asio::awaitable<model_reply> model::async_complete_with_options(
    api::chat_request req, model_observer* observer, api::request_options
) {
    co_return co_await async_complete(std::move(req), observer);
}

boost::asio::awaitable<boost::system::error_code> model::async_complete(
    api::chat_request req, model_observer* observer, model_reply& out, diagnostics& diag
) {
    return async_complete(std::move(req), observer, api::request_options{}, out, diag);
}

boost::asio::awaitable<boost::system::error_code> model::async_complete(
    api::chat_request req,
    model_observer* observer,
    api::request_options opts,
    model_reply& out,
    diagnostics& diag
) {
    boost::system::error_code ec;
    try {
        out = co_await async_complete_with_options(std::move(req), observer, std::move(opts));
    } catch (const wafer::error& e) {
        ec = e.code();
        diag = e.diag();
    } catch (const boost::system::system_error& e) {
        ec = e.code() == boost::asio::error::operation_aborted ? make_error_code(errc::cancelled)
                                                               : e.code();
        diag.detail = e.what();
    } catch (const std::exception& e) {
        ec = make_error_code(errc::invalid_response);
        diag.detail = e.what();
    }
    co_return ec;
}

} // namespace wafer
