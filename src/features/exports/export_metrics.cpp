#include "features/exports/export_metrics.hpp"

namespace sluice {

const ExportMetrics& export_metrics() {
  static const ExportMetrics instance{
      StreamCounters{
          metrics().counter("sluice_streams_started_total",
                            "Export bodies started (headers sent; not HEAD, not errors)."),
          metrics().counter("sluice_streams_completed_total",
                            "Exports that ended with a complete body."),
          metrics().counter("sluice_streams_aborted_total",
                            "Exports aborted after their headers (client gone, stalled write, "
                            "source error, shutdown)."),
      },
      metrics().counter("sluice_bytes_sent_total", "Export body bytes handed to sockets."),
  };
  return instance;
}

}  // namespace sluice
