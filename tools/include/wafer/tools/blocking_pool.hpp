// The bounded thread pool that runs blocking tool handlers.
#pragma once

#include <boost/asio/thread_pool.hpp>

#include <cstddef>

namespace wafer::tools {

/// A fixed-size pool of threads for blocking handlers, so they never run on (and never stall)
/// an io_context thread. Jobs beyond the pool size queue until a thread is free.
///
/// Object lifetimes: the destructor waits for running jobs to return (queued jobs that have not
/// started are discarded). A blocking handler that ignores its stop token therefore delays the
/// destruction of its pool, never the dispatch that started it.
///
/// Thread safety: get_executor() and posting are thread-safe.
class blocking_pool {
public:
    /// `threads == 0` picks std::thread::hardware_concurrency() (at least 2).
    explicit blocking_pool(std::size_t threads = 4);
    ~blocking_pool();
    blocking_pool(const blocking_pool&) = delete;
    blocking_pool& operator=(const blocking_pool&) = delete;

    boost::asio::thread_pool::executor_type get_executor() noexcept { return pool_.get_executor(); }
    std::size_t size() const noexcept { return size_; }

    /// Waits for all queued and running jobs to finish. The pool accepts no work afterwards.
    void join();

private:
    std::size_t size_;
    boost::asio::thread_pool pool_;
};

} // namespace wafer::tools
