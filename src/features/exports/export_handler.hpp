#pragma once

#include "core/config.hpp"
#include "core/stream_limiter.hpp"
#include "pipeline/dataset_catalog.hpp"
#include "http/router.hpp"

namespace sluice {

// GET /v1/datasets and GET /v1/exports/{dataset}.{csv|jsonl}.
// Every download holds a slot of `limiter` (the server's one max_streams) while it runs.
void add_export_routes(Router& router, const DatasetCatalog& catalog, const ServerConfig& config,
                       StreamLimiter& limiter);

}  // namespace sluice
