#pragma once

#include <atomic>
#include <memory>
#include <string>

#include "features/jobs/job_service.hpp"

namespace sluice {

// Runs background jobs in this process: `slots` at once, each on an I/O thread of its own
// (one io_context per thread, like the server's), plus the sweeper (with 0 slots: only the
// sweeper, for a `serve` whose jobs run in `sluice worker` processes).
//
// A claimer waits for work (a queue notification, else every poll_interval), claims as many
// jobs as slots are free in one call, and starts each: the shared export pipeline into an
// ObjectWriter under `.sluice/jobs/{id}/{attempt}/{file name}`, SHA-256 and byte count on the
// way. Beside it, every progress_interval, a heartbeat renews the lease and reports progress;
// a heartbeat the queue refuses (cancelled, lease lapsed and taken over) stops the export at
// once: the query is cancelled and the upload abandoned. Before the commit, the lease is
// checked once more; after it, succeed() is fenced by the attempt, and an attempt that lost
// deletes what it wrote. A failure is reported as retryable (queued again with backoff) unless
// the request itself is wrong.
//
// Shutdown: begin_shutdown() stops claiming; running jobs may finish until the grace period
// ends; then they are cancelled and handed back (release: the attempt is not counted).
class JobRunner {
 public:
  JobRunner(JobService& service, unsigned slots, std::string worker_name);
  ~JobRunner();
  JobRunner(const JobRunner&) = delete;
  JobRunner& operator=(const JobRunner&) = delete;

  void start();
  // Thread-safe; returns at once.
  void begin_shutdown(std::chrono::milliseconds grace);
  // Waits until every job ended (finished or handed back) and the threads stopped.
  void join();

 private:
  class Impl;
  std::shared_ptr<Impl> impl_;
};

}  // namespace sluice
