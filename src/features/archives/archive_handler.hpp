#pragma once

#include "core/config.hpp"
#include "core/stream_limiter.hpp"
#include "features/archives/archive_catalog.hpp"
#include "features/archives/crc_cache.hpp"
#include "http/router.hpp"
#include "storage/object_store.hpp"

namespace sluice {

// What the archive routes share; owned by the serve command, outliving the server.
struct ArchiveService {
  ObjectStore& store;
  ArchiveCatalog& catalog;
  CrcCache& crcs;
  const ServerConfig& server;
  StreamLimiter& limiter;  // the server's one max_streams, shared with every streaming feature
};

// POST /v1/archives → 201 {id, url, expires_at, ...}; GET and HEAD /v1/archives/{id}.zip stream
// it (Content-Length, strong ETag and Range when every entry is stored; chunked with a weak ETag
// otherwise; If-Match → 412, If-None-Match → 304); GET /v1/archives/{id} describes it;
// DELETE /v1/archives/{id} → 204. An expired archive answers 410 until it is swept, then 404.
void add_archive_routes(Router& router, const ArchiveService& service);

}  // namespace sluice
