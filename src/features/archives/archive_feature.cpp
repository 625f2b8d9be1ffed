#include "features/archives/archive_feature.hpp"

#include <boost/asio/thread_pool.hpp>

#include "features/archives/archive_handler.hpp"

namespace sluice {
namespace {

// ~100 bytes per cached CRC: 1,000,000 CRCs stay under ~150 MiB only with short keys, so the
// cache holds 200,000 (two maximal archives).
constexpr std::size_t kCachedCrcs = 200'000;
constexpr std::size_t kCachedManifests = 64;

class StoreArchiveFeature final : public ArchiveFeature {
 public:
  StoreArchiveFeature(ObjectStore& store, const ServerConfig& server, StreamLimiter& limiter,
                      Router& router)
      : catalog_(store, work_, kCachedManifests),
        crcs_(kCachedCrcs),
        service_{store, catalog_, crcs_, server, limiter} {
    add_archive_routes(router, service_);
  }

 private:
  boost::asio::thread_pool work_{2};  // bodies, manifests and layouts off the I/O threads
  ArchiveCatalog catalog_;
  CrcCache crcs_;
  ArchiveService service_;
};

}  // namespace

std::unique_ptr<ArchiveFeature> make_archive_feature(ObjectStore& store, const ServerConfig& server,
                                                     StreamLimiter& limiter, Router& router) {
  return std::make_unique<StoreArchiveFeature>(store, server, limiter, router);
}

}  // namespace sluice
