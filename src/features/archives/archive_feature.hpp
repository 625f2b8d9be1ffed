#pragma once

#include <memory>

#include "core/config.hpp"
#include "core/stream_limiter.hpp"
#include "http/router.hpp"
#include "storage/object_store.hpp"

namespace sluice {

// The archive feature as the serve command wires it: the manifest catalog, the CRC cache, the
// routes, and the sweeper — a thread of its own that every [archives] sweep_interval_s deletes
// expired manifests, reading at most sweep_batch of them per pass and going on where the last
// pass stopped (so a large store is covered over several passes, never in one burst). It lists
// only ".sluice/archives/" and deletes only expired manifests there: the jobs' sweeper (their
// results, known from the queue) and the cubes' versions (".sluice/cubes/") are not its.
// Several serve processes sharing a store may sweep the same manifest; the second delete finds
// nothing. Must outlive the server that uses the router; `store` and `config` must outlive the
// feature. Destroying it stops the sweeper (joins its thread).
class ArchiveFeature {
 public:
  virtual ~ArchiveFeature() = default;
};

// Adds the routes and starts the sweeper.
std::unique_ptr<ArchiveFeature> make_archive_feature(ObjectStore& store,
                                                     const ArchivesConfig& archives,
                                                     const ServerConfig& server,
                                                     StreamLimiter& limiter, Router& router);

}  // namespace sluice
