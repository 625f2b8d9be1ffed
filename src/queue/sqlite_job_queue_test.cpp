#include "queue/sqlite_job_queue.hpp"

#include <gtest/gtest.h>

#include <filesystem>
#include <mutex>
#include <set>
#include <thread>

// The JobQueue contract on SQLite (the PostgreSQL queue's is pg_job_queue_test.cpp).

namespace sluice {
namespace {

using namespace std::chrono_literals;

class SqliteJobQueueTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("sluice-queue-test-" + std::to_string(::getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
    tuning_.backoff_base = 0ms;
    queue_ = open(tuning_);
  }
  void TearDown() override {
    queue_.reset();
    std::filesystem::remove_all(dir_);
  }
  std::unique_ptr<JobQueue> open(QueueTuning tuning) {
    auto queue = open_sqlite_job_queue(dir_ / "jobs.db", tuning);
    queue->migrate();
    return queue;
  }
  static NewJob job(std::string dataset = "orders", int priority = 0) {
    NewJob job;
    job.dataset = std::move(dataset);
    job.spec = R"({"dataset":"orders"})";
    job.priority = priority;
    job.max_attempts = 2;
    job.fingerprint = "f";
    return job;
  }
  static JobResult result(std::string key) {
    JobResult result;
    result.key = std::move(key);
    result.size = 10;
    result.rows = 2;
    result.sha256 = "ab";
    result.expires_at = 0;
    return result;
  }

  std::filesystem::path dir_;
  QueueTuning tuning_;
  std::unique_ptr<JobQueue> queue_;
};

TEST_F(SqliteJobQueueTest, EnqueueGetListAndIdempotency) {
  NewJob first = job();
  first.idempotency_key = "k1";
  const Enqueued a = queue_->enqueue(first);
  ASSERT_TRUE(a.created);
  EXPECT_TRUE(is_job_id(a.job.id));
  EXPECT_EQ(a.job.state, JobState::kQueued);
  EXPECT_EQ(a.job.last_event, 1u);
  const Enqueued again = queue_->enqueue(first);
  EXPECT_FALSE(again.created);
  EXPECT_EQ(again.job.id, a.job.id);
  const Enqueued b = queue_->enqueue(job("other"));
  ASSERT_TRUE(queue_->get(b.job.id));
  EXPECT_FALSE(queue_->get("00000000000000000000000000000000"));
  JobFilter all;
  const auto jobs = queue_->list(all);
  ASSERT_EQ(jobs.size(), 2u);
  EXPECT_EQ(jobs[0].id, b.job.id);  // newest first
  JobFilter page;
  page.before_id = b.job.id;
  ASSERT_EQ(queue_->list(page).size(), 1u);
  JobFilter by_dataset;
  by_dataset.dataset = "other";
  ASSERT_EQ(queue_->list(by_dataset).size(), 1u);
}

TEST_F(SqliteJobQueueTest, ConcurrentClaimersNeverShareAJob) {
  std::vector<NewJob> jobs(500, job());
  const std::vector<std::string> ids = queue_->enqueue_many(jobs);
  ASSERT_EQ(ids.size(), 500u);
  std::mutex mutex;
  std::multiset<std::string> claimed;
  std::vector<std::thread> threads;
  threads.reserve(4);
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      auto own = open(tuning_);  // a connection of its own, as another process would have
      for (;;) {
        auto batch = own->claim("w" + std::to_string(t), 10, 30s);
        if (batch.empty()) return;
        std::lock_guard lock(mutex);
        for (const auto& claimed_job : batch) claimed.insert(claimed_job.id);
      }
    });
  }
  for (auto& thread : threads) thread.join();
  EXPECT_EQ(claimed.size(), 500u);
  EXPECT_EQ(std::set<std::string>(claimed.begin(), claimed.end()).size(), 500u);
}

