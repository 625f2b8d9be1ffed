#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace sluice {

// The durable job table behind background exports (DESIGN.md "Jobs"): one row per job, one row
// per event a subscriber can replay. Two implementations with the same rules: SQLite for the
// embedded default (sqlite_job_queue.hpp) and PostgreSQL at scale (pg_job_queue.hpp).
//
// Life of a job:
//
//   enqueue ─▶ queued ──claim──▶ running ──succeed──▶ succeeded ──(result expires)──▶ expired
//                ▲                  │ ├──fail, attempts left──▶ queued (run_at = now + backoff)
//                └──lease lapsed────┘ ├──fail, no attempts left / not retryable──▶ failed
//                                     └──cancel (also from queued)──▶ cancelled
//
// Every write a worker makes after its claim names the job's `attempt` (the fencing token): it
// applies only while the job is running that same attempt, so a worker whose lease lapsed
// (paused, partitioned, killed and restarted) can never overwrite or publish over the next one.
// Every state change and every progress report appends an event (`seq` counts per job, from 1)
// in the same transaction; notifications carry job ids only.
//
// Times are milliseconds since the Unix epoch. The PostgreSQL queue takes `now` from the
// database's clock, so that workers on several machines agree on leases; the SQLite one, whose
// processes share one machine, from the system clock.
//
// All calls block (a database round trip); the server runs them on a blocking pool.
// Thread-safe. Throws QueueError when the database fails.

class QueueError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

enum class JobState { kQueued, kRunning, kSucceeded, kFailed, kCancelled, kExpired };
std::string_view to_string(JobState state);
std::optional<JobState> parse_job_state(std::string_view text);
// succeeded, failed, cancelled, expired
bool is_final(JobState state);

// Where a finished job's bytes are.
struct JobResult {
  std::string key;            // object key in the store
  std::uint64_t size = 0;     // bytes of the object
  std::uint64_t rows = 0;     // rows exported
  std::string sha256;         // of the object's bytes, lowercase hex
  std::string etag;           // the store's ETag, when it has one
  std::int64_t expires_at = 0;  // ms; the sweeper deletes the object after this
};

struct JobRecord {
  std::string id;        // 32 lowercase hex digits (time-ordered, 80 random bits)
  JobState state = JobState::kQueued;
  std::string dataset;
  std::string spec;      // the request, canonical JSON (what the worker runs)
  int priority = 0;      // higher runs first
  int attempt = 0;       // claims so far; the fencing token of the running attempt
  int max_attempts = 1;
  std::int64_t created_at = 0;
  std::int64_t run_at = 0;       // not claimed before this
  std::int64_t started_at = 0;   // the last claim; 0 before
  std::int64_t finished_at = 0;  // 0 until final
  std::int64_t lease_until = 0;  // while running
  std::string worker;            // who holds the lease (while running) or held it last
  std::uint64_t rows = 0;        // progress of the running attempt, or the final figures
  std::uint64_t bytes = 0;
  std::optional<JobResult> result;  // succeeded (and expired: the key that was deleted)
  std::string error_code;           // failed: what went wrong ("source_error", "lease_lapsed")
  std::string error_message;
  std::string idempotency_key;      // empty: none
  std::string fingerprint;          // what it asks for (dataset + canonical request), hex
  std::string data_version;         // the dataset's version when submitted; empty: unknown
  std::uint64_t last_event = 0;     // seq of its newest event
};

struct NewJob {
  std::string dataset;
  std::string spec;
  int priority = 0;
  std::int64_t run_at = 0;  // 0: now
  int max_attempts = 3;
  std::string idempotency_key;
  std::string fingerprint;
  std::string data_version;
  // A finished result to complete from at once (data-version reuse): the job is created
  // `succeeded` with this result, and its events are queued + succeeded.
  std::optional<JobResult> reuse;
};

struct Enqueued {
  JobRecord job;
  bool created = true;  // false: an existing job with the same idempotency key
};

struct JobEvent {
  std::string job_id;
  std::uint64_t seq = 0;
  std::string type;  // queued, started, progress, retrying, succeeded, failed, cancelled, expired
  std::string data;  // JSON object
  std::int64_t at = 0;
};

// What a worker learns when it reports (heartbeat) or finishes.
enum class Fenced {
  kOk,    // applied: the job is running this attempt
  kLost,  // refused: the job is no longer running this attempt (cancelled, lease lapsed and
          // claimed again, expired): the worker must stop and publish nothing
};

// One finished job for JobQueue::succeed_many: what succeed(id, attempt, result) takes.
struct JobCompletion {
  std::string id;
  int attempt = 0;  // the fencing token of the attempt that produced `result`
  JobResult result;
};

struct JobFilter {
  std::optional<JobState> state;
  std::string dataset;        // empty: any
  std::string before_id;      // paging: jobs created before this one ("" = newest first)
  std::size_t limit = 100;
};

struct SweepReport {
  std::size_t lapsed_requeued = 0;   // running jobs whose lease lapsed, queued again
  std::size_t lapsed_failed = 0;     // ... with no attempts left: failed
  std::size_t expired = 0;           // succeeded jobs whose result expired
  std::size_t deleted = 0;           // final jobs older than the retention, removed
  // Objects to delete from the store: results that expired (no other unexpired job refers to
  // them).
  std::vector<std::string> expired_keys;
};

