#pragma once

#include "core/metrics.hpp"

namespace sluice {

// The series the sources count into (registered on first use).
struct SourceMetrics {
  Counter& rows_read;       // rows taken from databases
  Counter& rows_discarded;  // rows read and never sent (shared with the pipeline)
  Gauge& busy_threads;      // blocking-pool threads stepping a query now
};

const SourceMetrics& source_metrics();

}  // namespace sluice
