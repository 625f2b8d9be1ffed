#pragma once

#include <memory>

#include "s3/s3_client.hpp"
#include "storage/object_store.hpp"

namespace sluice {

// The ObjectStore of an S3 bucket (`[storage] kind = "s3"`): HEAD, ListObjectsV2, GET and
// PUT for whole small objects, multipart uploads for ObjectWriter, ranged GETs read ahead for
// ObjectStream. Objects are identified by size, Last-Modified (whole seconds) and ETag; a read
// asks S3 for the planned ETag (If-Match), so an object replaced meanwhile fails the read.
// Keys S3 holds that Sluice's key rules reject (folder markers "a/", "a//b") are left out of
// listings. S3 errors become StorageError (kGone for a missing object, kChanged for a changed
// one, kIo for the rest) with S3's code and message.
std::unique_ptr<ObjectStore> make_s3_object_store(std::shared_ptr<S3Client> client);

// The identity the store gives an object S3 described: Last-Modified in whole seconds (HEAD and
// GET say seconds, listings milliseconds), the ETag. Every S3 path compares through it.
ObjectInfo s3_object_info(std::string key, const S3ObjectHead& head);

// S3Error as the store reports it.
StorageError storage_error_of(const S3Error& error);

}  // namespace sluice
