#include "features/archives/archive_feature.hpp"

#include "features/archives/archive_handler.hpp"
#include "storage/local_object_store.hpp"

namespace sluice {
namespace {

// ~100 bytes per cached CRC: 1,000,000 CRCs stay under ~150 MiB only with short keys, so the
// cache holds 200,000 (two maximal archives).
constexpr std::size_t kCachedCrcs = 200'000;
constexpr std::size_t kCachedManifests = 64;

class LocalArchiveFeature final : public ArchiveFeature {
 public:
  LocalArchiveFeature(const StorageConfig& storage, const ServerConfig& server, Router& router)
      : store_(make_local_object_store(storage.path)),
        catalog_(*store_, kCachedManifests),
        crcs_(kCachedCrcs),
        service_{*store_, catalog_, crcs_, server} {
    add_archive_routes(router, service_);
  }

 private:
  std::unique_ptr<ObjectStore> store_;
  ArchiveCatalog catalog_;
  CrcCache crcs_;
  ArchiveService service_;
};

}  // namespace

std::unique_ptr<ArchiveFeature> make_archive_feature(const StorageConfig& storage,
                                                     const ServerConfig& server, Router& router) {
  return std::make_unique<LocalArchiveFeature>(storage, server, router);
}

}  // namespace sluice
