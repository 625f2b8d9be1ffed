#pragma once

#include "core/stream_limiter.hpp"

namespace sluice {

// The export feature's series (registered on first use; add_export_routes registers them).
struct ExportMetrics {
  StreamCounters streams;  // sluice_streams_{started,completed,aborted}_total
  Counter& bytes_sent;     // body bytes handed to sockets (after compression)
};

const ExportMetrics& export_metrics();

}  // namespace sluice
