#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/steady_timer.hpp>
#include <memory>
#include <mutex>

namespace sluice {

// Lets a thread outside Asio (a blocking-pool worker) wake one coroutine.
// notify() may be called from any thread, any number of times; wait() completes once at least
// one notify() happened since the previous wait() completed. The coroutine that waits must run
// on `executor` (a strand or a single-threaded context), which makes the check-then-wait free
// of lost wake-ups: the posted timer cancel cannot run before the wait is initiated.
// Create with make_shared: notify() keeps the signal alive until its posted work ran.
class WakeSignal : public std::enable_shared_from_this<WakeSignal> {
 public:
  explicit WakeSignal(const boost::asio::any_io_executor& executor);

  boost::asio::awaitable<void> wait();
  void notify();

 private:
  boost::asio::any_io_executor executor_;
  boost::asio::steady_timer timer_;
  std::mutex mutex_;
  bool signaled_ = false;
  bool waiting_ = false;
};

}  // namespace sluice
