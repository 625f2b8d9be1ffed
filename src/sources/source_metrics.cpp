#include "sources/source_metrics.hpp"

namespace sluice {

const SourceMetrics& source_metrics() {
  static const SourceMetrics instance{
      metrics().counter("sluice_rows_read_total", "Rows taken from sources."),
      metrics().counter("sluice_rows_discarded_total",
                        "Rows taken from sources and never sent: the rest of an aborted or HEAD "
                        "export, read-ahead dropped by a cancel. When no stream is active, "
                        "rows_read_total = rows_sent_total + rows_discarded_total."),
      metrics().gauge("sluice_busy_source_threads",
                      "Blocking-pool threads currently stepping a query."),
  };
  return instance;
}

}  // namespace sluice
