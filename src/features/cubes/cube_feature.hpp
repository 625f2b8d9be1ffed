#pragma once

#include <memory>

#include "core/config.hpp"
#include "http/router.hpp"
#include "storage/object_store.hpp"

namespace sluice {

// Cubes as the serve command wires them: GET /v1/cubes (list), /v1/cubes/{cube} (describe),
// /v1/cubes/{cube}/{path values...}?{file dimension}={value}[..{value}] (lookup: one ranged
// read of the current version's file). Each cube's current version is loaded at start and
// looked for again every cube.refresh on a thread of its own; a lookup takes the version
// current when it starts and reads only that version's (immutable) objects, so an answer is
// always whole from one version. Must outlive the server; `store` must outlive it.
class CubeFeature {
 public:
  virtual ~CubeFeature() = default;
  // Stops looking for new versions (joins the thread). Idempotent.
  virtual void stop() = 0;
};

std::unique_ptr<CubeFeature> make_cube_feature(const Config& config, ObjectStore& store, Router& router);

}  // namespace sluice
