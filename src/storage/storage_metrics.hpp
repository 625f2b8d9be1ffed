#pragma once

#include "core/metrics.hpp"

namespace sluice {

// The series the object stores count into (registered on first use).
struct StorageMetrics {
  Gauge& open_files;  // object-store files open right now
  Gauge& busy_reads;  // blocking-pool threads reading objects now
};

const StorageMetrics& storage_metrics();

}  // namespace sluice
