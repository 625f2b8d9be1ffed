#include "features/archives/archive_feature.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <chrono>
#include <thread>

#include "core/log.hpp"
#include "features/archives/archive_handler.hpp"
#include "features/archives/archive_metrics.hpp"

namespace sluice {
namespace {

namespace asio = boost::asio;

// ~100 bytes per cached CRC: 1,000,000 CRCs stay under ~150 MiB only with short keys, so the
// cache holds 200,000 (two maximal archives).
constexpr std::size_t kCachedCrcs = 200'000;
constexpr std::size_t kCachedManifests = 64;

std::int64_t now_seconds() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

class StoreArchiveFeature final : public ArchiveFeature {
 public:
  StoreArchiveFeature(ObjectStore& store, const ArchivesConfig& archives,
                      const ServerConfig& server, StreamLimiter& limiter, Router& router)
      : store_(store),
        config_(archives),
        catalog_(store, work_, archives, kCachedManifests),
        crcs_(kCachedCrcs),
        service_{store, catalog_, crcs_, server, limiter} {
    add_archive_routes(router, service_);
    auto loop = [this]() -> asio::awaitable<void> { co_await sweep_loop(); };
    asio::co_spawn(io_, loop, asio::detached);
    sweeper_ = std::thread([this] { io_.run(); });
  }

  ~StoreArchiveFeature() override {
    asio::post(io_, [this] {
      stopping_ = true;
      timer_.cancel();
    });
    sweeper_.join();
  }

  StoreArchiveFeature(const StoreArchiveFeature&) = delete;
  StoreArchiveFeature& operator=(const StoreArchiveFeature&) = delete;

 private:
  // One pass per interval; a pass that failed (the store unreachable) is retried at the next.
  asio::awaitable<void> sweep_loop() {
    std::string after;
    while (!stopping_) {
      timer_.expires_after(config_.sweep_interval);
      boost::system::error_code ec;
      co_await timer_.async_wait(asio::redirect_error(asio::use_awaitable, ec));
      if (stopping_) break;
      std::string failure;
      try {
        SweepPass pass = co_await catalog_.sweep(after, now_seconds());
        after = pass.next_after.value_or(std::string());
        archive_metrics().swept.add(pass.removed);
        if (pass.removed > 0) {
          log_event("archive sweeper: deleted " + std::to_string(pass.removed) + " expired of " +
                    std::to_string(pass.examined) + " manifests read");
        }
      } catch (const std::exception& error) {
        failure = error.what();
      }
      if (!failure.empty()) log_event("archive sweeper: the pass failed: " + failure);
    }
    store_.close_idle();  // its connections belong to this thread's context
  }

  ObjectStore& store_;
  const ArchivesConfig& config_;
  asio::thread_pool work_{2};  // bodies, manifests and layouts off the I/O threads
  ArchiveCatalog catalog_;
  CrcCache crcs_;
  ArchiveService service_;
  asio::io_context io_;  // the sweeper's
  asio::steady_timer timer_{io_};
  bool stopping_ = false;  // only touched on the sweeper's thread
  std::thread sweeper_;
};

}  // namespace

std::unique_ptr<ArchiveFeature> make_archive_feature(ObjectStore& store,
                                                     const ArchivesConfig& archives,
                                                     const ServerConfig& server,
                                                     StreamLimiter& limiter, Router& router) {
  return std::make_unique<StoreArchiveFeature>(store, archives, server, limiter, router);
}

}  // namespace sluice
