#include "storage/storage_metrics.hpp"

namespace sluice {

const StorageMetrics& storage_metrics() {
  static const StorageMetrics instance{
      metrics().gauge("sluice_open_object_files", "Object-store files open right now."),
      metrics().gauge("sluice_busy_object_reads",
                      "Blocking-pool threads reading stored objects right now."),
  };
  return instance;
}

}  // namespace sluice
