#include "http/connection_registry.hpp"

#include <gtest/gtest.h>

#include <boost/asio/io_context.hpp>
#include <vector>

namespace sluice {
namespace {

using State = ConnectionRegistry::State;
using Shed = ConnectionRegistry::Shed;

struct Connection {
  ConnectionRegistry::Handle entry;
  bool closed = false;
};

class ConnectionRegistryTest : public ::testing::Test {
 protected:
  Connection& open() {
    connections_.push_back(std::make_unique<Connection>());
    Connection& connection = *connections_.back();
    connection.entry = registry_.add(io_.get_executor());
    registry_.attach(connection.entry, [&connection] { connection.closed = true; });
    return connection;
  }
  void run() {
    io_.restart();
    io_.run();
  }

  boost::asio::io_context io_;
  ConnectionRegistry registry_;
  std::vector<std::unique_ptr<Connection>> connections_;
};

TEST_F(ConnectionRegistryTest, ShedsTheLongestIdleThenTheLongestReadingNeverABusyOne) {
  Connection& reading_first = open();
  Connection& idle_old = open();
  Connection& busy = open();
  Connection& idle_new = open();
  registry_.set(reading_first.entry, State::kReading);
  registry_.set(busy.entry, State::kBusy);
  // Back to idle after a request: now the newest idle one.
  registry_.set(idle_old.entry, State::kReading);
  registry_.set(idle_old.entry, State::kIdle);
  EXPECT_EQ(registry_.size(), 4u);

  EXPECT_EQ(registry_.shed_one(), Shed::kIdle);
  EXPECT_EQ(registry_.size(), 3u);  // counted out at once, closed on its executor
  EXPECT_FALSE(idle_new.closed);
  run();
  EXPECT_TRUE(idle_new.closed);  // idle since it was opened: longer than idle_old
  EXPECT_EQ(registry_.shed_one(), Shed::kIdle);
  run();
  EXPECT_TRUE(idle_old.closed);
  EXPECT_EQ(registry_.shed_one(), Shed::kSlow);
  run();
  EXPECT_TRUE(reading_first.closed);
  EXPECT_EQ(registry_.shed_one(), Shed::kNone);
  run();
  EXPECT_FALSE(busy.closed);
  EXPECT_EQ(registry_.size(), 1u);
  for (auto& connection : connections_) registry_.remove(connection->entry);
  EXPECT_EQ(registry_.size(), 0u);
}

TEST_F(ConnectionRegistryTest, AConnectionThatTookARequestBeforeTheCloseRanIsKept) {
  Connection& connection = open();
  EXPECT_EQ(registry_.shed_one(), Shed::kIdle);
  registry_.set(connection.entry, State::kBusy);  // its request came in first
  run();
  EXPECT_FALSE(connection.closed);
  EXPECT_EQ(registry_.size(), 1u);  // listed again, as busy
  EXPECT_EQ(registry_.shed_one(), Shed::kNone);
  registry_.set(connection.entry, State::kIdle);
  EXPECT_EQ(registry_.shed_one(), Shed::kIdle);
  run();
  EXPECT_TRUE(connection.closed);
  registry_.remove(connection.entry);
  EXPECT_EQ(registry_.size(), 0u);
}

TEST_F(ConnectionRegistryTest, ShedBeforeItsSessionStartedClosesWhenAttached) {
  ConnectionRegistry::Handle entry = registry_.add(io_.get_executor());
  EXPECT_EQ(registry_.shed_one(), Shed::kIdle);
  run();
  bool closed = false;
  registry_.attach(entry, [&closed] { closed = true; });
  EXPECT_TRUE(closed);
  registry_.remove(entry);
}

TEST_F(ConnectionRegistryTest, AConnectionThatEndedBeforeTheCloseRanIsLeftAlone) {
  Connection& connection = open();
  EXPECT_EQ(registry_.shed_one(), Shed::kIdle);
  registry_.remove(connection.entry);
  run();
  EXPECT_FALSE(connection.closed);
  EXPECT_EQ(registry_.size(), 0u);
}

}  // namespace
}  // namespace sluice
