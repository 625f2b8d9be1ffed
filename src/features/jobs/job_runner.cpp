#include "features/jobs/job_runner.hpp"

#include "cube/cube_format.hpp"
#include "features/cubes/cube_builder.hpp"

#include <unistd.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <condition_variable>
#include <thread>
#include <unordered_map>
#include <variant>

#include "core/api_error.hpp"
#include "core/log.hpp"
#include "core/sha256.hpp"
#include "features/jobs/job_metrics.hpp"
#include "pipeline/export_pipeline.hpp"
#include "pipeline/export_plan.hpp"
#include "sources/source_error.hpp"

namespace sluice {
namespace {

namespace asio = boost::asio;
using namespace asio::experimental::awaitable_operators;

// Counts and hashes what the pipeline writes into the object writer. finish() does not commit:
// the runner commits only after checking that the job is still this attempt's.
class ResultSink final : public ByteSink {
 public:
  explicit ResultSink(ObjectWriter& writer) : writer_(writer) {}
  asio::awaitable<void> write(std::string_view bytes) override {
    digest_.update(bytes);
    bytes_ += bytes.size();
    co_await writer_.write(bytes);
  }
  asio::awaitable<void> finish() override { co_return; }
  std::uint64_t bytes() const { return bytes_; }
  std::string sha256() { return to_hex(digest_.final()); }

 private:
  ObjectWriter& writer_;
  Sha256 digest_;
  std::uint64_t bytes_ = 0;
};

// What a running job's watch and its export share (both on the job's thread).
struct RunningJob {
  JobRecord job;
  std::atomic<bool> check{false};  // the queue says the job changed: is it still ours?
  ExportPipeline* pipeline = nullptr;
  ResultSink* sink = nullptr;
};

enum class WatchEnd { kLost, kAborted };

// Per running job: reader batches of 512 KiB, writes of 1 MiB (StreamBudget's split).
constexpr std::size_t kJobBudgetBytes = 4 * 1024 * 1024;

std::string worker_identity() {
  char host[256] = {};
  ::gethostname(host, sizeof(host) - 1);
  return std::string(host) + ":" + std::to_string(::getpid()) + ":" + new_job_id().substr(26);
}

}  // namespace

class JobRunner::Impl : public std::enable_shared_from_this<Impl> {
 public:
  Impl(JobService& service, unsigned slots, std::string worker_name)
      : service_(service),
        config_(service.queue_config()),
        slots_(slots),
        worker_(worker_name.empty() ? worker_identity() : std::move(worker_name)) {
    const unsigned threads =
        std::max(1u, std::min(slots_, std::max(1u, std::thread::hardware_concurrency())));
    for (unsigned i = 0; i < threads; ++i) contexts_.push_back(std::make_unique<asio::io_context>(1));
  }

  void start() {
    service_.set_change_observer([weak = weak_from_this()](std::string_view id) {
      if (auto self = weak.lock()) self->changed(id);
    });
    work_ = std::make_shared<WakeSignal>(contexts_.front()->get_executor());
    service_.watch_work(work_);
    for (auto& context : contexts_) guards_.push_back(asio::make_work_guard(*context));
    claiming_ = slots_ > 0;
    sweeping_ = true;
    if (slots_ > 0) asio::co_spawn(*contexts_.front(), claim_loop(), asio::detached);
    asio::co_spawn(*contexts_.front(), sweep_loop(), asio::detached);
    for (auto& context : contexts_) {
      threads_.emplace_back([context = context.get()] { context->run(); });
    }
    if (slots_ > 0) {
      log_event("jobs: worker " + worker_ + " runs up to " + std::to_string(slots_) +
                " job(s) at once");
    }
  }

  void begin_shutdown(std::chrono::milliseconds grace) {
    if (stopping_.exchange(true)) return;
    if (work_) work_->notify();
    std::thread([self = shared_from_this(), grace] {
      std::unique_lock lock(self->mutex_);
      if (!self->idle_.wait_for(lock, grace, [&] { return self->running_.empty(); })) {
        log_event("jobs: grace period over: handing back " + std::to_string(self->running_.size()) +
                  " running job(s)");
        self->aborting_.store(true);
      }
    }).detach();
  }

  void join() {
    {
      std::unique_lock lock(mutex_);
      idle_.wait(lock, [&] { return running_.empty() && !claiming_ && !sweeping_; });
    }
    service_.set_change_observer({});
    if (work_) service_.unwatch_work(work_);
    guards_.clear();
    for (auto& context : contexts_) context->stop();
    for (std::thread& thread : threads_) thread.join();
    threads_.clear();
  }

