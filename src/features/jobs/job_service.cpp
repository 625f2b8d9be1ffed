#include "features/jobs/job_service.hpp"

#include <boost/asio/this_coro.hpp>
#include <boost/json.hpp>
#include <algorithm>
#include <chrono>
#include <utility>

#include "core/api_error.hpp"
#include "core/file_name_template.hpp"
#include "core/log.hpp"
#include "http/content_disposition.hpp"
#include "pipeline/export_plan.hpp"
#include "sources/source_error.hpp"

namespace sluice {
namespace {

namespace asio = boost::asio;
namespace json = boost::json;

std::string instant(std::int64_t ms) {
  if (ms <= 0) return {};
  return rfc3339_utc(std::chrono::system_clock::time_point(std::chrono::milliseconds(ms)));
}

}  // namespace

std::int64_t system_now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

namespace {

json::value instant_or_null(std::int64_t ms) {
  if (ms <= 0) return nullptr;
  return json::value(instant(ms));
}

// The result's name when the request gives none: the dataset's download name with the format's
// extension and the compression's suffix, as the streaming export names it.
std::string default_file_name(const Dataset& dataset, const ExportRequest& request) {
  std::string name = expand_file_name(dataset.config->file_name, dataset.config->name,
                                      std::chrono::system_clock::now()) +
                     "." + std::string(file_extension(request.format));
  if (request.compression != Compression::kNone) {
    name += "." + std::string(compression_suffix(request.compression));
  }
  return name;
}

}  // namespace

JobService::JobService(const Config& config, JobQueue& queue, ObjectStore& store,
                       const DatasetCatalog& catalog)
    : config_(config),
      queue_config_(config.queue.value_or(QueueConfig{})),
      queue_(queue),
      store_(store),
      catalog_(catalog),
      pool_(std::max<std::size_t>(2, queue_config_.pool_size)) {
  queue_.on_change([this](std::string_view id) { changed(id); });
}

JobService::~JobService() {
  queue_.on_change({});
  pool_.join();
  worker_pool_.join();
}

asio::awaitable<std::string> JobService::data_version(const Dataset& dataset,
                                                      const std::string& request_id) {
  const std::string& sql = dataset.config->version_query;
  if (sql.empty()) co_return std::string();
  QuerySpec query;
  query.sql = sql;
  query.request_id = request_id;
  const asio::any_io_executor executor = co_await asio::this_coro::executor;
  std::unique_ptr<BatchReader> reader =
      co_await dataset.source->open(std::move(query), ReadBudget{}, executor, dataset.version_columns);
  std::string version = "empty";
  RowBatch* batch = co_await reader->next();
  while (batch != nullptr && batch->rows() == 0) batch = co_await reader->next();
  if (batch != nullptr) {
    version.clear();
    for (std::size_t column = 0; column < batch->columns(); ++column) {
      const Cell cell = batch->cell(0, column);
      if (column > 0) version += '|';
      version += cell.null ? std::string("null") : std::string(cell.value);
    }
  }
  reader->cancel();
  co_return version;
}

asio::awaitable<Enqueued> JobService::submit(JobSubmission submission,
                                             std::string idempotency_key,
                                             std::string request_id) {
  submission.request.request_id = request_id;
  if (!submission.cube.empty()) co_return co_await submit_cube_build(std::move(submission), std::move(idempotency_key));
  // The same checks as a streaming export: unknown dataset, filter, column, order... → 4xx
  // before anything is queued.
  const ExportPlan plan = plan_export(catalog_, submission.request);
  const Dataset& dataset = *plan.dataset;
  // What the client said itself, for comparing a replayed Idempotency-Key (defaults such as a
  // dated file name may differ between the two requests without the request differing).
  const bool named = !submission.file_name.empty();
  const bool timed = submission.expires_in.count() != 0;
  const bool attempts_given = submission.max_attempts > 0;
  if (!named) submission.file_name = default_file_name(dataset, submission.request);
  if (!timed) submission.expires_in = queue_config_.result_ttl;
  if (submission.expires_in > queue_config_.max_result_ttl) {
    throw ApiError(400, "invalid_field",
                   "expires_in: at most " + std::to_string(queue_config_.max_result_ttl.count()) +
                       " seconds (max_result_ttl_s)",
                   {{"field", "expires_in"}});
  }
  NewJob job;
  job.dataset = dataset.config->name;
  job.spec = job_spec_json(submission);
  job.priority = submission.priority;
  job.run_at = submission.run_at;
  job.max_attempts = submission.max_attempts > 0 ? submission.max_attempts : queue_config_.max_attempts;
  job.idempotency_key = std::move(idempotency_key);
  job.fingerprint = job_fingerprint(submission.request);

  try {
    job.data_version = co_await data_version(dataset, request_id);
  } catch (const SourceError& error) {
    throw ApiError(503, "version_query_failed",
                   "the dataset's version_query failed: " + std::string(error.what()));
  }
  if (!job.data_version.empty() && job.run_at == 0) {
    const std::string fingerprint = job.fingerprint;
    const std::string version = job.data_version;
    // A result that stays valid for at least a tenth of what this job asks is worth reusing.
    const auto margin = std::chrono::duration_cast<std::chrono::milliseconds>(submission.expires_in) / 10;
    auto find_reusable = [this, fingerprint, version, margin] {
      return queue_.find_reusable(fingerprint, version, margin);
    };
    std::optional<JobRecord> reusable = co_await call(std::move(find_reusable));
    if (reusable && reusable->result) job.reuse = reusable->result;
  }
  NewJob queued = std::move(job);
  auto add_job = [this, queued] { return queue_.enqueue(queued); };
  Enqueued enqueued = co_await call(std::move(add_job));
  bool same = enqueued.created;
  if (!same) {
    const JobSubmission earlier = parse_job_spec(enqueued.job.spec);
    same = enqueued.job.fingerprint == queued.fingerprint &&
           enqueued.job.priority == queued.priority &&
           (!attempts_given || enqueued.job.max_attempts == queued.max_attempts) &&
           (!named || earlier.file_name == submission.file_name) &&
           (!timed || earlier.expires_in == submission.expires_in);
  }
  if (!same) {
    throw ApiError(422, "idempotency_key_reused",
                   "the Idempotency-Key was used for a different request (job " +
                       enqueued.job.id + ")",
                   {{"job_id", enqueued.job.id}});
  }
  co_return enqueued;
}

asio::awaitable<Enqueued> JobService::submit_cube_build(JobSubmission submission, std::string idempotency_key) {
  if (config_.find_cube(submission.cube) == nullptr) {
    std::string names;
    for (const CubeConfig& cube : config_.cubes) names += (names.empty() ? "" : ", ") + cube.name;
    throw ApiError(404, "unknown_cube",
                   "no cube named \"" + submission.cube + "\"" + (names.empty() ? "" : " (cubes: " + names + ")"));
  }
  const bool attempts_given = submission.max_attempts > 0;
  // One build of a cube at a time: a build already queued or running (and not scheduled for
  // later) is the answer, as two at once would only race to publish.
  if (submission.run_at == 0) {
    const std::string dataset = cube_job_dataset(submission.cube);
    auto pending = [this, dataset] {
      std::optional<JobRecord> found;
      for (JobState state : {JobState::kRunning, JobState::kQueued}) {
        JobFilter filter;
        filter.state = state;
        filter.dataset = dataset;
        filter.limit = 1;
        std::vector<JobRecord> jobs = queue_.list(filter);
        if (!jobs.empty()) {
          found = std::move(jobs.front());
          break;
        }
      }
      return found;
    };
    std::optional<JobRecord> already = co_await call(std::move(pending));
    if (already && parse_job_spec(already->spec).full_build == submission.full_build) {
      co_return Enqueued{std::move(*already), false};
    }
  }
  NewJob job;
  job.dataset = cube_job_dataset(submission.cube);
  job.spec = job_spec_json(submission);
  job.priority = submission.priority;
  job.run_at = submission.run_at;
  job.max_attempts = attempts_given ? submission.max_attempts : queue_config_.max_attempts;
  job.idempotency_key = std::move(idempotency_key);
  job.fingerprint = job.dataset + (submission.full_build ? ":full" : "");
  NewJob queued = std::move(job);
  auto add_job = [this, queued] { return queue_.enqueue(queued); };
  Enqueued enqueued = co_await call(std::move(add_job));
  if (!enqueued.created &&
      (enqueued.job.fingerprint != queued.fingerprint || enqueued.job.priority != queued.priority ||
       (attempts_given && enqueued.job.max_attempts != queued.max_attempts))) {
    throw ApiError(422, "idempotency_key_reused",
                   "the Idempotency-Key was used for a different request (job " + enqueued.job.id + ")",
                   {{"job_id", enqueued.job.id}});
  }
  co_return enqueued;
}

std::string JobService::result_file_name(const JobRecord& job) {
  if (!job.result) return {};
  // The name this job asked for (a reused result was stored under another job's name).
  try {
    std::string name = parse_job_spec(job.spec).file_name;
    if (!name.empty()) return name;
  } catch (const std::exception&) {
  }
  const std::string& key = job.result->key;
  const std::size_t slash = key.rfind('/');
  return slash == std::string::npos ? key : key.substr(slash + 1);
}

std::optional<std::string> JobService::presigned_result_url(const JobRecord& job) const {
  return presigned_result_url(job, result_file_name(job));
}

std::optional<std::string> JobService::presigned_result_url(const JobRecord& job,
                                                            const std::string& file_name) const {
  if (!job.result || job.state != JobState::kSucceeded) return std::nullopt;
  // The system clock, not the queue's: no database round trip while a response is built.
  const std::int64_t left_ms = job.result->expires_at - system_now_ms();
  if (left_ms <= 0) return std::nullopt;
  // S3 allows at most 7 days; the link ends with the result.
  const auto lifetime = std::min<std::chrono::seconds>(
      std::chrono::seconds(std::max<std::int64_t>(left_ms / 1000, 1)), std::chrono::hours(24 * 7));
  return store_.presign_get(job.result->key, lifetime, content_disposition(file_name));
}

std::string JobService::job_json(const JobRecord& job) const {
  json::object out;
  out["id"] = job.id;
  out["state"] = to_string(job.state);
  out["dataset"] = job.dataset;
  std::string file_name;  // the name the job asked for (parsed once, used twice)
  bool cube_build = false;
  try {
    const JobSubmission spec = parse_job_spec(job.spec);
    cube_build = !spec.cube.empty();
    file_name = spec.file_name;
    json::object request;
    if (cube_build) {
      request["cube"] = spec.cube;
      request["full"] = spec.full_build;
    } else {
    request["format"] = file_extension(spec.request.format);
    request["compression"] = spec.request.compression == Compression::kNone
                                 ? std::string_view("none")
                                 : compression_coding(spec.request.compression);
    json::object params;
    for (const auto& [name, value] : spec.request.params) params[name] = value;
    request["params"] = std::move(params);
    request["file_name"] = spec.file_name;
    }
    out["request"] = std::move(request);
  } catch (const std::exception&) {
    out["request"] = nullptr;
  }
  if (file_name.empty()) file_name = result_file_name(job);
  out["priority"] = job.priority;
  out["attempt"] = job.attempt;
  out["max_attempts"] = job.max_attempts;
  out["created_at"] = instant_or_null(job.created_at);
  out["run_at"] = instant_or_null(job.run_at);
  out["started_at"] = instant_or_null(job.started_at);
  out["finished_at"] = instant_or_null(job.finished_at);
  json::object progress;
  progress["rows"] = job.rows;
  progress["bytes"] = job.bytes;
  out["progress"] = std::move(progress);
  if (!job.data_version.empty()) out["data_version"] = job.data_version;
  const std::string self = "/v1/jobs/" + job.id;
  if (cube_build && job.result && (job.state == JobState::kSucceeded || job.state == JobState::kExpired)) {
    // The result is the version the build published (its manifest's key names it); the cube's
    // own rules keep or delete it, not the job's expiry.
    const std::string& key = job.result->key;
    const std::size_t end = key.rfind('/');
    const std::size_t begin = end == std::string::npos ? std::string::npos : key.rfind('/', end - 1);
    json::object result;
    result["version"] = begin == std::string::npos ? std::string() : key.substr(begin + 1, end - begin - 1);
    result["rows"] = job.result->rows;
    result["bytes_stored"] = job.result->size;
    result["url"] = "/v1/cubes/" + job.dataset.substr(5);
    out["result"] = std::move(result);
  } else if (job.result && (job.state == JobState::kSucceeded || job.state == JobState::kExpired)) {
    json::object result;
    if (job.state == JobState::kSucceeded) {
      result["url"] = presigned_result_url(job, file_name).value_or(self + "/result");
    } else {
      result["url"] = nullptr;
    }
    result["file_name"] = file_name;
    result["size"] = job.result->size;
    result["rows"] = job.result->rows;
    result["sha256"] = job.result->sha256;
    result["expires_at"] = instant_or_null(job.result->expires_at);
    out["result"] = std::move(result);
  } else {
    out["result"] = nullptr;
  }
  if (!job.error_code.empty()) {
    json::object error;
    error["code"] = job.error_code;
    error["message"] = job.error_message;
    out["error"] = std::move(error);
  } else {
    out["error"] = nullptr;
  }
  json::object links;
  links["self"] = self;
  links["events"] = self + "/events";
  links["result"] = self + "/result";
  out["links"] = std::move(links);
  return json::serialize(out);
}

namespace {

constexpr std::size_t kEventPage = 256;

}  // namespace

JobService::EventPage JobService::refresh_and_read(EventFeed& feed, const std::string& job_id,
                                                  std::uint64_t last) {
  std::lock_guard lock(feed.mutex);
  const auto now = std::chrono::steady_clock::now();
  auto final = [&] {
    if (feed.events.empty()) return false;
    const std::string& type = feed.events.back().type;
    return type == "succeeded" || type == "failed" || type == "cancelled" || type == "expired";
  };
  if (!final() && (feed.dirty.exchange(false) || now - feed.fetched_at >= queue_config_.poll_interval / 2)) {
    feed.fetched_at = now;
    for (;;) {
      const std::uint64_t after = feed.events.empty() ? 0 : feed.events.back().seq;
      std::vector<JobEvent> page = queue_.events(job_id, after, kEventPage);
      for (JobEvent& event : page) {
        if (event.type == "succeeded") {
          std::optional<JobRecord> job = queue_.get(job_id);
          const std::string url = job ? presigned_result_url(*job).value_or("/v1/jobs/" + job_id + "/result")
                                      : "/v1/jobs/" + job_id + "/result";
          if (event.data.size() > 1 && event.data.back() == '}') {
            event.data.pop_back();
            event.data += ",\"url\":" + json::serialize(json::value(url)) + "}";
          }
        }
        if (!feed.events.empty() && feed.events.back().type == "progress") feed.events.pop_back();
        feed.events.push_back(std::move(event));
      }
      if (page.size() < kEventPage) break;
    }
  }
  EventPage page;
  auto first = std::upper_bound(feed.events.begin(), feed.events.end(), last,
                                [](std::uint64_t seq, const JobEvent& event) { return seq < event.seq; });
  page.events.assign(first, feed.events.end());
  page.ended = final();
  return page;
}

asio::awaitable<JobService::EventPage> JobService::events_after(const std::string& job_id,
                                                                std::uint64_t last) {
  std::shared_ptr<EventFeed> feed;
  {
    std::lock_guard lock(mutex_);
    auto found = feeds_.find(job_id);
    if (found != feeds_.end()) feed = found->second;
  }
  if (!feed) feed = std::make_shared<EventFeed>();  // not watched: a copy of its own
  auto read = [this, feed, job_id, last] { return refresh_and_read(*feed, job_id, last); };
  co_return co_await call(std::move(read));
}

void JobService::watch(const std::string& job_id, const std::shared_ptr<WakeSignal>& signal) {
  std::lock_guard lock(mutex_);
  watchers_.emplace(job_id, signal);
  auto& feed = feeds_[job_id];
  if (!feed) feed = std::make_shared<EventFeed>();
  ++feed->subscribers;
}

void JobService::unwatch(const std::string& job_id, const std::shared_ptr<WakeSignal>& signal) {
  std::lock_guard lock(mutex_);
  auto [begin, end] = watchers_.equal_range(job_id);
  for (auto it = begin; it != end; ++it) {
    if (it->second.lock() == signal) {
      watchers_.erase(it);
      break;
    }
  }
  auto feed = feeds_.find(job_id);
  if (feed != feeds_.end() && --feed->second->subscribers == 0) feeds_.erase(feed);
}

void JobService::watch_work(const std::shared_ptr<WakeSignal>& signal) {
  std::lock_guard lock(mutex_);
  work_watchers_.push_back(signal);
}

void JobService::unwatch_work(const std::shared_ptr<WakeSignal>& signal) {
  std::lock_guard lock(mutex_);
  std::erase_if(work_watchers_, [&](const std::weak_ptr<WakeSignal>& watcher) {
    const auto held = watcher.lock();
    return !held || held == signal;
  });
}

void JobService::set_change_observer(std::function<void(std::string_view)> observer) {
  std::lock_guard lock(mutex_);
  observer_ = std::move(observer);
}

void JobService::changed(std::string_view job_id) {
  std::vector<std::shared_ptr<WakeSignal>> wake;
  std::function<void(std::string_view)> observer;
  {
    std::lock_guard lock(mutex_);
    if (job_id.empty()) {  // anything may have changed (a notification connection came back)
      for (const auto& [id, watcher] : watchers_) {
        if (auto held = watcher.lock()) wake.push_back(std::move(held));
      }
      for (const auto& [id, feed] : feeds_) feed->dirty.store(true);
    } else {
      auto feed = feeds_.find(std::string(job_id));
      if (feed != feeds_.end()) feed->second->dirty.store(true);
      auto [begin, end] = watchers_.equal_range(std::string(job_id));
      for (auto it = begin; it != end; ++it) {
        if (auto held = it->second.lock()) wake.push_back(std::move(held));
      }
    }
    for (const auto& watcher : work_watchers_) {
      if (auto held = watcher.lock()) wake.push_back(std::move(held));
    }
    observer = observer_;
  }
  for (const auto& signal : wake) signal->notify();
  if (observer) observer(job_id);
}

asio::awaitable<Fenced> JobService::succeed(std::string job_id, int attempt, JobResult result) {
  auto pending = std::make_shared<PendingCompletion>();
  pending->completion.id = std::move(job_id);
  pending->completion.attempt = attempt;
  pending->completion.result = std::move(result);
  pending->wake = std::make_shared<WakeSignal>(co_await asio::this_coro::executor);
  bool start = false;
  {
    std::lock_guard lock(completions_mutex_);
    completions_.push_back(pending);
    start = !std::exchange(completing_, true);
  }
  if (start) asio::post(worker_pool_, [this] { complete_pending(); });
  while (!pending->done.load()) co_await pending->wake->wait();
  if (pending->error) std::rethrow_exception(pending->error);
  co_return pending->answer;
}

void JobService::complete_pending() {
  for (;;) {
    std::vector<std::shared_ptr<PendingCompletion>> batch;
    {
      std::lock_guard lock(completions_mutex_);
      batch.swap(completions_);
      if (batch.empty()) {
        completing_ = false;
        return;
      }
    }
    std::vector<JobCompletion> completions;
    completions.reserve(batch.size());
    for (const auto& pending : batch) completions.push_back(pending->completion);
    try {
      const std::vector<Fenced> answers = queue_.succeed_many(completions);
      for (std::size_t i = 0; i < batch.size(); ++i) {
        batch[i]->answer = i < answers.size() ? answers[i] : Fenced::kLost;
      }
    } catch (...) {
      for (const auto& pending : batch) pending->error = std::current_exception();
    }
    for (const auto& pending : batch) {
      pending->done.store(true);
      pending->wake->notify();
    }
  }
}

asio::awaitable<void> JobService::sweep_once() {
  auto sweep = [this] { return queue_.sweep(); };
  SweepReport report = co_await call(std::move(sweep));
  for (const std::string& key : report.expired_keys) {
    if (key.starts_with(".sluice/cubes/")) continue;  // a cube build's version: the cube's to delete
    try {
      co_await store_.remove(key);
    } catch (const std::exception& error) {
      log_event("jobs: cannot delete the expired result " + key + ": " + error.what());
    }
  }
  if (report.lapsed_requeued + report.lapsed_failed + report.expired + report.deleted > 0) {
    log_event("jobs: sweep: " + std::to_string(report.lapsed_requeued) + " lapsed lease(s) requeued, " +
              std::to_string(report.lapsed_failed) + " failed, " + std::to_string(report.expired) +
              " result(s) expired, " + std::to_string(report.deleted) + " old job(s) deleted");
  }
}

}  // namespace sluice
