#include "queue/sqlite_job_queue.hpp"

#include <sqlite3.h>

#include <chrono>
#include <map>
#include <mutex>
#include <shared_mutex>
#include <set>
#include <utility>

namespace sluice {
namespace {

// The columns of a JobRecord, in the order read_job() takes them.
constexpr const char* kJobColumns =
    "id, state, dataset, spec, priority, attempt, max_attempts, created_at, run_at, started_at,"
    " finished_at, lease_until, worker, rows, bytes, result_key, result_size, result_rows,"
    " result_sha256, result_etag, result_expires_at, error_code, error_message,"
    " coalesce(idempotency_key, ''), fingerprint, data_version, last_event";

constexpr const char* kSchema = R"sql(
CREATE TABLE IF NOT EXISTS sluice_jobs (
  seq INTEGER PRIMARY KEY AUTOINCREMENT,
  id TEXT NOT NULL UNIQUE,
  state TEXT NOT NULL,
  dataset TEXT NOT NULL,
  spec TEXT NOT NULL,
  priority INTEGER NOT NULL DEFAULT 0,
  attempt INTEGER NOT NULL DEFAULT 0,
  max_attempts INTEGER NOT NULL,
  created_at INTEGER NOT NULL,
  run_at INTEGER NOT NULL,
  started_at INTEGER NOT NULL DEFAULT 0,
  finished_at INTEGER NOT NULL DEFAULT 0,
  lease_until INTEGER NOT NULL DEFAULT 0,
  worker TEXT NOT NULL DEFAULT '',
  rows INTEGER NOT NULL DEFAULT 0,
  bytes INTEGER NOT NULL DEFAULT 0,
  result_key TEXT,
  result_size INTEGER,
  result_rows INTEGER,
  result_sha256 TEXT,
  result_etag TEXT,
  result_expires_at INTEGER,
  error_code TEXT NOT NULL DEFAULT '',
  error_message TEXT NOT NULL DEFAULT '',
  idempotency_key TEXT UNIQUE,
  fingerprint TEXT NOT NULL DEFAULT '',
  data_version TEXT NOT NULL DEFAULT '',
  last_event INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS sluice_job_events (
  job_id TEXT NOT NULL,
  seq INTEGER NOT NULL,
  type TEXT NOT NULL,
  data TEXT NOT NULL,
  at INTEGER NOT NULL,
  PRIMARY KEY (job_id, seq)
) WITHOUT ROWID;
)sql";

// Most changes per sweep step, so a sweep stays a short transaction.
constexpr int kSweepBatch = 1000;

std::int64_t system_now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

class Statement {
 public:
  Statement(sqlite3* db, sqlite3_stmt* statement) : db_(db), statement_(statement) {
    sqlite3_reset(statement_);
    sqlite3_clear_bindings(statement_);
  }
  ~Statement() { sqlite3_reset(statement_); }
  Statement(const Statement&) = delete;
  Statement& operator=(const Statement&) = delete;

  Statement& bind(int index, std::int64_t value) {
    check(sqlite3_bind_int64(statement_, index, value));
    return *this;
  }
  Statement& bind(int index, std::string_view value) {
    check(sqlite3_bind_text(statement_, index, value.data(), static_cast<int>(value.size()),
                            SQLITE_TRANSIENT));
    return *this;
  }
  Statement& bind_null(int index) {
    check(sqlite3_bind_null(statement_, index));
    return *this;
  }
  // True while there is a row.
  bool step() {
    const int rc = sqlite3_step(statement_);
    if (rc == SQLITE_ROW) return true;
    if (rc == SQLITE_DONE) return false;
    throw QueueError(std::string("job queue (SQLite): ") + sqlite3_errmsg(db_));
  }
  void run() {
    while (step()) {
    }
  }
  std::int64_t integer(int column) const { return sqlite3_column_int64(statement_, column); }
  std::string text(int column) const {
    const auto* bytes = sqlite3_column_text(statement_, column);
    if (bytes == nullptr) return {};
    return {reinterpret_cast<const char*>(bytes),
            static_cast<std::size_t>(sqlite3_column_bytes(statement_, column))};
  }
  bool is_null(int column) const { return sqlite3_column_type(statement_, column) == SQLITE_NULL; }

