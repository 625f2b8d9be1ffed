#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/cancellation_type.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <cstddef>
#include <exception>
#include <functional>
#include <list>
#include <memory>
#include <mutex>

namespace sluice {

// Coroutines that run as members of one group, are cancelled together and waited for: the
// structured-concurrency piece of Beast's advanced server. Each member's coroutine has a
// cancellation slot bound to a signal the group owns; emit() raises every signal on the member's
// own executor (a cancellation signal is not thread-safe), so a member sees it as the
// cancellation of whatever it awaits at that moment.
//
// A coroutine reacts to the types its cancellation filter lets through: by default only
// `terminal` (every awaited operation fails with operation_aborted, and so does the next
// co_await); a member that sets enable_total_cancellation() around a wait also ends that wait on
// `total`. The server uses that for graceful shutdown: `total` ends idle connections at once,
// running responses continue through the grace period, then `terminal` ends them.
//
// Thread-safe: spawn(), emit() and size() from any thread. wait_for() from one coroutine at a
// time, running on the group's executor, which must be single-threaded (an io_context run by one
// thread, or a strand). The group must outlive its members (wait for them before destroying it).
class TaskGroup {
 public:
  using ErrorHandler = std::function<void(std::exception_ptr)>;

  explicit TaskGroup(boost::asio::any_io_executor executor);
  TaskGroup(const TaskGroup&) = delete;
  TaskGroup& operator=(const TaskGroup&) = delete;

  // Starts `task` on `executor` as a member. An exception it lets out is passed to `on_error`
  // (on the member's executor), then the member leaves the group.
  void spawn(const boost::asio::any_io_executor& executor, boost::asio::awaitable<void> task,
             ErrorHandler on_error = {});
  // Raises `type` in every current member.
  void emit(boost::asio::cancellation_type type);
  // Members still running.
  std::size_t size() const;
  // Completes when no member is left (true), or once `timeout` has passed (false).
  boost::asio::awaitable<bool> wait_for(std::chrono::steady_clock::duration timeout);

 private:
  struct Member {
    explicit Member(boost::asio::any_io_executor on) : executor(std::move(on)) {}
    boost::asio::any_io_executor executor;
    boost::asio::cancellation_signal signal;
  };
  using Members = std::list<std::shared_ptr<Member>>;

  void leave(Members::iterator member);

  boost::asio::any_io_executor executor_;
  boost::asio::steady_timer wake_;  // cancelled when a member leaves, to end a wait_for()
  mutable std::mutex mutex_;
  Members members_;
};

}  // namespace sluice
