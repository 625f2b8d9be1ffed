#pragma once

#include <filesystem>
#include <memory>

#include "storage/object_store.hpp"

namespace sluice {

// Objects are files under a root folder: key "album/a.jpg" is ROOT/album/a.jpg. Every open goes
// through openat2(RESOLVE_BENEATH) from the root's descriptor, so no key, symlink or rename
// race reaches outside the folder. File system calls run on a small blocking pool
// (`threads`, 0 = 2 per core); reads follow local_object_stream.hpp. Listings skip symlinks,
// names that are not valid keys, and the reserved ".sluice/" folder.
// Throws StorageError(kIo) when the root is not a readable folder.
// Thread-safe.
std::unique_ptr<ObjectStore> make_local_object_store(const std::filesystem::path& root,
                                                     unsigned threads = 0);

}  // namespace sluice
