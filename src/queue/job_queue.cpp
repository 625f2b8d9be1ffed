#include "queue/job_queue.hpp"

#include <algorithm>
#include <array>
#include <chrono>
#include <boost/json.hpp>
#include <random>

namespace sluice {

const char* const kJobIndexesSql = R"sql(
CREATE INDEX IF NOT EXISTS sluice_jobs_claim ON sluice_jobs (priority DESC, run_at, seq)
  WHERE state = 'queued';
CREATE INDEX IF NOT EXISTS sluice_jobs_lease ON sluice_jobs (lease_until) WHERE state = 'running';
CREATE INDEX IF NOT EXISTS sluice_jobs_reuse ON sluice_jobs (fingerprint, data_version)
  WHERE state = 'succeeded';
CREATE INDEX IF NOT EXISTS sluice_jobs_expiry ON sluice_jobs (result_expires_at)
  WHERE state = 'succeeded';
CREATE INDEX IF NOT EXISTS sluice_jobs_finished ON sluice_jobs (finished_at)
  WHERE state IN ('succeeded', 'failed', 'cancelled', 'expired');
CREATE INDEX IF NOT EXISTS sluice_jobs_result_key ON sluice_jobs (result_key)
  WHERE state = 'succeeded';
)sql";

std::string_view to_string(JobState state) {
  switch (state) {
    case JobState::kQueued: return "queued";
    case JobState::kRunning: return "running";
    case JobState::kSucceeded: return "succeeded";
    case JobState::kFailed: return "failed";
    case JobState::kCancelled: return "cancelled";
    case JobState::kExpired: return "expired";
  }
  return "queued";
}

std::optional<JobState> parse_job_state(std::string_view text) {
  for (JobState state : {JobState::kQueued, JobState::kRunning, JobState::kSucceeded,
                         JobState::kFailed, JobState::kCancelled, JobState::kExpired}) {
    if (to_string(state) == text) return state;
  }
  return std::nullopt;
}

bool is_final(JobState state) {
  return state == JobState::kSucceeded || state == JobState::kFailed ||
         state == JobState::kCancelled || state == JobState::kExpired;
}

namespace {

std::string text_of(const boost::json::object& object) { return boost::json::serialize(object); }

boost::json::object error_object(std::string_view code, std::string_view message) {
  boost::json::object error;
  error["code"] = code;
  error["message"] = message;
  return error;
}

}  // namespace

std::string queued_event_data(int priority, std::int64_t run_at) {
  boost::json::object data;
  data["state"] = "queued";
  data["priority"] = priority;
  data["run_at"] = run_at;
  return text_of(data);
}

std::string started_event_data(int attempt, std::string_view worker) {
  boost::json::object data;
  data["state"] = "running";
  data["attempt"] = attempt;
  data["worker"] = worker;
  return text_of(data);
}

std::string progress_event_data(std::uint64_t rows, std::uint64_t bytes) {
  boost::json::object data;
  data["rows"] = rows;
  data["bytes"] = bytes;
  return text_of(data);
}

std::string retrying_event_data(int attempt, std::string_view code, std::string_view message,
                                std::int64_t run_at) {
  boost::json::object data;
  data["state"] = "queued";
  data["attempt"] = attempt;
  data["error"] = error_object(code, message);
  data["run_at"] = run_at;
  return text_of(data);
}

std::string succeeded_event_data(const JobResult& result) {
  boost::json::object data;
  data["state"] = "succeeded";
  data["rows"] = result.rows;
  data["size"] = result.size;
  data["sha256"] = result.sha256;
  data["expires_at"] = result.expires_at;
  return text_of(data);
}

std::string failed_event_data(int attempt, std::string_view code, std::string_view message) {
  boost::json::object data;
  data["state"] = "failed";
  data["attempt"] = attempt;
  data["error"] = error_object(code, message);
  return text_of(data);
}

std::string cancelled_event_data(JobState was) {
  boost::json::object data;
  data["state"] = "cancelled";
  data["was"] = to_string(was);
  return text_of(data);
}

std::string expired_event_data() { return R"({"state":"expired"})"; }

std::chrono::milliseconds retry_backoff(const QueueTuning& tuning, int attempt) {
  const int doublings = std::clamp(attempt - 1, 0, 30);
  const std::int64_t ceiling = std::min<std::int64_t>(
      tuning.backoff_max.count(), tuning.backoff_base.count() * (std::int64_t{1} << doublings));
  if (ceiling <= 0) return std::chrono::milliseconds(0);
  // Full jitter (AWS architecture blog, "Exponential Backoff And Jitter"): uniform in
  // [ceiling / 2, ceiling], so a retry never comes back at once yet the herd spreads out.
  thread_local std::mt19937_64 random{std::random_device{}()};
  std::uniform_int_distribution<std::int64_t> pick(ceiling / 2, ceiling);
  return std::chrono::milliseconds(pick(random));
}

std::string new_job_id() {
  // Time-ordered, like a UUIDv7: 48 bits of milliseconds since the epoch, then 80 random bits.
  // New ids sort after older ones, so every index keyed by the id (the job table's, the event
  // log's primary key) grows at its end instead of splitting pages at random places; the random
  // part keeps ids unguessable.
  static constexpr char kHex[] = "0123456789abcdef";
  thread_local std::random_device random;  // getrandom(2) on Linux
  const auto ms = static_cast<std::uint64_t>(
      std::chrono::duration_cast<std::chrono::milliseconds>(
          std::chrono::system_clock::now().time_since_epoch())
          .count());
  std::string id;
  id.reserve(32);
  for (int shift = 44; shift >= 0; shift -= 4) id.push_back(kHex[(ms >> shift) & 0xF]);
  for (int word = 0; word < 5; ++word) {
    std::uint32_t bits = random();
    for (int nibble = 0; nibble < 4; ++nibble, bits >>= 4) id.push_back(kHex[bits & 0xF]);
  }
  return id;
}

bool is_job_id(std::string_view text) {
  return text.size() == 32 && std::all_of(text.begin(), text.end(), [](char c) {
           return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
         });
}

}  // namespace sluice
