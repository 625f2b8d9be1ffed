#include "queue/open_job_queue.hpp"

#include "queue/pg_job_queue.hpp"
#include "queue/sqlite_job_queue.hpp"

namespace sluice {

std::unique_ptr<JobQueue> open_job_queue(const QueueConfig& config) {
  QueueTuning tuning;
  tuning.backoff_base = config.backoff;
  tuning.retention = std::chrono::duration_cast<std::chrono::milliseconds>(config.retention);
  std::unique_ptr<JobQueue> queue =
      config.kind == "postgres" ? open_pg_job_queue(config.url, config.pool_size, tuning)
                                : open_sqlite_job_queue(config.path, tuning);
  queue->migrate();
  if (queue->notifies_across_processes()) queue->start_listening();
  return queue;
}

}  // namespace sluice
