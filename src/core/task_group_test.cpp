#include "core/task_group.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <thread>

namespace sluice {
namespace {

namespace asio = boost::asio;
using namespace std::chrono_literals;

// Waits on a long timer; `total_too` also lets total cancellation end the wait. Records how
// the wait ended: 1 = cancelled, 2 = the timer expired.
asio::awaitable<void> sleeper(bool total_too, std::atomic<int>& outcome) {
  if (total_too) {
    co_await asio::this_coro::reset_cancellation_state(asio::enable_total_cancellation());
  }
  asio::steady_timer timer(co_await asio::this_coro::executor, 10s);
  auto [ec] = co_await timer.async_wait(asio::as_tuple(asio::use_awaitable));
  outcome = ec == asio::error::operation_aborted ? 1 : 2;
}

// Runs `body` as a coroutine on `io` (the group's executor) and the io_context until it ends.
template <typename Body>
void drive(asio::io_context& io, Body body) {
  bool done = false;
  asio::co_spawn(io, body(), [&](std::exception_ptr error) {
    done = true;
    if (error) std::rethrow_exception(error);
  });
  while (!done && io.run_one_for(5s) > 0) {
  }
  ASSERT_TRUE(done);
}

TEST(TaskGroupTest, TotalEndsOnlyMembersThatAcceptItThenTerminalEndsTheRest) {
  asio::io_context io(1);
  asio::io_context other(1);  // members on another thread, as the server's I/O threads
  auto guard = asio::make_work_guard(other);
  std::thread thread([&] { other.run(); });
  TaskGroup group(io.get_executor());
  std::atomic<int> idle{0};
  std::atomic<int> busy{0};
  group.spawn(other.get_executor(), sleeper(true, idle));
  group.spawn(other.get_executor(), sleeper(false, busy));
  EXPECT_EQ(group.size(), 2u);
  drive(io, [&]() -> asio::awaitable<void> {
    group.emit(asio::cancellation_type::total);
    EXPECT_FALSE(co_await group.wait_for(300ms));  // the busy one goes on
    EXPECT_EQ(idle.load(), 1);
    EXPECT_EQ(busy.load(), 0);
    EXPECT_EQ(group.size(), 1u);
    group.emit(asio::cancellation_type::terminal);
    const auto before = std::chrono::steady_clock::now();
    EXPECT_TRUE(co_await group.wait_for(5s));
    EXPECT_LT(std::chrono::steady_clock::now() - before, 1s);  // woken, not timed out
    EXPECT_EQ(busy.load(), 1);
  });
  EXPECT_EQ(group.size(), 0u);
  guard.reset();
  thread.join();
}

TEST(TaskGroupTest, ErrorsReachTheHandlerAndTheMemberLeaves) {
  asio::io_context io(1);
  TaskGroup group(io.get_executor());
  std::string seen;
  group.spawn(
      io.get_executor(),
      []() -> asio::awaitable<void> {
        co_await asio::this_coro::executor;
        throw std::runtime_error("boom");
      }(),
      [&](std::exception_ptr error) {
        try {
          std::rethrow_exception(error);
        } catch (const std::exception& e) {
          seen = e.what();
        }
      });
  drive(io, [&]() -> asio::awaitable<void> { EXPECT_TRUE(co_await group.wait_for(5s)); });
  EXPECT_EQ(seen, "boom");
  EXPECT_EQ(group.size(), 0u);
}

TEST(TaskGroupTest, WaitForAnEmptyGroupReturnsAtOnce) {
  asio::io_context io(1);
  TaskGroup group(io.get_executor());
  drive(io, [&]() -> asio::awaitable<void> { EXPECT_TRUE(co_await group.wait_for(0s)); });
}

}  // namespace
}  // namespace sluice
