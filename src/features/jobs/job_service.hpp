#pragma once

#include <boost/asio/awaitable.hpp>
#include <boost/asio/thread_pool.hpp>
#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "core/config.hpp"
#include "core/wake_signal.hpp"
#include "features/jobs/job_request.hpp"
#include "pipeline/dataset_catalog.hpp"
#include "queue/job_queue.hpp"
#include "storage/object_store.hpp"

namespace sluice {

// Milliseconds since the epoch by this machine's clock (for what is shown or computed while a
// response is built; the queue's own times come from JobQueue::now()).
std::int64_t system_now_ms();

// What the jobs API, the event streams and the workers share: the queue (its blocking calls
// run on `pool`), the store results go into, the catalog jobs export from, and the wake-ups
// that the queue's change notifications turn into.
// Thread-safe. Outlives every request and worker that uses it.
class JobService {
 public:
  JobService(const Config& config, JobQueue& queue, ObjectStore& store,
             const DatasetCatalog& catalog);
  ~JobService();
  JobService(const JobService&) = delete;
  JobService& operator=(const JobService&) = delete;

  const QueueConfig& queue_config() const { return queue_config_; }
  const Config& config() const { return config_; }
  const ServerConfig& server_config() const { return config_.server; }
  JobQueue& queue() { return queue_; }
  ObjectStore& store() { return store_; }
  const DatasetCatalog& catalog() const { return catalog_; }

  // Runs a blocking queue call on the queue's pool.
  template <typename Function>
  boost::asio::awaitable<std::invoke_result_t<Function&>> call(Function function);
  // The same on a pool of the workers' own (claims, heartbeats, completions), so that API and
  // event-stream traffic never delays a lease renewal.
  template <typename Function>
  boost::asio::awaitable<std::invoke_result_t<Function&>> worker_call(Function function);

  // Checks `submission` like a streaming export of the same request would (ApiError 4xx),
  // reads the dataset's data version (version_query), completes it at once from a finished
  // result of the same request and version when there is one, else queues it.
  boost::asio::awaitable<Enqueued> submit(JobSubmission submission, std::string idempotency_key,
                                          std::string request_id);

  // The job as the API shows it (JSON object text); `with_link`: the result's URL (a presigned
  // S3 URL, or this server's /v1/jobs/{id}/result).
  std::string job_json(const JobRecord& job) const;
  // A result's download URL: S3's presigned GET, or nothing (the local folder: the jobs
  // route serves it).
  std::optional<std::string> presigned_result_url(const JobRecord& job) const;
  std::optional<std::string> presigned_result_url(const JobRecord& job,
                                                  const std::string& file_name) const;
  // The result's file name (the last segment of its key).
  static std::string result_file_name(const JobRecord& job);

  // The job's events after `last`, for a subscriber that watch()es it: read from one copy per
  // job that this process shares between its subscribers (refreshed from the queue when the
  // job changed, or at most every poll_interval / 2), so a thousand subscribers cost one query
  // per change, not a thousand. A `progress` event that a later one supersedes is left out (a
  // slow reader gets the newest figures, never fewer states); `succeeded` carries the result's
  // URL.
  struct EventPage {
    std::vector<JobEvent> events;
    bool ended = false;  // the job's newest event is final: nothing will follow
  };
  boost::asio::awaitable<EventPage> events_after(const std::string& job_id, std::uint64_t last);

  // Wake-ups. A waiter for `job_id` (events) or for work (workers) registers a signal; the
  // queue's change notification for a job notifies both its waiters and the work waiters.
  void watch(const std::string& job_id, const std::shared_ptr<WakeSignal>& signal);
  void unwatch(const std::string& job_id, const std::shared_ptr<WakeSignal>& signal);
  void watch_work(const std::shared_ptr<WakeSignal>& signal);
  void unwatch_work(const std::shared_ptr<WakeSignal>& signal);
  // Called with every changed job id (from the queue's notification thread or a caller).
  void set_change_observer(std::function<void(std::string_view)> observer);

  // JobQueue::succeed, batched: completions that arrive while one batch is written go into the
  // next (one transaction, one PostgreSQL statement for all of them), so jobs that finish
  // together cost one round trip; a lone completion is written at once. Fenced as succeed().
  boost::asio::awaitable<Fenced> succeed(std::string job_id, int attempt, JobResult result);

  // Deletes expired results and old jobs, requeues lapsed leases; logs what it did.
  boost::asio::awaitable<void> sweep_once();

 private:
  // submit() of a cube build ({"cube": ...}): 404 unknown_cube, else queued (no reuse: a build
  // is asked for because the data changed).
  boost::asio::awaitable<Enqueued> submit_cube_build(JobSubmission submission, std::string idempotency_key);

  void changed(std::string_view job_id);
  boost::asio::awaitable<std::string> data_version(const Dataset& dataset,
                                                   const std::string& request_id);

  const Config& config_;
  QueueConfig queue_config_;
  JobQueue& queue_;
  ObjectStore& store_;
  const DatasetCatalog& catalog_;
  boost::asio::thread_pool pool_;
  boost::asio::thread_pool worker_pool_{2};
  std::mutex mutex_;
  std::unordered_multimap<std::string, std::weak_ptr<WakeSignal>> watchers_;
  std::vector<std::weak_ptr<WakeSignal>> work_watchers_;
  std::function<void(std::string_view)> observer_;
  // One per job that has subscribers in this process.
  struct EventFeed {
    std::mutex mutex;  // held across the refresh (on the pool)
    std::vector<JobEvent> events;  // every event so far, superseded progress events dropped
    std::atomic<bool> dirty{true};
    std::chrono::steady_clock::time_point fetched_at{};
    std::size_t subscribers = 0;  // under JobService::mutex_
  };
  EventPage refresh_and_read(EventFeed& feed, const std::string& job_id, std::uint64_t last);

  struct PendingCompletion {
    JobCompletion completion;
    Fenced answer = Fenced::kLost;
    std::exception_ptr error;
    std::atomic<bool> done{false};
    std::shared_ptr<WakeSignal> wake;
  };
  void complete_pending();  // on the pool: writes batches until none is waiting
  std::mutex completions_mutex_;
  std::vector<std::shared_ptr<PendingCompletion>> completions_;
  bool completing_ = false;
  std::unordered_map<std::string, std::shared_ptr<EventFeed>> feeds_;
};

}  // namespace sluice

#include "core/blocking_call.hpp"

namespace sluice {

template <typename Function>
boost::asio::awaitable<std::invoke_result_t<Function&>> JobService::call(Function function) {
  return run_blocking(pool_, std::move(function));
}

template <typename Function>
boost::asio::awaitable<std::invoke_result_t<Function&>> JobService::worker_call(Function function) {
  return run_blocking(worker_pool_, std::move(function));
}

}  // namespace sluice
