#pragma once

#include <memory>

#include "core/config.hpp"
#include "core/stream_limiter.hpp"
#include "http/router.hpp"
#include "storage/object_store.hpp"

namespace sluice {

// The archive feature as the serve command wires it: the manifest catalog, the CRC cache and
// the routes, over the object store the app opened from `[storage]`. Must outlive the server
// that uses the router; `store` must outlive the feature.
class ArchiveFeature {
 public:
  virtual ~ArchiveFeature() = default;
};

// Adds the routes.
std::unique_ptr<ArchiveFeature> make_archive_feature(ObjectStore& store, const ServerConfig& server,
                                                     StreamLimiter& limiter, Router& router);

}  // namespace sluice
