#include "sources/pg_pool.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

namespace sluice {

namespace asio = boost::asio;

// A request waiting for a connection. Granted either a connection or, when one was closed,
// the right to open a new one (`slot`).
struct PgPool::Waiter {
  explicit Waiter(const asio::any_io_executor& executor) : timer(executor) {}
  asio::steady_timer timer;  // touched only on the waiter's executor
  bool granted = false;      // guarded by the pool's mutex
  bool slot = false;
  std::unique_ptr<PgConnection> connection;
};

PgLease::PgLease(std::shared_ptr<PgPool> pool, std::unique_ptr<PgConnection> connection)
    : pool_(std::move(pool)), connection_(std::move(connection)) {}

PgLease& PgLease::operator=(PgLease&& other) noexcept {
  if (this != &other) {
    give_back();
    pool_ = std::move(other.pool_);
    connection_ = std::move(other.connection_);
  }
  return *this;
}

PgLease::~PgLease() { give_back(); }

void PgLease::give_back() {
  if (pool_ && connection_) pool_->release(std::move(connection_));
  pool_.reset();
}

asio::awaitable<PgLease> PgPool::acquire() {
  auto executor = co_await asio::this_coro::executor;
  std::shared_ptr<Waiter> waiter;
  {
    std::lock_guard lock(mutex_);
    while (!idle_.empty()) {
      std::unique_ptr<PgConnection> connection = std::move(idle_.back());
      idle_.pop_back();
      if (connection->reusable()) {
        connection->bind_to(executor);
        co_return PgLease(shared_from_this(), std::move(connection));
      }
      --open_;
    }
    if (open_ < options_.max_size) {
      ++open_;
    } else {
      waiter = std::make_shared<Waiter>(executor);
      waiters_.push_back(waiter);
    }
  }
  if (!waiter) co_return co_await open_new();

  waiter->timer.expires_after(options_.acquire_timeout);
  co_await waiter->timer.async_wait(asio::as_tuple(asio::use_awaitable));
  {
    std::lock_guard lock(mutex_);
    if (!waiter->granted) {
      std::erase(waiters_, waiter);
      throw PoolExhausted("all " + std::to_string(options_.max_size) +
                          " database connections are busy");
    }
  }
  if (waiter->connection) {
    waiter->connection->bind_to(executor);
    co_return PgLease(shared_from_this(), std::move(waiter->connection));
  }
  co_return co_await open_new();
}

asio::awaitable<PgLease> PgPool::open_new() {
  try {
    auto connection = co_await PgConnection::connect(options_.conninfo, options_.connect_timeout);
    co_return PgLease(shared_from_this(), std::move(connection));
  } catch (...) {
    release(nullptr);  // gives the slot back (to a waiter, if any)
    throw;
  }
}

asio::awaitable<void> PgPool::replace(std::shared_ptr<PgPool> self) {
  std::unique_ptr<PgConnection> connection;
  try {
    connection =
        co_await PgConnection::connect(self->options_.conninfo, self->options_.connect_timeout);
  } catch (const std::exception&) {
    // The server is gone after all: give the slot back; the next request tries again.
  }
  self->release(std::move(connection));
}

void PgPool::discard_idle() {
  std::vector<std::unique_ptr<PgConnection>> stale;
  {
    std::lock_guard lock(mutex_);
    stale.swap(idle_);
    open_ -= stale.size();
  }
}

void PgPool::close() {
  {
    std::lock_guard lock(mutex_);
    closed_ = true;
  }
  discard_idle();
}

void PgPool::release(std::unique_ptr<PgConnection> connection) {
  std::unique_lock lock(mutex_);
  if (connection && (closed_ || !connection->reusable())) {
    if (!closed_ && waiters_.empty() && connection->cancelled_healthy()) {
      // Keep the slot (open_ unchanged) for a replacement opened on the same thread, started
      // outside the lock (a connect that fails at once hands the slot back through release()).
      asio::any_io_executor executor = connection->executor();
      lock.unlock();
      connection.reset();
      asio::post(executor, [self = shared_from_this(), executor] {
        asio::co_spawn(executor, replace(self), asio::detached);
      });
      return;
    }
    connection.reset();
  }
  if (!waiters_.empty()) {
    std::shared_ptr<Waiter> waiter = std::move(waiters_.front());
    waiters_.pop_front();
    grant_locked(std::move(waiter), std::move(connection));
    return;
  }
  if (connection) {
    idle_.push_back(std::move(connection));
  } else {
    --open_;
  }
}

void PgPool::grant_locked(std::shared_ptr<Waiter> waiter,
                          std::unique_ptr<PgConnection> connection) {
  waiter->granted = true;
  waiter->slot = connection == nullptr;  // the slot stays counted in open_
  waiter->connection = std::move(connection);
  auto executor = waiter->timer.get_executor();
  asio::post(executor, [waiter = std::move(waiter)] { waiter->timer.cancel(); });
}

std::size_t PgPool::open_connections() const {
  std::lock_guard lock(mutex_);
  return open_;
}

std::size_t PgPool::idle_connections() const {
  std::lock_guard lock(mutex_);
  return idle_.size();
}

}  // namespace sluice
