#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace sluice {

// A count that only grows (a Prometheus counter).
// Thread-safe: a relaxed atomic; readers see a consistent-enough value for monitoring.
class Counter {
 public:
  void add(std::uint64_t n = 1) { value_.fetch_add(n, std::memory_order_relaxed); }
  std::uint64_t value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<std::uint64_t> value_{0};
};

// A value that goes up and down (a Prometheus gauge). Thread-safe like Counter.
class Gauge {
 public:
  // Returns the new value.
  std::int64_t add(std::int64_t n = 1) { return value_.fetch_add(n, std::memory_order_relaxed) + n; }
  void sub(std::int64_t n = 1) { value_.fetch_sub(n, std::memory_order_relaxed); }
  void set(std::int64_t value) { value_.store(value, std::memory_order_relaxed); }
  std::int64_t value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<std::int64_t> value_{0};
};

// Every series GET /metrics shows. Each layer and feature registers its own series where it
// lives, typically once, into a struct of references (sources/source_metrics.hpp,
// features/exports/export_metrics.hpp, ...), so a new feature adds series without editing this
// file. Registering a name again returns the same series: two layers may count into one (the
// sources and the pipeline both count discarded rows). The first registration's help wins.
// A returned reference stays valid for the life of the process. `labels` (optional) tells apart
// series of one name, in Prometheus syntax without braces: `class="2xx"`.
// Thread-safe.
class MetricsRegistry {
 public:
  Counter& counter(const std::string& name, const std::string& help,
                   const std::string& labels = {});
  Gauge& gauge(const std::string& name, const std::string& help, const std::string& labels = {});
  // Prometheus text format (version 0.0.4), series sorted by name.
  std::string render_prometheus() const;

 private:
  struct Series {
    std::string name;
    std::string labels;
    std::string help;
    std::unique_ptr<Counter> counter;  // exactly one of the two is set
    std::unique_ptr<Gauge> gauge;
  };
  Series& find_or_add(const std::string& name, const std::string& labels, const std::string& help,
                      bool counter);

  mutable std::mutex mutex_;
  std::vector<std::unique_ptr<Series>> series_;
};

// The process-wide registry.
MetricsRegistry& metrics();

}  // namespace sluice
