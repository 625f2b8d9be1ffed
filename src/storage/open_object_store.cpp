#include "storage/open_object_store.hpp"

#include "storage/local_object_store.hpp"

namespace sluice {

std::unique_ptr<ObjectStore> open_object_store(const StorageConfig& config) {
  if (config.kind != "local") {
    throw StorageError(StorageError::Kind::kIo, "unsupported storage kind '" + config.kind + "'");
  }
  return make_local_object_store(config.path);
}

}  // namespace sluice