  ~Impl() {
    for (auto& context : contexts_) context->stop();
    for (std::thread& thread : threads_) thread.join();
  }

 private:
  void changed(std::string_view id) {
    std::lock_guard lock(mutex_);
    auto found = running_.find(std::string(id));
    if (found != running_.end()) found->second->check.store(true);
  }

  asio::awaitable<void> pause(std::chrono::milliseconds duration) {
    asio::steady_timer timer(co_await asio::this_coro::executor, duration);
    co_await timer.async_wait(asio::as_tuple(asio::use_awaitable));
  }

  asio::awaitable<void> claim_loop() {
    std::size_t next = 0;
    while (!stopping_.load()) {
      std::size_t free = 0;
      {
        std::lock_guard lock(mutex_);
        free = slots_ - std::min<std::size_t>(slots_, running_.size());
      }
      std::vector<JobRecord> jobs;
      if (free > 0) {
        try {
          const std::string worker = worker_;
          const auto lease = config_.lease;
          JobQueue& queue = service_.queue();
          auto claim_jobs = [&queue, worker, free, lease] {
            return queue.claim(worker, free, lease);
          };
          jobs = co_await service_.worker_call(std::move(claim_jobs));
        } catch (const std::exception& error) {
          log_event(std::string("jobs: claim failed: ") + error.what());
        }
      }
      if (stopping_.load() && !jobs.empty()) {
        // Shutdown began while the claim was on its way: hand them back untouched.
        JobQueue& queue = service_.queue();
        for (const JobRecord& job : jobs) {
          auto hand_back = [&queue, id = job.id, attempt = job.attempt] {
            return queue.release(id, attempt);
          };
          try {
            co_await service_.worker_call(std::move(hand_back));
          } catch (const std::exception& error) {
            log_event("jobs: " + job.id + ": cannot hand back: " + error.what());
          }
        }
        jobs.clear();
      }
      for (JobRecord& job : jobs) {
        auto running = std::make_shared<RunningJob>();
        running->job = std::move(job);
        {
          std::lock_guard lock(mutex_);
          running_[running->job.id] = running;
          job_metrics().started.add();
          job_metrics().running.add();
        }
        asio::io_context& context = *contexts_[next++ % contexts_.size()];
        asio::co_spawn(context, run_job(running), asio::detached);
      }
      if (!jobs.empty() && jobs.size() == free) continue;  // maybe more waiting
      co_await (work_->wait() || pause(config_.poll_interval));
    }
    std::lock_guard lock(mutex_);
    claiming_ = false;
    idle_.notify_all();
  }

  asio::awaitable<void> sweep_loop() {
    while (!stopping_.load()) {
      try {
        co_await service_.sweep_once();
      } catch (const std::exception& error) {
        log_event(std::string("jobs: sweep failed: ") + error.what());
      }
      // In short steps, so that a shutdown does not wait for the next sweep.
      const auto until = std::chrono::steady_clock::now() + config_.sweep_interval;
      while (!stopping_.load() && std::chrono::steady_clock::now() < until) {
        co_await pause(std::chrono::milliseconds(100));
      }
    }
    std::lock_guard lock(mutex_);
    sweeping_ = false;
    idle_.notify_all();
  }

  // Renews the lease and reports progress until the queue refuses (the job is no longer this
  // attempt's) or the grace period of a shutdown ends. Never returns otherwise: the export
  // beside it ends first.
  asio::awaitable<WatchEnd> watch(std::shared_ptr<RunningJob> running) {
    const JobRecord& job = running->job;
    JobQueue& queue = service_.queue();
    const std::string id = job.id;
    const int attempt = job.attempt;
    const auto lease = config_.lease;
    auto last_beat = std::chrono::steady_clock::now();
    std::uint64_t reported_rows = 0;
    std::uint64_t reported_bytes = 0;
    for (;;) {
      co_await pause(std::chrono::milliseconds(100));
      if (aborting_.load()) co_return WatchEnd::kAborted;
      if (running->check.exchange(false)) {
        auto get_job = [&queue, id] { return queue.get(id); };
        std::optional<JobRecord> now;
        bool known = true;
        try {
          now = co_await service_.worker_call(std::move(get_job));
        } catch (const std::exception& error) {
          log_event("jobs: " + id + ": cannot look at the job: " + error.what());
          running->check.store(true);  // again at the next tick
          known = false;
        }
        if (known && (!now || now->state != JobState::kRunning || now->attempt != attempt)) {
          co_return WatchEnd::kLost;
        }
      }
      if (std::chrono::steady_clock::now() - last_beat < config_.progress_interval) continue;
      last_beat = std::chrono::steady_clock::now();
      const std::uint64_t rows = running->pipeline != nullptr ? running->pipeline->rows_sent() : 0;
      const std::uint64_t bytes = running->sink != nullptr ? running->sink->bytes() : 0;
      const bool event = rows != reported_rows || bytes != reported_bytes;
      Fenced fenced = Fenced::kOk;
      try {
        auto beat = [&queue, id, attempt, rows, bytes, lease, event] {
          return queue.heartbeat(id, attempt, rows, bytes, lease, event);
        };
        fenced = co_await service_.worker_call(std::move(beat));
      } catch (const std::exception& error) {
        // The queue is unreachable: keep exporting; the lease lapses if this lasts.
        log_event("jobs: " + id + ": heartbeat failed: " + error.what());
        continue;
      }
      if (fenced == Fenced::kLost) co_return WatchEnd::kLost;
      reported_rows = rows;
      reported_bytes = bytes;
    }
  }

