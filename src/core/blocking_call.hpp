#pragma once

#include <atomic>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/thread_pool.hpp>
#include <exception>
#include <memory>
#include <optional>
#include <type_traits>
#include <utility>

#include "core/wake_signal.hpp"

namespace sluice {

// Runs `function` (a blocking call: a file system operation, a small read) on `pool` and
// resumes the calling coroutine with its result, or rethrows what it threw. The calling
// coroutine must run on a strand or a single-threaded context (see WakeSignal).
// REQUIRES: the result type is not void and is movable.
template <typename Function>
boost::asio::awaitable<std::invoke_result_t<Function&>> run_blocking(boost::asio::thread_pool& pool,
                                                                     Function function) {
  using Result = std::invoke_result_t<Function&>;
  struct Call {
    std::optional<Result> result;
    std::exception_ptr error;
    std::atomic<bool> done{false};
    std::shared_ptr<WakeSignal> wake;
  };
  auto call = std::make_shared<Call>();
  call->wake = std::make_shared<WakeSignal>(co_await boost::asio::this_coro::executor);
  boost::asio::post(pool, [call, function = std::move(function)]() mutable {
    try {
      call->result.emplace(function());
    } catch (...) {
      call->error = std::current_exception();
    }
    call->done.store(true);
    call->wake->notify();
  });
  while (!call->done.load()) co_await call->wake->wait();
  if (call->error) std::rethrow_exception(call->error);
  co_return std::move(*call->result);
}

}  // namespace sluice
