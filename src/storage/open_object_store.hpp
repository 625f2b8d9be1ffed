#pragma once

#include <memory>

#include "core/config.hpp"
#include "storage/object_store.hpp"

namespace sluice {

// The object store `[storage]` describes (a local folder today; S3 next), built once by the
// app and handed to every feature that stores or reads objects. Throws StorageError when it
// cannot be used (a folder that does not exist or cannot be read).
std::unique_ptr<ObjectStore> open_object_store(const StorageConfig& config);

}  // namespace sluice
