#include "queue/pg_job_queue.hpp"

#include <gtest/gtest.h>
#include <libpq-fe.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

// The JobQueue contract against PostgreSQL. Runs only when SLUICE_TEST_PG_URL names a database
// the tests may use (a URL or key=value string); tests/postgres/test_pg_queue_unit.py runs it on
// the session's private cluster. Each test works in a schema of its own (created, put first on
// the queue's search_path, dropped at the end), so tests may run in parallel (ctest -j) on one
// database; notifications are per database, so a listener may also hear other tests' jobs.

namespace sluice {
namespace {

using namespace std::chrono_literals;

constexpr const char* kUrlVariable = "SLUICE_TEST_PG_URL";

bool is_uri(const std::string& url) {
  return url.rfind("postgresql://", 0) == 0 || url.rfind("postgres://", 0) == 0;
}

// `url` with more connection parameters (their values: letters, digits, '_' and '-').
std::string with_parameters(const std::string& url,
                            const std::vector<std::pair<std::string, std::string>>& parameters) {
  std::string out = url;
  for (const auto& [key, value] : parameters) {
    if (is_uri(url)) {
      out += out.find('?') == std::string::npos ? '?' : '&';
      std::string encoded;
      for (char c : value) encoded += c == '=' ? std::string("%3D") : std::string(1, c);
      out += key + "=" + encoded;
    } else {
      out += " " + key + "='" + value + "'";
    }
  }
  return out;
}

// Runs SQL on its own short connection; fails the test on an error.
void admin_exec(const std::string& url, const std::string& sql) {
  PGconn* conn = PQconnectdb(url.c_str());
  ASSERT_EQ(PQstatus(conn), CONNECTION_OK) << PQerrorMessage(conn);
  PQsetNoticeProcessor(
      conn, [](void*, const char*) {}, nullptr);
  PGresult* result = PQexec(conn, sql.c_str());
  const ExecStatusType status = PQresultStatus(result);
  EXPECT_TRUE(status == PGRES_COMMAND_OK || status == PGRES_TUPLES_OK)
      << sql << ": " << PQresultErrorMessage(result);
  PQclear(result);
  PQfinish(conn);
}

template <class Predicate>
bool wait_until(Predicate predicate, std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!predicate()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(2ms);
  }
  return true;
}

// What a callback heard, for waiting on it.
class Heard {
 public:
  void add(std::string_view id) {
    std::lock_guard lock(mutex_);
    ids_.emplace_back(id);
    changed_.notify_all();
  }
  // Waits until `id` was heard `times` times in all.
  bool wait_for(const std::string& id, std::chrono::milliseconds timeout, std::size_t times = 1) {
    std::unique_lock lock(mutex_);
    return changed_.wait_for(lock, timeout, [&] {
      return static_cast<std::size_t>(std::count(ids_.begin(), ids_.end(), id)) >= times;
    });
  }
  std::size_t count(const std::string& id) {
    std::lock_guard lock(mutex_);
    return static_cast<std::size_t>(std::count(ids_.begin(), ids_.end(), id));
  }

 private:
  std::mutex mutex_;
  std::condition_variable changed_;
  std::vector<std::string> ids_;
};

QueueTuning fast_tuning() {
  QueueTuning tuning;
  tuning.backoff_base = 1ms;
  tuning.backoff_max = 5ms;
  return tuning;
}

JobResult result_named(const std::string& key, std::int64_t expires_at) {
  JobResult result;
  result.key = key;
  result.size = 1234;
  result.rows = 56;
  result.sha256 = std::string(64, 'a');
  result.etag = "\"etag-" + key + "\"";
  result.expires_at = expires_at;
  return result;
}

NewJob new_job(const std::string& dataset, int priority = 0) {
  NewJob job;
  job.dataset = dataset;
  job.spec = R"({"dataset":")" + dataset + R"(","format":"csv","note":"quote \" and \\ back"})";
  job.priority = priority;
  job.fingerprint = "fp-" + dataset;
  job.data_version = "v1";
  return job;
}

class PgJobQueueTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const char* url = std::getenv(kUrlVariable);
    if (url == nullptr || *url == '\0') {
      GTEST_SKIP() << "set " << kUrlVariable << " to a PostgreSQL database the tests may use";
    }
    base_url_ = url;
    schema_ = "sluice_test_" + new_job_id().substr(12, 16);  // the random part
    admin_exec(base_url_, "CREATE SCHEMA " + schema_);
    url_ = with_parameters(
        base_url_, {{"options", "-csearch_path=" + schema_}, {"application_name", schema_}});
  }
  void TearDown() override {
    if (!schema_.empty()) admin_exec(base_url_, "DROP SCHEMA " + schema_ + " CASCADE");
  }

  std::unique_ptr<JobQueue> open(QueueTuning tuning = fast_tuning(), std::size_t pool = 4) {
    std::unique_ptr<JobQueue> queue = open_pg_job_queue(url_, pool, tuning);
    queue->migrate();
    return queue;
  }

  // Closes every connection of this test's queues from the server's side.
  void terminate_connections() {
    admin_exec(base_url_,
               "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = '" +
                   schema_ + "' AND pid <> pg_backend_pid()");
  }

  std::string base_url_;
  std::string schema_;
  std::string url_;
};

