#include "core/wake_signal.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/use_awaitable.hpp>

namespace sluice {

namespace asio = boost::asio;

WakeSignal::WakeSignal(const asio::any_io_executor& executor) : executor_(executor), timer_(executor) {}

asio::awaitable<void> WakeSignal::wait() {
  {
    std::lock_guard lock(mutex_);
    if (signaled_) {
      signaled_ = false;
      co_return;
    }
    waiting_ = true;
  }
  timer_.expires_at(asio::steady_timer::time_point::max());
  // Completes with operation_aborted when notify() cancels the timer: that is the wake-up.
  co_await timer_.async_wait(asio::as_tuple(asio::use_awaitable));
  std::lock_guard lock(mutex_);
  waiting_ = false;
  signaled_ = false;
}

void WakeSignal::notify() {
  {
    std::lock_guard lock(mutex_);
    signaled_ = true;
    if (!waiting_) return;
  }
  asio::post(executor_, [self = shared_from_this()] { self->timer_.cancel(); });
}

}  // namespace sluice
