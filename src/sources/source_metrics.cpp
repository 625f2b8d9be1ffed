#include "sources/source_metrics.hpp"

#include <string>

namespace sluice {

const SourceMetrics& source_metrics() {
  static const std::string copies_help =
      "PostgreSQL COPYs started, by how their rows are read: off the socket by Sluice, or "
      "through libpq (connections with TLS or GSS encryption).";
  static const SourceMetrics instance{
      metrics().counter("sluice_rows_read_total", "Rows taken from sources."),
      metrics().counter("sluice_rows_discarded_total",
                        "Rows taken from sources and never sent: the rest of an aborted or HEAD "
                        "export, read-ahead dropped by a cancel. When no stream is active, "
                        "rows_read_total = rows_sent_total + rows_discarded_total."),
      metrics().gauge("sluice_busy_source_threads",
                      "Blocking-pool threads currently stepping a query."),
      metrics().counter("sluice_pg_copies_total", copies_help, "reader=\"socket\""),
      metrics().counter("sluice_pg_copies_total", copies_help, "reader=\"libpq\""),
  };
  return instance;
}

}  // namespace sluice