TEST_F(SqliteJobQueueTest, ClaimTakesPriorityThenAgeAndWaitsForRunAt) {
  const std::string low = queue_->enqueue(job("a", 0)).job.id;
  const std::string high = queue_->enqueue(job("b", 5)).job.id;
  NewJob later = job("c", 9);
  later.run_at = queue_->now() + 60'000;
  queue_->enqueue(later);
  auto first = queue_->claim("w", 1, 30s);
  ASSERT_EQ(first.size(), 1u);
  EXPECT_EQ(first[0].id, high);
  EXPECT_EQ(first[0].attempt, 1);
  EXPECT_EQ(first[0].state, JobState::kRunning);
  auto rest = queue_->claim("w", 10, 30s);
  ASSERT_EQ(rest.size(), 1u);  // the one with run_at in the future waits
  EXPECT_EQ(rest[0].id, low);
}

TEST_F(SqliteJobQueueTest, AStaleAttemptIsFencedAfterItsLeaseLapsed) {
  const std::string id = queue_->enqueue(job()).job.id;
  auto first = queue_->claim("w1", 1, 1ms);
  ASSERT_EQ(first.size(), 1u);
  std::this_thread::sleep_for(5ms);
  const SweepReport report = queue_->sweep();
  EXPECT_EQ(report.lapsed_requeued, 1u);
  auto second = queue_->claim("w2", 1, 30s);
  ASSERT_EQ(second.size(), 1u);
  EXPECT_EQ(second[0].attempt, 2);
  // The first worker wakes up: every write it tries is refused.
  EXPECT_EQ(queue_->heartbeat(id, 1, 5, 5, 30s, true), Fenced::kLost);
  EXPECT_EQ(queue_->succeed(id, 1, result("stale")), Fenced::kLost);
  EXPECT_EQ(queue_->fail(id, 1, "x", "y", true), Fenced::kLost);
  EXPECT_EQ(queue_->succeed(id, 2, result("fresh")), Fenced::kOk);
  const auto done = queue_->get(id);
  ASSERT_TRUE(done && done->result);
  EXPECT_EQ(done->state, JobState::kSucceeded);
  EXPECT_EQ(done->result->key, "fresh");
}

TEST_F(SqliteJobQueueTest, FailRetriesThenFailsForGood) {
  const std::string id = queue_->enqueue(job()).job.id;
  auto one = queue_->claim("w", 1, 30s);
  ASSERT_EQ(queue_->fail(id, 1, "source_error", "down", true), Fenced::kOk);
  EXPECT_EQ(queue_->get(id)->state, JobState::kQueued);
  auto two = queue_->claim("w", 1, 30s);
  ASSERT_EQ(two.size(), 1u);
  ASSERT_EQ(queue_->fail(id, 2, "source_error", "down again", true), Fenced::kOk);
  const auto failed = queue_->get(id);
  EXPECT_EQ(failed->state, JobState::kFailed);
  EXPECT_EQ(failed->error_message, "down again");
  EXPECT_GT(failed->finished_at, 0);
  // Not retryable: failed at once.
  const std::string other = queue_->enqueue(job()).job.id;
  queue_->claim("w", 1, 30s);
  ASSERT_EQ(queue_->fail(other, 1, "invalid", "bad", false), Fenced::kOk);
  EXPECT_EQ(queue_->get(other)->state, JobState::kFailed);
}

TEST_F(SqliteJobQueueTest, CancelQueuedAndRunning) {
  const std::string queued = queue_->enqueue(job()).job.id;
  EXPECT_EQ(queue_->cancel(queued)->state, JobState::kCancelled);
  EXPECT_TRUE(queue_->claim("w", 1, 30s).empty());
  const std::string running = queue_->enqueue(job()).job.id;
  ASSERT_EQ(queue_->claim("w", 1, 30s).size(), 1u);
  EXPECT_EQ(queue_->cancel(running)->state, JobState::kCancelled);
  EXPECT_EQ(queue_->heartbeat(running, 1, 1, 1, 30s, false), Fenced::kLost);
  EXPECT_EQ(queue_->succeed(running, 1, result("late")), Fenced::kLost);
  EXPECT_FALSE(queue_->cancel("0123456789abcdef0123456789abcdef"));
}

