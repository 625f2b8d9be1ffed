#include "features/files/file_feature.hpp"

#include "features/files/file_handler.hpp"

namespace sluice {
namespace {

class StoreFileFeature final : public FileFeature {
 public:
  StoreFileFeature(ObjectStore& store, const StorageConfig& storage, const ServerConfig& server,
                   StreamLimiter& limiter, Router& router)
      : service_{store, link_secrets_from_env(storage.link_secret_env), server, limiter} {
    add_file_routes(router, service_);
  }
  bool links_enabled() const override { return service_.secrets.enabled(); }

 private:
  FileService service_;
};

}  // namespace

std::unique_ptr<FileFeature> make_file_feature(ObjectStore& store, const StorageConfig& storage,
                                               const ServerConfig& server, StreamLimiter& limiter,
                                               Router& router) {
  return std::make_unique<StoreFileFeature>(store, storage, server, limiter, router);
}

}  // namespace sluice