TEST_F(PgJobQueueTest, EnqueueGetAndList) {
  auto queue = open();
  const std::int64_t before = queue->now();
  const Enqueued first = queue->enqueue(new_job("a"));
  const Enqueued second = queue->enqueue(new_job("b"));
  NewJob later = new_job("a", 3);
  later.run_at = before + 60'000;
  later.max_attempts = 5;
  const Enqueued third = queue->enqueue(later);
  const std::int64_t after = queue->now();

  EXPECT_TRUE(first.created);
  EXPECT_TRUE(is_job_id(first.job.id));
  EXPECT_NE(first.job.id, second.job.id);
  EXPECT_EQ(first.job.state, JobState::kQueued);
  EXPECT_EQ(first.job.dataset, "a");
  EXPECT_EQ(first.job.spec, new_job("a").spec);
  EXPECT_GE(first.job.created_at, before);
  EXPECT_LE(first.job.created_at, after);
  EXPECT_EQ(first.job.run_at, first.job.created_at);
  EXPECT_EQ(first.job.attempt, 0);
  EXPECT_EQ(first.job.max_attempts, 3);
  EXPECT_EQ(first.job.last_event, 1U);
  EXPECT_EQ(first.job.fingerprint, "fp-a");
  EXPECT_EQ(first.job.data_version, "v1");
  EXPECT_EQ(first.job.idempotency_key, "");
  EXPECT_FALSE(first.job.result.has_value());
  EXPECT_EQ(third.job.run_at, before + 60'000);
  EXPECT_EQ(third.job.priority, 3);
  EXPECT_EQ(third.job.max_attempts, 5);

  const std::optional<JobRecord> got = queue->get(first.job.id);
  ASSERT_TRUE(got.has_value());
  EXPECT_EQ(got->id, first.job.id);
  EXPECT_EQ(got->spec, first.job.spec);
  EXPECT_EQ(got->created_at, first.job.created_at);
  EXPECT_FALSE(queue->get(new_job_id()).has_value());

  auto ids = [](const std::vector<JobRecord>& jobs) {
    std::vector<std::string> out;
    out.reserve(jobs.size());
    for (const JobRecord& job : jobs) out.push_back(job.id);
    return out;
  };
  using Ids = std::vector<std::string>;
  EXPECT_EQ(ids(queue->list({})), (Ids{third.job.id, second.job.id, first.job.id}));
  JobFilter by_dataset;
  by_dataset.dataset = "a";
  EXPECT_EQ(ids(queue->list(by_dataset)), (Ids{third.job.id, first.job.id}));
  JobFilter page;
  page.before_id = third.job.id;
  page.limit = 1;
  EXPECT_EQ(ids(queue->list(page)), (Ids{second.job.id}));
  page.before_id = new_job_id();
  EXPECT_TRUE(queue->list(page).empty());
  JobFilter running;
  running.state = JobState::kRunning;
  EXPECT_TRUE(queue->list(running).empty());
  JobFilter queued_a;
  queued_a.state = JobState::kQueued;
  queued_a.dataset = "a";
  queued_a.limit = 1;
  EXPECT_EQ(ids(queue->list(queued_a)), (Ids{third.job.id}));

  // Many at once: ids in order, each queued with its event.
  std::vector<NewJob> many;
  many.reserve(3);
  for (int index = 0; index < 3; ++index)
    many.push_back(new_job("m" + std::to_string(index), index));
  many[1].idempotency_key = "ignored by enqueue_many";
  const std::vector<std::string> many_ids = queue->enqueue_many(many);
  ASSERT_EQ(many_ids.size(), 3U);
  for (std::size_t index = 0; index < 3; ++index) {
    const std::optional<JobRecord> job = queue->get(many_ids[index]);
    ASSERT_TRUE(job.has_value());
    EXPECT_EQ(job->dataset, "m" + std::to_string(index));
    EXPECT_EQ(job->spec, many[index].spec);
    EXPECT_EQ(job->priority, static_cast<int>(index));
    EXPECT_EQ(job->state, JobState::kQueued);
    EXPECT_EQ(job->idempotency_key, "");
    const std::vector<JobEvent> events = queue->events(job->id, 0, 10);
    ASSERT_EQ(events.size(), 1U);
    EXPECT_EQ(events[0].type, "queued");
    EXPECT_EQ(events[0].data, queued_event_data(job->priority, job->run_at));
  }
  EXPECT_EQ(ids(queue->list({})).front(), many_ids.back());
  EXPECT_TRUE(queue->enqueue_many({}).empty());
}

TEST_F(PgJobQueueTest, IdempotencyKeyReturnsTheSameJob) {
  auto queue = open();
  NewJob job = new_job("a");
  job.idempotency_key = "request-1";
  const Enqueued first = queue->enqueue(job);
  EXPECT_TRUE(first.created);
  EXPECT_EQ(first.job.idempotency_key, "request-1");
  job.spec = R"({"other":true})";
  const Enqueued again = queue->enqueue(job);
  EXPECT_FALSE(again.created);
  EXPECT_EQ(again.job.id, first.job.id);
  EXPECT_EQ(again.job.spec, first.job.spec);
  EXPECT_EQ(queue->events(first.job.id, 0, 10).size(), 1U);
  job.idempotency_key = "request-2";
  EXPECT_NE(queue->enqueue(job).job.id, first.job.id);

  // Racing submissions of one key: one job, created once.
  job.idempotency_key = "request-3";
  std::vector<Enqueued> results(8);
  std::vector<std::thread> threads;
  threads.reserve(results.size());
  for (Enqueued& result : results) {
    threads.emplace_back([&queue, &job, &result] { result = queue->enqueue(job); });
  }
  for (std::thread& thread : threads) thread.join();
  int created = 0;
  for (const Enqueued& result : results) {
    created += result.created ? 1 : 0;
    EXPECT_EQ(result.job.id, results[0].job.id);
  }
  EXPECT_EQ(created, 1);
  EXPECT_EQ(queue->list({}).size(), 3U);
}

TEST_F(PgJobQueueTest, ConcurrentClaimersNeverShareAJob) {
  auto queue = open(fast_tuning(), 8);
  std::set<std::string> enqueued;
  for (int batch = 0; batch < 2; ++batch) {
    std::vector<NewJob> jobs(500, new_job("bulk"));
    for (const std::string& id : queue->enqueue_many(jobs)) enqueued.insert(id);
  }
  ASSERT_EQ(enqueued.size(), 1000U);

  std::vector<std::vector<JobRecord>> claimed(4);
  std::vector<std::thread> threads;
  for (std::size_t index = 0; index < claimed.size(); ++index) {
    threads.emplace_back([&, index] {
      const std::string worker = "worker-" + std::to_string(index);
      while (true) {
        std::vector<JobRecord> jobs = queue->claim(worker, 10, 60s);
        if (jobs.empty()) break;
        EXPECT_LE(jobs.size(), 10U);
        for (JobRecord& job : jobs) claimed[index].push_back(std::move(job));
      }
    });
  }
  for (std::thread& thread : threads) thread.join();

  std::multiset<std::string> seen;
  for (std::size_t index = 0; index < claimed.size(); ++index) {
    for (const JobRecord& job : claimed[index]) {
      seen.insert(job.id);
      EXPECT_EQ(job.state, JobState::kRunning);
      EXPECT_EQ(job.attempt, 1);
      EXPECT_EQ(job.worker, "worker-" + std::to_string(index));
      EXPECT_EQ(job.last_event, 2U);
    }
  }
  EXPECT_EQ(seen.size(), 1000U);
  EXPECT_EQ(std::set<std::string>(seen.begin(), seen.end()), enqueued);
  JobFilter queued;
  queued.state = JobState::kQueued;
  EXPECT_TRUE(queue->list(queued).empty());
}

TEST_F(PgJobQueueTest, ClaimTakesPriorityThenAgeAndWaitsForRunAt) {
  auto queue = open();
  const std::string low1 = queue->enqueue(new_job("low1")).job.id;
  std::this_thread::sleep_for(2ms);
  const std::string high = queue->enqueue(new_job("high", 5)).job.id;
  std::this_thread::sleep_for(2ms);
  const std::string low2 = queue->enqueue(new_job("low2")).job.id;
  const std::string mid = queue->enqueue(new_job("mid", 1)).job.id;
  NewJob future = new_job("future", 10);
  future.run_at = queue->now() + 60'000;
  const std::string later = queue->enqueue(future).job.id;
  NewJob soon = new_job("soon", 10);
  soon.run_at = queue->now() + 1000;  // due after the claims below, even on a busy machine
  const std::string soon_id = queue->enqueue(soon).job.id;

  const std::vector<JobRecord> first = queue->claim("w", 2, 60s);
  ASSERT_EQ(first.size(), 2U);
  EXPECT_EQ(first[0].id, high);
  EXPECT_EQ(first[1].id, mid);
  const std::vector<JobRecord> rest = queue->claim("w", 10, 60s);
  ASSERT_EQ(rest.size(), 2U);
  EXPECT_EQ(rest[0].id, low1);
  EXPECT_EQ(rest[1].id, low2);
  EXPECT_TRUE(queue->claim("w", 10, 60s).empty());

  std::vector<JobRecord> due;
  ASSERT_TRUE(wait_until([&] { return !(due = queue->claim("w", 10, 60s)).empty(); }, 3s));
  ASSERT_EQ(due.size(), 1U);
  EXPECT_EQ(due[0].id, soon_id);
  EXPECT_GE(queue->now(), soon.run_at);
  EXPECT_EQ(queue->get(later)->state, JobState::kQueued);
  EXPECT_TRUE(queue->claim("w", 0, 60s).empty());
}

TEST_F(PgJobQueueTest, StaleAttemptIsFencedAfterItsLeaseLapsed) {
  auto queue = open();
  const std::string id = queue->enqueue(new_job("a")).job.id;
  const std::vector<JobRecord> first = queue->claim("w1", 1, 1ms);
  ASSERT_EQ(first.size(), 1U);
  EXPECT_EQ(first[0].attempt, 1);
  EXPECT_EQ(first[0].lease_until, first[0].started_at + 1);
  std::this_thread::sleep_for(20ms);

  const SweepReport report = queue->sweep();
  EXPECT_EQ(report.lapsed_requeued, 1U);
  EXPECT_EQ(report.lapsed_failed, 0U);
  std::optional<JobRecord> job = queue->get(id);
  ASSERT_TRUE(job.has_value());
  EXPECT_EQ(job->state, JobState::kQueued);
  EXPECT_EQ(job->error_code, "lease_lapsed");
  EXPECT_EQ(job->error_message, "the worker w1 stopped renewing its lease");
  EXPECT_EQ(job->attempt, 1);

  std::vector<JobRecord> second;
  ASSERT_TRUE(wait_until([&] { return !(second = queue->claim("w2", 1, 60s)).empty(); }, 2s));
  EXPECT_EQ(second[0].attempt, 2);
  EXPECT_EQ(second[0].worker, "w2");

  EXPECT_EQ(queue->heartbeat(id, 1, 10, 100, 60s, true), Fenced::kLost);
  EXPECT_EQ(queue->heartbeat(id, 1, 10, 100, 60s, false), Fenced::kLost);
  EXPECT_EQ(queue->fail(id, 1, "source_error", "late", true), Fenced::kLost);
  EXPECT_EQ(queue->release(id, 1), Fenced::kLost);
  EXPECT_EQ(queue->heartbeat(id, 2, 5, 50, 60s, false), Fenced::kOk);
  const std::int64_t expires = queue->now() + 3'600'000;
  EXPECT_EQ(queue->succeed(id, 2, result_named("new", expires)), Fenced::kOk);
  EXPECT_EQ(queue->succeed(id, 1, result_named("stale", expires)), Fenced::kLost);
  EXPECT_EQ(queue->succeed(id, 2, result_named("twice", expires)), Fenced::kLost);

  job = queue->get(id);
  ASSERT_TRUE(job.has_value());
  EXPECT_EQ(job->state, JobState::kSucceeded);
  EXPECT_EQ(job->attempt, 2);
  EXPECT_EQ(job->worker, "w2");
  ASSERT_TRUE(job->result.has_value());
  EXPECT_EQ(job->result->key, "new");
  EXPECT_EQ(job->result->etag, "\"etag-new\"");
  EXPECT_EQ(job->result->expires_at, expires);
  EXPECT_EQ(job->rows, 56U);
  EXPECT_EQ(job->bytes, 1234U);
  EXPECT_EQ(job->error_code, "");
  EXPECT_EQ(job->lease_until, 0);
  EXPECT_GT(job->finished_at, 0);

  // A lease that lapses on the last attempt fails the job.
  NewJob once = new_job("once");
  once.max_attempts = 1;
  const std::string once_id = queue->enqueue(once).job.id;
  ASSERT_EQ(queue->claim("w3", 1, 1ms).size(), 1U);
  std::this_thread::sleep_for(20ms);
  EXPECT_EQ(queue->sweep().lapsed_failed, 1U);
  job = queue->get(once_id);
  EXPECT_EQ(job->state, JobState::kFailed);
  EXPECT_EQ(job->error_code, "lease_lapsed");
  EXPECT_GT(job->finished_at, 0);
  const std::vector<JobEvent> events = queue->events(once_id, 0, 10);
  ASSERT_EQ(events.size(), 3U);
  EXPECT_EQ(events[2].type, "failed");
  EXPECT_EQ(events[2].data,
            failed_event_data(1, "lease_lapsed", "the worker w3 stopped renewing its lease"));
}

TEST_F(PgJobQueueTest, FailRetriesWithBackoffThenFails) {
  QueueTuning tuning;
  tuning.backoff_base = 300ms;  // so that "not yet due" holds on a busy machine
  tuning.backoff_max = 3000ms;
  auto queue = open(tuning);
  NewJob job = new_job("a");
  job.max_attempts = 3;
  const std::string id = queue->enqueue(job).job.id;

  for (int attempt = 1; attempt <= 3; ++attempt) {
    std::vector<JobRecord> claimed;
    const auto asked = std::chrono::steady_clock::now();
    ASSERT_TRUE(wait_until([&] { return !(claimed = queue->claim("w", 1, 60s)).empty(); }, 3s));
    const auto waited = std::chrono::steady_clock::now() - asked;
    ASSERT_EQ(claimed[0].id, id);
    EXPECT_EQ(claimed[0].attempt, attempt);
    if (attempt > 1) {
      // Backoff of retry n: uniform in [base * 2^(n-1) / 2, base * 2^(n-1)].
      EXPECT_GE(waited, std::chrono::milliseconds(300 << (attempt - 2)) / 2 - 20ms);
    }
    const std::int64_t before = queue->now();
    EXPECT_EQ(queue->fail(id, attempt, "source_error", "boom " + std::to_string(attempt), true),
              Fenced::kOk);
    const std::optional<JobRecord> after = queue->get(id);
    ASSERT_TRUE(after.has_value());
    EXPECT_EQ(after->error_code, "source_error");
    EXPECT_EQ(after->error_message, "boom " + std::to_string(attempt));
    EXPECT_EQ(after->lease_until, 0);
    if (attempt < 3) {
      EXPECT_EQ(after->state, JobState::kQueued);
      const std::int64_t ceiling = 300 << (attempt - 1);
      EXPECT_GE(after->run_at, before + ceiling / 2);
      EXPECT_LE(after->run_at, queue->now() + ceiling);
      EXPECT_EQ(after->finished_at, 0);
      EXPECT_TRUE(queue->claim("w", 1, 60s).empty());
    } else {
      EXPECT_EQ(after->state, JobState::kFailed);
      EXPECT_GT(after->finished_at, 0);
    }
  }
  EXPECT_EQ(queue->fail(id, 3, "source_error", "again", true), Fenced::kLost);

  const std::vector<JobEvent> events = queue->events(id, 0, 100);
  std::vector<std::string> types;
  types.reserve(events.size());
  for (const JobEvent& event : events) types.push_back(event.type);
  EXPECT_EQ(types, (std::vector<std::string>{"queued", "started", "retrying", "started", "retrying",
                                             "started", "failed"}));
  EXPECT_EQ(events.back().data, failed_event_data(3, "source_error", "boom 3"));
  // The retry's event names the run_at the row got.
  EXPECT_EQ(events[4].data,
            retrying_event_data(2, "source_error", "boom 2",
                                std::stoll(events[4].data.substr(events[4].data.rfind(':') + 1))));

  // Not retryable: failed at once, attempts left or not.
  const std::string other = queue->enqueue(job).job.id;
  ASSERT_EQ(queue->claim("w", 1, 60s).size(), 1U);
  EXPECT_EQ(queue->fail(other, 1, "bad_request", "no such column", false), Fenced::kOk);
  EXPECT_EQ(queue->get(other)->state, JobState::kFailed);
}

TEST_F(PgJobQueueTest, CancelFromQueuedAndFromRunning) {
  auto queue = open();
  Heard heard;
  queue->on_change([&](std::string_view id) { heard.add(id); });
  const std::string queued = queue->enqueue(new_job("a")).job.id;
  std::optional<JobRecord> cancelled = queue->cancel(queued);
  ASSERT_TRUE(cancelled.has_value());
  EXPECT_EQ(cancelled->state, JobState::kCancelled);
  EXPECT_GT(cancelled->finished_at, 0);
  EXPECT_EQ(cancelled->last_event, 2U);
  EXPECT_EQ(heard.count(queued), 2U);
  std::vector<JobEvent> events = queue->events(queued, 1, 10);
  ASSERT_EQ(events.size(), 1U);
  EXPECT_EQ(events[0].type, "cancelled");
  EXPECT_EQ(events[0].data, cancelled_event_data(JobState::kQueued));
  EXPECT_EQ(events[0].at, cancelled->finished_at);

  // A final job comes back unchanged.
  const std::optional<JobRecord> again = queue->cancel(queued);
  ASSERT_TRUE(again.has_value());
  EXPECT_EQ(again->state, JobState::kCancelled);
  EXPECT_EQ(again->last_event, 2U);
  EXPECT_EQ(again->finished_at, cancelled->finished_at);
  EXPECT_EQ(heard.count(queued), 2U);

  const std::string running = queue->enqueue(new_job("b")).job.id;
  const std::vector<JobRecord> claimed = queue->claim("w", 1, 60s);
  ASSERT_EQ(claimed.size(), 1U);
  cancelled = queue->cancel(running);
  ASSERT_TRUE(cancelled.has_value());
  EXPECT_EQ(cancelled->state, JobState::kCancelled);
  EXPECT_EQ(cancelled->lease_until, 0);
  events = queue->events(running, 2, 10);
  ASSERT_EQ(events.size(), 1U);
  EXPECT_EQ(events[0].data, cancelled_event_data(JobState::kRunning));
  EXPECT_EQ(queue->heartbeat(running, claimed[0].attempt, 1, 1, 60s, false), Fenced::kLost);
  EXPECT_EQ(queue->succeed(running, claimed[0].attempt, result_named("k", 0)), Fenced::kLost);
  EXPECT_EQ(queue->get(running)->state, JobState::kCancelled);

  EXPECT_FALSE(queue->cancel(new_job_id()).has_value());
}

TEST_F(PgJobQueueTest, SweepExpiresResultsAndReportsKeysNoLongerShared) {
  auto queue = open();
  const std::int64_t now = queue->now();
  // A: its own key, expired. B: the key it shares with C (reuse), expired; C expires later.
  const std::string a = queue->enqueue(new_job("a")).job.id;
  const std::string b = queue->enqueue(new_job("b")).job.id;
  ASSERT_EQ(queue->claim("w", 2, 60s).size(), 2U);
  ASSERT_EQ(queue->succeed(a, 1, result_named("key-a", now - 1)), Fenced::kOk);
  ASSERT_EQ(queue->succeed(b, 1, result_named("key-shared", now - 1)), Fenced::kOk);
  NewJob reused = new_job("b");
  reused.reuse = result_named("key-shared", now + 1500);
  const std::string c = queue->enqueue(reused).job.id;

  SweepReport report = queue->sweep();
  EXPECT_EQ(report.expired, 2U);
  EXPECT_EQ(report.expired_keys, (std::vector<std::string>{"key-a"}));
  EXPECT_EQ(queue->get(a)->state, JobState::kExpired);
  EXPECT_EQ(queue->get(b)->state, JobState::kExpired);
  EXPECT_EQ(queue->get(c)->state, JobState::kSucceeded);
  ASSERT_TRUE(queue->get(a)->result.has_value());
  EXPECT_EQ(queue->get(a)->result->key, "key-a");
  const std::vector<JobEvent> events = queue->events(a, 0, 10);
  ASSERT_EQ(events.size(), 4U);
  EXPECT_EQ(events[3].type, "expired");
  EXPECT_EQ(events[3].data, expired_event_data());

  EXPECT_EQ(queue->sweep().expired, 0U);
  ASSERT_TRUE(wait_until([&] { return queue->now() > now + 1500; }, 5s));
  report = queue->sweep();
  EXPECT_EQ(report.expired, 1U);
  EXPECT_EQ(report.expired_keys, (std::vector<std::string>{"key-shared"}));
  EXPECT_EQ(queue->get(c)->state, JobState::kExpired);
  EXPECT_EQ(report.deleted, 0U);
}

TEST_F(PgJobQueueTest, SweepDeletesFinalJobsPastTheRetention) {
  QueueTuning tuning = fast_tuning();
  tuning.retention = 10ms;
  auto queue = open(tuning);
  const std::string failed = queue->enqueue(new_job("a")).job.id;
  const std::string waiting = queue->enqueue(new_job("b")).job.id;
  ASSERT_EQ(queue->claim("w", 1, 60s).size(), 1U);
  ASSERT_EQ(queue->fail(failed, 1, "x", "y", false), Fenced::kOk);
  NewJob kept = new_job("c");
  kept.reuse = result_named("still-valid", queue->now() + 3'600'000);
  const std::string valid = queue->enqueue(kept).job.id;
  std::this_thread::sleep_for(30ms);
  const SweepReport report = queue->sweep();
  EXPECT_EQ(report.deleted, 1U);
  EXPECT_FALSE(queue->get(failed).has_value());
  EXPECT_TRUE(queue->events(failed, 0, 10).empty());
  EXPECT_TRUE(queue->get(waiting).has_value());
  EXPECT_TRUE(queue->get(valid).has_value());  // its result is still served
}

TEST_F(PgJobQueueTest, EventsAreContiguousAndMatchTheHelpers) {
  auto queue = open();
  NewJob job = new_job("a", 2);
  const JobRecord queued = queue->enqueue(job).job;
  const std::vector<JobRecord> claimed = queue->claim("worker \"7\" ü", 1, 60s);
  ASSERT_EQ(claimed.size(), 1U);
  EXPECT_EQ(claimed[0].worker, "worker \"7\" ü");
  EXPECT_EQ(queue->heartbeat(queued.id, 1, 10, 1000, 60s, true), Fenced::kOk);
  EXPECT_EQ(queue->heartbeat(queued.id, 1, 20, 2000, 120s, false), Fenced::kOk);
  const std::optional<JobRecord> beating = queue->get(queued.id);
  EXPECT_EQ(beating->rows, 20U);
  EXPECT_EQ(beating->bytes, 2000U);
  EXPECT_GE(beating->lease_until, claimed[0].started_at + 120'000);
  EXPECT_EQ(beating->last_event, 3U);
  const JobResult result = result_named("out/x.csv", queue->now() + 60'000);
  EXPECT_EQ(queue->succeed(queued.id, 1, result), Fenced::kOk);

  const std::vector<JobEvent> events = queue->events(queued.id, 0, 100);
  ASSERT_EQ(events.size(), 4U);
  for (std::size_t index = 0; index < events.size(); ++index) {
    EXPECT_EQ(events[index].seq, index + 1);
    EXPECT_EQ(events[index].job_id, queued.id);
    if (index > 0) {
      EXPECT_GE(events[index].at, events[index - 1].at);
    }
  }
  EXPECT_EQ(events[0].type, "queued");
  EXPECT_EQ(events[0].data, queued_event_data(2, queued.run_at));
  EXPECT_EQ(events[0].at, queued.created_at);
  EXPECT_EQ(events[1].type, "started");
  EXPECT_EQ(events[1].data, started_event_data(1, "worker \"7\" ü"));
  EXPECT_EQ(events[1].at, claimed[0].started_at);
  EXPECT_EQ(events[2].type, "progress");
  EXPECT_EQ(events[2].data, progress_event_data(10, 1000));
  EXPECT_EQ(events[3].type, "succeeded");
  EXPECT_EQ(events[3].data, succeeded_event_data(result));
  const std::optional<JobRecord> done = queue->get(queued.id);
  EXPECT_EQ(done->last_event, 4U);
  EXPECT_EQ(events[3].at, done->finished_at);

  const std::vector<JobEvent> page = queue->events(queued.id, 2, 1);
  ASSERT_EQ(page.size(), 1U);
  EXPECT_EQ(page[0].seq, 3U);
  EXPECT_TRUE(queue->events(queued.id, 4, 10).empty());

  const std::string other = queue->enqueue(new_job("b")).job.id;
  const std::string missing = new_job_id();
  using Seqs = std::vector<std::pair<std::string, std::uint64_t>>;
  EXPECT_EQ(queue->last_events({other, missing, queued.id}), (Seqs{{other, 1}, {queued.id, 4}}));
  EXPECT_TRUE(queue->last_events({}).empty());
}

TEST_F(PgJobQueueTest, SucceedManyIsOneStatementThatFencesEachItem) {
  auto queue = open();
  auto consumer = open();
  Heard listened;
  consumer->on_change([&](std::string_view id) { listened.add(id); });
  consumer->start_listening();
  ASSERT_TRUE(listened.wait_for("", 5s)) << "the listener never connected";

  std::vector<NewJob> jobs;
  jobs.reserve(50);
  for (int index = 0; index < 50; ++index) jobs.push_back(new_job("d" + std::to_string(index)));
  const std::vector<std::string> ids = queue->enqueue_many(jobs);
  const std::vector<JobRecord> claimed = queue->claim("w", 50, 60s);
  ASSERT_EQ(claimed.size(), 50U);
  const std::set<std::size_t> stale = {0, 17, 49};  // a wrong attempt
  const std::size_t cancelled = 23;
  ASSERT_EQ(queue->cancel(claimed[cancelled].id)->state, JobState::kCancelled);
  const std::int64_t expires = queue->now() + 3'600'000;
  std::vector<JobCompletion> completions;
  for (std::size_t index = 0; index < claimed.size(); ++index) {
    // Array literal syntax in the values: quotes, backslashes, commas, braces, NULL, unicode.
    JobResult done = result_named("out/" + std::to_string(index) + "/\"q\",{x}\\ ü.csv",
                                  expires + static_cast<std::int64_t>(index));
    done.rows = index;
    done.size = 1000 + index;
    if (index % 3 == 0) done.etag = "NULL";
    if (index % 3 == 1) done.etag = "";
    const int attempt =
        stale.count(index) != 0 ? claimed[index].attempt + 1 : claimed[index].attempt;
    completions.push_back({claimed[index].id, attempt, done});
  }
  completions.push_back(completions[5]);                           // the same job again
  completions.push_back({new_job_id(), 1, result_named("x", 0)});  // no such job

  Heard heard;  // in process, without listening: after the commit
  queue->on_change([&](std::string_view id) { heard.add(id); });
  const std::vector<Fenced> answers = queue->succeed_many(completions);
  ASSERT_EQ(answers.size(), completions.size());
  EXPECT_EQ(answers[50], Fenced::kLost);
  EXPECT_EQ(answers[51], Fenced::kLost);
  std::size_t applied = 0;
  for (std::size_t index = 0; index < claimed.size(); ++index) {
    const std::string& id = claimed[index].id;
    const std::optional<JobRecord> job = queue->get(id);
    ASSERT_TRUE(job.has_value());
    const std::vector<JobEvent> events = queue->events(id, 0, 100);
    for (std::size_t e = 0; e < events.size(); ++e) EXPECT_EQ(events[e].seq, e + 1);
    if (stale.count(index) != 0 || index == cancelled) {
      EXPECT_EQ(answers[index], Fenced::kLost) << index;
      EXPECT_EQ(job->state, index == cancelled ? JobState::kCancelled : JobState::kRunning);
      EXPECT_FALSE(job->result.has_value());
      EXPECT_EQ(job->last_event, index == cancelled ? 3U : 2U);
      EXPECT_EQ(events.size(), job->last_event);
      EXPECT_EQ(heard.count(id), 0U);
      continue;
    }
    ++applied;
    const JobResult& sent = completions[index].result;
    EXPECT_EQ(answers[index], Fenced::kOk) << index;
    EXPECT_EQ(job->state, JobState::kSucceeded);
    ASSERT_TRUE(job->result.has_value());
    EXPECT_EQ(job->result->key, sent.key);
    EXPECT_EQ(job->result->etag, sent.etag);
    EXPECT_EQ(job->result->sha256, sent.sha256);
    EXPECT_EQ(job->result->size, sent.size);
    EXPECT_EQ(job->result->rows, sent.rows);
    EXPECT_EQ(job->result->expires_at, sent.expires_at);
    EXPECT_EQ(job->rows, sent.rows);
    EXPECT_EQ(job->bytes, sent.size);
    EXPECT_EQ(job->lease_until, 0);
    EXPECT_GT(job->finished_at, 0);
    EXPECT_EQ(job->last_event, 3U);
    ASSERT_EQ(events.size(), 3U);
    EXPECT_EQ(events[2].type, "succeeded");
    EXPECT_EQ(events[2].data, succeeded_event_data(sent));
    EXPECT_EQ(events[2].at, job->finished_at);
    EXPECT_EQ(heard.count(id), 1U);
    // enqueue, claim, succeed: the last came through LISTEN/NOTIFY too
    EXPECT_TRUE(listened.wait_for(id, 5s, 3)) << index;
  }
  EXPECT_EQ(applied, 46U);
  std::this_thread::sleep_for(100ms);
  for (std::size_t index : stale) EXPECT_EQ(listened.count(claimed[index].id), 2U);
  EXPECT_EQ(listened.count(claimed[cancelled].id), 3U);
  EXPECT_EQ(listened.count(claimed[5].id), 3U);  // once, though given twice

  // The refused stale ones were left untouched: their own attempt still completes them.
  std::vector<JobCompletion> right;
  right.reserve(stale.size());
  for (std::size_t index : stale) {
    right.push_back({claimed[index].id, claimed[index].attempt, result_named("late", expires)});
  }
  EXPECT_EQ(queue->succeed_many(right), std::vector<Fenced>(3, Fenced::kOk));
  EXPECT_TRUE(queue->succeed_many({}).empty());
  EXPECT_EQ(ids.size(), 50U);
}

TEST_F(PgJobQueueTest, ReuseCreatesASucceededJobAndFindReusableFindsIt) {
  auto queue = open();
  const std::int64_t expires = queue->now() + 60'000;
  NewJob job = new_job("a");
  job.reuse = result_named("shared", expires);
  const Enqueued enqueued = queue->enqueue(job);
  EXPECT_EQ(enqueued.job.state, JobState::kSucceeded);
  ASSERT_TRUE(enqueued.job.result.has_value());
  EXPECT_EQ(enqueued.job.result->key, "shared");
  EXPECT_EQ(enqueued.job.result->sha256, std::string(64, 'a'));
  EXPECT_EQ(enqueued.job.result->size, 1234U);
  EXPECT_EQ(enqueued.job.result->rows, 56U);
  EXPECT_EQ(enqueued.job.rows, 56U);
  EXPECT_EQ(enqueued.job.bytes, 1234U);
  EXPECT_EQ(enqueued.job.last_event, 2U);
  EXPECT_EQ(enqueued.job.finished_at, enqueued.job.created_at);
  const std::vector<JobEvent> events = queue->events(enqueued.job.id, 0, 10);
  ASSERT_EQ(events.size(), 2U);
  EXPECT_EQ(events[0].type, "queued");
  EXPECT_EQ(events[1].type, "succeeded");
  EXPECT_EQ(events[1].data, succeeded_event_data(*job.reuse));
  EXPECT_TRUE(queue->claim("w", 10, 60s).empty());

  std::optional<JobRecord> found = queue->find_reusable("fp-a", "v1", 1000ms);
  ASSERT_TRUE(found.has_value());
  EXPECT_EQ(found->id, enqueued.job.id);
  EXPECT_FALSE(queue->find_reusable("fp-a", "v1", 120s).has_value());
  EXPECT_FALSE(queue->find_reusable("fp-a", "v2", 0ms).has_value());
  EXPECT_FALSE(queue->find_reusable("fp-b", "v1", 0ms).has_value());
  NewJob unversioned = new_job("x");
  unversioned.data_version = "";
  unversioned.reuse = result_named("u", expires);
  queue->enqueue(unversioned);
  EXPECT_FALSE(queue->find_reusable("fp-x", "", 0ms).has_value());

  // enqueue_many takes reuse too.
  const std::vector<std::string> ids = queue->enqueue_many({job, new_job("b")});
  ASSERT_EQ(ids.size(), 2U);
  EXPECT_EQ(queue->get(ids[0])->state, JobState::kSucceeded);
  EXPECT_EQ(queue->get(ids[0])->result->key, "shared");
  EXPECT_EQ(queue->events(ids[0], 0, 10).size(), 2U);
  EXPECT_EQ(queue->get(ids[1])->state, JobState::kQueued);
  EXPECT_EQ(queue->get(ids[1])->last_event, 1U);
}

TEST_F(PgJobQueueTest, ReleaseHandsTheJobBackWithoutCountingTheAttempt) {
  auto queue = open();
  const std::string id = queue->enqueue(new_job("a")).job.id;
  ASSERT_EQ(queue->claim("w", 1, 60s).size(), 1U);
  EXPECT_EQ(queue->release(id, 1), Fenced::kOk);
  const std::optional<JobRecord> job = queue->get(id);
  EXPECT_EQ(job->state, JobState::kQueued);
  EXPECT_EQ(job->attempt, 0);
  EXPECT_EQ(job->lease_until, 0);
  const std::vector<JobEvent> events = queue->events(id, 2, 10);
  ASSERT_EQ(events.size(), 1U);
  EXPECT_EQ(events[0].type, "queued");
  EXPECT_EQ(events[0].data, queued_event_data(0, job->run_at));
  const std::vector<JobRecord> again = queue->claim("w", 1, 60s);
  ASSERT_EQ(again.size(), 1U);
  EXPECT_EQ(again[0].attempt, 1);
}

TEST_F(PgJobQueueTest, CallbackRunsInProcessWithoutListening) {
  auto queue = open();
  EXPECT_TRUE(queue->notifies_across_processes());
  Heard heard;
  queue->on_change([&](std::string_view id) { heard.add(id); });
  const std::string id = queue->enqueue(new_job("a")).job.id;
  EXPECT_EQ(heard.count(id), 1U);  // before enqueue returned
  ASSERT_EQ(queue->claim("w", 1, 60s).size(), 1U);
  EXPECT_EQ(heard.count(id), 2U);
  EXPECT_EQ(queue->heartbeat(id, 1, 1, 1, 60s, false), Fenced::kOk);
  EXPECT_EQ(heard.count(id), 2U);
  EXPECT_EQ(queue->heartbeat(id, 1, 1, 1, 60s, true), Fenced::kOk);
  EXPECT_EQ(heard.count(id), 3U);
  EXPECT_EQ(queue->succeed(id, 2, result_named("k", 0)), Fenced::kLost);
  EXPECT_EQ(heard.count(id), 3U);
  const std::vector<std::string> many = queue->enqueue_many({new_job("b"), new_job("c")});
  EXPECT_EQ(heard.count(many[0]), 1U);
  EXPECT_EQ(heard.count(many[1]), 1U);
}

TEST_F(PgJobQueueTest, ListenerHearsAnotherInstancesChanges) {
  auto producer = open();
  auto consumer = open();
  Heard heard;
  consumer->on_change([&](std::string_view id) { heard.add(id); });
  consumer->start_listening();
  consumer->start_listening();  // once is enough
  ASSERT_TRUE(heard.wait_for("", 5s)) << "the listener never connected";

  const auto sent = std::chrono::steady_clock::now();
  const std::string id = producer->enqueue(new_job("a")).job.id;
  ASSERT_TRUE(heard.wait_for(id, 1s));
  EXPECT_LT(std::chrono::steady_clock::now() - sent, 1s);

  // Its own changes come back through the server, once each.
  ASSERT_EQ(consumer->claim("w", 1, 60s).size(), 1U);
  ASSERT_TRUE(heard.wait_for(id, 1s, 2));
  EXPECT_EQ(consumer->succeed(id, 1, result_named("k", 0)), Fenced::kOk);
  ASSERT_TRUE(heard.wait_for(id, 1s, 3));
  std::this_thread::sleep_for(50ms);
  EXPECT_EQ(heard.count(id), 3U);
}

TEST_F(PgJobQueueTest, SurvivesConnectionsClosedByTheServer) {
  auto queue = open();
  Heard heard;
  queue->on_change([&](std::string_view id) { heard.add(id); });
  queue->start_listening();
  ASSERT_TRUE(heard.wait_for("", 5s));
  const std::string id = queue->enqueue(new_job("a")).job.id;

  terminate_connections();
  // Pooled connections: the next call finds its connection dead and tries a new one.
  const std::optional<JobRecord> job = queue->get(id);
  ASSERT_TRUE(job.has_value());
  EXPECT_EQ(job->id, id);
  // The listener reconnects and says "anything may have changed".
  ASSERT_TRUE(heard.wait_for("", 5s, 2));
  const std::string next = queue->enqueue(new_job("b")).job.id;
  EXPECT_TRUE(heard.wait_for(next, 1s));
}

TEST_F(PgJobQueueTest, MigrateIsSafeFromManyProcessesAtOnce) {
  std::vector<std::thread> threads;
  std::vector<std::string> errors(4);
  threads.reserve(errors.size());
  for (std::string& error : errors) {
    threads.emplace_back([this, &error] {
      try {
        open_pg_job_queue(url_, 1, fast_tuning())->migrate();
      } catch (const QueueError& failure) {
        error = failure.what();
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  for (const std::string& error : errors) EXPECT_EQ(error, "");
  auto queue = open();
  queue->migrate();
  EXPECT_TRUE(queue->enqueue(new_job("a")).created);
}

TEST_F(PgJobQueueTest, ErrorsCarryTheServersMessage) {
  EXPECT_THROW(open_pg_job_queue(with_parameters(base_url_, {{"dbname", "no_such_database_x"}}), 1,
                                 fast_tuning()),
               QueueError);
  auto queue = open_pg_job_queue(url_, 1, fast_tuning());  // no migrate: no tables
  try {
    queue->get(new_job_id());
    ADD_FAILURE() << "get without tables succeeded";
  } catch (const QueueError& error) {
    EXPECT_NE(std::string(error.what()).find("sluice_jobs"), std::string::npos) << error.what();
  }
}

}  // namespace
}  // namespace sluice
