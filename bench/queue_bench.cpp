// The job queue (src/queue) on its own: how many no-op jobs per second it moves, and how long a
// new job waits before a worker claims it. A program of its own (not Google Benchmark: the
// phases are minutes of threads, not loops); bench/queue_throughput.py runs it on a throwaway
// PostgreSQL and on SQLite files, several rounds, and prints medians and the ratios to the
// targets.
//
//   sluice_queue_bench --pg URL | --sqlite FILE [--jobs 50000] [--batch 500] [--workers 2]
//                      [--claim 100] [--latency-jobs 200] [--spacing-ms 20] [--poll-ms 100]
//                      [--pool N] [--complete batch|one] [--skip-throughput] [--skip-latency]
//
// (a) throughput, three timed parts on the same queue:
//     enqueue only:        enqueue_many of --jobs jobs in batches of --batch, no worker running;
//     claim+complete only: --workers threads claim (at most --claim at a time) and succeed
//                          each job until those are all done: with --complete batch (the
//                          default) one succeed_many() per claimed batch, with --complete one
//                          one succeed() per job;
//     together:            a producer enqueues --jobs more in batches while the workers claim
//                          and complete them; first enqueue to last succeed.
// (b) enqueue-to-start latency with notifications: --latency-jobs single enqueue() calls,
//     --spacing-ms apart; one worker sleeps on a condition variable that the on_change
//     callback signals (PostgreSQL: start_listening(), so the wake-up travels through
//     LISTEN/NOTIFY), then claims. Latency = the claim's return minus the moment before the
//     enqueue() call (steady clock, one process).
// (c) the same with polling only: no callback, the worker claims every --poll-ms.
//
// Output: one `key=value` per line (rates in jobs/s, latencies in ms).

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <iostream>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "queue/job_queue.hpp"
#include "queue/pg_job_queue.hpp"
#include "queue/sqlite_job_queue.hpp"

namespace sluice {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

struct Options {
  std::string pg_url;
  std::string sqlite_file;
  std::size_t jobs = 50'000;
  std::size_t batch = 500;
  std::size_t workers = 2;
  std::size_t claim_max = 100;
  std::size_t latency_jobs = 200;
  std::chrono::milliseconds spacing{20};
  std::chrono::milliseconds poll{100};
  std::size_t pool = 0;  // 0: workers + 2
  bool complete_batch = true;  // --complete batch: succeed_many per claim; one: succeed per job
  bool throughput = true;
  bool latency = true;
};

[[noreturn]] void usage(const std::string& problem) {
  std::cerr << "sluice_queue_bench: " << problem << "\n"
            << "usage: sluice_queue_bench --pg URL | --sqlite FILE [--jobs N] [--batch N]\n"
               "         [--workers N] [--claim N] [--latency-jobs N] [--spacing-ms N]\n"
               "         [--poll-ms N] [--pool N] [--complete batch|one] [--skip-throughput]\n"
               "         [--skip-latency]\n";
  std::exit(2);
}

Options parse(int argc, char** argv) {
  Options options;
  for (int index = 1; index < argc; ++index) {
    const std::string arg = argv[index];
    auto value = [&]() -> std::string {
      if (index + 1 >= argc) usage(arg + " needs a value");
      return argv[++index];
    };
    auto number = [&]() -> std::size_t {
      const std::string text = value();
      try {
        return static_cast<std::size_t>(std::stoull(text));
      } catch (const std::exception&) {
        usage(arg + ": not a number: " + text);
      }
    };
    if (arg == "--pg") {
      options.pg_url = value();
    } else if (arg == "--sqlite") {
      options.sqlite_file = value();
    } else if (arg == "--jobs") {
      options.jobs = number();
    } else if (arg == "--batch") {
      options.batch = std::max<std::size_t>(number(), 1);
    } else if (arg == "--workers") {
      options.workers = std::max<std::size_t>(number(), 1);
    } else if (arg == "--claim") {
      options.claim_max = std::max<std::size_t>(number(), 1);
    } else if (arg == "--latency-jobs") {
      options.latency_jobs = number();
    } else if (arg == "--spacing-ms") {
      options.spacing = std::chrono::milliseconds(number());
    } else if (arg == "--poll-ms") {
      options.poll = std::chrono::milliseconds(std::max<std::size_t>(number(), 1));
    } else if (arg == "--pool") {
      options.pool = number();
    } else if (arg == "--complete") {
      const std::string mode = value();
      if (mode != "batch" && mode != "one") usage("--complete: batch or one, not " + mode);
      options.complete_batch = mode == "batch";
    } else if (arg == "--skip-throughput") {
      options.throughput = false;
    } else if (arg == "--skip-latency") {
      options.latency = false;
    } else {
      usage("unknown argument " + arg);
    }
  }
  if (options.pg_url.empty() == options.sqlite_file.empty()) usage("give --pg or --sqlite");
  return options;
}

std::unique_ptr<JobQueue> open_queue(const Options& options) {
  QueueTuning tuning;
  std::unique_ptr<JobQueue> queue =
      options.pg_url.empty()
          ? open_sqlite_job_queue(options.sqlite_file, tuning)
          : open_pg_job_queue(options.pg_url, options.pool > 0 ? options.pool : options.workers + 2,
                              tuning);
  queue->migrate();
  return queue;
}

void print(const std::string& key, double value) {
  std::printf("%s=%.1f\n", key.c_str(), value);
  std::fflush(stdout);
}

double per_second(std::size_t count, Clock::duration elapsed) {
  const double seconds = std::chrono::duration<double>(elapsed).count();
  return seconds > 0 ? static_cast<double>(count) / seconds : 0.0;
}

NewJob noop_job(std::size_t index) {
  NewJob job;
  job.dataset = "bench";
  job.spec = R"({"dataset":"bench","format":"csv","n":)" + std::to_string(index) + "}";
  job.max_attempts = 3;
  return job;
}

JobResult noop_result(const std::string& id) {
  JobResult result;
  result.key = "bench/" + id + ".csv";
  result.sha256 = std::string(64, '0');
  result.expires_at = std::chrono::duration_cast<std::chrono::milliseconds>(
                          std::chrono::system_clock::now().time_since_epoch() + 24h)
                          .count();
  return result;
}

// Succeeds the jobs a worker claimed: one succeed_many() or one succeed() each. Throws when
// any was fenced (nothing else touches the bench's jobs).
void complete(JobQueue& queue, const std::vector<JobRecord>& jobs, bool batch) {
  if (batch) {
    std::vector<JobCompletion> completions;
    completions.reserve(jobs.size());
    for (const JobRecord& job : jobs) {
      completions.push_back({job.id, job.attempt, noop_result(job.id)});
    }
    const std::vector<Fenced> answers = queue.succeed_many(completions);
    for (std::size_t index = 0; index < jobs.size(); ++index) {
      if (answers.at(index) != Fenced::kOk) {
        throw std::runtime_error("succeed_many was fenced for " + jobs[index].id);
      }
    }
    return;
  }
  for (const JobRecord& job : jobs) {
    if (queue.succeed(job.id, job.attempt, noop_result(job.id)) != Fenced::kOk) {
      throw std::runtime_error("succeed was fenced for " + job.id);
    }
  }
}

void enqueue_batches(JobQueue& queue, std::size_t jobs, std::size_t batch) {
  for (std::size_t done = 0; done < jobs;) {
    const std::size_t count = std::min(batch, jobs - done);
    std::vector<NewJob> batch_jobs;
    batch_jobs.reserve(count);
    for (std::size_t index = 0; index < count; ++index)
      batch_jobs.push_back(noop_job(done + index));
    queue.enqueue_many(batch_jobs);
    done += count;
  }
}

// Worker threads that claim and succeed jobs until `target` jobs are done in all.
class Workers {
 public:
  Workers(JobQueue& queue, const Options& options, std::size_t target)
      : queue_(queue), target_(target), batch_(options.complete_batch) {
    for (std::size_t index = 0; index < options.workers; ++index) {
      threads_.emplace_back([this, index, max = options.claim_max] { run(index, max); });
    }
  }
  ~Workers() { join(); }
  Workers(const Workers&) = delete;
  Workers& operator=(const Workers&) = delete;

