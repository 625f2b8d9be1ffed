#include "core/metrics.hpp"

#include <sstream>

namespace sluice {

Metrics& metrics() {
  static Metrics instance;
  return instance;
}

namespace {

template <typename T>
void write_metric(std::ostringstream& out, const char* name, const char* type, const char* help,
                  const std::atomic<T>& value) {
  out << "# HELP " << name << ' ' << help << "\n# TYPE " << name << ' ' << type << '\n'
      << name << ' ' << value.load(std::memory_order_relaxed) << '\n';
}

}  // namespace

std::string Metrics::render_prometheus() const {
  std::ostringstream out;
  write_metric(out, "sluice_active_streams", "gauge", "Exports currently streaming.",
               active_streams);
  write_metric(out, "sluice_streams_started_total", "counter", "Exports started.",
               streams_started_total);
  write_metric(out, "sluice_streams_completed_total", "counter",
               "Exports that ended with a complete body.", streams_completed_total);
  write_metric(out, "sluice_streams_aborted_total", "counter",
               "Exports aborted (client gone, stalled write, source error, shutdown).",
               streams_aborted_total);
  write_metric(out, "sluice_bytes_sent_total", "counter", "Export body bytes handed to sockets.",
               bytes_sent_total);
  write_metric(out, "sluice_rows_read_total", "counter", "Rows taken from sources.",
               rows_read_total);
  write_metric(out, "sluice_rows_sent_total", "counter", "Rows encoded and handed to sockets.",
               rows_sent_total);
  write_metric(out, "sluice_requests_total", "counter", "HTTP requests received.", requests_total);
  write_metric(out, "sluice_busy_source_threads", "gauge",
               "Blocking-pool threads currently stepping a query.", busy_source_threads);
  write_metric(out, "sluice_stream_budget_bytes", "gauge",
               "Per-stream byte budget of the export pipeline.", stream_budget_bytes);
  write_metric(out, "sluice_active_archives", "gauge", "Archive downloads currently sending.",
               active_archives);
  write_metric(out, "sluice_archives_started_total", "counter", "Archive downloads started.",
               archives_started_total);
  write_metric(out, "sluice_archives_completed_total", "counter",
               "Archive downloads that ended with a complete body.", archives_completed_total);
  write_metric(out, "sluice_archives_aborted_total", "counter",
               "Archive downloads aborted (client gone, stalled write, object changed).",
               archives_aborted_total);
  write_metric(out, "sluice_archive_bytes_sent_total", "counter",
               "Archive body bytes handed to sockets.", archive_bytes_sent_total);
  write_metric(out, "sluice_open_object_files", "gauge",
               "Object-store files open right now (archive reads).", open_object_files);
  write_metric(out, "sluice_busy_object_reads", "gauge",
               "Blocking-pool threads reading stored objects right now.", busy_object_reads);
  return out.str();
}

}  // namespace sluice