struct QueueTuning {
  std::chrono::milliseconds backoff_base{1'000};   // retry n waits base * 2^(n-1) ± jitter
  std::chrono::milliseconds backoff_max{300'000};
  std::chrono::milliseconds retention{7 * 24 * 3600 * 1000LL};  // final jobs kept this long
};

class JobQueue {
 public:
  virtual ~JobQueue() = default;

  // Creates the tables when missing (idempotent; safe from several processes at once).
  virtual void migrate() = 0;

  // Adds a job (queued, or succeeded when `reuse` is given) with a new id. With an
  // idempotency key that an existing job holds, returns that job instead (created = false).
  virtual Enqueued enqueue(const NewJob& job) = 0;
  // Many at once, in one transaction (benchmarks, bulk submission); no idempotency keys.
  virtual std::vector<std::string> enqueue_many(const std::vector<NewJob>& jobs) = 0;

  virtual std::optional<JobRecord> get(std::string_view id) = 0;
  // Newest first.
  virtual std::vector<JobRecord> list(const JobFilter& filter) = 0;

  // queued or running → cancelled (event `cancelled`); returns the job as it is now, or nothing
  // when there is no such job. A final job is returned unchanged.
  virtual std::optional<JobRecord> cancel(std::string_view id) = 0;

  // Claims up to `max` queued jobs whose run_at has come, highest priority first, then oldest:
  // each becomes running with attempt + 1, lease_until = now + lease, event `started`. In one
  // statement (PostgreSQL: FOR UPDATE SKIP LOCKED), so concurrent claimers never share a job.
  virtual std::vector<JobRecord> claim(std::string_view worker, std::size_t max,
                                       std::chrono::milliseconds lease) = 0;

  // Renews the lease and records progress; with `event`, appends a `progress` event.
  virtual Fenced heartbeat(std::string_view id, int attempt, std::uint64_t rows,
                           std::uint64_t bytes, std::chrono::milliseconds lease, bool event) = 0;
  // running (this attempt) → succeeded with `result`.
  virtual Fenced succeed(std::string_view id, int attempt, const JobResult& result) = 0;
  // succeed() of many jobs in one transaction (one statement for PostgreSQL), so a worker that
  // finishes a batch pays one commit, not one each: each item applies or is refused exactly as
  // succeed() would (fenced by its attempt), and the answers are in the order of `completions`.
  // An id given more than once applies at most once: the first of its items that can apply does
  // (as if they were succeed() one after the other), the others are answered kLost.
  virtual std::vector<Fenced> succeed_many(const std::vector<JobCompletion>& completions) = 0;
  // running (this attempt) → queued with backoff when `retryable` and attempts are left
  // (event `retrying`), else failed (event `failed`).
  virtual Fenced fail(std::string_view id, int attempt, std::string_view code,
                      std::string_view message, bool retryable) = 0;
  // running (this attempt) → queued at once, the attempt not counted (a worker shutting down
  // hands its job back).
  virtual Fenced release(std::string_view id, int attempt) = 0;

  // A succeeded job with this fingerprint and data version whose result is still valid at
  // `now + margin` (the newest), for data-version reuse.
  virtual std::optional<JobRecord> find_reusable(std::string_view fingerprint,
                                                 std::string_view data_version,
                                                 std::chrono::milliseconds margin) = 0;

  // The job's events with seq > after, oldest first, at most `max`.
  virtual std::vector<JobEvent> events(std::string_view id, std::uint64_t after,
                                       std::size_t max) = 0;
  // For each of `ids`, its newest event seq (jobs that do not exist are left out).
  virtual std::vector<std::pair<std::string, std::uint64_t>> last_events(
      const std::vector<std::string>& ids) = 0;

  // Requeues or fails running jobs whose lease lapsed, expires results whose time has come,
  // deletes failed, cancelled and expired jobs (and their events) older than the retention (a
  // succeeded job is expired first, so that its result's key is always reported).
  virtual SweepReport sweep() = 0;

  // Called (from any thread) with a job id when this process changed the job, and, for the
  // PostgreSQL queue, when any process did (LISTEN/NOTIFY; `start_listening` first). Set
  // before use; one callback. on_change({}) returns only when no call of the previous callback
  // is running any more (so its owner may then go away).
  virtual void on_change(std::function<void(std::string_view job_id)> callback) = 0;
  // PostgreSQL: opens the listening connection on a thread of its own; reconnects after
  // failures (and reports "" meaning "anything may have changed" then). SQLite: nothing (other
  // processes are noticed by polling).
  virtual void start_listening() {}
  virtual bool notifies_across_processes() const { return false; }

  // Milliseconds since the epoch by the queue's clock.
  virtual std::int64_t now() = 0;
};

// The indexes of sluice_jobs, the same SQL for SQLite and PostgreSQL (each creates its tables
// in its own dialect, then these): claims, lapsed leases, reuse, expiry, retention, and the
// sweep's "does a succeeded job still use this result?".
extern const char* const kJobIndexesSql;

// The `data` of each event type (JSON objects), the same for every queue implementation.
std::string queued_event_data(int priority, std::int64_t run_at);
std::string started_event_data(int attempt, std::string_view worker);
std::string progress_event_data(std::uint64_t rows, std::uint64_t bytes);
std::string retrying_event_data(int attempt, std::string_view code, std::string_view message,
                                std::int64_t run_at);
std::string succeeded_event_data(const JobResult& result);
std::string failed_event_data(int attempt, std::string_view code, std::string_view message);
std::string cancelled_event_data(JobState was);
std::string expired_event_data();

// Exponential backoff with full jitter for retry `attempt` (1 = the first retry).
std::chrono::milliseconds retry_backoff(const QueueTuning& tuning, int attempt);

// A new job id: 32 lowercase hex digits, time-ordered (12 digits of milliseconds since the
// epoch, then 80 random bits from the system's random source).
std::string new_job_id();
bool is_job_id(std::string_view text);

}  // namespace sluice
