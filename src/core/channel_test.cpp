#include "core/channel.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/thread_pool.hpp>
#include <stdexcept>
#include <string>

namespace sluice {
namespace {

namespace asio = boost::asio;
using namespace std::chrono_literals;
using StringChannel = Channel<std::string>;

template <typename T>
T run(asio::io_context& io, asio::awaitable<T> task) {
  std::optional<T> result;
  std::exception_ptr failure;
  asio::co_spawn(io, std::move(task), [&](std::exception_ptr error, T value) {
    failure = error;
    result = std::move(value);
  });
  io.restart();
  io.run_for(10s);
  if (failure) std::rethrow_exception(failure);
  EXPECT_TRUE(result.has_value()) << "the consumer did not finish";
  return result.value_or(T{});
}

// A producer job on a pool, in the shape the sources use: fills while there is space, parks
// (returns its thread) when there is none, and is posted again by when_space().
struct PoolProducer : std::enable_shared_from_this<PoolProducer> {
  PoolProducer(asio::thread_pool& pool, std::shared_ptr<StringChannel> channel, int items)
      : pool(pool), channel(std::move(channel)), items(items) {}
  void start() { asio::post(pool, [self = shared_from_this()] { self->step(); }); }
  void step() {
    ++jobs;
    for (;;) {
      if (channel->cancelled()) return;
      if (next == items) {
        channel->close();
        return;
      }
      if (!channel->has_space()) {
        ++parked;
        if (channel->when_space([self = shared_from_this()] { self->start(); })) return;
        continue;
      }
      std::string item = channel->take_spare().value_or(std::string());
      if (!item.empty()) ++reused;
      item.assign(100, static_cast<char>('a' + next % 26));
      channel->push(std::move(item), 100);
      ++next;
      max_in_flight = std::max(max_in_flight, next - consumed.load());
    }
  }
  asio::thread_pool& pool;
  std::shared_ptr<StringChannel> channel;
  int items;
  int next = 0;
  std::atomic<int> consumed{0};
  std::atomic<int> jobs{0};
  std::atomic<int> parked{0};
  std::atomic<int> reused{0};
  int max_in_flight = 0;
};

TEST(ChannelTest, APoolProducerStaysWithinTheByteBoundAndRecyclesItems) {
  asio::io_context io(1);
  asio::thread_pool pool(2);
  auto channel = std::make_shared<StringChannel>(io.get_executor(), 300);  // three items
  auto producer = std::make_shared<PoolProducer>(pool, channel, 200);
  producer->start();
  const std::string got = run(io, [&]() -> asio::awaitable<std::string> {
    std::string all;
    while (std::string* item = co_await channel->next()) {
      all += item->front();
      ++producer->consumed;
    }
    co_return all;
  }());
  pool.join();
  ASSERT_EQ(got.size(), 200u);
  for (std::size_t i = 0; i < got.size(); ++i) ASSERT_EQ(got[i], 'a' + i % 26) << i;
  // Three items queued or held, one more being filled: never further ahead.
  EXPECT_LE(producer->max_in_flight, 4);
  EXPECT_GT(producer->parked.load(), 0);
  EXPECT_GT(producer->reused.load(), 150);  // items come back as spares
}

TEST(ChannelTest, ACoroutineProducerAwaitsSpace) {
  asio::io_context io(1);
  auto channel = std::make_shared<StringChannel>(io.get_executor(), 10);
  int max_queued = 0;
  int queued = 0;
  asio::co_spawn(
      io,
      [&]() -> asio::awaitable<void> {
        for (int i = 0; i < 50; ++i) {
          EXPECT_TRUE(co_await channel->wait_for_space());
          ++queued;
          max_queued = std::max(max_queued, queued);
          channel->push(std::to_string(i), 5);
        }
        channel->close();
      },
      asio::detached);
  const int sum = run(io, [&]() -> asio::awaitable<int> {
    int total = 0;
    while (std::string* item = co_await channel->next()) {
      --queued;
      total += std::stoi(*item);
    }
    co_return total;
  }());
  EXPECT_EQ(sum, 49 * 50 / 2);
  EXPECT_LE(max_queued, 3);
}

TEST(ChannelTest, TheConsumerGetsQueuedItemsBeforeTheProducersError) {
  asio::io_context io(1);
  auto channel = std::make_shared<StringChannel>(io.get_executor(), 1000);
  channel->push("one", 3);
  channel->push("two", 3);
  channel->fail(std::make_exception_ptr(std::runtime_error("disk on fire")));
  std::vector<std::string> got;
  EXPECT_THROW(run(io, [&]() -> asio::awaitable<int> {
                 while (std::string* item = co_await channel->next()) got.push_back(*item);
                 co_return 0;
               }()),
               std::runtime_error);
  EXPECT_EQ(got, (std::vector<std::string>{"one", "two"}));
  // Asking again repeats the error.
  EXPECT_THROW(run(io, [&]() -> asio::awaitable<int> {
                 co_await channel->next();
                 co_return 0;
               }()),
               std::runtime_error);
}

TEST(ChannelTest, CancelWakesAParkedProducerDropsQueuedItemsAndEndsTheConsumer) {
  asio::io_context io(1);
  int discarded = 0;
  auto channel = std::make_shared<StringChannel>(io.get_executor(), 5,
                                                 [&](std::string&) { ++discarded; });
  channel->push("12345", 5);
  bool resumed = false;
  EXPECT_TRUE(channel->when_space([&] { resumed = true; }));
  channel->cancel(std::make_exception_ptr(std::runtime_error("query cancelled")));
  EXPECT_TRUE(resumed);
  EXPECT_TRUE(channel->cancelled());
  EXPECT_EQ(discarded, 1);
  channel->push("late", 4);  // dropped
  EXPECT_EQ(discarded, 2);
  EXPECT_TRUE(channel->ready());
  try {
    run(io, [&]() -> asio::awaitable<int> {
      co_await channel->next();
      co_return 0;
    }());
    ADD_FAILURE() << "next() after cancel() did not throw";
  } catch (const std::runtime_error& error) {
    EXPECT_STREQ(error.what(), "query cancelled");
  }
  EXPECT_FALSE(channel->when_space([] {}));  // nothing to wait for once cancelled
}

TEST(ChannelTest, ACancelWhileTheConsumerWaitsEndsTheWait) {
  asio::io_context io(1);
  auto channel = std::make_shared<StringChannel>(io.get_executor(), 5);
  asio::steady_timer later(io, 50ms);
  later.async_wait([&](auto) { channel->cancel(); });
  const int got = run(io, [&]() -> asio::awaitable<int> {
    std::string* item = co_await channel->next();
    co_return item == nullptr ? 1 : 2;
  }());
  EXPECT_EQ(got, 1);  // no reason given: the end
}

}  // namespace
}  // namespace sluice