  // The export, or what it threw: returned, not thrown, because `a || b` waits for the first
  // branch that *succeeds* — a throwing export would leave the job waiting on its watch.
  struct Exported {
    PipelineStats stats;
    std::exception_ptr failure;
  };

  asio::awaitable<Exported> export_into(std::shared_ptr<RunningJob> running, ExportPlan plan,
                                        ResultSink& sink) {
    Exported exported;
    try {
      // A file, not a download: full buffers only, compressed in fixed blocks, and a larger
      // budget than a stream's (there are few jobs at once; each store write is a hop to the
      // store's pool, so 1 MiB writes instead of 64 KiB ones).
      StreamBudget budget;
      budget.bytes = std::max<std::size_t>(service_.server_config().stream_buffer_bytes, kJobBudgetBytes);
      budget.interactive = false;
      std::unique_ptr<ExportPipeline> pipeline = co_await ExportPipeline::open(std::move(plan), budget);
      running->pipeline = pipeline.get();
      running->sink = &sink;
      try {
        exported.stats = co_await pipeline->run(sink);
      } catch (...) {
        exported.failure = std::current_exception();
      }
      running->pipeline = nullptr;
    } catch (...) {
      exported.failure = std::current_exception();
    }
    co_return exported;
  }

  // What publishing did; never thrown (see Exported).
  struct Published {
    bool committed = false;  // the object is visible
    bool published = false;  // the job's result is it (false after a commit: lost the job)
    std::exception_ptr failure;
  };

  asio::awaitable<Published> publish(ObjectWriter& writer, JobResult result, const JobRecord& job) {
    Published outcome;
    try {
      const ObjectInfo info = co_await writer.commit();
      outcome.committed = true;
      result.etag = info.etag;
      const Fenced done = co_await service_.succeed(job.id, job.attempt, std::move(result));
      outcome.published = done == Fenced::kOk;
    } catch (...) {
      outcome.failure = std::current_exception();
    }
    co_return outcome;
  }

  // Renews the lease every progress_interval until cancelled (the branch beside it ended).
  asio::awaitable<std::monostate> keep_lease(const JobRecord& job, std::uint64_t rows,
                                             std::uint64_t bytes) {
    JobQueue& queue = service_.queue();
    const std::string id = job.id;
    const int attempt = job.attempt;
    const auto lease = config_.lease;
    for (;;) {
      co_await pause(config_.progress_interval);
      auto beat = [&queue, id, attempt, rows, bytes, lease] {
        return queue.heartbeat(id, attempt, rows, bytes, lease, false);
      };
      try {
        co_await service_.worker_call(std::move(beat));
      } catch (const boost::system::system_error&) {
        throw;  // cancelled: publishing ended
      } catch (const std::exception& error) {
        log_event("jobs: " + id + ": heartbeat failed: " + error.what());
      }
    }
  }

  struct CubeBuilt {
    CubeBuildStats stats;
    std::exception_ptr failure;
  };

  asio::awaitable<CubeBuilt> build_into(const CubeConfig& cube, Source& source, bool full) {
    CubeBuilt built;
    try {
      built.stats = co_await build_cube(cube, source, service_.store(),
                                        full ? CubeBuildMode::kFull : CubeBuildMode::kIncremental);
    } catch (...) {
      built.failure = std::current_exception();
    }
    co_return built;
  }

