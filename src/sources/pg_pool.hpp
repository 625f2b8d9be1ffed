#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <chrono>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "sources/pg_connection.hpp"

namespace sluice {

struct PgPoolOptions {
  std::string conninfo;
  std::size_t max_size = 10;
  std::chrono::milliseconds acquire_timeout{5'000};  // waiting for a free connection
  std::chrono::milliseconds connect_timeout{5'000};
};

// Thrown when no connection became free within the acquire timeout (kind kBusy).
class PoolExhausted : public SourceError {
 public:
  explicit PoolExhausted(const std::string& message) : SourceError(Kind::kBusy, message) {}
};

class PgPool;

// A connection on loan. Returned to the pool on destruction when it is reusable (idle, no
// error, not cancelled); otherwise closed, and its slot freed for a new connection.
class PgLease {
 public:
  PgLease() = default;
  PgLease(std::shared_ptr<PgPool> pool, std::unique_ptr<PgConnection> connection);
  PgLease(PgLease&&) noexcept = default;
  PgLease& operator=(PgLease&&) noexcept;
  ~PgLease();

  PgConnection& operator*() const { return *connection_; }
  PgConnection* operator->() const { return connection_.get(); }
  explicit operator bool() const { return connection_ != nullptr; }

 private:
  void give_back();
  std::shared_ptr<PgPool> pool_;
  std::unique_ptr<PgConnection> connection_;
};

// At most `max_size` connections to one server, opened on demand, shared by all requests.
// Waiters are served first come, first served. A connection that broke (server restart) is
// discarded, never reused, so the pool heals by itself once the server is back. One closed
// because its query was cancelled (a client left mid-download) is replaced at once, in the
// background, so the next download finds a connection ready.
// Thread-safe. Create with make_shared.
class PgPool : public std::enable_shared_from_this<PgPool> {
 public:
  explicit PgPool(PgPoolOptions options) : options_(std::move(options)) {}

  // A connection, waiting up to the acquire timeout; throws PoolExhausted or PgError.
  boost::asio::awaitable<PgLease> acquire();
  const PgPoolOptions& options() const { return options_; }
  std::size_t open_connections() const;
  // Closes the idle connections, e.g. after one turned out dead (a server restart kills them
  // all): the next requests open fresh ones instead of failing on stale ones.
  void discard_idle();
  // discard_idle(), and from now on connections handed back are closed, not kept.
  void close();
  std::size_t idle_connections() const;

 private:
  friend class PgLease;
  struct Waiter;

  void release(std::unique_ptr<PgConnection> connection);
  // Opens a connection into the idle list for a slot that stays counted in open_ (after a
  // cancelled one was closed), so the next request does not wait for the connect.
  static boost::asio::awaitable<void> replace(std::shared_ptr<PgPool> self);
  void grant_locked(std::shared_ptr<Waiter> waiter, std::unique_ptr<PgConnection> connection);
  boost::asio::awaitable<PgLease> open_new();

  PgPoolOptions options_;
  mutable std::mutex mutex_;
  std::vector<std::unique_ptr<PgConnection>> idle_;
  std::deque<std::shared_ptr<Waiter>> waiters_;
  std::size_t open_ = 0;  // connections that exist or are being opened
  bool closed_ = false;
};

}  // namespace sluice
