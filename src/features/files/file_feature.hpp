#pragma once

#include <memory>

#include "core/config.hpp"
#include "core/stream_limiter.hpp"
#include "http/router.hpp"
#include "storage/object_store.hpp"

namespace sluice {

// The file feature as the serve command wires it: presigned links to stored objects
// (GET /v1/files/{key}), over the object store the app opened from `[storage]`. The link
// secrets are read from the environment once, here (the variable named by
// storage.link_secret_env, and that name + "_PREVIOUS"); without a secret the route answers
// 404 links_disabled. Must outlive the server that uses the router; `store` must outlive it.
class FileFeature {
 public:
  virtual ~FileFeature() = default;
  virtual bool links_enabled() const = 0;
};

// Adds the route.
std::unique_ptr<FileFeature> make_file_feature(ObjectStore& store, const StorageConfig& storage,
                                               const ServerConfig& server, StreamLimiter& limiter,
                                               Router& router);

}  // namespace sluice
