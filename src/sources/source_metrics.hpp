#pragma once

#include "core/metrics.hpp"

namespace sluice {

// The series the sources count into (registered on first use).
struct SourceMetrics {
  Counter& rows_read;       // rows taken from databases
  Counter& rows_discarded;  // rows read and never sent (shared with the pipeline)
  Gauge& busy_threads;      // blocking-pool threads stepping a query now
  Counter& pg_copies_socket;  // PostgreSQL COPYs read off the socket (PgCopyStream)
  Counter& pg_copies_libpq;   // ... and through libpq (TLS or GSS connections)
};

const SourceMetrics& source_metrics();

}  // namespace sluice