  // Returns when all are done; the time of the last succeed.
  Clock::time_point join() {
    for (std::thread& thread : threads_) {
      if (thread.joinable()) thread.join();
    }
    if (failure_) std::rethrow_exception(failure_);
    return last_;
  }
  std::size_t empty_claims() const { return empty_claims_.load(); }

 private:
  void run(std::size_t index, std::size_t max) {
    const std::string worker = "bench-" + std::to_string(index);
    try {
      while (done_.load() < target_ && !stop_.load()) {
        const std::vector<JobRecord> jobs = queue_.claim(worker, max, 60s);
        if (jobs.empty()) {
          ++empty_claims_;
          std::this_thread::sleep_for(1ms);
          continue;
        }
        complete(queue_, jobs, batch_);
        if (done_.fetch_add(jobs.size()) + jobs.size() >= target_) {
          std::lock_guard lock(mutex_);
          last_ = std::max(last_, Clock::now());
        }
      }
    } catch (...) {
      std::lock_guard lock(mutex_);
      if (!failure_) failure_ = std::current_exception();
      stop_.store(true);
    }
  }

  JobQueue& queue_;
  const std::size_t target_;
  const bool batch_;
  std::atomic<std::size_t> done_{0};
  std::atomic<std::size_t> empty_claims_{0};
  std::atomic<bool> stop_{false};
  std::mutex mutex_;
  Clock::time_point last_{};
  std::exception_ptr failure_;
  std::vector<std::thread> threads_;
};

void throughput(const Options& options) {
  std::unique_ptr<JobQueue> queue = open_queue(options);
  // Warm-up: connections, prepared statements, the tables' first pages.
  enqueue_batches(*queue, options.batch, options.batch);
  Workers(*queue, options, options.batch).join();

  const Clock::time_point enqueue_start = Clock::now();
  enqueue_batches(*queue, options.jobs, options.batch);
  print("enqueue_jobs_per_s", per_second(options.jobs, Clock::now() - enqueue_start));

  const Clock::time_point drain_start = Clock::now();
  const Clock::time_point drained = Workers(*queue, options, options.jobs).join();
  print("claim_complete_jobs_per_s", per_second(options.jobs, drained - drain_start));

  const Clock::time_point start = Clock::now();
  Workers workers(*queue, options, options.jobs);
  enqueue_batches(*queue, options.jobs, options.batch);
  const Clock::time_point enqueued = Clock::now();
  const Clock::time_point last = workers.join();
  print("together_enqueue_jobs_per_s", per_second(options.jobs, enqueued - start));
  print("throughput_jobs_per_s", per_second(options.jobs, last - start));
  print("throughput_empty_claims", static_cast<double>(workers.empty_claims()));
}

double percentile(std::vector<double> values, double fraction) {
  if (values.empty()) return 0.0;
  std::sort(values.begin(), values.end());
  const auto rank =
      static_cast<std::size_t>(fraction * static_cast<double>(values.size()) + 0.999999);
  return values[std::clamp<std::size_t>(rank, 1, values.size()) - 1];
}

// One worker that claims after each wake-up (notified) or every `poll` (polling).
void latency(const Options& options, bool notified, const std::string& prefix) {
  std::unique_ptr<JobQueue> queue = open_queue(options);
  std::mutex mutex;
  std::condition_variable wake;
  bool signalled = false;
  bool listening = false;
  if (notified) {
    queue->on_change([&](std::string_view id) {
      std::lock_guard lock(mutex);
      signalled = true;
      if (id.empty()) listening = true;
      wake.notify_all();
    });
    if (queue->notifies_across_processes()) {
      queue->start_listening();
      std::unique_lock lock(mutex);
      if (!wake.wait_for(lock, 10s, [&] { return listening; })) {
        throw std::runtime_error("the listener did not connect within 10 s");
      }
    }
  }

  std::map<std::string, Clock::time_point> claimed_at;  // the worker's
  std::atomic<bool> stop{false};
  std::atomic<bool> failed{false};
  std::exception_ptr failure;  // set before `failed`
  std::thread worker([&] {
    try {
      while (!stop.load()) {
        if (notified) {
          std::unique_lock lock(mutex);
          wake.wait_for(lock, 1s, [&] { return signalled || stop.load(); });
          signalled = false;
        } else {
          std::this_thread::sleep_for(options.poll);
        }
        while (true) {  // everything due, then wait again
          const std::vector<JobRecord> jobs = queue->claim("latency", 10, 60s);
          const Clock::time_point at = Clock::now();
          if (jobs.empty()) break;
          for (const JobRecord& job : jobs) claimed_at.emplace(job.id, at);
          complete(*queue, jobs, options.complete_batch);
        }
      }
    } catch (...) {
      failure = std::current_exception();
      failed.store(true);
    }
  });

  std::map<std::string, Clock::time_point> enqueued_at;
  Clock::time_point next = Clock::now();
  for (std::size_t index = 0; index < options.latency_jobs && !failed.load(); ++index) {
    std::this_thread::sleep_until(next);
    next += options.spacing;
    const Clock::time_point at = Clock::now();
    enqueued_at.emplace(queue->enqueue(noop_job(index)).job.id, at);
  }
  // Let the last ones be claimed (polling: at most one period late).
  std::this_thread::sleep_for(std::max<std::chrono::milliseconds>(options.poll * 2, 500ms));
  {
    std::lock_guard lock(mutex);
    stop.store(true);
    wake.notify_all();
  }
  worker.join();
  if (failure) std::rethrow_exception(failure);

  std::vector<double> latencies;
  latencies.reserve(enqueued_at.size());
  std::size_t missing = 0;
  for (const auto& [id, at] : enqueued_at) {
    const auto claimed = claimed_at.find(id);
    if (claimed == claimed_at.end()) {
      ++missing;
      continue;
    }
    latencies.push_back(std::chrono::duration<double, std::milli>(claimed->second - at).count());
  }
  print(prefix + "_latency_ms_p50", percentile(latencies, 0.50));
  print(prefix + "_latency_ms_p90", percentile(latencies, 0.90));
  print(prefix + "_latency_ms_p99", percentile(latencies, 0.99));
  print(prefix + "_latency_ms_max", percentile(latencies, 1.0));
  print(prefix + "_latency_unclaimed", static_cast<double>(missing));
}

}  // namespace
}  // namespace sluice

int main(int argc, char** argv) {
  using namespace sluice;
  const Options options = parse(argc, argv);
  try {
    std::printf("backend=%s\n", options.pg_url.empty() ? "sqlite" : "pg");
    std::printf("jobs=%zu\nbatch=%zu\nworkers=%zu\nclaim_max=%zu\ncomplete=%s\n", options.jobs,
                options.batch, options.workers, options.claim_max,
                options.complete_batch ? "batch" : "one");
    if (options.throughput) throughput(options);
    if (options.latency) {
      latency(options, true, "notify");
      latency(options, false, "poll");
    }
  } catch (const std::exception& error) {
    std::fprintf(stderr, "sluice_queue_bench: %s\n", error.what());
    return 1;
  }
  return 0;
}
