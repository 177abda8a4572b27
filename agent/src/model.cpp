#include <wafer/model.hpp>

namespace wafer {

// Out of line so every translation unit shares one coroutine body (and no-op defaults need no
// override in observers that only want one kind of piece).
boost::asio::awaitable<void> model_observer::on_reasoning_delta(std::string) {
    co_return;
}

boost::asio::awaitable<void> model_observer::on_content_delta(std::string) {
    co_return;
}

} // namespace wafer
