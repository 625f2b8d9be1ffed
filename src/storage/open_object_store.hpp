#pragma once

#include <boost/asio/io_context.hpp>
#include <memory>

#include "core/config.hpp"
#include "storage/object_store.hpp"

namespace sluice {

// The object store `[storage]` describes (a local folder, or an S3 bucket), built once by the
// app and handed to every feature that stores or reads objects. Throws StorageError when it
// cannot be used (a folder that does not exist or cannot be read, S3 credentials missing from
// the environment, an invalid endpoint). Nothing is sent to S3 here: see verify_object_store.
std::unique_ptr<ObjectStore> open_object_store(const StorageConfig& config);

// Blocks until `store` answered: a listing of one object, and with `write_probe` a probe object
// written, read back and deleted (check_object_store). Throws StorageError saying which step
// failed and why (DNS, TLS, S3's error code). Runs `io` (not an I/O thread's) until the check
// is done. REQUIRES: `io` outlives `store` (a local store's pool jobs post their completions to
// it, and may let go of them after the check).
void verify_object_store(ObjectStore& store, boost::asio::io_context& io, bool write_probe);

}  // namespace sluice
