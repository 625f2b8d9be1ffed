#pragma once

#include <memory>

#include "core/config.hpp"
#include "http/router.hpp"

namespace sluice {

// The archive feature as the serve command wires it: the object store of `[storage]`, the
// manifest catalog, the CRC cache and the routes. Must outlive the server that uses the router.
class ArchiveFeature {
 public:
  virtual ~ArchiveFeature() = default;
};

// Opens the store (throws StorageError when its folder is unusable) and adds the routes.
std::unique_ptr<ArchiveFeature> make_archive_feature(const StorageConfig& storage,
                                                     const ServerConfig& server, Router& router);

}  // namespace sluice