TEST_F(SqliteJobQueueTest, EventsAreContiguousAndTyped) {
  std::vector<std::string> heard;
  std::mutex mutex;
  queue_->on_change([&](std::string_view id) {
    std::lock_guard lock(mutex);
    heard.emplace_back(id);
  });
  const std::string id = queue_->enqueue(job()).job.id;
  queue_->claim("w", 1, 30s);
  EXPECT_EQ(queue_->heartbeat(id, 1, 10, 100, 30s, true), Fenced::kOk);
  EXPECT_EQ(queue_->heartbeat(id, 1, 10, 100, 30s, false), Fenced::kOk);
  EXPECT_EQ(queue_->succeed(id, 1, result("r")), Fenced::kOk);
  const auto events = queue_->events(id, 0, 100);
  std::vector<std::string> types;
  for (std::size_t i = 0; i < events.size(); ++i) {
    EXPECT_EQ(events[i].seq, i + 1);
    types.push_back(events[i].type);
  }
  EXPECT_EQ(types, (std::vector<std::string>{"queued", "started", "progress", "succeeded"}));
  EXPECT_EQ(events[2].data, progress_event_data(10, 100));
  EXPECT_EQ(queue_->events(id, 2, 100).size(), 2u);
  EXPECT_EQ(queue_->last_events({id})[0].second, 4u);
  std::lock_guard lock(mutex);
  // enqueue, claim (started), the heartbeat with an event, succeed; not the one without
  EXPECT_EQ(heard, std::vector<std::string>(4, id));
}

TEST_F(SqliteJobQueueTest, SucceedManyAppliesEachItemAsSucceedWould) {
  const std::vector<std::string> ids = queue_->enqueue_many(std::vector<NewJob>(50, job()));
  const std::vector<JobRecord> claimed = queue_->claim("w", 50, 30s);
  ASSERT_EQ(claimed.size(), 50u);
  const std::set<std::size_t> stale = {3, 17, 42};  // a wrong attempt
  const std::size_t cancelled = 29;
  ASSERT_EQ(queue_->cancel(claimed[cancelled].id)->state, JobState::kCancelled);
  std::vector<JobCompletion> completions;
  for (std::size_t index = 0; index < claimed.size(); ++index) {
    JobResult done = result("out/" + std::to_string(index) + "/\"q\",{x}\\.csv");
    done.rows = index;
    done.etag = index % 2 == 0 ? "" : "\"e" + std::to_string(index) + "\"";
    const int attempt = claimed[index].attempt + (stale.count(index) != 0 ? 1 : 0);
    completions.push_back({claimed[index].id, attempt, done});
  }
  completions.push_back(completions[0]);                               // the same job again
  completions.push_back({"0123456789abcdef0123456789abcdef", 1, {}});  // no such job

  std::vector<std::string> heard;
  std::mutex mutex;
  queue_->on_change([&](std::string_view id) {
    std::lock_guard lock(mutex);
    heard.emplace_back(id);
  });
  const std::vector<Fenced> answers = queue_->succeed_many(completions);
  ASSERT_EQ(answers.size(), completions.size());
  EXPECT_EQ(answers[50], Fenced::kLost);
  EXPECT_EQ(answers[51], Fenced::kLost);
  std::vector<std::string> applied;
  for (std::size_t index = 0; index < claimed.size(); ++index) {
    const std::string& id = claimed[index].id;
    const auto now = queue_->get(id);
    ASSERT_TRUE(now);
    const auto events = queue_->events(id, 0, 100);
    for (std::size_t e = 0; e < events.size(); ++e) EXPECT_EQ(events[e].seq, e + 1);
    if (stale.count(index) != 0 || index == cancelled) {
      EXPECT_EQ(answers[index], Fenced::kLost) << index;
      EXPECT_EQ(now->state, index == cancelled ? JobState::kCancelled : JobState::kRunning);
      EXPECT_FALSE(now->result);
      ASSERT_FALSE(events.empty());
      EXPECT_NE(events.back().type, "succeeded");
      continue;
    }
    EXPECT_EQ(answers[index], Fenced::kOk) << index;
    applied.push_back(id);
    EXPECT_EQ(now->state, JobState::kSucceeded);
    ASSERT_TRUE(now->result);
    EXPECT_EQ(now->result->key, completions[index].result.key);
    EXPECT_EQ(now->result->etag, completions[index].result.etag);
    EXPECT_EQ(now->result->rows, index);
    EXPECT_EQ(now->rows, index);
    EXPECT_EQ(now->last_event, 3u);
    EXPECT_GT(now->finished_at, 0);
    EXPECT_EQ(now->lease_until, 0);
    ASSERT_EQ(events.size(), 3u);
    EXPECT_EQ(events[2].type, "succeeded");
    EXPECT_EQ(events[2].data, succeeded_event_data(completions[index].result));
    EXPECT_EQ(events[2].at, now->finished_at);
  }
  EXPECT_EQ(applied.size(), 46u);
  {
    std::lock_guard lock(mutex);
    EXPECT_EQ(heard, applied);  // once each, in order, none for the refused
  }
  // The refused stale ones were left untouched: their own attempt still completes them.
  std::vector<JobCompletion> right;
  right.reserve(stale.size());
  for (std::size_t index : stale) right.push_back({claimed[index].id, claimed[index].attempt, {}});
  EXPECT_EQ(queue_->succeed_many(right), std::vector<Fenced>(3, Fenced::kOk));
  EXPECT_TRUE(queue_->succeed_many({}).empty());
  EXPECT_EQ(ids.size(), 50u);
}

