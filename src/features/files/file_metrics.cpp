#include "features/files/file_metrics.hpp"

namespace sluice {

const FileMetrics& file_metrics() {
  static Gauge& active =
      metrics().gauge("sluice_active_files", "File downloads (presigned links) currently sending.");
  static const FileMetrics instance{
      StreamCounters{
          metrics().counter("sluice_files_started_total",
                            "File bodies started (headers sent; not HEAD, 304, 416 or errors)."),
          metrics().counter("sluice_files_completed_total",
                            "File downloads that ended with a complete body."),
          metrics().counter("sluice_files_aborted_total",
                            "File downloads aborted after their headers (client gone, stalled "
                            "write, object changed, shutdown)."),
          &active,
      },
      metrics().counter("sluice_file_bytes_sent_total", "File body bytes handed to sockets."),
      metrics().counter("sluice_file_links_rejected_total",
                        "File requests refused because the link was invalid or expired."),
  };
  return instance;
}

}  // namespace sluice
