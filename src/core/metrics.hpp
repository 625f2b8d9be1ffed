#pragma once

#include <atomic>
#include <cstdint>
#include <string>

namespace sluice {

// Process-wide counters, rendered in Prometheus text format by GET /metrics.
// Thread-safe: relaxed atomics; readers see a consistent-enough snapshot for monitoring.
struct Metrics {
  std::atomic<std::int64_t> active_streams{0};          // exports currently sending
  std::atomic<std::uint64_t> streams_started_total{0};
  std::atomic<std::uint64_t> streams_completed_total{0};  // ended with the last chunk
  std::atomic<std::uint64_t> streams_aborted_total{0};    // client gone, stall, source error
  std::atomic<std::uint64_t> bytes_sent_total{0};        // export body bytes handed to sockets
  std::atomic<std::uint64_t> rows_read_total{0};         // rows taken from sources
  std::atomic<std::uint64_t> rows_sent_total{0};         // rows encoded and handed to sockets
  std::atomic<std::uint64_t> requests_total{0};
  std::atomic<std::int64_t> busy_source_threads{0};      // blocking-pool threads stepping queries
  std::atomic<std::uint64_t> stream_budget_bytes{0};     // configured per-stream byte budget
  // Archives (src/features/archives) and the object store they read.
  std::atomic<std::int64_t> active_archives{0};          // archive downloads currently sending
  std::atomic<std::uint64_t> archives_started_total{0};
  std::atomic<std::uint64_t> archives_completed_total{0};
  std::atomic<std::uint64_t> archives_aborted_total{0};  // client gone, stall, object changed
  std::atomic<std::uint64_t> archive_bytes_sent_total{0};
  std::atomic<std::int64_t> open_object_files{0};        // object-store files open right now
  std::atomic<std::int64_t> busy_object_reads{0};        // pool threads reading objects now

  std::string render_prometheus() const;
};

Metrics& metrics();

}  // namespace sluice
