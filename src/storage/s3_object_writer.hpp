#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "s3/s3_client.hpp"
#include "storage/object_store.hpp"

namespace sluice {

// Part n (1-based) of a multipart upload: 8 MiB for parts 1..1000, then twice as large every
// 1000 parts (16 MiB, 32 MiB, ...), at most 5 GiB: 10,000 parts hold more than 5 TB, and an
// object under 8 MiB needs no multipart upload at all (one PutObject at commit).
std::uint64_t s3_part_size(int part_number);

// ObjectWriter on S3: bytes fill a part buffer; a full part is uploaded while the next one
// fills, and write() waits when the previous upload is still running, so at most two parts are
// in memory. commit() uploads the last part and completes the upload (or, under one part, puts
// the object); any failure, abandon(), or destruction without commit() aborts the upload, so no
// partial object or orphaned upload remains (a destructor that cannot wait spawns the abort on
// the writer's executor). Not thread-safe: one coroutine.
std::unique_ptr<ObjectWriter> make_s3_object_writer(std::shared_ptr<S3Client> client,
                                                    std::string key);

}  // namespace sluice