  // A cube build job: the build runs beside the watch that renews the lease (a cancel or a
  // lost lease stops it: nothing of it is published unless its pointer was already switched);
  // the result names the version's manifest. Throws what the build throws.
  asio::awaitable<void> run_cube_build(std::shared_ptr<RunningJob> running, JobSubmission spec, bool& lost,
                                       bool& handed_back) {
    const JobRecord job = running->job;
    const CubeConfig* cube = service_.config().find_cube(spec.cube);
    if (cube == nullptr) throw ApiError(404, "unknown_cube", "no cube named \"" + spec.cube + "\" any more");
    Source* source = service_.catalog().source(cube->source);
    std::variant<CubeBuilt, WatchEnd> outcome = co_await (build_into(*cube, *source, spec.full_build) || watch(running));
    if (outcome.index() == 1) {
      lost = std::get<1>(outcome) == WatchEnd::kLost;
      handed_back = !lost;
      co_return;
    }
    const CubeBuilt& built = std::get<0>(outcome);
    if (built.failure) std::rethrow_exception(built.failure);
    JobResult result;
    result.key = cube_version_prefix(cube->name, built.stats.version) + "manifest.json";
    result.size = built.stats.bytes_stored;
    result.rows = built.stats.rows;
    result.expires_at = system_now_ms() + std::chrono::duration_cast<std::chrono::milliseconds>(config_.result_ttl).count();
    const Fenced done = co_await service_.succeed(job.id, job.attempt, std::move(result));
    lost = done != Fenced::kOk;  // (the version is published all the same)
    if (!lost) {
      job_metrics().succeeded.add();
      log_event("jobs: " + job.id + " succeeded: cube " + cube->name + " version " + built.stats.version + ", " +
                std::to_string(built.stats.rows) + " rows, " + std::to_string(built.stats.files_written) +
                " files written");
    }
  }