TEST_F(SqliteJobQueueTest, ReuseAndExpiry) {
  NewJob original = job();
  original.data_version = "v1";
  const std::string id = queue_->enqueue(original).job.id;
  queue_->claim("w", 1, 30s);
  JobResult stored = result("shared");
  stored.expires_at = queue_->now() + 200;
  ASSERT_EQ(queue_->succeed(id, 1, stored), Fenced::kOk);
  auto found = queue_->find_reusable("f", "v1", 0ms);
  ASSERT_TRUE(found);
  EXPECT_EQ(found->id, id);
  EXPECT_FALSE(queue_->find_reusable("f", "v2", 0ms));
  EXPECT_FALSE(queue_->find_reusable("f", "v1", 1h));  // would not last long enough
  NewJob copy = original;
  copy.reuse = found->result;
  const Enqueued reused = queue_->enqueue(copy);
  EXPECT_EQ(reused.job.state, JobState::kSucceeded);
  EXPECT_EQ(reused.job.result->key, "shared");
  std::this_thread::sleep_for(250ms);
  const SweepReport report = queue_->sweep();
  EXPECT_EQ(report.expired, 2u);
  EXPECT_EQ(report.expired_keys, std::vector<std::string>{"shared"});  // once, no one uses it
  EXPECT_EQ(queue_->get(id)->state, JobState::kExpired);
}

TEST_F(SqliteJobQueueTest, ReleaseDoesNotCountTheAttemptAndRetentionDeletes) {
  const std::string id = queue_->enqueue(job()).job.id;
  queue_->claim("w", 1, 30s);
  ASSERT_EQ(queue_->release(id, 1), Fenced::kOk);
  const auto back = queue_->get(id);
  EXPECT_EQ(back->state, JobState::kQueued);
  EXPECT_EQ(back->attempt, 0);
  auto again = queue_->claim("w", 1, 30s);
  ASSERT_EQ(again.size(), 1u);
  EXPECT_EQ(again[0].attempt, 1);
  ASSERT_EQ(queue_->fail(id, 1, "x", "y", false), Fenced::kOk);
  QueueTuning short_retention = tuning_;
  short_retention.retention = 1ms;
  auto forgetful = open(short_retention);
  std::this_thread::sleep_for(5ms);
  EXPECT_EQ(forgetful->sweep().deleted, 1u);
  EXPECT_FALSE(queue_->get(id));
  EXPECT_TRUE(queue_->events(id, 0, 10).empty());
}

TEST(RetryBackoff, GrowsWithJitterWithinBounds) {
  QueueTuning tuning;
  tuning.backoff_base = 1000ms;
  tuning.backoff_max = 5000ms;
  for (int i = 0; i < 100; ++i) {
    const auto first = retry_backoff(tuning, 1);
    EXPECT_GE(first, 500ms);
    EXPECT_LE(first, 1000ms);
    const auto third = retry_backoff(tuning, 3);
    EXPECT_GE(third, 2000ms);
    EXPECT_LE(third, 4000ms);
    const auto capped = retry_backoff(tuning, 30);
    EXPECT_LE(capped, 5000ms);
    EXPECT_GE(capped, 2500ms);
  }
}

}  // namespace
}  // namespace sluice