 private:
  void check(int rc) const {
    if (rc != SQLITE_OK) throw QueueError(std::string("job queue (SQLite): ") + sqlite3_errmsg(db_));
  }
  sqlite3* db_;
  sqlite3_stmt* statement_;
};

JobRecord read_job(const Statement& row) {
  JobRecord job;
  job.id = row.text(0);
  job.state = parse_job_state(row.text(1)).value_or(JobState::kQueued);
  job.dataset = row.text(2);
  job.spec = row.text(3);
  job.priority = static_cast<int>(row.integer(4));
  job.attempt = static_cast<int>(row.integer(5));
  job.max_attempts = static_cast<int>(row.integer(6));
  job.created_at = row.integer(7);
  job.run_at = row.integer(8);
  job.started_at = row.integer(9);
  job.finished_at = row.integer(10);
  job.lease_until = row.integer(11);
  job.worker = row.text(12);
  job.rows = static_cast<std::uint64_t>(row.integer(13));
  job.bytes = static_cast<std::uint64_t>(row.integer(14));
  if (!row.is_null(15)) {
    JobResult result;
    result.key = row.text(15);
    result.size = static_cast<std::uint64_t>(row.integer(16));
    result.rows = static_cast<std::uint64_t>(row.integer(17));
    result.sha256 = row.text(18);
    result.etag = row.text(19);
    result.expires_at = row.integer(20);
    job.result = std::move(result);
  }
  job.error_code = row.text(21);
  job.error_message = row.text(22);
  job.idempotency_key = row.text(23);
  job.fingerprint = row.text(24);
  job.data_version = row.text(25);
  job.last_event = static_cast<std::uint64_t>(row.integer(26));
  return job;
}

class SqliteJobQueue final : public JobQueue {
 public:
  SqliteJobQueue(const std::filesystem::path& file, QueueTuning tuning) : tuning_(tuning) {
    sqlite3* raw = nullptr;
    const int rc = sqlite3_open_v2(file.c_str(), &raw,
                                   SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                                   nullptr);
    db_ = raw;
    if (rc != SQLITE_OK) {
      std::string message = raw != nullptr ? sqlite3_errmsg(raw) : "out of memory";
      sqlite3_close(raw);
      db_ = nullptr;
      throw QueueError("job queue: cannot open " + file.string() + ": " + message);
    }
    sqlite3_busy_timeout(db_, 10'000);
    // WAL: readers never wait for the writer; NORMAL: a commit is durable against a crash of
    // the process (not of the machine until the next checkpoint), without an fsync per commit.
    // A 32 MiB page cache keeps the job table's hot indexes in memory.
    exec("PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA cache_size=-32768;");
  }

  ~SqliteJobQueue() override {
    for (auto& [sql, statement] : statements_) sqlite3_finalize(statement);
    sqlite3_close(db_);
  }
  SqliteJobQueue(const SqliteJobQueue&) = delete;
  SqliteJobQueue& operator=(const SqliteJobQueue&) = delete;

  void migrate() override {
    std::lock_guard lock(mutex_);
    Transaction transaction(*this);
    exec(kSchema);
    exec(kJobIndexesSql);
    transaction.commit();
  }

  Enqueued enqueue(const NewJob& job) override {
    Enqueued enqueued;
    {
      std::lock_guard lock(mutex_);
      Transaction transaction(*this);
      if (!job.idempotency_key.empty()) {
        Statement existing = statement(std::string("SELECT ") + kJobColumns +
                                       " FROM sluice_jobs WHERE idempotency_key = ?");
        existing.bind(1, job.idempotency_key);
        if (existing.step()) {
          enqueued.job = read_job(existing);
          enqueued.created = false;
          return enqueued;
        }
      }
      enqueued.job = insert(job, now());
      transaction.commit();
    }
    changed(enqueued.job.id);
    return enqueued;
  }

  std::vector<std::string> enqueue_many(const std::vector<NewJob>& jobs) override {
    std::vector<std::string> ids;
    ids.reserve(jobs.size());
    {
      std::lock_guard lock(mutex_);
      Transaction transaction(*this);
      const std::int64_t at = now();
      for (const NewJob& job : jobs) {
        NewJob plain = job;
        plain.idempotency_key.clear();
        ids.push_back(insert(plain, at).id);
      }
      transaction.commit();
    }
    for (const std::string& id : ids) changed(id);
    return ids;
  }

  std::optional<JobRecord> get(std::string_view id) override {
    std::lock_guard lock(mutex_);
    return find(id);
  }

  std::vector<JobRecord> list(const JobFilter& filter) override {
    std::lock_guard lock(mutex_);
    std::string sql = std::string("SELECT ") + kJobColumns + " FROM sluice_jobs WHERE 1";
    if (filter.state) sql += " AND state = ?1";
    if (!filter.dataset.empty()) sql += " AND dataset = ?2";
    if (!filter.before_id.empty()) sql += " AND seq < (SELECT seq FROM sluice_jobs WHERE id = ?3)";
    sql += " ORDER BY seq DESC LIMIT ?4";
    Statement query = statement(sql);
    if (filter.state) query.bind(1, to_string(*filter.state));
    if (!filter.dataset.empty()) query.bind(2, filter.dataset);
    if (!filter.before_id.empty()) query.bind(3, filter.before_id);
    query.bind(4, static_cast<std::int64_t>(filter.limit));
    std::vector<JobRecord> jobs;
    while (query.step()) jobs.push_back(read_job(query));
    return jobs;
  }

  std::optional<JobRecord> cancel(std::string_view id) override {
    std::optional<JobRecord> job;
    {
      std::lock_guard lock(mutex_);
      Transaction transaction(*this);
      job = find(id);
      if (!job || is_final(job->state)) return job;
      const JobState was = job->state;
      const std::int64_t at = now();
      Statement update = statement(std::string(
          "UPDATE sluice_jobs SET state = 'cancelled', finished_at = ?2, lease_until = 0,"
          " last_event = last_event + 1 WHERE id = ?1 RETURNING ") + kJobColumns);
      update.bind(1, id).bind(2, at);
      update.step();
      job = read_job(update);
      update.run();
      add_event(job->id, job->last_event, "cancelled", cancelled_event_data(was), at);
      transaction.commit();
    }
    changed(job->id);
    return job;
  }

  std::vector<JobRecord> claim(std::string_view worker, std::size_t max,
                               std::chrono::milliseconds lease) override {
    std::vector<JobRecord> jobs;
    {
      std::lock_guard lock(mutex_);
      Transaction transaction(*this);
      const std::int64_t at = now();
      Statement update = statement(std::string(
          "UPDATE sluice_jobs SET state = 'running', attempt = attempt + 1, started_at = ?1,"
          " lease_until = ?1 + ?2, worker = ?3, rows = 0, bytes = 0, last_event = last_event + 1"
          " WHERE seq IN (SELECT seq FROM sluice_jobs WHERE state = 'queued' AND run_at <= ?1"
          " ORDER BY priority DESC, run_at, seq LIMIT ?4) RETURNING ") + kJobColumns);
      update.bind(1, at).bind(2, lease.count()).bind(3, worker);
      update.bind(4, static_cast<std::int64_t>(max));
      while (update.step()) jobs.push_back(read_job(update));
      for (const JobRecord& job : jobs) {
        add_event(job.id, job.last_event, "started", started_event_data(job.attempt, worker), at);
      }
      transaction.commit();
    }
    for (const JobRecord& job : jobs) changed(job.id);  // their `started` events
    // RETURNING gives no order; hand them out as claimed: priority, then age.
    std::sort(jobs.begin(), jobs.end(), [](const JobRecord& a, const JobRecord& b) {
      return a.priority != b.priority ? a.priority > b.priority : a.run_at < b.run_at;
    });
    return jobs;
  }

  Fenced heartbeat(std::string_view id, int attempt, std::uint64_t rows, std::uint64_t bytes,
                   std::chrono::milliseconds lease, bool event) override {
    {
      std::lock_guard lock(mutex_);
      Transaction transaction(*this);
      const std::int64_t at = now();
      Statement update = statement(
          "UPDATE sluice_jobs SET lease_until = ?3 + ?4, rows = ?5, bytes = ?6,"
          " last_event = last_event + ?7 WHERE id = ?1 AND attempt = ?2 AND state = 'running'"
          " RETURNING last_event");
      update.bind(1, id).bind(2, attempt).bind(3, at).bind(4, lease.count());
      update.bind(5, static_cast<std::int64_t>(rows)).bind(6, static_cast<std::int64_t>(bytes));
      update.bind(7, event ? 1 : 0);
      if (!update.step()) return Fenced::kLost;
      const auto seq = static_cast<std::uint64_t>(update.integer(0));
      update.run();
      if (event) add_event(id, seq, "progress", progress_event_data(rows, bytes), at);
      transaction.commit();
    }
    if (event) changed(id);
    return Fenced::kOk;
  }

  Fenced succeed(std::string_view id, int attempt, const JobResult& result) override {
    {
      std::lock_guard lock(mutex_);
      Transaction transaction(*this);
      if (!apply_success(id, attempt, result, now())) return Fenced::kLost;
      transaction.commit();
    }
    changed(id);
    return Fenced::kOk;
  }

  std::vector<Fenced> succeed_many(const std::vector<JobCompletion>& completions) override {
    std::vector<Fenced> answers;
    answers.reserve(completions.size());
    if (completions.empty()) return answers;
    {
      std::lock_guard lock(mutex_);
      Transaction transaction(*this);
      const std::int64_t at = now();
      for (const JobCompletion& completion : completions) {
        answers.push_back(apply_success(completion.id, completion.attempt, completion.result, at)
                              ? Fenced::kOk
                              : Fenced::kLost);
      }
      transaction.commit();
    }
    for (std::size_t index = 0; index < completions.size(); ++index) {
      if (answers[index] == Fenced::kOk) changed(completions[index].id);
    }
    return answers;
  }

  Fenced fail(std::string_view id, int attempt, std::string_view code, std::string_view message,
              bool retryable) override {
    {
      std::lock_guard lock(mutex_);
      Transaction transaction(*this);
      const std::optional<JobRecord> job = find(id);
      if (!job || job->state != JobState::kRunning || job->attempt != attempt) {
        return Fenced::kLost;
      }
      finish_attempt(*job, code, message, retryable && job->attempt < job->max_attempts, now());
      transaction.commit();
    }
    changed(id);
    return Fenced::kOk;
  }

  Fenced release(std::string_view id, int attempt) override {
    {
      std::lock_guard lock(mutex_);
      Transaction transaction(*this);
      const std::int64_t at = now();
      Statement update = statement(
          "UPDATE sluice_jobs SET state = 'queued', attempt = attempt - 1, run_at = ?3,"
          " lease_until = 0, last_event = last_event + 1"
          " WHERE id = ?1 AND attempt = ?2 AND state = 'running'"
          " RETURNING last_event, priority");
      update.bind(1, id).bind(2, attempt).bind(3, at);
      if (!update.step()) return Fenced::kLost;
      const auto seq = static_cast<std::uint64_t>(update.integer(0));
      const int priority = static_cast<int>(update.integer(1));
      update.run();
      add_event(id, seq, "queued", queued_event_data(priority, at), at);
      transaction.commit();
    }
    changed(id);
    return Fenced::kOk;
  }

  std::optional<JobRecord> find_reusable(std::string_view fingerprint,
                                         std::string_view data_version,
                                         std::chrono::milliseconds margin) override {
    if (data_version.empty()) return std::nullopt;
    std::lock_guard lock(mutex_);
    Statement query = statement(std::string("SELECT ") + kJobColumns +
                                " FROM sluice_jobs WHERE state = 'succeeded' AND fingerprint = ?1"
                                " AND data_version = ?2 AND result_expires_at > ?3"
                                " ORDER BY result_expires_at DESC LIMIT 1");
    query.bind(1, fingerprint).bind(2, data_version).bind(3, now() + margin.count());
    if (!query.step()) return std::nullopt;
    return read_job(query);
  }

  std::vector<JobEvent> events(std::string_view id, std::uint64_t after,
                               std::size_t max) override {
    std::lock_guard lock(mutex_);
    Statement query = statement(
        "SELECT job_id, seq, type, data, at FROM sluice_job_events WHERE job_id = ?1 AND seq > ?2"
        " ORDER BY seq LIMIT ?3");
    query.bind(1, id).bind(2, static_cast<std::int64_t>(after));
    query.bind(3, static_cast<std::int64_t>(max));
    std::vector<JobEvent> events;
    while (query.step()) {
      JobEvent event;
      event.job_id = query.text(0);
      event.seq = static_cast<std::uint64_t>(query.integer(1));
      event.type = query.text(2);
      event.data = query.text(3);
      event.at = query.integer(4);
      events.push_back(std::move(event));
    }
    return events;
  }

  std::vector<std::pair<std::string, std::uint64_t>> last_events(
      const std::vector<std::string>& ids) override {
    std::lock_guard lock(mutex_);
    std::vector<std::pair<std::string, std::uint64_t>> found;
    for (const std::string& id : ids) {
      Statement query = statement("SELECT last_event FROM sluice_jobs WHERE id = ?1");
      query.bind(1, id);
      if (query.step()) found.emplace_back(id, static_cast<std::uint64_t>(query.integer(0)));
    }
    return found;
  }

  SweepReport sweep() override {
    SweepReport report;
    std::vector<std::string> touched;
    {
      std::lock_guard lock(mutex_);
      Transaction transaction(*this);
      const std::int64_t at = now();
      // 1. Leases that lapsed: the worker died or lost the database; its attempt is over.
      std::vector<JobRecord> lapsed;
      {
        Statement query = statement(std::string("SELECT ") + kJobColumns +
                                    " FROM sluice_jobs WHERE state = 'running' AND"
                                    " lease_until < ?1 LIMIT ?2");
        query.bind(1, at).bind(2, kSweepBatch);
        while (query.step()) lapsed.push_back(read_job(query));
      }
      for (const JobRecord& job : lapsed) {
        const bool retry = job.attempt < job.max_attempts;
        finish_attempt(job, "lease_lapsed",
                       "the worker " + job.worker + " stopped renewing its lease", retry, at);
        ++(retry ? report.lapsed_requeued : report.lapsed_failed);
        touched.push_back(job.id);
      }
      // 2. Results whose time is up.
      std::vector<std::pair<std::string, std::string>> expiring;  // id, key
      {
        Statement query = statement(
            "SELECT id, result_key FROM sluice_jobs WHERE state = 'succeeded' AND"
            " result_expires_at <= ?1 LIMIT ?2");
        query.bind(1, at).bind(2, kSweepBatch);
        while (query.step()) expiring.emplace_back(query.text(0), query.text(1));
      }
      std::set<std::string> keys;
      for (const auto& [id, key] : expiring) {
        Statement update = statement(
            "UPDATE sluice_jobs SET state = 'expired', last_event = last_event + 1"
            " WHERE id = ?1 RETURNING last_event");
        update.bind(1, id);
        update.step();
        const auto seq = static_cast<std::uint64_t>(update.integer(0));
        update.run();
        add_event(id, seq, "expired", expired_event_data(), at);
        keys.insert(key);
        touched.push_back(id);
        ++report.expired;
      }
      for (const std::string& key : keys) {
        Statement still = statement(
            "SELECT 1 FROM sluice_jobs WHERE state = 'succeeded' AND result_key = ?1 LIMIT 1");
        still.bind(1, key);
        if (!still.step()) report.expired_keys.push_back(key);
      }
      // 3. Final jobs past the retention, with their events.
      {
        Statement old = statement(
            "SELECT id FROM sluice_jobs WHERE state IN ('failed', 'cancelled', 'expired')"
            " AND finished_at > 0 AND finished_at < ?1 LIMIT ?2");
        old.bind(1, at - tuning_.retention.count()).bind(2, kSweepBatch);
        std::vector<std::string> ids;
        while (old.step()) ids.push_back(old.text(0));
        for (const std::string& id : ids) {
          statement("DELETE FROM sluice_job_events WHERE job_id = ?1").bind(1, id).run();
          statement("DELETE FROM sluice_jobs WHERE id = ?1").bind(1, id).run();
          ++report.deleted;
        }
      }
      transaction.commit();
    }
    for (const std::string& id : touched) changed(id);
    return report;
  }

  void on_change(std::function<void(std::string_view job_id)> callback) override {
    std::unique_lock lock(callback_mutex_);
    callback_ = std::move(callback);
  }

  std::int64_t now() override { return system_now_ms(); }

 private:
  // BEGIN IMMEDIATE: takes the write lock at once, so a transaction that reads and then writes
  // never fails halfway with SQLITE_BUSY (another process's writer waits the busy timeout).
  class Transaction {
   public:
    explicit Transaction(SqliteJobQueue& queue) : queue_(queue) { queue_.exec("BEGIN IMMEDIATE"); }
    ~Transaction() {
      if (!done_) sqlite3_exec(queue_.db_, "ROLLBACK", nullptr, nullptr, nullptr);
    }
    Transaction(const Transaction&) = delete;
    Transaction& operator=(const Transaction&) = delete;
    void commit() {
      queue_.exec("COMMIT");
      done_ = true;
    }

   private:
    SqliteJobQueue& queue_;
    bool done_ = false;
  };

  void exec(const char* sql) {
    char* error = nullptr;
    if (sqlite3_exec(db_, sql, nullptr, nullptr, &error) != SQLITE_OK) {
      std::string message = error != nullptr ? error : sqlite3_errmsg(db_);
      sqlite3_free(error);
      throw QueueError("job queue (SQLite): " + message);
    }
  }

  Statement statement(const std::string& sql) {
    auto found = statements_.find(sql);
    if (found == statements_.end()) {
      sqlite3_stmt* prepared = nullptr;
      if (sqlite3_prepare_v3(db_, sql.c_str(), static_cast<int>(sql.size()),
                             SQLITE_PREPARE_PERSISTENT, &prepared, nullptr) != SQLITE_OK) {
        throw QueueError(std::string("job queue (SQLite): ") + sqlite3_errmsg(db_));
      }
      found = statements_.emplace(sql, prepared).first;
    }
    return Statement(db_, found->second);
  }

  std::optional<JobRecord> find(std::string_view id) {
    Statement query =
        statement(std::string("SELECT ") + kJobColumns + " FROM sluice_jobs WHERE id = ?1");
    query.bind(1, id);
    if (!query.step()) return std::nullopt;
    return read_job(query);
  }

  JobRecord insert(const NewJob& job, std::int64_t at) {
    const bool done = job.reuse.has_value();
    Statement insert = statement(std::string(
        "INSERT INTO sluice_jobs (id, state, dataset, spec, priority, max_attempts, created_at,"
        " run_at, finished_at, rows, bytes, result_key, result_size, result_rows, result_sha256,"
        " result_etag, result_expires_at, idempotency_key, fingerprint, data_version, last_event)"
        " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?11, ?10, ?13, ?14, ?15, ?16,"
        " ?17, ?18, ?19) RETURNING ") + kJobColumns);
    insert.bind(1, new_job_id()).bind(2, done ? "succeeded" : "queued").bind(3, job.dataset);
    insert.bind(4, job.spec).bind(5, job.priority).bind(6, std::max(job.max_attempts, 1));
    insert.bind(7, at).bind(8, job.run_at > 0 ? job.run_at : at).bind(9, done ? at : 0);
    insert.bind(10, done ? static_cast<std::int64_t>(job.reuse->rows) : 0);
    insert.bind(11, done ? static_cast<std::int64_t>(job.reuse->size) : 0);
    if (done) {
      insert.bind(12, job.reuse->key).bind(13, job.reuse->sha256).bind(14, job.reuse->etag);
      insert.bind(15, job.reuse->expires_at);
    } else {
      insert.bind_null(12).bind_null(13).bind_null(14).bind_null(15);
    }
    if (job.idempotency_key.empty()) {
      insert.bind_null(16);
    } else {
      insert.bind(16, job.idempotency_key);
    }
    insert.bind(17, job.fingerprint).bind(18, job.data_version).bind(19, done ? 2 : 1);
    insert.step();
    JobRecord record = read_job(insert);
    insert.run();
    add_event(record.id, 1, "queued", queued_event_data(record.priority, record.run_at), at);
    if (done) add_event(record.id, 2, "succeeded", succeeded_event_data(*job.reuse), at);
    return record;
  }

  // running (this attempt) → succeeded with `result`, event `succeeded`; inside a transaction.
  // False (nothing written) when the job is not running this attempt.
  bool apply_success(std::string_view id, int attempt, const JobResult& result, std::int64_t at) {
    Statement update = statement(
        "UPDATE sluice_jobs SET state = 'succeeded', finished_at = ?3, lease_until = 0,"
        " rows = ?5, bytes = ?4, result_key = ?6, result_size = ?4, result_rows = ?5,"
        " result_sha256 = ?7, result_etag = ?8, result_expires_at = ?9,"
        " error_code = '', error_message = '', last_event = last_event + 1"
        " WHERE id = ?1 AND attempt = ?2 AND state = 'running' RETURNING last_event");
    update.bind(1, id).bind(2, attempt).bind(3, at);
    update.bind(4, static_cast<std::int64_t>(result.size));
    update.bind(5, static_cast<std::int64_t>(result.rows));
    update.bind(6, result.key).bind(7, result.sha256).bind(8, result.etag);
    update.bind(9, result.expires_at);
    if (!update.step()) return false;
    const auto seq = static_cast<std::uint64_t>(update.integer(0));
    update.run();
    add_event(id, seq, "succeeded", succeeded_event_data(result), at);
    return true;
  }

  // The running attempt of `job` ended without a result: queued again after a backoff, or
  // failed for good.
  void finish_attempt(const JobRecord& job, std::string_view code, std::string_view message,
                      bool retry, std::int64_t at) {
    const std::int64_t run_at = at + retry_backoff(tuning_, job.attempt).count();
    Statement update = statement(
        "UPDATE sluice_jobs SET state = ?2, run_at = CASE WHEN ?3 THEN ?4 ELSE run_at END,"
        " finished_at = CASE WHEN ?3 THEN 0 ELSE ?5 END, lease_until = 0, error_code = ?6,"
        " error_message = ?7, last_event = last_event + 1 WHERE id = ?1 RETURNING last_event");
    update.bind(1, job.id).bind(2, retry ? "queued" : "failed").bind(3, retry ? 1 : 0);
    update.bind(4, run_at).bind(5, at).bind(6, code).bind(7, message);
    update.step();
    const auto seq = static_cast<std::uint64_t>(update.integer(0));
    update.run();
    if (retry) {
      add_event(job.id, seq, "retrying", retrying_event_data(job.attempt, code, message, run_at),
                at);
    } else {
      add_event(job.id, seq, "failed", failed_event_data(job.attempt, code, message), at);
    }
  }

  void add_event(std::string_view id, std::uint64_t seq, std::string_view type,
                 const std::string& data, std::int64_t at) {
    Statement insert = statement(
        "INSERT INTO sluice_job_events (job_id, seq, type, data, at) VALUES (?1, ?2, ?3, ?4, ?5)");
    insert.bind(1, id).bind(2, static_cast<std::int64_t>(seq)).bind(3, type).bind(4, data);
    insert.bind(5, at);
    insert.run();
  }

  // Under a shared lock that on_change takes exclusively: once on_change({}) returned, no call
  // of the old callback is still running.
  void changed(std::string_view id) {
    std::shared_lock lock(callback_mutex_);
    if (callback_) callback_(id);
  }

  QueueTuning tuning_;
  std::mutex mutex_;  // the connection and its statements
  sqlite3* db_ = nullptr;
  std::map<std::string, sqlite3_stmt*> statements_;
  std::shared_mutex callback_mutex_;
  std::function<void(std::string_view)> callback_;
};

}  // namespace

std::unique_ptr<JobQueue> open_sqlite_job_queue(const std::filesystem::path& file,
                                                QueueTuning tuning) {
  return std::make_unique<SqliteJobQueue>(file, tuning);
}

}  // namespace sluice
