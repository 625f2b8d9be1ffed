#pragma once

#include <boost/asio/awaitable.hpp>
#include <chrono>
#include <functional>
#include <memory>

#include "core/config.hpp"
#include "core/stream_limiter.hpp"
#include "http/router.hpp"
#include "pipeline/dataset_catalog.hpp"
#include "pipeline/export_request.hpp"
#include "queue/job_queue.hpp"
#include "storage/object_store.hpp"

namespace sluice {

// Background exports as `sluice serve` wires them: the jobs API on the router
//
//   POST   /v1/jobs                    {dataset, format, ...} → 202, Content-Location
//   GET    /v1/jobs?state=&dataset=&limit=&before=
//   GET    /v1/jobs/{id}               202 + X-Progress + Retry-After while queued/running; 200
//   DELETE /v1/jobs/{id}               cancels
//   GET    /v1/jobs/{id}/events        Server-Sent Events, or a WebSocket on upgrade
//   GET    /v1/jobs/{id}/result        the result (the local folder), or 303 to S3's presigned URL
//
// and, with workers > 0, that many jobs running in this process (JobRunner).
// `queue` (opened from [queue]), `store`, `catalog` must outlive the feature; the feature must
// outlive the server that uses the router.
class JobFeature {
 public:
  virtual ~JobFeature() = default;
  // Queues an export sent to /v1/exports with Prefer: respond-async.
  virtual boost::asio::awaitable<void> respond_async(ExportRequest request, const HttpRequest& http,
                                                     HttpResponder& responder) = 0;
  // Stops claiming; running jobs may finish until `grace`, then are handed back. Returns at once.
  virtual void begin_shutdown(std::chrono::milliseconds grace) = 0;
  // Waits for the workers (after begin_shutdown). Their I/O contexts stay until the feature is
  // destroyed: close what is registered with them (the store, the catalog's sources) first.
  virtual void join() = 0;
};

std::unique_ptr<JobFeature> make_job_feature(const Config& config, JobQueue& queue,
                                             ObjectStore& store, const DatasetCatalog& catalog,
                                             StreamLimiter& limiter, Router& router,
                                             unsigned workers);

// `sluice worker`: only workers (and the sweeper), no HTTP. Blocks until SIGINT/SIGTERM, then
// finishes or hands back running jobs within [server] shutdown_grace_ms.
// `after_join` runs once the workers stopped, while their I/O contexts still exist.
int run_job_workers(const Config& config, JobQueue& queue, ObjectStore& store,
                    const DatasetCatalog& catalog, unsigned workers,
                    const std::function<void()>& after_join);

}  // namespace sluice
