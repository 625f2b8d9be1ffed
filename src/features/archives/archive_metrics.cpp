#include "features/archives/archive_metrics.hpp"

namespace sluice {

const ArchiveMetrics& archive_metrics() {
  static Gauge& active =
      metrics().gauge("sluice_active_archives", "Archive downloads currently sending.");
  static const ArchiveMetrics instance{
      StreamCounters{
          metrics().counter("sluice_archives_started_total",
                            "Archive bodies started (headers sent; not HEAD, 416 or errors)."),
          metrics().counter("sluice_archives_completed_total",
                            "Archive downloads that ended with a complete body."),
          metrics().counter("sluice_archives_aborted_total",
                            "Archive downloads aborted after their headers (client gone, stalled "
                            "write, object changed, shutdown)."),
          &active,
      },
      metrics().counter("sluice_archive_bytes_sent_total", "Archive body bytes handed to sockets."),
      metrics().counter("sluice_archives_swept_total",
                        "Expired archive manifests the sweeper deleted."),
  };
  return instance;
}

}  // namespace sluice
