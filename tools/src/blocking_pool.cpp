#include <wafer/tools/blocking_pool.hpp>

#include <algorithm>
#include <thread>

namespace wafer::tools {

namespace {
std::size_t pick_size(std::size_t threads) {
    if (threads != 0) {
        return threads;
    }
    return std::max<std::size_t>(2, std::thread::hardware_concurrency());
}
} // namespace

blocking_pool::blocking_pool(std::size_t threads) : size_(pick_size(threads)), pool_(size_) {}

// thread_pool's destructor stops the pool and joins: running jobs finish, queued ones are
// dropped. Spelled out so the header documents what happens.
blocking_pool::~blocking_pool() {
    pool_.stop();
    pool_.join();
}

void blocking_pool::join() {
    pool_.join();
}

} // namespace wafer::tools