  asio::awaitable<void> run_job(std::shared_ptr<RunningJob> running) {
    const JobRecord job = running->job;
    JobQueue& queue = service_.queue();
    ObjectStore& store = service_.store();
    std::unique_ptr<ObjectWriter> writer;
    std::string key;
    std::string failure_code;
    std::string failure_message;
    bool retryable = true;
    bool handed_back = false;
    bool lost = false;
    bool committed = false;  // the object is visible under `key`
    bool published = false;  // ... and the job's result says so
    try {
      JobSubmission spec = parse_job_spec(job.spec);
      if (!spec.cube.empty()) {
        co_await run_cube_build(running, std::move(spec), lost, handed_back);
      } else {
        spec.request.request_id = "job-" + job.id;
        ExportPlan plan = plan_export(service_.catalog(), spec.request);
        key = ".sluice/jobs/" + job.id + "/" + std::to_string(job.attempt) + "/" + spec.file_name;
        writer = co_await store.write(key);
        ResultSink sink(*writer);
        std::variant<Exported, WatchEnd> outcome =
            co_await (export_into(running, std::move(plan), sink) || watch(running));
        if (outcome.index() == 1) {
          lost = std::get<1>(outcome) == WatchEnd::kLost;
          handed_back = !lost;
        } else {
          if (std::get<0>(outcome).failure) std::rethrow_exception(std::get<0>(outcome).failure);
          const PipelineStats stats = std::get<0>(outcome).stats;
          const std::string id = job.id;
          const int attempt = job.attempt;
          const auto lease = config_.lease;
          const std::uint64_t bytes = sink.bytes();
          auto check_lease = [&queue, id, attempt, stats, bytes, lease] {
            return queue.heartbeat(id, attempt, stats.rows, bytes, lease, false);
          };
          // Still ours? (A cancel that arrived while the last bytes went out.)
          const Fenced before = co_await service_.worker_call(std::move(check_lease));
          if (before == Fenced::kLost) {
            lost = true;
          } else {
            JobResult result;
            result.key = key;
            result.size = bytes;
            result.rows = stats.rows;
            result.sha256 = sink.sha256();
            result.expires_at =
                system_now_ms() +
                std::chrono::duration_cast<std::chrono::milliseconds>(spec.expires_in).count();
            // The lease is renewed while the result is published: S3's CompleteMultipartUpload
            // of a large result may take a while.
            std::variant<Published, std::monostate> done =
                co_await (publish(*writer, std::move(result), job) || keep_lease(job, stats.rows, bytes));
            const Published& outcome = std::get<0>(done);
            committed = outcome.committed;
            published = outcome.published;
            lost = outcome.committed && !outcome.published && !outcome.failure;
            writer.reset();
            if (outcome.failure) std::rethrow_exception(outcome.failure);
            if (published) {
              job_metrics().succeeded.add();
              job_metrics().result_bytes.add(bytes);
              log_event("jobs: " + id + " succeeded: " + std::to_string(stats.rows) + " rows, " +
                        std::to_string(bytes) + " bytes into " + key);
            }
          }
        }
      }
    } catch (const ApiError& error) {
      failure_code = error.code();
      failure_message = error.what();
      retryable = error.status() >= 500 && error.code() != "invalid_utf8";
    } catch (const CubeBuildError& error) {
      failure_code = "cube_build_failed";
      failure_message = error.what();
      retryable = error.retryable();
    } catch (const SourceError& error) {
      failure_code = "source_error";
      failure_message = error.what();
      retryable = error.kind() == SourceError::Kind::kUnavailable ||
                  error.kind() == SourceError::Kind::kBusy ||
                  error.kind() == SourceError::Kind::kTimeout;
    } catch (const StorageError& error) {
      failure_code = "storage_error";
      failure_message = error.what();
    } catch (const std::exception& error) {
      failure_code = "internal_error";
      failure_message = error.what();
    }
    if (writer) co_await writer->abandon();
    const std::string id = job.id;
    const int attempt = job.attempt;
    if (committed && !published) {
      // Visible but not (knowingly) recorded: lost to another attempt or a cancel, or recording
      // failed. Delete it unless the job's result is this very object after all (a commit whose
      // answer was lost).
      auto get_job = [&queue, id] { return queue.get(id); };
      try {
        const std::optional<JobRecord> now = co_await service_.worker_call(std::move(get_job));
        if (!now || !now->result || now->result->key != key) co_await store.remove(key);
      } catch (const std::exception& error) {
        log_event("jobs: " + id + ": cannot delete the unpublished result " + key + ": " +
                  error.what());
      }
    }
    if (lost) job_metrics().lost.add();
    if (handed_back) job_metrics().handed_back.add();
    if (!lost && !handed_back && !failure_code.empty()) job_metrics().failed.add();
    try {
      if (lost) {
        log_event("jobs: " + id + " attempt " + std::to_string(attempt) +
                  " stopped: the job was cancelled or taken over; nothing published");
      } else if (handed_back) {
        auto hand_back = [&queue, id, attempt] { return queue.release(id, attempt); };
        co_await service_.worker_call(std::move(hand_back));
        log_event("jobs: " + id + " handed back at shutdown");
      } else if (!failure_code.empty()) {
        log_event("jobs: " + id + " attempt " + std::to_string(attempt) + " failed (" +
                  failure_code + "): " + failure_message);
        auto record_failure = [&queue, id, attempt, code = failure_code,
                               message = failure_message, retryable] {
          return queue.fail(id, attempt, code, message, retryable);
        };
        co_await service_.worker_call(std::move(record_failure));
      }
    } catch (const std::exception& error) {
      log_event("jobs: " + id + ": cannot record the outcome: " + error.what() +
                " (the lease will lapse and the sweeper decides)");
    }
    {
      std::lock_guard lock(mutex_);
      running_.erase(id);
      job_metrics().running.sub();
      idle_.notify_all();
    }
    if (work_) work_->notify();  // a slot is free
  }

  JobService& service_;
  const QueueConfig& config_;
  unsigned slots_;
  std::string worker_;
  std::vector<std::unique_ptr<asio::io_context>> contexts_;
  std::vector<asio::executor_work_guard<asio::io_context::executor_type>> guards_;
  std::vector<std::thread> threads_;
  std::shared_ptr<WakeSignal> work_;
  std::atomic<bool> stopping_{false};
  std::atomic<bool> aborting_{false};
  std::mutex mutex_;
  std::condition_variable idle_;
  std::unordered_map<std::string, std::shared_ptr<RunningJob>> running_;
  bool claiming_ = false;  // the claim loop runs (it may be inside a queue call)
  bool sweeping_ = false;  // the sweep loop runs
};

JobRunner::JobRunner(JobService& service, unsigned slots, std::string worker_name)
    : impl_(std::make_shared<Impl>(service, slots, std::move(worker_name))) {}

JobRunner::~JobRunner() = default;

void JobRunner::start() { impl_->start(); }
void JobRunner::begin_shutdown(std::chrono::milliseconds grace) { impl_->begin_shutdown(grace); }
void JobRunner::join() { impl_->join(); }

}  // namespace sluice
