#pragma once

#include "core/stream_limiter.hpp"

namespace sluice {

// The archive feature's series (registered on first use; the feature registers them at start).
struct ArchiveMetrics {
  StreamCounters streams;  // sluice_archives_{started,completed,aborted}_total, active_archives
  Counter& bytes_sent;     // archive body bytes handed to sockets
  Counter& swept;          // expired manifests the sweeper deleted
};

const ArchiveMetrics& archive_metrics();

}  // namespace sluice
